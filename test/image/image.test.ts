import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LAB, LoopLab } from '@route-controller/lab';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { imageCacheDir, STAND_IN_LABEL } from '../src/image-base.js';
import { type BuiltImage, buildImage, type ImageEngine } from '../src/image-build.js';
import { AGENT_CAPABILITY_MASK, AgentContainer, processFacts, sweepStaleContainers } from '../src/image-container.js';
import { must, run } from '../src/image-exec.js';
import { describeImage } from '../src/image-prerequisites.js';
import { Buildah } from '../src/image-storage.js';

// The checkout whose Dockerfile is built: this one, or another one named by RC_IMAGE_TEST_CONTEXT.
const repoRoot = process.env.RC_IMAGE_TEST_CONTEXT ?? fileURLToPath(new URL('../..', import.meta.url));
const SERVICE_CIDRS = `${LAB.serviceCidr.ipv4},${LAB.serviceCidr.ipv6}`;
const PORT = 9771;
/** The image's default METRICS_LISTEN_ADDRESS is 127.0.0.1:9772: reachable from inside the node only. */
const METRICS_PORT = 9772;

function log(line: string): void {
  console.log(`[image] ${line}`);
}

/** GET on the agent's health (or metrics) endpoint, from inside the node's network namespace. */
async function httpGet(
  netns: string,
  path: string,
  port = PORT,
): Promise<{ status: number; body: string } | { error: string }> {
  const script = `fetch(process.argv[1], { signal: AbortSignal.timeout(2000) })
  .then(async (r) => console.log(JSON.stringify({ status: r.status, body: await r.text() })))
  .catch((e) => console.log(JSON.stringify({ error: String(e) })))`;
  const result = await must(
    'ip',
    ['netns', 'exec', netns, process.execPath, '-e', script, `http://127.0.0.1:${port}${path}`],
    {
      timeoutMs: 10_000,
    },
  );
  return JSON.parse(result.stdout) as { status: number; body: string } | { error: string };
}

/** Paths under `dir` (recursively, not following links) that match: files, and directories too if asked. */
function findPaths(
  dir: string,
  match: (path: string) => boolean,
  options: { directories?: boolean } = {},
  found: string[] = [],
): string[] {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const isDirectory = lstatSync(path).isDirectory();
    if ((!isDirectory || options.directories) && match(path)) found.push(path);
    if (isDirectory) findPaths(path, match, options, found);
  }
  return found;
}

async function apparentSize(dir: string): Promise<number> {
  const result = await must('du', ['-s', '--apparent-size', '-B1', dir], { timeoutMs: 120_000 });
  return Number(result.stdout.split(/\s+/)[0]);
}

const mb = (bytes: number) => `${(bytes / 1_000_000).toFixed(1)} MB`;

