import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { must, run } from './image-exec.js';
import type { Buildah } from './image-storage.js';

/**
 * The base image the Dockerfile names, and a local stand-in for it.
 *
 * The official Node images cannot be pulled here, so the image test builds one that looks the same to the
 * Dockerfile: a Debian root filesystem from debootstrap (minbase, slimmed as Debian's "-slim" images are),
 * plus Node's release binary and the npm and corepack that Node release bundles, all from the npm registry,
 * laid out as the official image lays them out (/usr/local). It is stored under exactly the tag the
 * Dockerfile's FROM uses, so the real Dockerfile builds against it with --pull=never.
 */

/** What the Dockerfile's FROM lines name (stage aliases excluded), with global ARG defaults substituted. */
export function dockerfileBaseImages(dockerfile: string): string[] {
  const lines = dockerfile
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  const args = new Map<string, string>();
  const stages = new Set<string>();
  const images: string[] = [];
  let seenFrom = false;
  for (const line of lines) {
    const [instruction = '', ...rest] = line.split(/\s+/);
    const keyword = instruction.toUpperCase();
    if (keyword === 'ARG' && !seenFrom) {
      for (const decl of rest) {
        const eq = decl.indexOf('=');
        if (eq > 0) args.set(decl.slice(0, eq), decl.slice(eq + 1).replace(/^"(.*)"$/, '$1'));
      }
    }
    if (keyword !== 'FROM') continue;
    seenFrom = true;
    const words = rest.filter((word) => !word.startsWith('--'));
    const image = (words[0] ?? '').replace(/\$\{(\w+)\}|\$(\w+)/g, (_match, braced: string, bare: string) => {
      const value = args.get(braced ?? bare);
      if (value === undefined) throw new Error(`Dockerfile FROM uses $${braced ?? bare}, which has no ARG default`);
      return value;
    });
    if (words[1]?.toUpperCase() === 'AS' && words[2]) stages.add(words[2].toLowerCase());
    if (image !== '' && !stages.has(image.toLowerCase()) && !images.includes(image)) images.push(image);
  }
  return images;
}

export interface NodeBaseTag {
  /** As written in the Dockerfile, e.g. node:24.21.0-bookworm-slim. */
  readonly reference: string;
  /** The fully qualified name a registry client resolves it to. */
  readonly qualified: string;
  readonly nodeVersion: string;
  readonly suite: string;
  readonly slim: boolean;
}

/** Parses an official Node image tag pinned to a release: node:<x.y.z>-<debian suite>[-slim]. */
export function parseNodeBaseTag(reference: string): NodeBaseTag {
  const match = /^(?:(?:docker\.io|index\.docker\.io)\/)?(?:library\/)?node:(\d+\.\d+\.\d+)-([a-z]+)(-slim)?$/.exec(
    reference,
  );
  if (!match) {
    throw new Error(
      `the Dockerfile's base ${reference} is not an official Node image pinned to a release (node:<x.y.z>-<suite>[-slim])`,
    );
  }
  const [, nodeVersion = '', suite = '', slim] = match;
  return {
    reference,
    qualified: `docker.io/library/node:${reference.slice(reference.lastIndexOf(':') + 1)}`,
    nodeVersion,
    suite,
    slim: slim !== undefined,
  };
}

function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i += 1) {
    const diff = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (diff !== 0) return diff;
  }
  return 0;
}

/**
 * The npm and corepack a Node release bundles, read from the release's own CHANGELOG (which the npm
 * package of the Node binary ships): the newest "upgrade npm to" / "update corepack to" entry in the
 * sections of this release and the ones before it.
 */
export function bundledTools(changelog: string, nodeVersion: string): { npm: string; corepack: string } {
  const sections = changelog.split(/<a id="(\d+\.\d+\.\d+)"><\/a>/);
  const found: { npm: string | undefined; corepack: string | undefined } = { npm: undefined, corepack: undefined };
  // split() with a capture group alternates: text, version, text, version, text ...
  const ordered: { version: string; body: string }[] = [];
  for (let i = 1; i < sections.length; i += 2)
    ordered.push({ version: sections[i] ?? '', body: sections[i + 1] ?? '' });
  ordered.sort((x, y) => compareVersions(y.version, x.version));
  for (const { version, body } of ordered) {
    if (compareVersions(version, nodeVersion) > 0) continue;
    found.npm ??= /\*\*deps\*\*: upgrade npm to (\d+\.\d+\.\d+)/.exec(body)?.[1];
    found.corepack ??= /\*\*deps\*\*: update corepack to (\d+\.\d+\.\d+)/.exec(body)?.[1];
    if (found.npm && found.corepack) return { npm: found.npm, corepack: found.corepack };
  }
  throw new Error(`cannot tell from Node's CHANGELOG which npm and corepack Node ${nodeVersion} bundles`);
}

/** Where downloads, the debootstrap root filesystem and the container storage are kept between runs. */
export function imageCacheDir(): string {
  return process.env.RC_IMAGE_TEST_CACHE ?? '/var/cache/route-controller-test';
}

