import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IptablesBackend, type IptablesMode, isRestoreBinary } from '@route-controller/backend-iptables';
import {
  type CommandRequest,
  type CommandResult,
  type CommandRunner,
  desiredState,
  ErrorCodes,
  PrefixedCommandRunner,
  ProcessCommandRunner,
} from '@route-controller/core';
import { codedRejection, desired } from '@route-controller/core/testing';
import { Netns } from '@route-controller/lab';
import { expect, it } from 'vitest';
import { binary, forwardRules, kernelView, restoreInto } from '../src/iptables-fixture.js';
import { describeKernel } from '../src/prerequisites.js';

const MODES: readonly IptablesMode[] = ['legacy', 'nft'];
const JUMP_SPEC = [
  '-m',
  'comment',
  '--comment',
  'route-controller: block forwarded traffic to Service CIDRs',
  '-j',
  'ROUTE-CONTROLLER',
];

async function withNamespace(body: (ns: Netns) => Promise<void>): Promise<void> {
  const ns = await Netns.create('ipt-facts');
  try {
    await body(ns);
  } finally {
    await ns.delete();
  }
}

/** Runs `before` once, right before the first restore that writes: another tool racing us. */
class RacingRunner implements CommandRunner {
  #raced = false;

  constructor(
    private readonly inner: CommandRunner,
    private readonly before: () => Promise<void>,
  ) {}

  async run(request: CommandRequest): Promise<CommandResult> {
    if (!this.#raced && isRestoreBinary(request.file) && request.input !== undefined) {
      this.#raced = true;
      await this.before();
    }
    return this.inner.run(request);
  }
}

