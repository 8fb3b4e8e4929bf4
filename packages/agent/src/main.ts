// The executable entry point (bin/route-controller.js imports this).
import { main } from './cli.js';

await main();
