import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { httpGet, LabProcess, type Netns } from '@route-controller/lab';
import { stringify } from 'yaml';

/** One series of a query's answer. */
export interface Sample {
  readonly metric: Record<string, string>;
  readonly value: [number, string];
}

export interface PrometheusOptions {
  /** host:port of each target, as seen from inside the namespace. */
  readonly targets: readonly string[];
  /** The job, and the labels a ServiceMonitor would give each target (node, namespace, pod). */
  readonly job: string;
  readonly labels: Readonly<Record<string, string>>;
  /** A rule file's text (rule groups), loaded and evaluated as Prometheus does. */
  readonly rules?: string;
}

const PORT = 9090;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A real Prometheus (Debian's `prometheus`, not its service) inside a namespace, listening on that
 * namespace's loopback only, scraping every 2 seconds; started as a lab process, so it ends with its
 * test. Its HTTP API is asked from inside the namespace.
 */
export class PrometheusServer {
  readonly stderr: string[] = [];

  private constructor(
    private readonly ns: Netns,
    private readonly dir: string,
    private readonly process: LabProcess,
  ) {
    process.stderr.setEncoding('utf8').on('data', (chunk: string) => this.stderr.push(chunk));
    process.stdout.resume();
  }

  static async start(ns: Netns, options: PrometheusOptions): Promise<PrometheusServer> {
    const dir = await mkdtemp(join(tmpdir(), 'rc-prometheus-'));
    const config = {
      // Every 2 s, each scrape allowed the whole interval: a scrape that times out on a busy machine
      // marks every series of the target stale until the next one.
      global: { scrape_interval: '2s', scrape_timeout: '2s', evaluation_interval: '2s' },
      ...(options.rules === undefined ? {} : { rule_files: [join(dir, 'rules.yaml')] }),
      scrape_configs: [
        { job_name: options.job, static_configs: [{ targets: [...options.targets], labels: { ...options.labels } }] },
      ],
    };
    if (options.rules !== undefined) await writeFile(join(dir, 'rules.yaml'), options.rules);
    await writeFile(join(dir, 'prometheus.yml'), stringify(config));
    const child = new LabProcess(
      'ip',
      [
        'netns',
        'exec',
        ns.name,
        'prometheus',
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${PORT}`,
        '--log.level=warn',
      ],
      {
        env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', HOME: dir },
        description: `prometheus in ${ns.name}`,
      },
    );
    const server = new PrometheusServer(ns, dir, child);
    await server.#waitReady();
    return server;
  }

  async #waitReady(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!this.process.isRunning) throw new Error(`prometheus exited: ${this.stderr.join('')}`);
      const answer = await httpGet(this.ns, `http://127.0.0.1:${PORT}/-/ready`);
      if (answer.status === 200) return;
      if (Date.now() > deadline)
        throw new Error(`prometheus not ready within ${timeoutMs} ms: ${this.stderr.join('')}`);
      await sleep(200);
    }
  }

  async #api<T>(path: string): Promise<T> {
    const answer = await httpGet(this.ns, `http://127.0.0.1:${PORT}${path}`);
    const body = JSON.parse(answer.body) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`${path}: ${answer.status} ${body.error ?? answer.body}`);
    return body.data;
  }

  /** An instant query, now: the series it returns (an error throws, with Prometheus's message). */
  async query(expr: string): Promise<Sample[]> {
    const data = await this.#api<{ resultType: string; result: Sample[] }>(
      `/api/v1/query?query=${encodeURIComponent(expr)}`,
    );
    if (data.resultType !== 'vector') throw new Error(`${expr}: a ${data.resultType}, not a vector`);
    return data.result;
  }

  /** Asks `query` until `done` holds for its answer, or fails after `timeoutMs` with the last one. */
  async until(expr: string, done: (samples: Sample[]) => boolean, timeoutMs = 20_000): Promise<Sample[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const samples = await this.query(expr);
      if (done(samples)) return samples;
      if (Date.now() > deadline) throw new Error(`${expr}: still ${JSON.stringify(samples)} after ${timeoutMs} ms`);
      await sleep(500);
    }
  }

  /** The values of `label` on the series `match` selects (Grafana's label_values()). */
  labelValues(label: string, match: string): Promise<string[]> {
    return this.#api<string[]>(`/api/v1/label/${label}/values?match[]=${encodeURIComponent(match)}`);
  }

  /** The loaded rules, each with its health as Prometheus last evaluated it. */
  async rules(): Promise<{ name: string; health: string; lastError?: string; query: string }[]> {
    const data = await this.#api<{
      groups: { rules: { name: string; health: string; lastError?: string; query: string }[] }[];
    }>('/api/v1/rules');
    return data.groups.flatMap((group) => group.rules);
  }

  async stop(): Promise<void> {
    await this.process.stop('SIGTERM', 5_000);
    await rm(this.dir, { recursive: true, force: true });
  }
}
