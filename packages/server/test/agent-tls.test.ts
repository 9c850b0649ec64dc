/**
 * Agents over TLS: with a certificate and key configured, the gateway serves wss://; the local
 * zone's in-process agent and an external agent process (trusting the certificate with --ca) both
 * connect, and a plain ws:// client cannot.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { hostByName, startAgent, type TestAgent, waitUntil } from './agents.ts';
import { startServer, type TestServer } from './harness.ts';

const dir = mkdtempSync(join(tmpdir(), 'nimbo-tls-'));
const cert = join(dir, 'cert.pem');
const key = join(dir, 'key.pem');
let server: TestServer;
let agent: TestAgent | undefined;

before(async () => {
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=nimbostack-test',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { stdio: 'ignore' },
  );
  server = await startServer({
    env: {
      NIMBOSTACK_SEED_LOCAL_ZONE: 'true',
      NIMBOSTACK_AGENT_TLS_CERT: cert,
      NIMBOSTACK_AGENT_TLS_KEY: key,
    },
  });
});

after(async () => {
  await agent?.kill();
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('the gateway serves wss:// and the local zone host connects over it', async () => {
  assert.match(server.agentUrl, /^wss:\/\//);
  assert.equal((await hostByName(server.admin, 'local-host')).state, 'Up');
});

test('an external agent trusting the certificate is added over TLS', async () => {
  agent = startAgent(server.agentUrl, { token: 'tls-test-token', name: 'tls-host', args: ['--ca', cert] });
  await agent.waitForLog('waiting to be added');
  const local = await hostByName(server.admin, 'local-host');
  const r = await server.admin.request<any>('addHost', {
    zoneid: local.zoneid,
    podid: local.podid,
    clusterid: local.clusterid,
    url: 'agent://tls-host',
    password: 'tls-test-token',
    hypervisor: 'Simulator',
  });
  assert.equal(r.host[0].state, 'Up');
});

test('plain WebSocket and untrusted TLS clients are not served', async () => {
  const plain = new WebSocket(server.agentUrl.replace('wss://', 'ws://'));
  await new Promise<void>((resolve) => {
    plain.once('error', () => resolve());
    plain.once('open', () => assert.fail('a plain connection was accepted'));
  });
  const untrusted = new WebSocket(server.agentUrl);
  const err = await new Promise<Error>((resolve) => untrusted.once('error', resolve));
  assert.match(err.message, /self[- ]signed|certificate/i);
  await waitUntil(async () => (await hostByName(server.admin, 'tls-host'))?.state === 'Up', 3000, 'still Up');
});