describeKernel('iptables kernel facts the backend relies on', () => {
  for (const mode of MODES) {
    it(`${mode}: probe, observe, plan and cleanup read without creating any table, in either flavour`, async () => {
      await withNamespace(async (ns) => {
        const backend = new IptablesBackend({ mode, runner: ns.runner });
        const availability = await backend.probe();
        expect(availability.available, availability.reason).toBe(true);
        expect(availability.warnings).toEqual([]);
        // The agent checks every backend for leftovers at start: that must leave no trace.
        expect((await backend.observe()).present).toBe(false);
        expect((await backend.plan(desiredState())).changes).toBe(false);
        expect((await backend.cleanup()).removed).toBe(false);
        expect((await ns.must('nft', ['list', 'tables'])).stdout).toBe('');
        expect((await ns.exec('cat', ['/proc/net/ip_tables_names'])).stdout).toBe('');
        expect((await ns.exec('cat', ['/proc/net/ip6_tables_names'])).stdout).toBe('');
      });
    });

    it(`${mode}: a jump deleted by another tool between our read and write fails the whole transaction; the next apply converges`, async () => {
      await withNamespace(async (ns) => {
        const setup = new IptablesBackend({ mode, runner: ns.runner });
        await setup.apply(desired(['10.96.0.0/16']));
        // Someone inserts an ACCEPT above us: the next apply must move our jump, deleting it by spec.
        const security = ['-w', '-t', 'security'];
        await ns.must(binary(mode, 'ipv4', ''), [
          ...security,
          '-I',
          'FORWARD',
          '1',
          '-s',
          '10.244.0.0/16',
          '-j',
          'ACCEPT',
        ]);
        const racer = new RacingRunner(ns.runner, async () => {
          await ns.must(binary(mode, 'ipv4', ''), [...security, '-D', 'FORWARD', ...JUMP_SPEC]);
        });
        const backend = new IptablesBackend({ mode, runner: racer });
        const error = await codedRejection(backend.apply(desired(['10.96.0.0/16', '10.97.0.0/16'])));
        expect(error.code).toBe(ErrorCodes.FirewallNotFound);
        expect(error.hint).toMatch(/next resync/);
        expect(String(error.details.stderr)).toMatch(/line \d+ failed/);
        // Atomic: the CIDR added earlier in the same payload did not land.
        expect((await kernelView(ns, mode)).ipv4).toEqual(['10.96.0.0/16']);
        expect(await forwardRules(ns, mode, 'ipv4')).toEqual(['-A FORWARD -s 10.244.0.0/16 -j ACCEPT']);
        const retried = await backend.apply(desired(['10.96.0.0/16', '10.97.0.0/16']));
        expect(retried.changed).toBe(true);
        expect((await forwardRules(ns, mode, 'ipv4'))[0]).toBe(
          `-A FORWARD ${JUMP_SPEC.slice(0, 3).join(' ')} "${JUMP_SPEC[3]}" -j ROUTE-CONTROLLER`,
        );
        expect((await backend.observe()).problems).toEqual([]);
      });
    });

    it(`${mode}: without root, probe says why and apply fails with ERR_RC_FIREWALL_PERMISSION`, async () => {
      await withNamespace(async (ns) => {
        const nobody = new PrefixedCommandRunner(ns.runner, [
          'setpriv',
          '--reuid=65534',
          '--regid=65534',
          '--clear-groups',
        ]);
        const backend = new IptablesBackend({ mode, runner: nobody });
        const availability = await backend.probe();
        expect(availability.available).toBe(false);
        expect(availability.reason).toMatch(/permission denied/i);
        const error = await codedRejection(backend.apply(desired(['10.96.0.0/16'])));
        expect(error.code).toBe(ErrorCodes.FirewallPermission);
        expect(error.hint).toMatch(/root|CAP_NET_ADMIN/);
        expect(error.details.stderr).toMatch(/Permission denied/);
      });
    });
  }

  it('legacy honours the xtables lock (-w): a held lock fails with a coded error and changes nothing; nft does not use it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rct-xtables-'));
    // A private lock file: holding it blocks nobody outside this test.
    const lockFile = join(dir, 'xtables.lock');
    let holder: ChildProcess | undefined;
    try {
      execFileSync('touch', [lockFile]);
      holder = spawn('flock', [lockFile, 'sleep', '30'], { stdio: 'ignore' });
      const deadline = Date.now() + 5000;
      for (;;) {
        try {
          execFileSync('flock', ['-n', lockFile, 'true']);
        } catch {
          break; // held
        }
        if (Date.now() > deadline) throw new Error('the lock holder never took the lock');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await withNamespace(async (ns) => {
        const withLock = new PrefixedCommandRunner(new ProcessCommandRunner({ env: { XTABLES_LOCKFILE: lockFile } }), [
          'ip',
          'netns',
          'exec',
          ns.name,
        ]);
        const legacy = new IptablesBackend({ mode: 'legacy', runner: withLock, lockWaitSeconds: 1 });
        const error = await codedRejection(legacy.apply(desired(['10.96.0.0/16'])));
        expect(error.code).toBe(ErrorCodes.CommandFailed);
        expect(error.hint).toMatch(/xtables lock/);
        expect(error.details.stderr).toMatch(/holding the xtables lock/);
        expect((await kernelView(ns, 'legacy')).present).toBe(false);
        const nft = new IptablesBackend({ mode: 'nft', runner: withLock, lockWaitSeconds: 1 });
        expect((await nft.apply(desired(['10.96.0.0/16']))).changed).toBe(true);
      });
    } finally {
      holder?.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('deleting by spec: each -D removes one of two identical jumps, in both flavours', async () => {
    await withNamespace(async (ns) => {
      for (const mode of MODES) {
        const jump = `-A FORWARD ${JUMP_SPEC.slice(0, 3).join(' ')} "${JUMP_SPEC[3]}" -j ROUTE-CONTROLLER`;
        await restoreInto(
          ns,
          mode,
          'ipv4',
          `*security\n:ROUTE-CONTROLLER - [0:0]\n-A ROUTE-CONTROLLER -d 10.96.0.0/16 -m comment --comment "route-controller: Service CIDR" -j DROP\n${jump}\n-A FORWARD -j ACCEPT\n${jump}\nCOMMIT\n`,
        );
        const backend = new IptablesBackend({ mode, runner: ns.runner });
        expect((await backend.observe()).problems).toEqual([
          'ipv4: 2 jumps to ROUTE-CONTROLLER in security FORWARD (positions 1, 3)',
        ]);
        await backend.apply(desired(['10.96.0.0/16']));
        expect(await forwardRules(ns, mode, 'ipv4')).toEqual([jump, '-A FORWARD -j ACCEPT']);
      }
    });
  });
});