/** `npm pack name@version` into the cache (once); returns the tarball's path. */
export async function npmPack(name: string, version: string, dir: string): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name.replace(/^@/, '').replace('/', '-')}-${version}.tgz`);
  if (existsSync(file)) return file;
  const result = await must('npm', ['pack', `${name}@${version}`, '--json', '--pack-destination', dir], {
    timeoutMs: 600_000,
  });
  const packed = (JSON.parse(result.stdout) as { filename: string }[])[0];
  if (!packed || !existsSync(join(dir, packed.filename)))
    throw new Error(`npm pack ${name}@${version} made no tarball`);
  if (join(dir, packed.filename) !== file) renameSync(join(dir, packed.filename), file);
  return file;
}

function debianArch(): string {
  if (process.arch === 'x64') return 'amd64';
  if (process.arch === 'arm64') return 'arm64';
  throw new Error(`no stand-in base for ${process.arch}`);
}

/** What Debian's "-slim" images leave out (debuerreotype's slimify), kept out by dpkg too. */
const SLIM_DPKG_EXCLUDES = `# Like Debian's "-slim" images: files containers do not need are excluded, and stay so.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
`;

/** The apt and dpkg settings Debian's container images carry (debuerreotype's minimizing config). */
const CONTAINER_APT_CONFIG: Readonly<Record<string, string>> = {
  'etc/apt/apt.conf.d/docker-autoremove-suggests': 'Apt::AutoRemove::SuggestsImportant "false";\n',
  'etc/apt/apt.conf.d/docker-clean': [
    'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };',
    'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };',
    'Dir::Cache::pkgcache "";',
    'Dir::Cache::srcpkgcache "";',
    '',
  ].join('\n'),
  'etc/apt/apt.conf.d/docker-gzip-indexes': 'Acquire::GzipIndexes "true";\n',
  'etc/apt/apt.conf.d/docker-no-languages': 'Acquire::Languages "none";\n',
  'etc/dpkg/dpkg.cfg.d/docker-apt-speedup': 'force-unsafe-io\n',
  'etc/dpkg/dpkg.cfg.d/docker': SLIM_DPKG_EXCLUDES,
};

function emptyDir(dir: string, keep: (name: string) => boolean = () => false): void {
  if (!existsSync(dir)) return;
  for (const name of readdirSync(dir)) {
    if (!keep(name)) rmSync(join(dir, name), { recursive: true, force: true });
  }
}

/** Makes a debootstrap tree look like Debian's container image of that suite. */
function containerise(rootfs: string, suite: string, slim: boolean): void {
  for (const [path, text] of Object.entries(CONTAINER_APT_CONFIG)) {
    if (!slim && path.endsWith('dpkg.cfg.d/docker')) continue;
    writeFileSync(join(rootfs, path), text);
  }
  if (slim) {
    const doc = join(rootfs, 'usr/share/doc');
    for (const pkg of existsSync(doc) ? readdirSync(doc) : []) {
      const dir = join(doc, pkg);
      if (lstatSync(dir).isDirectory()) emptyDir(dir, (name) => name === 'copyright');
    }
    for (const dir of ['groff', 'info', 'linda', 'lintian/overrides', 'locale', 'man']) {
      emptyDir(join(rootfs, 'usr/share', dir));
    }
  }
  // debootstrap writes one "deb <mirror> <suite> main" line; the container images use deb822 sources with
  // the updates and security suites as well.
  const listFile = join(rootfs, 'etc/apt/sources.list');
  const mirror = /^deb\s+(\S+)\s/m.exec(readFileSync(listFile, 'utf8'))?.[1];
  if (!mirror) throw new Error(`no mirror in debootstrap's ${listFile}`);
  const stanza = (uri: string, suites: string) =>
    `Types: deb\nURIs: ${uri}\nSuites: ${suites}\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n`;
  const stanzas = [stanza(mirror, `${suite} ${suite}-updates`)];
  if (/\/debian\/?$/.test(mirror)) stanzas.push(stanza(mirror.replace(/\/?$/, '-security'), `${suite}-security`));
  writeFileSync(join(rootfs, 'etc/apt/sources.list.d/debian.sources'), stanzas.join('\n'));
  rmSync(listFile);
  // No lists, no downloaded packages, and nothing of the machine that ran debootstrap.
  emptyDir(join(rootfs, 'var/lib/apt/lists'), (name) => name === 'partial' || name === 'lock');
  emptyDir(join(rootfs, 'var/cache/apt/archives'), (name) => name === 'partial' || name === 'lock');
  for (const name of readdirSync(join(rootfs, 'var/cache/apt'))) {
    if (name.endsWith('.bin')) rmSync(join(rootfs, 'var/cache/apt', name));
  }
  emptyDir(join(rootfs, 'tmp'));
  emptyDir(join(rootfs, 'var/log'), (name) => !name.endsWith('.log'));
  writeFileSync(join(rootfs, 'etc/resolv.conf'), '');
  writeFileSync(join(rootfs, 'etc/hostname'), '');
}

