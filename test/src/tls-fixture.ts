import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';

/** A throwaway CA, a server certificate for 127.0.0.1 and a client certificate, all PEM. */
export interface TlsFixture {
  readonly ca: string;
  readonly serverKey: string;
  readonly serverCert: string;
  readonly clientKey: string;
  readonly clientCert: string;
}

/** Made with openssl (as kubeadm's own PKI would be), in a temporary directory removed at once. */
export async function makeTlsFixture(clientName = 'route-controller'): Promise<TlsFixture> {
  const dir = await mkdtemp(join(tmpdir(), 'rc-tls-'));
  const at = (file: string) => join(dir, file);
  const openssl = (args: string[]) => execa('openssl', args, { cwd: dir });
  try {
    await openssl([
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      at('ca.key'),
      '-out',
      at('ca.crt'),
      '-days',
      '1',
      '-subj',
      '/CN=test-apiserver-ca',
    ]);
    for (const [name, subject, extension] of [
      ['server', '/CN=kube-apiserver', 'subjectAltName=IP:127.0.0.1,DNS:localhost'],
      ['client', `/CN=${clientName}`, 'extendedKeyUsage=clientAuth'],
    ] as const) {
      await openssl([
        'req',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        at(`${name}.key`),
        '-out',
        at(`${name}.csr`),
        '-subj',
        subject,
      ]);
      await writeFile(at(`${name}.ext`), `${extension}\n`);
      await openssl([
        'x509',
        '-req',
        '-in',
        at(`${name}.csr`),
        '-CA',
        at('ca.crt'),
        '-CAkey',
        at('ca.key'),
        '-CAcreateserial',
        '-out',
        at(`${name}.crt`),
        '-days',
        '1',
        '-extfile',
        at(`${name}.ext`),
      ]);
    }
    const read = (file: string) => readFile(at(file), 'utf8');
    return {
      ca: await read('ca.crt'),
      serverKey: await read('server.key'),
      serverCert: await read('server.crt'),
      clientKey: await read('client.key'),
      clientCert: await read('client.crt'),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
