// The bundle's entry point: bin/route-controller.cjs imports it (after answering `--version` itself).
import { main } from './cli.js';

await main();
