// tsyringe reads Reflect metadata as soon as it loads, so the polyfill must come first:
// every module takes tsyringe from here, never directly.
import 'reflect-metadata';

export {
  container,
  type DependencyContainer,
  type InjectionToken,
  inject,
  injectable,
  instanceCachingFactory,
} from 'tsyringe';
