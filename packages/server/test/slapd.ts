/**
 * A throw-away OpenLDAP slapd (Debian's `slapd` and `ldap-utils`) for the LDAP tests: its own
 * config and database under a temporary directory, LDAP and LDAPS on loopback ports, a CA and a
 * server certificate made with openssl, the memberof overlay (memberOf on users, as sign-in by
 * group needs), and test/fixtures/ldap/directory.ldif loaded through the server so the overlay
 * sees the groups. Every wait is bounded.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const BASE_DN = 'dc=example,dc=org';
export const ROOT_DN = `cn=admin,${BASE_DN}`;
export const SERVICE_DN = `cn=nimbo,ou=services,${BASE_DN}`;
export const SERVICE_PASSWORD = 'svc-secret';
const ROOT_PASSWORD = 'root-secret';
const LDIF = resolve(import.meta.dirname, 'fixtures/ldap/directory.ldif');

export interface Slapd {
  port: number;
  tlsPort: number;
  /** PEM of the CA that signed the server certificate. */
  caFile: string;
  /** PEM of a CA that did not (for the refused-certificate case). */
  otherCaFile: string;
  dir: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as { port: number };
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe' });
}

/** A CA, a server certificate for 127.0.0.1/localhost signed by it, and an unrelated CA. */
function makeCertificates(dir: string): void {
  const days = ['-days', '2'];
  openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
      ...days,
      '-subj',
      '/CN=Nimbostack test CA',
    ],
    dir,
  );
  openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'other.key',
      '-out',
      'other-ca.pem',
      ...days,
      '-subj',
      '/CN=Another CA',
    ],
    dir,
  );
  openssl(
    [
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'server.key',
      '-out',
      'server.csr',
      '-subj',
      '/CN=localhost',
    ],
    dir,
  );
  writeFileSync(join(dir, 'san.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl(
    [
      'x509',
      '-req',
      '-in',
      'server.csr',
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      'server.pem',
      ...days,
      '-extfile',
      'san.cnf',
    ],
    dir,
  );
}

function config(dir: string): string {
  const schema = ['core', 'cosine', 'inetorgperson', 'nis'].map(
    (s) => `include /etc/ldap/schema/${s}.schema`,
  );
  return [
    ...schema,
    'modulepath /usr/lib/ldap',
    'moduleload back_mdb',
    'moduleload memberof',
    `pidfile ${dir}/slapd.pid`,
    `TLSCACertificateFile ${dir}/ca.pem`,
    `TLSCertificateFile ${dir}/server.pem`,
    `TLSCertificateKeyFile ${dir}/server.key`,
    'database mdb',
    'maxsize 16777216',
    `suffix "${BASE_DN}"`,
    `rootdn "${ROOT_DN}"`,
    `rootpw ${ROOT_PASSWORD}`,
    `directory ${dir}/data`,
    'overlay memberof',
    'memberof-group-oc groupOfUniqueNames',
    'memberof-member-ad uniqueMember',
    'memberof-memberof-ad memberOf',
    // Passwords serve binds only; anonymous clients may bind but not search, so searches need the
    // service account (ldap.bind.principal), as in most real directories.
    'access to attrs=userPassword by self read by anonymous auth by * none',
    'access to * by users read by * none',
    '',
  ].join('\n');
}

async function reachable(port: number): Promise<boolean> {
  return new Promise((r) => {
    const s = createConnection({ host: '127.0.0.1', port }, () => {
      s.destroy();
      r(true);
    });
    s.on('error', () => r(false));
  });
}

export async function startSlapd(): Promise<Slapd> {
  const dir = mkdtempSync(join(tmpdir(), 'nimbo-slapd-'));
  mkdirSync(join(dir, 'data'));
  makeCertificates(dir);
  writeFileSync(join(dir, 'slapd.conf'), config(dir));
  const port = await freePort();
  const tlsPort = await freePort();
  let output = '';
  // -d keeps slapd in the foreground (the test owns the process); level 0 logs nothing routine.
  const child = spawn(
    '/usr/sbin/slapd',
    [
      '-f',
      join(dir, 'slapd.conf'),
      '-h',
      `ldap://127.0.0.1:${port}/ ldaps://127.0.0.1:${tlsPort}/`,
      '-d',
      '0',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout?.on('data', (d) => (output += d));
  child.stderr?.on('data', (d) => (output += d));
  const stop = async () => {
    if (child.exitCode === null) {
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 15_000;
  while (!(await reachable(port)) || !(await reachable(tlsPort))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`slapd did not start:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  try {
    execFileSync(
      'ldapadd',
      ['-x', '-H', `ldap://127.0.0.1:${port}`, '-D', ROOT_DN, '-w', ROOT_PASSWORD, '-f', LDIF],
      { stdio: 'pipe', timeout: 15_000 },
    );
  } catch (e) {
    await stop();
    throw new Error(`loading the directory failed: ${(e as { stderr?: Buffer }).stderr ?? e}`);
  }
  return {
    port,
    tlsPort,
    caFile: join(dir, 'ca.pem'),
    otherCaFile: join(dir, 'other-ca.pem'),
    dir,
    process: child,
    stop,
  };
}

/** The PEM text of a file (for assertions on what the server was given). */
export const pem = (file: string) => readFileSync(file, 'utf8');
