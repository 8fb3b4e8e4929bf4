import { isDeepStrictEqual } from 'node:util';
import { type CommandResult, ErrorCodes, RouteControllerError } from '@route-controller/core';
import { anyOrder, FakeCommandRunner, type ScriptedCommand, type ScriptStep } from '@route-controller/core/testing';
import { describe, expect, it } from 'vitest';
import { DEFAULT_LAYOUT } from '../src/layout.js';
import { probeDocument, probeNft, probeNftFeatures } from '../src/probe.js';

const LONG_VERSION = `nftables v1.0.6 (Lester Gooch #5)
  cli:		editline
  json:		yes
  minigmp:	no
  libxtables:	yes
`;

const version = (stdout: string): ScriptedCommand => ({ file: 'nft', args: ['--version'], result: { stdout } });
const longVersion = (result: Partial<CommandResult>): ScriptedCommand => ({ file: 'nft', args: ['-V'], result });
const check = (result: Partial<CommandResult> = {}): ScriptedCommand => ({
  file: 'nft',
  // A dry run of our real layout, `nft -j --check <document>`, and nothing that commits.
  args: (args) =>
    args[0] === '-j' &&
    args[1] === '--check' &&
    isDeepStrictEqual(JSON.parse(args.slice(2).join(' ')), probeDocument(DEFAULT_LAYOUT)),
  result,
});

async function probe(...script: ScriptStep[]) {
  const runner = new FakeCommandRunner(script);
  const availability = await probeNft(runner, 'nft', DEFAULT_LAYOUT);
  runner.assertDone();
  return { availability, runner };
}

