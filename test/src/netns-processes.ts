import { readdirSync, readFileSync } from 'node:fs';
import { LabProcess, type Netns } from '@route-controller/lab';

/**
 * A listener inside `ns` held by a process of its own, as another program on the node would hold
 * it: a TCP port, or a name in the abstract unix socket namespace (answering `answer`). Resolves
 * once it listens; stop() ends it.
 */
export async function listenIn(
  ns: Netns,
  target: { readonly host: string; readonly port: number } | { readonly abstract: string },
  answer = '',
): Promise<LabProcess> {
  const listen = 'abstract' in target ? { path: `\0${target.abstract}` } : target;
  const script = `const s = require('node:net').createServer((c) => c.end(${JSON.stringify(answer)})); s.listen(${JSON.stringify(listen)}, () => console.log('listening'));`;
  const holder = new LabProcess('ip', ['netns', 'exec', ns.name, process.execPath, '-e', script], {
    env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' },
    description: `a listener on ${'abstract' in target ? `@${target.abstract}` : `${target.host}:${target.port}`} in ${ns.name}`,
  });
  await new Promise<void>((resolve, reject) => {
    holder.stdout.setEncoding('utf8');
    holder.stdout.on('data', (chunk: string) => {
      if (chunk.includes('listening')) resolve();
    });
    void holder.exited.then((exit) => reject(new Error(`${holder.description} exited: ${JSON.stringify(exit)}`)));
  });
  return holder;
}

export interface ProcessInfo {
  readonly pid: number;
  readonly command: string;
}

/** The processes whose parent is `pid` now, read from /proc (their command lines joined by spaces). */
export function childrenOf(pid: number): ProcessInfo[] {
  const children: ProcessInfo[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // The command name may hold spaces and parentheses: the parent pid follows the last ")".
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (parent !== pid) continue;
      const command = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ').trim();
      children.push({ pid: Number(entry), command });
    } catch {
      // Gone between the listing and the read.
    }
  }
  return children;
}
