import { readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { ProcessCommandRunner } from '@route-controller/core';

/** Which machine produced the figures: they mean little without it. */
export async function describeMachine(): Promise<string> {
  const runner = new ProcessCommandRunner();
  const version = async (file: string, args: string[]) => {
    try {
      const result = await runner.run({ file, args });
      return (result.stdout || result.stderr).split('\n')[0]?.trim() ?? '?';
    } catch {
      return 'not installed';
    }
  };
  const os = /PRETTY_NAME="([^"]+)"/.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? 'Linux';
  const kernel = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  return [
    `- ${os}, kernel ${kernel}, ${cpus().length} × ${cpus()[0]?.model.trim() ?? 'CPU'}, ${Math.round(totalmem() / 2 ** 30)} GiB`,
    `- Node.js ${process.version}; ${await version('nft', ['--version'])}; ${await version('iptables-legacy', ['--version'])}; ${await version('iptables-nft', ['--version'])}`,
    `- load average at the start of the run: ${load}`,
  ].join('\n');
}
