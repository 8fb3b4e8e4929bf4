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
  /** A new P-256 key for `name`, and a request (`-x509`: a self-signed certificate) for `subject`. */
  const newKey = (name: string, subject: string, out: string, selfSigned = false) =>
    openssl([
      'req',
      ...(selfSigned ? ['-x509', '-days', '1'] : []),
      ...['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'],
      ...['-keyout', at(`${name}.key`), '-out', at(out), '-subj', subject],
    ]);
  try {
    await newKey('ca', '/CN=test-apiserver-ca', 'ca.crt', true);
    for (const [name, subject, extension] of [
      ['server', '/CN=kube-apiserver', 'subjectAltName=IP:127.0.0.1,DNS:localhost'],
      ['client', `/CN=${clientName}`, 'extendedKeyUsage=clientAuth'],
    ] as const) {
      await newKey(name, subject, `${name}.csr`);
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
