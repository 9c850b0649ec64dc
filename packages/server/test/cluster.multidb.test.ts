/**
 * Several management servers on one database, as an operator runs them (issue 15): child
 * processes started as `npm start` is, each with a data directory of its own, on PostgreSQL and
 * MariaDB (NIMBOSTACK_TEST_DBS=postgres,mysql, `npm run test:db`). The cloud's key reaches the
 * second server by the documented paths, and a wrong or missing key stops it at start; sessions,
 * API keys, settings and the rate limit hold whichever server a call lands on; a silent server is
 * declared Down by its peers and stops itself if it comes back. On SQLite (the default run) a
 * second server on the same file refuses to start, and a restart after a kill is not held up.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CloudStackClient } from '@nimbostack/client';
import { Secrets } from '../src/iam/secrets.ts';
import { waitUntil } from './agents.ts';
import {
  createAccountAndLogin,
  type StartOptions,
  startServer,
  type TestServer,
  testDatabases,
} from './harness.ts';

/** Starts a server expected to refuse; returns what it printed on standard error. */
async function refusal(opts: StartOptions): Promise<string> {
  return startServer(opts).then(
    async (s) => {
      await s.stop();
      assert.fail('the server started');
    },
    (e: Error) => e.message.split('\n').find((l) => l.startsWith('nimbostack:')) ?? e.message,
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Servers pick up settings changed elsewhere within this (settings.ts REFRESH_MS plus slack). */
const SETTINGS_LAG_MS = 6000;

if (testDatabases().includes('sqlite'))
  describe('SQLite serves one management server', () => {
    test('a second server on the same file refuses at start; after a kill -9 the restart goes ahead at once', async () => {
      const first = await startServer({ env: { NIMBOSTACK_SERVER_NAME: 'only' } });
      let again: TestServer | undefined;
      try {
        const message = await refusal({
          databaseUrl: first.databaseUrl,
          env: { NIMBOSTACK_SERVER_NAME: 'second' },
        });
        assert.match(
          message,
          /management server only \(process \d+ on .+\) is running on the SQLite database .*SQLite serves one management server.*PostgreSQL or MariaDB/,
        );
        // The first one was not disturbed, and no second server was recorded.
        const servers = (await first.admin.request<any>('listManagementServers')).managementserver;
        assert.deepEqual(
          servers.map((s: any) => [s.name, s.state]),
          [['only', 'Up']],
        );

        first.process.kill('SIGKILL');
        await once(first.process, 'exit');
        const began = Date.now();
        again = await startServer({
          dataDir: first.dataDir,
          databaseUrl: first.databaseUrl,
          env: { NIMBOSTACK_SERVER_NAME: 'only' },
        });
        const took = Date.now() - began;
        assert.ok(took < 20_000, `restart after a kill took ${took} ms`);
        console.log(`# sqlite: restart after kill -9 answered in ${took} ms`);
      } finally {
        await (again ?? first).stop();
      }
    });
  });

for (const db of testDatabases().filter((d) => d !== 'sqlite')) {
  describe(`a cloud of several management servers on ${db}`, () => {
    let a: TestServer;
    let b: TestServer | undefined;
    let keyFile: string;

    before(async () => {
      a = await startServer({ db, env: { NIMBOSTACK_SERVER_NAME: 'ms-a' } });
      keyFile = join(a.dataDir, 'server.key');
    });
    after(async () => {
      await b?.stop({ keepData: true });
      await a?.stop();
    });

    test('a server without the cloud key, or with another one, refuses to start and says what to copy where', async () => {
      const cloud = Secrets.read(keyFile).fingerprint;
      const noKey = await refusal({ databaseUrl: a.databaseUrl, env: { NIMBOSTACK_SERVER_NAME: 'ms-x' } });
      assert.match(noKey, new RegExp(`sealed with key ${cloud}, and this server has no key`));
      assert.match(
        noKey,
        /copy the key file .* to \/.*server\.key .*NIMBOSTACK_SECRET_KEY_FILE.*NIMBOSTACK_SECRET_KEY/,
      );

      const other = Secrets.generate();
      const otherFile = join(mkdtempSync(join(tmpdir(), 'nimbo-key-')), 'server.key');
      other.writeTo(otherFile);
      const wrongKey = await refusal({
        databaseUrl: a.databaseUrl,
        env: { NIMBOSTACK_SERVER_NAME: 'ms-x', NIMBOSTACK_SECRET_KEY_FILE: otherFile },
      });
      assert.match(
        wrongKey,
        new RegExp(
          `the key file ${otherFile} holds key ${other.fingerprint}, but this cloud's secrets are sealed with key ${cloud}`,
        ),
      );
      const malformed = await refusal({
        databaseUrl: a.databaseUrl,
        env: { NIMBOSTACK_SERVER_NAME: 'ms-x', NIMBOSTACK_SECRET_KEY: 'not-a-key' },
      });
      assert.match(malformed, /NIMBOSTACK_SECRET_KEY does not hold a 256-bit hex key/);
      // None of them counted as a server of the cloud.
      const servers = (await a.admin.request<any>('listManagementServers')).managementserver;
      assert.deepEqual(
        servers.map((s: any) => s.name),
        ['ms-a'],
      );
    });

    test('given the key as a variable, B opens what A sealed: API keys registered on either sign calls on both', async () => {
      const second = await startServer({
        databaseUrl: a.databaseUrl,
        env: { NIMBOSTACK_SERVER_NAME: 'ms-b', NIMBOSTACK_SECRET_KEY: readFileSync(keyFile, 'utf8') },
      });
      b = second;
      const { userId } = await createAccountAndLogin(a, { name: `sealed-${db}` });
      const pairs: [TestServer, TestServer][] = [
        [a, second],
        [second, a],
      ];
      for (const [issuer, user] of pairs) {
        const k = (await issuer.admin.request<any>('registerUserKeys', { id: userId })).userkeys;
        for (const s of [a, second]) {
          const signed = new CloudStackClient({ url: s.api, apiKey: k.apikey, secretKey: k.secretkey });
          assert.equal((await signed.request<any>('listAccounts')).account[0].name, `sealed-${db}`);
        }
        // The secret key reads back the same through the other server (getUserKeys decrypts it).
        const read = (await user.admin.request<any>('getUserKeys', { id: userId })).userkeys;
        assert.equal(read.secretkey, k.secretkey);
      }
    });

    test('a session made on A is used on B; logging out on A ends it on B', async () => {
      assert.ok(b);
      const onA = (await createAccountAndLogin(a, { name: `session-${db}` })).client;
      const credentials = onA.sessionCredentials;
      assert.ok(credentials);
      const onB = new CloudStackClient({ url: b.api, session: credentials });
      assert.equal((await onB.request<any>('listAccounts')).account[0].name, `session-${db}`);
      await onA.request('logout');
      await assert.rejects(onB.request('listAccounts'), { errorcode: 401 });
    });

    test('a setting changed on A takes effect on B within seconds', async () => {
      assert.ok(b);
      const server = b;
      for (let i = 0; i < 3; i++) await a.admin.request('createDomain', { name: `page-${db}-${i}` });
      const changed = Date.now();
      await a.admin.request('updateConfiguration', { name: 'default.page.size', value: '2' });
      try {
        await waitUntil(
          async () => (await server.admin.request<any>('listDomains', { listall: true })).domain.length === 2,
          SETTINGS_LAG_MS,
          'B to page by the new default.page.size',
        );
        console.log(`# ${db}: B applied a setting changed on A after ${Date.now() - changed} ms`);
      } finally {
        await a.admin.request('updateConfiguration', { name: 'default.page.size', value: '500' });
      }
    });

    test('api.throttling.max is the cloud’s limit: calls through A and B count together', async () => {
      assert.ok(b);
      const { userId } = await createAccountAndLogin(a, { name: `throttled-${db}` });
      const k = (await a.admin.request<any>('registerUserKeys', { id: userId })).userkeys;
      const clients = [a, b].map(
        (s) => new CloudStackClient({ url: s.api, apiKey: k.apikey, secretKey: k.secretkey }),
      );
      // An hour's window: the test cannot straddle two windows.
      await a.admin.request('updateConfiguration', { name: 'api.throttling.max', value: '6' });
      await a.admin.request('updateConfiguration', { name: 'api.throttling.interval', value: '3600' });
      await a.admin.request('updateConfiguration', { name: 'api.throttling.enabled', value: 'true' });
      try {
        await sleep(SETTINGS_LAG_MS);
        let accepted = 0;
        const refused: number[] = [];
        for (let i = 0; i < 12; i++) {
          await clients[i % 2].request('listZones').then(
            () => accepted++,
            (e) => refused.push(e.errorcode),
          );
        }
        assert.equal(accepted, 6, 'six calls in all, across both servers');
        assert.deepEqual(refused, Array(6).fill(429));
      } finally {
        await a.admin.request('updateConfiguration', { name: 'api.throttling.enabled', value: 'false' });
      }
    });

    test('a silent server is declared Down by its peers after cluster.heartbeat.threshold, and stops if it comes back', async () => {
      await a.admin.request('updateConfiguration', { name: 'cluster.heartbeat.interval', value: '1000' });
      await a.admin.request('updateConfiguration', { name: 'cluster.heartbeat.threshold', value: '4000' });
      let c: TestServer | undefined;
      try {
        await sleep(SETTINGS_LAG_MS);
        c = await startServer({
          databaseUrl: a.databaseUrl,
          env: { NIMBOSTACK_SERVER_NAME: 'ms-c', NIMBOSTACK_SECRET_KEY_FILE: keyFile },
        });
        const listed = async () =>
          (await a.admin.request<any>('listManagementServers', { name: 'ms-c' })).managementserver[0];
        assert.equal((await listed()).state, 'Up');
        const exited = once(c.process, 'exit');
        c.process.kill('SIGSTOP');
        const silent = Date.now();
        const down = await waitUntil(
          async () => {
            const s = await listed();
            return s.state === 'Down' ? s : undefined;
          },
          15_000,
          'ms-c to be declared Down',
        );
        const took = Date.now() - silent;
        assert.ok(took >= 3000, `declared Down after only ${took} ms`);
        assert.ok(down.lastserverstop, 'its last heartbeat is shown as its stop');
        console.log(`# ${db}: a silent server was declared Down after ${took} ms (threshold 4000 ms)`);

        // Back from its pause, it finds itself Down and stops rather than work beside its successors.
        c.process.kill('SIGCONT');
        const [code] = await Promise.race([
          exited,
          sleep(15_000).then(() => {
            throw new Error('ms-c went on running after it was declared Down');
          }),
        ]);
        assert.equal(code, 1);
        assert.ok(c.logs.some((l) => l.includes('this management server was declared Down: stopping')));
        assert.equal((await listed()).state, 'Down');
      } finally {
        if (c && c.process.exitCode === null) {
          c.process.kill('SIGCONT');
          await c.stop({ keepData: true });
        }
        await a.admin.request('updateConfiguration', { name: 'cluster.heartbeat.interval', value: '10000' });
        await a.admin.request('updateConfiguration', { name: 'cluster.heartbeat.threshold', value: '60000' });
      }
    });
  });
}
