import { RouteControllerError } from '../errors.js';

/** Awaits `promise` and returns the RouteControllerError it rejects with; anything else fails. */
export async function codedRejection(promise: Promise<unknown>): Promise<RouteControllerError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof RouteControllerError) return error;
    throw error;
  }
  throw new Error('expected a rejection with a RouteControllerError, but the promise resolved');
}