describe('probing nft', () => {
  it('says yes when the binary runs, is new enough, has JSON and the dry run passes', async () => {
    const { availability, runner } = await probe(anyOrder(longVersion({ stdout: LONG_VERSION }), check()));
    expect(availability).toEqual({
      available: true,
      reason: 'nft 1.0.6 with JSON, --check passed',
      checks: [
        { name: 'binary', ok: true, detail: 'nft found: nftables v1.0.6 (Lester Gooch #5)' },
        { name: 'version', ok: true, detail: '1.0.6 >= 1.0.1' },
        { name: 'json', ok: true, detail: 'nft -V reports json: yes' },
        { name: 'check', ok: true, detail: 'a dry run of our table passed' },
        {
          name: 'placement',
          ok: true,
          detail:
            "base chain forward of table inet route-controller at priority filter + 20, after filter: kube-proxy's REJECT answers first",
        },
      ],
      warnings: [],
    });
    // Never a write: every call is a version query or a --check dry run.
    for (const call of runner.calls)
      expect(call.args.some((a) => ['--version', '-V', '--check'].includes(a))).toBe(true);
  });

  it('says no when the binary is missing, and checks nothing else', async () => {
    const { availability } = await probe({ file: 'nft', args: ['-V'], fails: 'missing' });
    expect(availability.available).toBe(false);
    expect(availability.reason).toBe('nft not found');
    expect(availability.failure).toBe(ErrorCodes.CommandNotFound);
    expect(availability.checks.map((c) => [c.name, c.ok])).toEqual([
      ['binary', false],
      ['version', false],
      ['json', false],
      ['check', false],
    ]);
    expect(availability.checks[1]?.detail).toMatch(/^not checked/);
  });

  it('says no for nft 0.9.8, naming the version', async () => {
    const { availability } = await probe(
      longVersion({ exitCode: 1, stderr: "nft: invalid option -- 'V'\n" }),
      version('nftables v0.9.8 (E.D.S.)\n'),
    );
    expect(availability.available).toBe(false);
    expect(availability.reason).toBe('nft 0.9.8 is older than 1.0.1');
    expect(availability.checks[1]).toEqual({ name: 'version', ok: false, detail: '0.9.8 is older than 1.0.1' });
  });

  it('says no when the version cannot be read', async () => {
    const { availability } = await probe(
      longVersion({ exitCode: 1, stderr: "nft: invalid option -- 'V'\n" }),
      version('nft from the future\n'),
    );
    expect(availability.available).toBe(false);
    expect(availability.checks[1]?.ok).toBe(false);
  });

  it('says no when nft -V reports no JSON support', async () => {
    const { availability } = await probe(longVersion({ stdout: LONG_VERSION.replace('json:\t\tyes', 'json:\t\tno') }));
    expect(availability.available).toBe(false);
    expect(availability.reason).toBe('nft 1.0.6 lacks JSON support');
    expect(availability.checks[2]).toMatchObject({ name: 'json', ok: false });
  });

  it('asks -j --version when an older nft has no -V, and says no without JSON', async () => {
    const { availability } = await probe(
      longVersion({ exitCode: 1, stderr: "nft: invalid option -- 'V'\n" }),
      version('nftables v1.0.1 (Fearless Fosdick #3)\n'),
      { file: 'nft', args: ['-j', '--version'], result: { exitCode: 1, stderr: 'JSON support not compiled-in\n' } },
    );
    expect(availability.available).toBe(false);
    expect(availability.checks[2]).toEqual({
      name: 'json',
      ok: false,
      detail: 'nft -j refused: JSON support not compiled-in',
    });
  });

  it('accepts an older nft without -V when -j works', async () => {
    const { availability } = await probe(
      // The dry run starts beside -V; the older build's version questions follow.
      anyOrder(longVersion({ exitCode: 1, stderr: "nft: invalid option -- 'V'\n" }), check()),
      version('nftables v1.0.1 (Fearless Fosdick #3)\n'),
      { file: 'nft', args: ['-j', '--version'], result: { stdout: 'nftables v1.0.1 (Fearless Fosdick #3)\n' } },
    );
    expect(availability).toMatchObject({ available: true, reason: 'nft 1.0.1 with JSON, --check passed' });
  });

  it('runs the dry run beside nft -V, not after it: two commands in flight at once', async () => {
    let inFlight = 0;
    let most = 0;
    const runner = {
      async run(request: { args: readonly string[] }) {
        inFlight += 1;
        most = Math.max(most, inFlight);
        await new Promise((resolve) => setTimeout(resolve, 10));
        inFlight -= 1;
        return request.args[0] === '-V'
          ? { exitCode: 0, stdout: LONG_VERSION, stderr: '' }
          : { exitCode: 0, stdout: '', stderr: '' };
      },
    };
    expect((await probeNft(runner, 'nft', DEFAULT_LAYOUT)).available).toBe(true);
    expect(most).toBe(2);
  });

  it('says no when the dry run is refused for lack of permission', async () => {
    const { availability } = await probe(
      anyOrder(
        longVersion({ stdout: LONG_VERSION }),
        check({ exitCode: 1, stderr: 'internal:0:0-0: Error: Could not process rule: Operation not permitted\n\n' }),
      ),
    );
    expect(availability.available).toBe(false);
    expect(availability.reason).toBe(
      'nft 1.0.6 with JSON, but --check failed: Could not process rule: Operation not permitted',
    );
    expect(availability.checks[3]).toMatchObject({ name: 'check', ok: false });
    expect(availability.checks.slice(0, 3).every((c) => c.ok)).toBe(true);
    expect(availability.failure).toBe(ErrorCodes.FirewallPermission);
  });

  it('says no when the dry run times out', async () => {
    const { availability } = await probe(
      anyOrder(longVersion({ stdout: LONG_VERSION }), {
        file: 'nft',
        args: (args) => args.includes('--check'),
        fails: 'timeout',
      }),
    );
    expect(availability.available).toBe(false);
    expect(availability.reason).toMatch(/--check could not run/);
  });

  describe('hit records', () => {
    const plainCheck = (result: Partial<CommandResult> = {}): ScriptedCommand => ({
      file: 'nft',
      args: (args) =>
        args[1] === '--check' &&
        isDeepStrictEqual(
          JSON.parse(args.slice(2).join(' ')),
          probeDocument({ ...DEFAULT_LAYOUT, records: undefined }),
        ),
      result,
    });

    it('keeps them on nft 1.0.6, whose dry run covers the record sets', async () => {
      expect(JSON.stringify(probeDocument(DEFAULT_LAYOUT))).toContain('"stale-v4"');
      const runner = new FakeCommandRunner([anyOrder(longVersion({ stdout: LONG_VERSION }), check())]);
      const probe = await probeNftFeatures(runner, 'nft', DEFAULT_LAYOUT);
      expect(probe).toMatchObject({ records: true, availability: { available: true, warnings: [] } });
    });

    it("turns them off on nft 1.0.5, whose JSON drops the sets' counters silently, and says so", async () => {
      const runner = new FakeCommandRunner([
        anyOrder(longVersion({ stdout: LONG_VERSION.replace('v1.0.6', 'v1.0.5') }), check()),
      ]);
      const probe = await probeNftFeatures(runner, 'nft', DEFAULT_LAYOUT);
      expect(probe.records).toBe(false);
      expect(probe.availability).toMatchObject({ available: true, reason: 'nft 1.0.5 with JSON, --check passed' });
      expect(probe.availability.warnings).toEqual([
        "nft 1.0.5 is older than 1.0.6, whose JSON keeps the record sets' counters: who dials stale ClusterIPs is not recorded (the rules work as ever; install nftables 1.0.6 or newer to have it)",
      ]);
    });

    it('asks nothing of the version for the plain layout', async () => {
      const runner = new FakeCommandRunner([
        anyOrder(longVersion({ stdout: LONG_VERSION.replace('v1.0.6', 'v1.0.5') }), plainCheck()),
      ]);
      const probe = await probeNftFeatures(runner, 'nft', { ...DEFAULT_LAYOUT, records: undefined });
      expect(probe).toMatchObject({ records: false, availability: { available: true, warnings: [] } });
    });

    it('turns them off when the kernel refuses the record sets but takes the plain rule', async () => {
      const refused = 'internal:0:0-0: Error: Could not process rule: Operation not supported\n';
      const runner = new FakeCommandRunner([
        anyOrder(longVersion({ stdout: LONG_VERSION }), check({ exitCode: 1, stderr: refused })),
        plainCheck(),
      ]);
      const probe = await probeNftFeatures(runner, 'nft', DEFAULT_LAYOUT);
      runner.assertDone();
      expect(probe.records).toBe(false);
      expect(probe.availability.available).toBe(true);
      expect(probe.availability.checks[3]).toEqual({
        name: 'check',
        ok: true,
        detail:
          'a dry run of our table passed without the record sets (Could not process rule: Operation not supported)',
      });
      expect(probe.availability.warnings).toEqual([
        expect.stringMatching(/^the kernel refused the record sets .*not recorded/),
      ]);
    });

    it('says no when the plain rule is refused too, and never retries a refusal for lack of permission', async () => {
      const refused = 'internal:0:0-0: Error: Could not process rule: Operation not supported\n';
      const runner = new FakeCommandRunner([
        anyOrder(longVersion({ stdout: LONG_VERSION }), check({ exitCode: 1, stderr: refused })),
        plainCheck({ exitCode: 1, stderr: refused }),
      ]);
      const probe = await probeNftFeatures(runner, 'nft', DEFAULT_LAYOUT);
      runner.assertDone();
      expect(probe).toMatchObject({ records: false, availability: { available: false } });
      const denied = new FakeCommandRunner([
        anyOrder(
          longVersion({ stdout: LONG_VERSION }),
          check({ exitCode: 1, stderr: 'internal:0:0-0: Error: Could not process rule: Operation not permitted\n' }),
        ),
      ]);
      await probeNftFeatures(denied, 'nft', DEFAULT_LAYOUT);
      expect(denied.calls).toHaveLength(2);
    });
  });

  it('propagates nothing: a failing runner is a "no", never a throw', async () => {
    const runner = new FakeCommandRunner([
      { file: 'nft', args: ['-V'], fails: new RouteControllerError(ErrorCodes.CommandKilled, 'killed') },
    ]);
    await expect(probeNft(runner, 'nft', DEFAULT_LAYOUT)).resolves.toMatchObject({ available: false });
  });
});