/** A tarball of a container-like Debian root filesystem for this suite, made once with debootstrap. */
export async function ensureDebianRootfs(
  cacheDir: string,
  suite: string,
  slim: boolean,
  log: (line: string) => void,
): Promise<string> {
  const dir = join(cacheDir, 'rootfs');
  const tarball = join(dir, `debian-${suite}${slim ? '-slim' : ''}-${debianArch()}.tar`);
  if (existsSync(tarball)) return tarball;
  mkdirSync(dir, { recursive: true });
  const tree = join(dir, `tree-${process.pid}`);
  rmSync(tree, { recursive: true, force: true });
  try {
    log(`debootstrap --variant=minbase ${suite} (cached afterwards in ${tarball})`);
    // No mirror argument: debootstrap's default Debian mirror.
    await must('debootstrap', ['--variant=minbase', `--arch=${debianArch()}`, suite, tree], { timeoutMs: 1_200_000 });
    containerise(tree, suite, slim);
    await must('tar', ['--numeric-owner', '-C', tree, '-cf', `${tarball}.partial`, '.'], { timeoutMs: 600_000 });
    renameSync(`${tarball}.partial`, tarball);
  } finally {
    rmSync(`${tarball}.partial`, { force: true });
    // debootstrap unmounts what it mounted; a run cut short may leave /proc mounted inside.
    await run('umount', ['--recursive', '--lazy', join(tree, 'proc')]);
    await run('umount', ['--recursive', '--lazy', join(tree, 'sys')]);
    rmSync(tree, { recursive: true, force: true });
  }
  return tarball;
}

/** Label on the stand-in so nobody mistakes it for the official image. */
export const STAND_IN_LABEL = 'io.route-controller.test.stand-in-for';

/**
 * Makes sure `buildah` storage holds an image under the Dockerfile's base tag: the stand-in, built once
 * and then reused. Returns whether it was already there.
 */
export async function ensureStandInBase(
  buildah: Buildah,
  base: NodeBaseTag,
  log: (line: string) => void,
): Promise<{ cached: boolean }> {
  if (await buildah.imageExists(base.qualified)) return { cached: true };
  const cacheDir = imageCacheDir();
  const downloads = join(cacheDir, 'npm');
  const rootfsTar = await ensureDebianRootfs(cacheDir, base.suite, base.slim, log);
  const arch = process.arch === 'x64' ? 'x64' : process.arch;
  log(`node-linux-${arch}@${base.nodeVersion} from the npm registry`);
  const nodeTgz = await npmPack(`node-linux-${arch}`, base.nodeVersion, downloads);
  const changelog = await must('tar', ['-xzOf', nodeTgz, 'package/CHANGELOG.md']);
  const tools = bundledTools(changelog.stdout, base.nodeVersion);
  log(`Node ${base.nodeVersion} bundles npm ${tools.npm} and corepack ${tools.corepack}`);
  const npmTgz = await npmPack('npm', tools.npm, downloads);
  const corepackTgz = await npmPack('corepack', tools.corepack, downloads);

  const container = await buildah.fromScratch(`rc-stand-in-${process.pid}`);
  try {
    const root = await buildah.mount(container);
    await must('tar', ['--numeric-owner', '-xpf', rootfsTar, '-C', root], { timeoutMs: 600_000 });
    // The official image unpacks Node's release tarball into /usr/local: bin/node, include/, share/.
    const local = join(root, 'usr/local');
    await must('tar', ['-xzf', nodeTgz, '-C', local, '--strip-components=1', '--no-same-owner', 'package/bin/node']);
    await must('tar', ['-xzf', nodeTgz, '-C', local, '--strip-components=1', '--no-same-owner', 'package/include']);
    await must('tar', ['-xzf', nodeTgz, '-C', local, '--strip-components=1', '--no-same-owner', 'package/share']);
    for (const [name, tgz] of [
      ['npm', npmTgz],
      ['corepack', corepackTgz],
    ] as const) {
      const target = join(local, 'lib/node_modules', name);
      mkdirSync(target, { recursive: true });
      await must('tar', ['-xzf', tgz, '-C', target, '--strip-components=1', '--no-same-owner']);
    }
    symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', join(local, 'bin/npm'));
    symlinkSync('../lib/node_modules/npm/bin/npx-cli.js', join(local, 'bin/npx'));
    symlinkSync('../lib/node_modules/corepack/dist/corepack.js', join(local, 'bin/corepack'));
    await buildah.must([
      'config',
      '--env',
      'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      '--env',
      `NODE_VERSION=${base.nodeVersion}`,
      '--cmd',
      'node',
      '--label',
      `${STAND_IN_LABEL}=${base.qualified}`,
      container,
    ]);
    await buildah.must(['commit', '--rm', container, base.qualified], { timeoutMs: 600_000 });
  } catch (error) {
    await buildah.run(['rm', container]);
    throw error;
  }
  return { cached: false };
}
