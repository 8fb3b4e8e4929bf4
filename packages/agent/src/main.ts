// The executable entry point (the bundle's entry; bin/route-controller.js imports it).

/** The version, set by the bundler (build.mjs); absent when the TypeScript output runs unbundled. */
declare const __RC_VERSION__: string | undefined;

const args = process.argv.slice(2);
// `--version` alone is answered before anything else loads (in the bundle this file imports no other
// module), so it costs what `node -e 0` costs, nearly.
if (args.length === 1 && (args[0] === '--version' || args[0] === '-v')) {
  const version = typeof __RC_VERSION__ === 'string' ? __RC_VERSION__ : (await import('./version.js')).VERSION;
  process.stdout.write(`${version}\n`);
} else {
  const { main } = await import('./cli.js');
  await main();
}
