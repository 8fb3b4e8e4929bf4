import { Command } from 'commander';
import { VERSION } from './version.js';

export function buildProgram(): Command {
  return new Command('route-controller')
    .description(
      'Drops forwarded packets to Kubernetes Service CIDRs on a node, so a packet to a stale ClusterIP cannot loop between the node and a workstation that routes the Service range into the cluster.',
    )
    .version(VERSION, '-v, --version', 'print the version');
}

await buildProgram().parseAsync(process.argv);
