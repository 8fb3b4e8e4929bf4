// Bundles the route-controller executable: dist/bundle/route-controller.mjs (the CLI: commander and the
// settings table) plus chunks that load on demand (a command's code, the iptables backend, prom-client,
// the Kubernetes client), each minified ESM with a linked source map. Runs after `tsc -b`, which has
// built the workspace packages this resolves to (their dist/).
//
// Usage: node build.mjs [--outdir DIR] [--without PLUGIN,...]
// The options exist for the bench's "start-up tricks" section (test/bench/tricks.ts), which builds the
// bundle without each plugin in turn to measure what it buys.
import { readFile, rm, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';

const here = new URL('.', import.meta.url);
const pkg = JSON.parse(await readFile(new URL('package.json', here), 'utf8'));
const { values: options } = parseArgs({
  options: { outdir: { type: 'string' }, without: { type: 'string', default: '' } },
});
const outdir = options.outdir ?? new URL('dist/bundle/', here).pathname;
const without = new Set(options.without.split(',').filter(Boolean));

/** Keeps the Kubernetes chunk to what the agent uses (1068 KiB -> 682 KiB, ~2 MiB less heap). */
const trimKubernetesClient = {
  name: 'trim-kubernetes-client',
  setup(b) {
    // node-fetch@2 falls back to whatwg-url (and tr46's Unicode tables, and the deprecated punycode
    // built-in) only where there is no global URL; Node always has one.
    b.onResolve({ filter: /^whatwg-url$/ }, () => ({ path: 'whatwg-url', namespace: 'rc-shim' }));
    b.onLoad({ filter: /.*/, namespace: 'rc-shim' }, () => ({ contents: 'module.exports = { URL };', loader: 'js' }));
    // @kubernetes/client-node declares no sideEffects, so every module it re-exports (exec, attach, cp
    // with ws and tar-fs, ...) would be kept; its modules have none.
    b.onResolve({ filter: /.*/ }, async (args) => {
      if (args.pluginData?.trimmed || !/@kubernetes[\\/]client-node[\\/]dist[\\/]/.test(args.importer))
        return undefined;
      const resolved = await b.resolve(args.path, {
        kind: args.kind,
        resolveDir: args.resolveDir,
        importer: args.importer,
        pluginData: { trimmed: true },
      });
      return /@kubernetes[\\/]client-node[\\/]dist[\\/]/.test(resolved.path)
        ? { ...resolved, sideEffects: false }
        : resolved;
    });
  },
};

const plugins = [trimKubernetesClient];
for (const name of without) {
  if (!plugins.some((plugin) => plugin.name === name)) throw new Error(`--without: no plugin ${name}`);
}

await rm(outdir, { recursive: true, force: true });
const result = await build({
  absWorkingDir: here.pathname,
  entryPoints: { 'route-controller': 'src/main.ts' },
  outdir,
  bundle: true,
  splitting: true, // every import() becomes a chunk loaded when it runs
  format: 'esm',
  platform: 'node', // node: built-ins stay external
  target: 'node20.19',
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunks/[name]-[hash]',
  minify: true,
  sourcemap: 'linked',
  sourcesContent: false,
  legalComments: 'linked',
  tsconfig: 'tsconfig.json', // experimentalDecorators: tsyringe's @injectable() and @inject(TOKEN) parameters
  define: { __RC_VERSION__: JSON.stringify(pkg.version) }, // version.ts reads ../package.json otherwise
  // CommonJS dependencies (pino, prom-client, ip-cidr, node-fetch, ...) require() Node built-ins; an
  // ESM bundle has no require, so each file gets one.
  banner: {
    js: "import{createRequire as __rcCreateRequire}from'node:module';const require=__rcCreateRequire(import.meta.url);",
  },
  plugins: plugins.filter((plugin) => !without.has(plugin.name)),
  metafile: true,
  logLevel: 'warning',
});
// What went into each output file: the tests read it to check which packages a command loads.
if (!options.outdir) await writeFile(new URL('dist/bundle-meta.json', here), JSON.stringify(result.metafile));
const js = Object.entries(result.metafile.outputs).filter(([file]) => file.endsWith('.mjs'));
const kib = (n) => `${(n / 1024).toFixed(0)} KiB`;
console.log(`bundle: ${js.length} files, ${kib(js.reduce((sum, [, o]) => sum + o.bytes, 0))} in ${outdir}`);
