#!/usr/bin/env node
// A committed shim, so pnpm can link the bin before the first build has produced dist/.
import '../dist/main.js';
