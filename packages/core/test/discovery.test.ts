import { describe, expect, it, vi } from 'vitest';
import { DiscoveryChain, LazySource, type ServiceCidrSource, type SourceReading } from '../src/discovery.js';
import { EnvServiceCidrSource } from '../src/env-source.js';
import { ErrorCodes, RouteControllerError } from '../src/errors.js';
import { parseCidrList } from '../src/service-cidrs.js';
import { codedRejection } from '../src/testing/coded-rejection.js';

const fixed = (name: string, reading: SourceReading): ServiceCidrSource => ({ name, read: async () => reading });
const cidrs = (text: string): SourceReading => ({ kind: 'cidrs', cidrs: parseCidrList(text).cidrs, detail: text });

describe('EnvServiceCidrSource', () => {
  it('is not configured when the variable is unset', async () => {
    const source = new EnvServiceCidrSource(undefined);
    expect(source.configured).toBe(false);
    expect(await source.read()).toEqual({ kind: 'none', detail: 'SERVICE_CIDRS is not set' });
  });

  it('says when the variable is set but empty', async () => {
    const reading = await new EnvServiceCidrSource(' , ').read();
    expect(reading).toMatchObject({ kind: 'none', detail: expect.stringContaining('lists no CIDRs') });
  });

  it('reads normalised CIDRs and passes normalisation notes on', async () => {
    const reading = await new EnvServiceCidrSource('10.96.0.1/12, fd00::/108').read();
    expect(reading.kind).toBe('cidrs');
    if (reading.kind !== 'cidrs') return;
    expect(reading.cidrs.ipv4.map((c) => c.text)).toEqual(['10.96.0.0/12']);
    expect(reading.detail).toBe('SERVICE_CIDRS=10.96.0.0/12, fd00::/108');
    expect(reading.notes?.map((n) => n.kind)).toEqual(['host-bits-cleared']);
  });

  it('fails at construction on a bad value', () => {
    expect(() => new EnvServiceCidrSource('10.96.0.0/33')).toThrow(
      expect.objectContaining({ code: ErrorCodes.InvalidCidr }),
    );
  });
});

describe('DiscoveryChain', () => {
  it('the first source with CIDRs wins, and later sources are not read', async () => {
    const later = { name: 'later', read: vi.fn(async (): Promise<SourceReading> => cidrs('10.200.0.0/16')) };
    const chain = new DiscoveryChain([
      fixed('first', { kind: 'none', detail: 'unset' }),
      fixed('second', cidrs('10.96.0.0/12')),
      later,
    ]);
    const result = await chain.resolve();
    expect(result).toMatchObject({ kind: 'cidrs', source: 'second', skipped: [{ source: 'first', detail: 'unset' }] });
    expect(later.read).not.toHaveBeenCalled();
  });

  it('a source with an empty list does not win', async () => {
    const chain = new DiscoveryChain([fixed('empty', cidrs('')), fixed('real', cidrs('10.96.0.0/12'))]);
    expect(await chain.resolve()).toMatchObject({ kind: 'cidrs', source: 'real' });
  });

  it('reports none with every reason when no source knows', async () => {
    const chain = new DiscoveryChain([
      fixed('a', { kind: 'none', detail: 'x' }),
      fixed('b', { kind: 'none', detail: 'y' }),
    ]);
    expect(await chain.resolve()).toEqual({
      kind: 'none',
      skipped: [
        { source: 'a', detail: 'x' },
        { source: 'b', detail: 'y' },
      ],
    });
  });

  it('stops at an unavailable source instead of falling through (fail-static)', async () => {
    const error = new RouteControllerError(ErrorCodes.SourceFailed, 'api down');
    const chain = new DiscoveryChain([
      fixed('k8s', { kind: 'unavailable', detail: 'api down', error }),
      fixed('fallback', cidrs('10.96.0.0/12')),
    ]);
    expect(await chain.resolve()).toMatchObject({ kind: 'unavailable', source: 'k8s', error });
  });

  it('turns a throwing source into a coded unavailable result', async () => {
    const chain = new DiscoveryChain([{ name: 'boom', read: () => Promise.reject(new Error('kaput')) }]);
    const result = await chain.resolve();
    expect(result.kind).toBe('unavailable');
    if (result.kind === 'unavailable') {
      expect(result.error.code).toBe(ErrorCodes.SourceFailed);
      expect(result.error.cause).toBeInstanceOf(Error);
    }
  });

  it('forwards change notifications from live sources', () => {
    const listeners = new Set<() => void>();
    const live: ServiceCidrSource = {
      name: 'live',
      read: async () => cidrs('10.96.0.0/12'),
      subscribe: (listener) => {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
    };
    const chain = new DiscoveryChain([fixed('static', { kind: 'none', detail: '' }), live]);
    const seen = vi.fn();
    const unsubscribe = chain.subscribe(seen);
    for (const listener of listeners) listener();
    expect(seen).toHaveBeenCalledTimes(1);
    unsubscribe();
    expect(listeners.size).toBe(0);
  });
});

describe('LazySource', () => {
  it('loads its implementation only when read, once', async () => {
    const load = vi.fn(async () => fixed('real', cidrs('10.96.0.0/12')));
    const lazy = new LazySource('kubernetes', load);
    const chain = new DiscoveryChain([fixed('env', cidrs('10.100.0.0/16')), lazy]);
    await chain.resolve();
    expect(load).not.toHaveBeenCalled();
    expect(lazy.instance).toBeUndefined();
    await lazy.read();
    await lazy.read();
    expect(load).toHaveBeenCalledTimes(1);
    expect(lazy.instance?.name).toBe('real');
  });

  it('tries a failed load again on the next read, as ERR_RC_SOURCE_FAILED with the cause', async () => {
    const load = vi
      .fn<() => Promise<ServiceCidrSource>>()
      .mockRejectedValueOnce(new Error('chunk missing'))
      .mockResolvedValue(fixed('real', cidrs('10.96.0.0/12')));
    const lazy = new LazySource('kubernetes', load);
    const error = await codedRejection(lazy.read());
    expect(error.code).toBe(ErrorCodes.SourceFailed);
    expect((error.cause as Error).message).toBe('chunk missing');
    expect((await lazy.read()).kind).toBe('cidrs');
    expect(load).toHaveBeenCalledTimes(2);
  });

  it('relays change notifications of the loaded source', async () => {
    let notify: () => void = () => {};
    const lazy = new LazySource('live', async () => ({
      name: 'live',
      read: async () => cidrs('10.96.0.0/12'),
      subscribe: (listener: () => void) => {
        notify = listener;
        return () => {};
      },
    }));
    const seen = vi.fn();
    lazy.subscribe(seen);
    await lazy.read();
    notify();
    expect(seen).toHaveBeenCalledTimes(1);
  });

  it('reports a load failure with a code and retries on the next read', async () => {
    const load = vi
      .fn()
      .mockRejectedValueOnce(new Error('cannot import'))
      .mockResolvedValue(fixed('real', cidrs('10.96.0.0/12')));
    const lazy = new LazySource('kubernetes', load);
    await expect(lazy.read()).rejects.toMatchObject({ code: ErrorCodes.SourceFailed });
    await expect(lazy.read()).resolves.toMatchObject({ kind: 'cidrs' });
  });
});
