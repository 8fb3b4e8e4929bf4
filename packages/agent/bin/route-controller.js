#!/usr/bin/env -S node --max-semi-space-size=1 --lite-mode
// The route-controller executable: the bundle that `pnpm install` builds (build.mjs). Committed, so
// pnpm can link the bin before the first build. The V8 flags keep the idle agent small (a smaller
// young generation; lite mode: no optimizing compilers, which an agent that mostly waits never
// needs, and which start-up does not pay for either): they apply when this file runs as a program
// (directly, or via pnpm's or npm's bin shim), not as `node <this file>`.
import '../dist/bundle/route-controller.mjs';
