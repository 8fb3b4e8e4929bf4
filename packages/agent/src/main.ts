// The executable entry point (the bundle's entry; bin/route-controller.js imports it).
import { VERSION } from './version.js';

const args = process.argv.slice(2);
// `--version` alone is answered before the CLI loads: it costs what `node -e 0` costs, nearly.
if (args.length === 1 && (args[0] === '--version' || args[0] === '-v')) {
  process.stdout.write(`${VERSION}\n`);
} else {
  const { main } = await import('./cli.js');
  await main();
}
