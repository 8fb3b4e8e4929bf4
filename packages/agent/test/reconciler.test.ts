import { type DesiredState, ErrorCodes, RouteControllerError, type WriteOptions } from '@route-controller/core';
import { MemoryBackend, MemoryKernel } from '@route-controller/core/testing';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { scrape } from './metrics-text.js';
import { setup } from './reconcile-helpers.js';

/** Makes every apply from now on hang until the returned function lets them go. */
function hangApplies(t: ReturnType<typeof setup>): () => void {
  let release: () => void = () => {};
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  const apply = t.backend.apply.bind(t.backend);
  vi.spyOn(t.backend, 'apply').mockImplementation(async (desired: DesiredState, options?: WriteOptions) => {
    await held;
    return apply(desired, options);
  });
  return release;
}

describe('Reconciler', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('applies on start', async () => {
    const t = setup();
    t.source.set('10.96.0.0/16');
    await t.reconciler.start();
    expect(t.kernelCidrs()).toEqual(['10.96.0.0/16']);
    expect(t.reconciler.readiness().ready).toBe(true);
    await t.reconciler.stop();
  });

  it('applies on a change, and coalesces a burst of changes into one more run', async () => {
    const t = setup();
    t.source.set('10.96.0.0/16');
    await t.reconciler.start();
    const writes = t.kernel.writes;
    const reads = t.source.reads;
    t.source.set('10.97.0.0/16');
    t.source.set('10.98.0.0/16');
    t.source.set('10.99.0.0/16');
    await t.reconciler.trigger('change');
    expect(t.kernelCidrs()).toEqual(['10.99.0.0/16']);
    // One run started by the first change, one coalesced run for the rest.
    expect(t.source.reads - reads).toBeLessThanOrEqual(2);
    expect(t.kernel.writes - writes).toBeLessThanOrEqual(2);
    await t.reconciler.stop();
  });

  it('never runs two applies at once', async () => {
    const t = setup();
    t.source.set('10.96.0.0/16');
    let inFlight = 0;
    let maxInFlight = 0;
    const apply = t.backend.apply.bind(t.backend);
    vi.spyOn(t.backend, 'apply').mockImplementation(async (desired: DesiredState) => {
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await Promise.resolve();
      await new Promise((resolve) => setImmediate(resolve));
      try {
        return await apply(desired);
      } finally {
        inFlight -= 1;
      }
    });
    vi.useRealTimers();
    await Promise.all([t.reconciler.trigger('start'), t.reconciler.trigger('change'), t.reconciler.trigger('resync')]);
    await Promise.all([t.reconciler.trigger('change'), t.reconciler.trigger('change')]);
    expect(maxInFlight).toBe(1);
    await t.reconciler.stop();
  });

  it("logs each warning an apply reports (the iptables fallback), once, with the backend's text in a field", async () => {
    const t = setup();
    t.source.set('10.96.0.0/16');
    const apply = t.backend.apply.bind(t.backend);
    vi.spyOn(t.backend, 'apply')
      .mockImplementationOnce(async (desired: DesiredState) => ({ ...(await apply(desired)), warnings: ['fell back'] }))
      .mockImplementation(apply);
    await t.reconciler.start();
    await t.reconciler.trigger('resync');
    const warnings = t.logs.filter((line) => line.msg === 'apply warning');
    expect(warnings).toEqual([expect.objectContaining({ level: 40, warning: 'fell back', backend: t.backend.name })]);
    await t.reconciler.stop();
  });

  it('writes nothing on a resync when the kernel matches', async () => {
    const t = setup('1s');
    t.source.set('10.96.0.0/16');
    await t.reconciler.start();
    const writes = t.kernel.writes;
    await vi.advanceTimersByTimeAsync(3100);
    expect(t.outcomes.filter((o) => o.trigger === 'resync')).toHaveLength(3);
    expect(t.kernel.writes).toBe(writes);
    await t.reconciler.stop();
  });

  it('repairs drift on the next resync and counts it', async () => {
    const t = setup('1s');
    t.source.set('10.96.0.0/16');
    await t.reconciler.start();
    t.kernel.seed((objects) => objects.delete('route-controller/rule/ipv4'));
    await vi.advanceTimersByTimeAsync(1000);
    expect(t.outcomes.at(-1)).toMatchObject({ trigger: 'resync', changed: true, driftRepaired: true });
    expect(t.kernel.objects.has('route-controller/rule/ipv4')).toBe(true);
    expect(await scrape(t.metrics, 'route_controller_drift_repairs_total')).toBe(1);
    await t.reconciler.stop();
  });

  it('counts drift repaired whatever noticed it (an event, a retry), and a new desired state as no drift', async () => {
    const t = setup('1h');
    t.source.set('10.96.0.0/16');
    await t.reconciler.start();
    t.kernel.seed((objects) => objects.delete('route-controller/rule/ipv4'));
    await t.reconciler.trigger('event');
    expect(t.outcomes.at(-1)).toMatchObject({ trigger: 'event', changed: true, driftRepaired: true });
    // A repair that fails once is done by the retry: still drift, not a change we asked for.
    t.kernel.seed((objects) => objects.delete('route-controller/rule/ipv4'));
    t.kernel.failure = new Error('Operation not permitted');
    await t.reconciler.trigger('event');
    t.kernel.failure = undefined;
    await vi.advanceTimersByTimeAsync(500);
    expect(t.outcomes.at(-1)).toMatchObject({ trigger: 'retry', changed: true, driftRepaired: true });
    expect(await scrape(t.metrics, 'route_controller_drift_repairs_total')).toBe(2);
    expect(t.logs.filter((line) => line.msg === 'drift repaired').map((line) => line.noticed)).toEqual([
      'from a kernel change event',
      'on a retry',
    ]);
    const before = t.outcomes.length;
    t.source.set('10.97.0.0/16');
    await t.reconciler.trigger('change');
    expect(t.outcomes.slice(before).filter((o) => o.changed)).toEqual([
      { trigger: 'change', ok: true, changed: true, driftRepaired: false },
    ]);
    expect(await scrape(t.metrics, 'route_controller_drift_repairs_total')).toBe(2);
    await t.reconciler.stop();
  });

  it('says in /readyz what failed: the code and the message', async () => {
    const t = setup('1h');
    t.source.set('10.96.0.0/16');
    t.kernel.unreadable.add('ipv4');
    await t.reconciler.start();
    expect(t.reconciler.readiness()).toEqual({
      ready: false,
      reason: 'apply with memory failed: ERR_RC_FIREWALL_UNREADABLE: the memory kernel cannot list our ipv4 objects',
    });
    expect(t.kernel.writes).toBe(0);
    await t.reconciler.stop();
  });

  it('while an attempt hangs: not ready past a resync (unverified), not alive past 3 (kube-proxy healthz); both again once it ends', async () => {
    const t = setup('1s');
    t.source.set('10.96.0.0/16');
    await t.reconciler.start();
    await vi.advanceTimersByTimeAsync(5_000);
    expect(t.reconciler.readiness().ready).toBe(true);
    expect(t.reconciler.liveness()).toEqual({ alive: true, reason: 'ok' });
    const release = hangApplies(t);
    // The next resync's attempt (at 6 s) hangs.
    await vi.advanceTimersByTimeAsync(1_900);
    expect(t.reconciler.readiness().ready).toBe(true);
    await vi.advanceTimersByTimeAsync(200);
    expect(t.reconciler.readiness()).toEqual({
      ready: false,
      reason: 'cannot verify the rules: a reconcile has been waiting on the memory commands for 1s',
    });
    // 3 s after the last attempt that completed (at 5 s), the loop counts as stuck.
    await vi.advanceTimersByTimeAsync(800);
    expect(t.reconciler.liveness().alive).toBe(true);
    await vi.advanceTimersByTimeAsync(200);
    expect(t.reconciler.liveness()).toEqual({
      alive: false,
      reason: expect.stringContaining('waits on the memory commands'),
    });
    release();
    await vi.advanceTimersByTimeAsync(0);
    expect(t.reconciler.liveness().alive).toBe(true);
    expect(t.reconciler.readiness().ready).toBe(true);
    await t.reconciler.stop();
  });

  it('counts failed attempts as attempts: a firewall that always times out is alive, and not ready, saying why', async () => {
    const t = setup('1s');
    t.source.set('10.96.0.0/16');
    await t.reconciler.start();
    vi.spyOn(t.backend, 'apply').mockRejectedValue(
      new RouteControllerError(ErrorCodes.CommandTimeout, 'nft -j list table inet route-controller did not finish'),
    );
    await vi.advanceTimersByTimeAsync(10_000);
    expect(t.reconciler.liveness().alive).toBe(true);
    expect(t.reconciler.readiness()).toEqual({
      ready: false,
      reason: expect.stringContaining(`apply with memory failed: ${ErrorCodes.CommandTimeout}`),
    });
    await t.reconciler.stop();
  });

  it('keeps the rules and retries with a doubling, jittered backoff when apply fails (fail-static)', async () => {
    const t = setup('30s');
    t.source.set('10.96.0.0/16');
    await t.reconciler.start();
    t.kernel.failure = new Error('Operation not permitted');
    t.source.set('10.97.0.0/16'); // the subscription triggers the run
    await vi.advanceTimersByTimeAsync(0);
    expect(t.kernelCidrs()).toEqual(['10.96.0.0/16']);
    expect(t.reconciler.readiness().ready).toBe(false);
    const attempts = () => t.outcomes.filter((o) => !o.ok).length;
    expect(attempts()).toBe(1);
    // Retried after 500 ms less up to 20% jitter (400-500 ms), then after 1 s less jitter (800-1000 ms).
    await vi.advanceTimersByTimeAsync(399);
    expect(attempts()).toBe(1);
    await vi.advanceTimersByTimeAsync(101);
    expect(attempts()).toBe(2);
    await vi.advanceTimersByTimeAsync(699); // 1,199 ms: the earliest third attempt is at 400 + 800
    expect(attempts()).toBe(2);
    await vi.advanceTimersByTimeAsync(301); // 1,500 ms: the latest is at 500 + 1,000
    expect(attempts()).toBe(3);
    t.kernel.failure = undefined;
    await vi.advanceTimersByTimeAsync(2000);
    expect(t.kernelCidrs()).toEqual(['10.97.0.0/16']);
    expect(t.reconciler.readiness().ready).toBe(true);
    expect(await scrape(t.metrics, 'route_controller_apply_failures_total')).toBe(3);
    await t.reconciler.stop();
  });

  it('keeps the rules while the source is unavailable', async () => {
    const t = setup();
    t.source.set('10.96.0.0/16');
    await t.reconciler.start();
    t.source.reading = {
      kind: 'unavailable',
      detail: 'API server unreachable',
      error: new RouteControllerError(ErrorCodes.SourceFailed, 'down'),
    };
    await t.reconciler.trigger('change');
    expect(t.kernelCidrs()).toEqual(['10.96.0.0/16']);
    expect(t.reconciler.readiness().reason).toContain('keeping');
    await t.reconciler.stop();
  });

  it('installs nothing, stays up, and is not ready (with the fix) when no source has CIDRs', async () => {
    const t = setup();
    await t.reconciler.start();
    expect(t.kernel.objects.size).toBe(0);
    expect(t.outcomes[0]).toMatchObject({ ok: true, changed: false });
    expect(t.reconciler.readiness()).toEqual({
      ready: false,
      reason: expect.stringMatching(
        /^not protecting this node: no Service CIDRs found \(scripted: nothing yet\)\. Set SERVICE_CIDRS/,
      ),
    });
    expect(await scrape(t.metrics, 'route_controller_ready')).toBe(0);
    t.source.set('10.96.0.0/16');
    await t.reconciler.trigger('change');
    expect(t.reconciler.readiness().ready).toBe(true);
    expect(await scrape(t.metrics, 'route_controller_ready')).toBe(1);
    await t.reconciler.stop();
  });

  it('says at info level, once, that the node is protected when a restart finds the rules in step', async () => {
    const first = setup();
    first.source.set('10.96.0.0/16');
    await first.reconciler.start();
    await first.reconciler.stop();
    // A second agent over the same kernel: nothing to write, and still one line saying what is enforced.
    const second = setup('1s', first.kernel);
    second.source.set('10.96.0.0/16');
    await second.reconciler.start();
    await vi.advanceTimersByTimeAsync(3000);
    const said = second.logs.filter((line) => line.level === 30 && line.msg === 'rules already in step');
    expect(said).toEqual([expect.objectContaining({ action: 'drop', cidrs: ['10.96.0.0/16'] })]);
    expect(first.kernel.writes).toBe(1);
    await second.reconciler.stop();
  });

  it('logs one component per line', async () => {
    const t = setup();
    t.source.set('10.96.0.0/16');
    await t.reconciler.start();
    await t.reconciler.stop();
    expect(t.raw.length).toBeGreaterThan(0);
    // Parsers keep one of two equal keys: count them in the text itself.
    for (const line of t.raw) expect(line.match(/"component":/g)).toHaveLength(1);
    expect(t.logs.find((line) => line.msg === 'Service CIDRs found')?.component).toBe('discovery');
  });

  it('removes the rules when the CIDRs go away', async () => {
    const t = setup();
    t.source.set('10.96.0.0/16');
    await t.reconciler.start();
    t.source.reading = { kind: 'none', detail: 'all ServiceCIDRs deleted' };
    await t.reconciler.trigger('change');
    expect(t.kernel.objects.size).toBe(0);
    await t.reconciler.stop();
  });

  it('sets route_controller_service_cidrs only once a safe set is applied, never for one refused or failed', async () => {
    const t = setup();
    const enforced = async () => [
      await scrape(t.metrics, 'route_controller_service_cidrs', 'family="ipv4"'),
      await scrape(t.metrics, 'route_controller_service_cidrs', 'family="ipv6"'),
    ];
    t.source.set('10.96.0.0/16');
    await t.reconciler.start();
    expect(await enforced()).toEqual([1, 0]);
    // Refused by the safety check (it holds a node address): what is enforced is still the old set.
    t.source.set('10.96.0.0/16,172.18.0.0/16,fd00:10:96::/112');
    await t.reconciler.trigger('change');
    expect(t.reconciler.readiness().ready).toBe(false);
    expect(await enforced()).toEqual([1, 0]);
    // A safe set whose apply fails: still the old one.
    const apply = vi
      .spyOn(t.backend, 'apply')
      .mockRejectedValue(new RouteControllerError(ErrorCodes.CommandFailed, 'nft -f failed'));
    t.source.set('10.96.0.0/16,10.97.0.0/16,fd00:10:96::/112');
    await t.reconciler.trigger('change');
    expect(apply).toHaveBeenCalled();
    expect(await enforced()).toEqual([1, 0]);
    apply.mockRestore();
    // Applied: now it says so.
    await t.reconciler.trigger('retry');
    expect(await enforced()).toEqual([2, 1]);
    await t.reconciler.stop();
  });

  it('warns once that a family the backend cannot enforce is ignored, and again only when that changes', async () => {
    const kernel = new MemoryKernel();
    const t = setup('30s', kernel, new MemoryBackend(kernel, { capabilities: { families: ['ipv4'] } }));
    const warnings = () => t.logs.filter((line) => line.families !== undefined).map((line) => line.families);
    t.source.set('10.96.0.0/16,fd00:10:96::/112');
    await t.reconciler.start();
    for (let resync = 0; resync < 5; resync += 1) await t.reconciler.trigger('resync');
    expect(warnings()).toEqual([['ipv6']]);
    expect(t.logs.find((line) => line.families)).toMatchObject({ level: 40, backend: 'memory' });
    t.source.set('10.96.0.0/16');
    await t.reconciler.trigger('change');
    t.source.set('10.96.0.0/16,fd00:10:96::/112');
    await t.reconciler.trigger('change');
    await t.reconciler.trigger('resync');
    expect(warnings()).toEqual([['ipv6'], ['ipv6']]);
    await t.reconciler.stop();
  });

  it('refuses CIDRs that contain a node address, keeping the rules', async () => {
    const t = setup();
    t.source.set('10.96.0.0/16');
    await t.reconciler.start();
    t.source.set('172.18.0.0/16');
    await t.reconciler.trigger('change');
    expect(t.kernelCidrs()).toEqual(['10.96.0.0/16']);
    expect(t.reconciler.readiness()).toMatchObject({
      ready: false,
      reason: expect.stringContaining(ErrorCodes.UnsafeCidr),
    });
    await t.reconciler.stop();
  });

  it('stop() cancels the write in progress, waits for it, then closes discovery and ignores triggers', async () => {
    const t = setup('1s');
    t.source.set('10.96.0.0/16');
    vi.useRealTimers();
    // An apply that blocks until the test releases it: a run is in progress when stop() is called.
    const release = hangApplies(t);
    const closed = vi.spyOn(t.source, 'close');
    const started = t.reconciler.start();
    await new Promise((resolve) => setImmediate(resolve));
    let stopped = false;
    const stopping = t.reconciler.stop().then(() => {
      stopped = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(stopped).toBe(false);
    expect(closed).not.toHaveBeenCalled();
    release();
    await Promise.all([started, stopping]);
    // The apply saw its signal aborted and wrote nothing; no failure was counted, no retry planned.
    expect(t.kernel.writes).toBe(0);
    expect(t.outcomes).toEqual([{ trigger: 'start', ok: false, changed: false, driftRepaired: false }]);
    expect(await scrape(t.metrics, 'route_controller_apply_failures_total')).toBe(0);
    expect(closed).toHaveBeenCalledOnce();
    const count = t.outcomes.length;
    await t.reconciler.trigger('change');
    await new Promise((resolve) => setTimeout(resolve, 1200));
    expect(t.outcomes).toHaveLength(count);
  });
});
