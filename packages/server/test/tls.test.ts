/**
 * HTTPS on the API/UI port: with NIMBOSTACK_TLS_CERT/KEY the server speaks only TLS there, a client
 * that trusts the certificate logs in and calls the API, session cookies are Secure, HttpOnly and
 * SameSite=Strict, and every response carries the security headers (HSTS only over HTTPS).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { type Server as HttpsServer, request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { type Server, startServer } from '../src/app.ts';
import { ConfigError, loadConfig } from '../src/config.ts';
import { watchTlsFiles } from '../src/http/transport.ts';

const dir = mkdtempSync(join(tmpdir(), 'nimbo-https-'));
const cert = join(dir, 'cert.pem');
const key = join(dir, 'key.pem');
let server: Server;
let ca: Buffer;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTPS request that trusts only the test's certificate (unless `trust` is false). */
function https(
  path: string,
  opts: { method?: string; body?: string; cookie?: string; trust?: boolean } = {},
): Promise<Answer> {
  const url = new URL(path, server.url);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      url,
      {
        method: opts.method ?? 'GET',
        ca: opts.trust === false ? undefined : ca,
        headers: {
          ...(opts.body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
          ...(opts.cookie ? { cookie: opts.cookie } : {}),
        },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          body += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** A self-signed P-256 certificate for 127.0.0.1, made with the openssl CLI. */
function makeCertificate(certFile: string, keyFile: string, name: string): void {
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '1',
      '-subj',
      `/CN=${name}`,
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ],
    { stdio: 'ignore' },
  );
}

before(async () => {
  makeCertificate(cert, key, 'nimbostack-test');
  ca = readFileSync(cert);
  server = await startServer(
    loadConfig(
      { NIMBOSTACK_TLS_CERT: cert, NIMBOSTACK_TLS_KEY: key },
      { port: 0, agentPort: 0, host: '127.0.0.1', dataDir: dir, logLevel: 'silent', seedLocalZone: false },
    ),
  );
});

after(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('the server reports an https:// URL', () => {
  assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
});

test('login over HTTPS sets Secure, HttpOnly, SameSite=Strict cookies; the session then works', async () => {
  const login = await https('/client/api', {
    method: 'POST',
    body: 'command=login&username=admin&password=password&response=json',
  });
  assert.equal(login.status, 200, login.body);
  const cookies = login.headers['set-cookie'] as string[];
  assert.equal(cookies.length, 2);
  for (const c of cookies) {
    assert.match(c, /; Secure/);
    assert.match(c, /; HttpOnly/);
    assert.match(c, /; SameSite=Strict/);
    assert.match(c, /; Path=\/client/);
  }
  const cookie = cookies.map((c) => c.split(';')[0]).join('; ');
  const list = await https('/client/api?command=listDomains&response=json', { cookie });
  assert.equal(list.status, 200, list.body);
  assert.equal(JSON.parse(list.body).listdomainsresponse.domain[0].name, 'ROOT');
  assert.equal(list.headers['strict-transport-security'], 'max-age=31536000');
});

test('the UI is served with the security headers', async () => {
  const ui = await https('/client/');
  assert.equal(ui.status, 200);
  assert.match(String(ui.headers['content-type']), /text\/html/);
  const csp = String(ui.headers['content-security-policy']);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.match(csp, /script-src 'self'(;|$)/);
  assert.equal(ui.headers['x-content-type-options'], 'nosniff');
  assert.equal(ui.headers['x-frame-options'], 'DENY');
  assert.equal(ui.headers['referrer-policy'], 'no-referrer');
  assert.equal(ui.headers['strict-transport-security'], 'max-age=31536000');
});

test('a client that does not trust the certificate is refused by its own TLS check', async () => {
  await assert.rejects(https('/client/api?command=listZones', { trust: false }), {
    code: 'DEPTH_ZERO_SELF_SIGNED_CERT',
  });
});

test('plain HTTP is not offered on the TLS port', async () => {
  const port = new URL(server.url).port;
  const answer = await new Promise<string>((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/client/api?command=listZones' }, (res) =>
      resolve(`status ${res.statusCode}`),
    );
    req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    req.end();
  });
  // Node's TLS server answers a plaintext request with a raw 400 and closes; never an API answer.
  assert.ok(answer === 'ECONNRESET' || answer === 'status 400' || answer === 'HPE_INVALID_CONSTANT', answer);
});

/** The subject CN of the certificate a new TLS connection to the server is given. */
function servedName(): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect(
      { host: '127.0.0.1', port: Number(new URL(server.url).port), rejectUnauthorized: false },
      () => {
        const cn = socket.getPeerCertificate().subject.CN;
        socket.end();
        resolve(String(cn));
      },
    );
    socket.on('error', reject);
  });
}

test('a renewed certificate is served to new connections without a restart; a bad pair is not', async () => {
  assert.equal(await servedName(), 'nimbostack-test');
  // The server polls the files every 30 s; a second watcher on the same server, through symlinks
  // (Node shares one poller per path), polls them every 100 ms for the test.
  symlinkSync(cert, join(dir, 'cert-link.pem'));
  symlinkSync(key, join(dir, 'key-link.pem'));
  const stop = watchTlsFiles(
    server.http.server as HttpsServer,
    join(dir, 'cert-link.pem'),
    join(dir, 'key-link.pem'),
    server.app.log,
    100,
  );
  try {
    const next = join(dir, 'next');
    mkdirSync(next);
    makeCertificate(join(next, 'cert.pem'), join(next, 'key.pem'), 'nimbostack-renewed');
    // The certificate arrives before its key: that pair does not load, the old one stays.
    copyFileSync(join(next, 'cert.pem'), cert);
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(await servedName(), 'nimbostack-test');
    copyFileSync(join(next, 'key.pem'), key);
    const deadline = Date.now() + 5000;
    while ((await servedName()) !== 'nimbostack-renewed' && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    assert.equal(await servedName(), 'nimbostack-renewed');
    ca = readFileSync(cert);
    const r = await https('/client/api?command=listZones&response=json');
    assert.equal(r.status, 401);
  } finally {
    stop();
  }
});

test('a certificate without its key (or the other way round) is a configuration error', () => {
  assert.throws(() => loadConfig({ NIMBOSTACK_TLS_CERT: cert }, { dataDir: dir }), ConfigError);
  assert.throws(() => loadConfig({ NIMBOSTACK_TLS_KEY: key }, { dataDir: dir }), ConfigError);
});