describeImage('container image', (engine: ImageEngine) => {
  const buildah = new Buildah(imageCacheDir());
  const tagPrefix = 'localhost/route-controller:image-test-';
  const tag = `${tagPrefix}${process.pid}`;
  const started = performance.now();
  let image: BuiltImage | undefined;
  let lab: LoopLab | undefined;
  const containers: AgentContainer[] = [];
  const workingContainers: string[] = [];

  /** A working container on an image, to look at its files; removed after the tests. */
  async function imageRoot(reference: string, label: string): Promise<string> {
    const container = await buildah.from(reference, `rc-image-test-${process.pid}-${label}`);
    workingContainers.push(container);
    return buildah.mount(container);
  }

  beforeAll(async () => {
    const stale = [...(await sweepStaleContainers('rc-image-test-')), ...(await buildah.sweepStale(tagPrefix))];
    if (stale.length > 0) log(`removed what an interrupted run left: ${stale.join(', ')}`);
    image = await buildImage({ repoRoot, buildah, engine, tag, log });
  });

  afterAll(async () => {
    for (const container of containers) {
      if (container.output)
        log(`output of ${container.name}:\n${container.output.trim().split('\n').slice(-40).join('\n')}`);
      await container.destroy();
    }
    for (const container of workingContainers) await buildah.removeContainer(container);
    await lab?.destroy();
    await buildah.removeImage(tag);
    await buildah.pruneDangling();
    log(`whole image test: ${((performance.now() - started) / 1000).toFixed(0)} s`);
  });

  it('builds on the Node 24 Debian slim base the Dockerfile pins, and runs `route-controller run` as root', async () => {
    const built = image as BuiltImage;
    expect(built.base.reference).toMatch(/^node:24\.\d+\.\d+-bookworm-slim$/);
    const config = await buildah.imageConfig(tag);
    expect(config.Entrypoint).toEqual(['route-controller', 'run']);
    expect(config.Cmd ?? []).toEqual([]);
    expect(['', 'root', '0', undefined]).toContain(config.User);
    expect(config.Env).toContain('NODE_ENV=production');
    expect(config.Env).toContain('NODE_COMPILE_CACHE=/opt/route-controller/.compile-cache');
    expect(Object.keys(config.ExposedPorts ?? {})).toEqual([`${PORT}/tcp`]);
    if (engine === 'buildah') expect(config.Labels?.[STAND_IN_LABEL]).toBe(built.base.qualified);
  });

  it('holds the bundled agent, its compile cache and the firewall tools, and nothing else of the build', async () => {
    const built = image as BuiltImage;
    const root = await imageRoot(tag, 'files');
    const baseRoot = await imageRoot(built.base.qualified, 'base');

    // The agent, on PATH, and both iptables flavours and nft, as Debian ships them.
    expect(readlinkSync(join(root, 'usr/local/bin/route-controller'))).toBe(
      '/opt/route-controller/bin/route-controller.cjs',
    );
    for (const tool of ['nft', 'iptables-legacy', 'iptables-nft', 'ip6tables-legacy', 'ip6tables-nft']) {
      for (const suffix of ['', '-save', '-restore']) {
        if (tool === 'nft' && suffix) continue;
        expect(existsSync(join(root, 'usr/sbin', `${tool}${suffix}`)), `${tool}${suffix}`).toBe(true);
      }
    }
    const app = join(root, 'opt/route-controller');
    // The agent is one bundle (an entry and chunks, with their maps) behind the bin shim: no
    // node_modules at all, no TypeScript output, no build metadata, no lab and no demo.
    expect(existsSync(join(app, 'bin/route-controller.cjs'))).toBe(true);
    expect(existsSync(join(app, 'dist/bundle/route-controller.mjs'))).toBe(true);
    expect(readdirSync(join(app, 'dist/bundle/chunks')).some((file) => file.endsWith('.mjs'))).toBe(true);
    expect(readdirSync(app).sort()).toEqual(['.compile-cache', 'LICENSE', 'bin', 'dist', 'package.json']);
    expect(readdirSync(join(app, 'dist'))).toEqual(['bundle']);
    const stray = findPaths(
      app,
      (path) =>
        /(\.[cm]?ts|\.tsbuildinfo|meta\.json|\.(test|spec)\.[cm]?js)$/.test(path) || /\/node_modules$/.test(path),
      { directories: true },
    );
    expect(stray.map((path) => relative(app, path))).toEqual([]);
    // The demo lives in the source checkout's lab package (pnpm demo): nothing of it in the bundle.
    const bundled = findPaths(join(app, 'dist/bundle'), (path) => path.endsWith('.mjs'))
      .map((path) => readFileSync(path, 'utf8'))
      .join('\n');
    expect(bundled).not.toContain('rcdemo');
    expect(bundled).not.toContain('@route-controller/lab');
    // Node's compile cache, warmed at build time (Node 22.1+ reads it; the root is read-only at run time).
    expect(findPaths(join(app, '.compile-cache'), () => true).length).toBeGreaterThan(10);
    // No build tools, no pnpm or its store, no workspace checkout, no package caches.
    for (const path of [
      'src',
      'usr/local/bin/pnpm',
      'usr/local/lib/node_modules/pnpm',
      'root/.local/share/pnpm',
      'root/.cache',
      'root/.npm/_cacache',
      'usr/bin/gcc',
      'usr/bin/make',
      'usr/bin/python3',
    ]) {
      expect(existsSync(join(root, path)), path).toBe(false);
    }
    expect(findPaths(join(root, 'var/lib/apt/lists'), () => true).filter((path) => !path.endsWith('/lock'))).toEqual(
      [],
    );
    expect(findPaths(join(root, 'var/cache/apt'), () => true)).toEqual([]);

    const total = await apparentSize(root);
    const base = await apparentSize(baseRoot);
    log(`image size (uncompressed): ${mb(total)}; the Dockerfile adds ${mb(total - base)} to the ${mb(base)} base`);
    // Small: the bundle, its compile cache and two Debian packages on top of the base.
    expect(total - base).toBeLessThan(40_000_000);
  });

  it('reports its compressed size', async () => {
    const dir = join(imageCacheDir(), `oci-${process.pid}`);
    try {
      await buildah.must(['push', '--quiet', '--compression-format', 'gzip', tag, `oci:${dir}`], {
        timeoutMs: 600_000,
      });
      const index = JSON.parse((await must('cat', [join(dir, 'index.json')])).stdout) as {
        manifests: { digest: string }[];
      };
      const blob = (digest: string) => join(dir, 'blobs', ...digest.split(':'));
      const manifest = JSON.parse((await must('cat', [blob(index.manifests[0]?.digest ?? '')])).stdout) as {
        layers: { size: number }[];
      };
      const compressed = manifest.layers.reduce((sum, layer) => sum + layer.size, 0);
      log(`image size (compressed layers, as a registry stores them): ${mb(compressed)}`);
      expect(compressed).toBeGreaterThan(0);
    } finally {
      await run('rm', ['-rf', dir]);
    }
  });

  it('ends the loop in a node as the DaemonSet runs it: host network, NET_ADMIN and NET_RAW only, read-only root', async () => {
    lab = await LoopLab.create();
    const netns = `/run/netns/${lab.node.name}`;
    const before = { ipv4: await lab.measureLoop('ipv4', 10), ipv6: await lab.measureLoop('ipv6', 10) };
    log(`before the agent: 10 pings to a stale ClusterIP bounce ${before.ipv4} (IPv4) and ${before.ipv6} (IPv6) times`);
    expect(before.ipv4).toBeGreaterThan(200);
    expect(before.ipv6).toBeGreaterThan(200);

    const runStart = performance.now();
    const agent = await AgentContainer.start(buildah, {
      name: `rc-image-test-${process.pid}-agent`,
      image: tag,
      netns,
      env: { SERVICE_CIDRS, LOG_LEVEL: 'debug' },
    });
    containers.push(agent);

    // The readiness probe, as kubelet runs it: GET /readyz on the node's address.
    let ready: Awaited<ReturnType<typeof httpGet>> = { error: 'not probed' };
    for (let attempt = 0; attempt < 120; attempt += 1) {
      const exited = await agent.waitForExit(0);
      if (exited) throw new Error(`the agent exited (${JSON.stringify(exited)}) before it was ready:\n${agent.output}`);
      ready = await httpGet(lab.node.name, '/readyz');
      if ('status' in ready && ready.status === 200) break;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    expect(ready, agent.output).toMatchObject({ status: 200 });
    log(`agent ready ${((performance.now() - runStart) / 1000).toFixed(1)} s after the container started`);
    expect(await httpGet(lab.node.name, '/healthz')).toMatchObject({ status: 200 });
    const metrics = await httpGet(lab.node.name, '/metrics', METRICS_PORT);
    expect(metrics).toMatchObject({ status: 200 });
    expect('body' in metrics && metrics.body.includes('# TYPE')).toBe(true);

    // The agent process itself: PID 1 of its container, root, exactly NET_ADMIN and NET_RAW, in the node.
    const facts = processFacts(await agent.hostPid());
    expect(facts.cmdline.join(' ')).toMatch(/route-controller(\.js)? run$/);
    expect(facts.uid).toBe(0);
    expect(facts.capEff).toBe(AGENT_CAPABILITY_MASK);
    expect(facts.capPrm).toBe(AGENT_CAPABILITY_MASK);
    expect(facts.capBnd).toBe(AGENT_CAPABILITY_MASK);
    expect(facts.capInh).toBe(0n);
    expect(facts.capAmb).toBe(0n);
    expect(facts.noNewPrivs).toBe(true);
    expect(facts.inNetns(netns)).toBe(true);
    expect(facts.rootMountOptions).toContain('ro');
    expect(facts.xtablesLockMounted).toBe(true);

    // Packets: the loop is gone, the live Service still answers, from a pod and from the node.
    const after = { ipv4: await lab.measureLoop('ipv4', 10), ipv6: await lab.measureLoop('ipv6', 10) };
    log(`with the agent container: ${after.ipv4} (IPv4) and ${after.ipv6} (IPv6) bounces`);
    expect(after).toEqual({ ipv4: 0, ipv6: 0 });
    for (const family of ['ipv4', 'ipv6'] as const) {
      expect(await lab.pingLiveServiceFromPod(family)).toEqual({ sent: 3, received: 3 });
      expect(await lab.pingLiveServiceFromNode(family)).toEqual({ sent: 3, received: 3 });
    }

    // SIGTERM reaches the agent (PID 1, no init) and it exits cleanly, keeping its rules (the default).
    await agent.signal('TERM');
    const exit = await agent.waitForExit(20_000);
    expect(exit, agent.output).toEqual({ code: 0, signal: null });
    expect(await lab.measureLoop('ipv4', 5)).toBe(0);
  });

  it("removes its rules with the image's `route-controller cleanup`, with the same two capabilities", async () => {
    const node = (lab as LoopLab).node;
    const cleanup = await AgentContainer.start(buildah, {
      name: `rc-image-test-${process.pid}-cleanup`,
      image: tag,
      netns: `/run/netns/${node.name}`,
      env: { LOG_LEVEL: 'info' },
      command: ['route-controller', 'cleanup'],
    });
    containers.push(cleanup);
    const exit = await cleanup.waitForExit(60_000);
    expect(exit, cleanup.output).toEqual({ code: 0, signal: null });
    const loop = await (lab as LoopLab).measureLoop('ipv4', 10);
    log(`after cleanup: ${loop} IPv4 bounces again`);
    expect(loop).toBeGreaterThan(200);
  });

  it('offers no demo: it runs from a source checkout (pnpm demo), so `route-controller demo` is an unknown command', async () => {
    const demo = await AgentContainer.start(buildah, {
      name: `rc-image-test-${process.pid}-demo`,
      image: tag,
      netns: `/run/netns/${(lab as LoopLab).node.name}`,
      env: {},
      command: ['route-controller', 'demo'],
    });
    containers.push(demo);
    expect(await demo.waitForExit(60_000), demo.output).toEqual({ code: 2, signal: null });
    expect(demo.output.trim().split('\n')).toEqual([expect.stringContaining("ERR_RC_USAGE: unknown command 'demo'")]);
  });
});
