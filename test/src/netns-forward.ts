import { type ChildProcess, spawn } from 'node:child_process';
import type { Netns } from '@route-controller/lab';

/**
 * The forwarder, run by node inside the namespace: every TCP connection to host:port is piped to
 * the Unix socket. Plain CommonJS for `node -e`; settings come from the environment.
 */
const FORWARDER = `
const net = require('node:net');
const { FORWARD_SOCKET: socket, FORWARD_PORT: port, FORWARD_HOST: host } = process.env;
const open = new Set();
const server = net.createServer((client) => {
  const upstream = net.connect(socket);
  open.add(client);
  client.on('close', () => open.delete(client));
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
  client.pipe(upstream).pipe(client);
});
server.on('error', (error) => {
  process.stderr.write(String(error) + '\\n');
  process.exit(1);
});
server.listen(Number(port), host, () => process.stdout.write('listening\\n'));
process.on('SIGTERM', () => {
  for (const client of open) client.destroy();
  server.close(() => process.exit(0));
});
`;

/**
 * A TCP listener inside a network namespace that forwards to a Unix socket outside it. A network
 * namespace has its own loopback, but the file system is shared: this is how a process in the
 * lab's node namespace reaches a server running in the test process (the test API server).
 */
export class NetnsForward {
  readonly #child: ChildProcess;
  readonly #exited: Promise<void>;

  private constructor(
    child: ChildProcess,
    readonly url: string,
  ) {
    this.#child = child;
    this.#exited = new Promise((resolve) => child.once('close', () => resolve()));
  }

  /** Starts forwarding host:port (in `ns`) to `socketPath`; resolves once it listens. */
  static async start(
    ns: Netns,
    options: { readonly socketPath: string; readonly port: number; readonly host?: string },
  ): Promise<NetnsForward> {
    const host = options.host ?? '127.0.0.1';
    const child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, '-e', FORWARDER], {
      env: {
        PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
        FORWARD_SOCKET: options.socketPath,
        FORWARD_PORT: String(options.port),
        FORWARD_HOST: host,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const forward = new NetnsForward(child, `http://${host.includes(':') ? `[${host}]` : host}:${options.port}`);
    await new Promise<void>((resolve, reject) => {
      let stderr = '';
      const timer = setTimeout(() => fail(new Error('the forwarder did not start within 10 s')), 10_000);
      const fail = (error: Error) => {
        clearTimeout(timer);
        child.kill('SIGKILL');
        reject(error);
      };
      child.stderr?.setEncoding('utf8');
      child.stderr?.on('data', (chunk: string) => {
        stderr += chunk;
      });
      child.stdout?.setEncoding('utf8');
      child.stdout?.once('data', () => {
        clearTimeout(timer);
        resolve();
      });
      child.once('error', fail);
      child.once('close', (code) =>
        fail(new Error(`the forwarder exited (${code}) before listening: ${stderr.trim()}`)),
      );
    });
    return forward;
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** Stops the forwarder (this child only) and waits for it to exit. */
  async stop(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    this.#child.kill('SIGTERM');
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 2_000);
    await this.#exited;
    clearTimeout(timer);
  }
}
