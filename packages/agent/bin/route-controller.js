#!/usr/bin/env -S node --max-semi-space-size=1 --max-opt=2
// The route-controller executable: the bundle that `pnpm install` builds (build.mjs). Committed, so
// pnpm can link the bin before the first build. The V8 flags keep the idle agent small (a smaller
// young generation, no TurboFan tier): they apply when this file runs as a program (directly, or via
// pnpm's or npm's bin shim), not as `node <this file>`; the image's entrypoint passes them itself.
import '../dist/bundle/route-controller.mjs';
