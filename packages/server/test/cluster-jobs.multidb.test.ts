/**
 * Jobs and scheduled work across management servers on one database (PostgreSQL or MariaDB:
 * `npm run test:db`; SQLite holds one server, so this file skips it). Two servers A and B run
 * with test hooks (fixtures/cluster-hooks.ts: slow, logged job handlers; short heartbeats and
 * scheduler intervals):
 * - two jobs on one VM submitted through A and B at once run one after the other, in submission
 *   order, and a job reaching the VM through a volume (attachVolume) waits for the VM's job too;
 * - every scheduled task runs on exactly one server (its lease), and moves to the other when its
 *   holder stops;
 * - a server killed (SIGKILL) in the middle of a job: declared Down by the other, its job fails
 *   cleanly, the VM it held is settled before the next job on it runs, its locks and leases go.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Secrets } from '../src/iam/secrets.ts';
import { seededLocalZone, waitUntil } from './agents.ts';
import { createDatabase, sqlOn, startServer, type TestServer, testDatabases } from './harness.ts';

const HOOKS = join(import.meta.dirname, 'fixtures/cluster-hooks.ts');
const TASKS = [
  'capacity-checks',
  'ha-claims',
  'network-gc',
  'snapshot-policies',
  'system-templates',
  'vpn-monitor',
];

interface Edge {
  command: string;
  edge: 'start' | 'end';
  server: string;
  vm: string;
  at: number;
}

for (const db of testDatabases().filter((d) => d !== 'sqlite')) {
  describe(`jobs and scheduled work across management servers on ${db}`, () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'nimbo-cluster-jobs-'));
    const jobLog = join(dataDir, 'jobs.log');
    let database: { url: string; drop(): Promise<void> };
    let keyFile: string;
    let a: TestServer;
    let b: TestServer;
    let c: TestServer | undefined;
    let k: TestServer | undefined;
    let vmId: string;
    let keypair: string;
    let zoneid: string;
    let customDisk: string;

    const sql = <T>(query: string, params: unknown[] = []) => sqlOn<T>(db, database.url, query, params);
    const start = (name: string, env: Record<string, string> = {}) =>
      startServer({
        databaseUrl: database.url,
        nodeArgs: ['--import', HOOKS],
        env: {
          NIMBOSTACK_SERVER_NAME: name,
          NIMBOSTACK_SECRET_KEY_FILE: keyFile,
          NIMBOSTACK_TEST_JOB_LOG: jobLog,
          NIMBOSTACK_TEST_JOB_DELAY_MS: '1000',
          ...env,
        },
      });
    const edges = (): Edge[] =>
      readFileSync(jobLog, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l));
    const serverId = async (name: string) =>
      (
        await sql<{ id: number }>("select id from management_servers where name = ? and state = 'Up'", [name])
      )[0]?.id;
    const leases = async () =>
      new Map(
        (
          await sql<{ name: string; ms_id: number }>(
            "select name, ms_id from cluster_locks where name like 'lease:%'",
          )
        ).map((r) => [r.name.slice('lease:'.length), Number(r.ms_id)]),
      );
    /** The job once it has ended (waitForJob throws on a failure; these tests look at failures). */
    const jobEnd = (via: TestServer, jobid: string) =>
      waitUntil(
        async () => {
          const j = await via.admin.request<any>('queryAsyncJobResult', { jobid });
          return j.jobstatus === 0 ? undefined : j;
        },
        60_000,
        `job ${jobid}`,
      );
    const newVolume = async (via: TestServer) =>
      (
        await via.admin.call<any>('createVolume', {
          name: `data-${Date.now()}`,
          zoneid,
          diskofferingid: customDisk,
          size: 1,
        })
      ).volume.id as string;

    before(async () => {
      database = await createDatabase(db, dataDir);
      keyFile = join(dataDir, 'cloud.key');
      Secrets.generate().writeTo(keyFile);
      writeFileSync(jobLog, '');
      a = await start('ms-a', { NIMBOSTACK_SEED_LOCAL_ZONE: 'true' });
      b = await start('ms-b');
      const zone = await seededLocalZone(a.admin);
      zoneid = zone.zoneid;
      customDisk = zone.customDisk;
      const vm = (
        await a.admin.call<any>('deployVirtualMachine', {
          zoneid,
          templateid: zone.templateid,
          serviceofferingid: zone.small,
          startvm: false,
        })
      ).virtualmachine;
      vmId = vm.id;
      keypair = (await a.admin.request<any>('createSSHKeyPair', { name: 'cluster-key' })).keypair.name;
    });

    after(async () => {
      k?.process.kill('SIGKILL');
      await c?.stop({ keepData: true }).catch(() => undefined);
      await b?.stop({ keepData: true }).catch(() => undefined);
      await a?.stop({ keepData: true }).catch(() => undefined);
      await database?.drop();
    });

    test('two jobs on one VM through two servers run one after the other, in order', async () => {
      writeFileSync(jobLog, '');
      // Submitted one after the other, each to its own server, without waiting for the first.
      const first = await a.admin.request<any>('resetSSHKeyForVirtualMachine', { id: vmId, keypair });
      const second = await b.admin.request<any>('resetSSHKeyForVirtualMachine', { id: vmId, keypair });
      const volume = await newVolume(a);
      // A job on the volume that changes the VM: it waits for the VM's jobs as well.
      const third = await b.admin.request<any>('attachVolume', { id: volume, virtualmachineid: vmId });
      for (const j of [first, second, third]) {
        const r = await jobEnd(a, j.jobid);
        assert.equal(r.jobstatus, 1, JSON.stringify(r.jobresult));
      }
      const log = edges().filter((e) => e.vm === vmId);
      assert.deepEqual(
        log.map((e) => `${e.server} ${e.command} ${e.edge}`),
        [
          'ms-a resetSSHKeyForVirtualMachine start',
          'ms-a resetSSHKeyForVirtualMachine end',
          'ms-b resetSSHKeyForVirtualMachine start',
          'ms-b resetSSHKeyForVirtualMachine end',
          'ms-b attachVolume start',
          'ms-b attachVolume end',
        ],
      );
      // One at a time: each starts after the previous one ended.
      for (let i = 2; i < log.length; i += 2) assert.ok(log[i].at >= log[i - 1].at);
      // Nothing is held once they are done.
      assert.deepEqual(await sql("select name from cluster_locks where name not like 'lease:%'"), []);
      assert.deepEqual(await sql('select job_id from async_job_objects'), []);
    });

    test('each scheduled task runs on exactly one server and moves when its holder stops', async () => {
      const ids = { a: await serverId('ms-a'), b: await serverId('ms-b') };
      const held = (await waitUntil(
        async () => {
          const l = await leases();
          return TASKS.every((t) => l.has(t)) ? l : false;
        },
        10_000,
        'every task leased',
      )) as Map<string, number>;
      for (const t of TASKS) assert.ok([ids.a, ids.b].includes(held.get(t)!), t);
      // The holders stay put while both live: a second and more of ticks changes nothing.
      await new Promise((r) => setTimeout(r, 2500));
      assert.deepEqual(await leases(), held);
      // B stops with a third server up: B's leases go to A or C, A's stay with A.
      c = await start('ms-c');
      const idC = await serverId('ms-c');
      const fromB = TASKS.filter((t) => held.get(t) === ids.b);
      await b.stop({ keepData: true });
      const moved = (await waitUntil(
        async () => {
          const l = await leases();
          return TASKS.every((t) => l.has(t) && l.get(t) !== ids.b) ? l : false;
        },
        10_000,
        "B's leases taken over",
      )) as Map<string, number>;
      for (const t of TASKS) assert.ok([ids.a, idC].includes(moved.get(t)!), `${t} on ${moved.get(t)}`);
      // A's own stay with A: a lease moves only when its holder goes.
      for (const t of TASKS.filter((t) => !fromB.includes(t))) assert.equal(moved.get(t), ids.a, t);
      b = await start('ms-b');
    });

    test('a server killed in the middle of a job: its job fails, the VM is settled, its locks and leases go', async () => {
      writeFileSync(jobLog, '');
      // K holds the VM for 30 s; A queues an attach behind it; then K is killed.
      k = await start('ms-k', { NIMBOSTACK_TEST_JOB_DELAY_MS: '30000' });
      const killed = k;
      const idK = await serverId('ms-k');
      // K takes the leases of C, which stops while K lives (or A and B do, by chance of the ticks);
      // and one no other server asks for, valid for an hour: only K's death frees it.
      await c!.stop({ keepData: true });
      c = undefined;
      await sql(
        "insert into cluster_locks (name, ms_id, job_id, token, acquired, expires) values ('lease:k-only', ?, null, 'k', ?, ?)",
        [idK, Date.now(), Date.now() + 3_600_000],
      );
      const dying = await killed.admin.request<any>('resetSSHKeyForVirtualMachine', { id: vmId, keypair });
      await waitUntil(
        async () => edges().some((e) => e.server === 'ms-k' && e.edge === 'start') || undefined,
        10_000,
        "K's job running",
      );
      // What a start killed half-way leaves: the VM Starting, capacity reserved on a host and not
      // yet the VM's. Only the takeover may settle them, before A's job runs.
      await sql("update vms set state = 'Starting' where uuid = ?", [vmId]);
      const [host] = await sql<{ id: number; cpu: string; mem: string }>(
        'select id, cpu_allocated_mhz as cpu, memory_allocated_bytes as mem from hosts where removed is null order by id',
      );
      await sql(
        'update hosts set cpu_allocated_mhz = cpu_allocated_mhz + 500, memory_allocated_bytes = memory_allocated_bytes + ? where id = ?',
        [2 ** 28, host.id],
      );
      await sql(
        "insert into cluster_locks (name, ms_id, job_id, token, acquired, expires) values (?, ?, null, 'r', ?, null)",
        [`reservation:${host.id}:500:${2 ** 28}:${vmId}`, idK, Date.now()],
      );
      const volume = await newVolume(a);
      const waiting = await a.admin.request<any>('attachVolume', { id: volume, virtualmachineid: vmId });
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(
        (await a.admin.request<any>('queryAsyncJobResult', { jobid: waiting.jobid })).jobstatus,
        0,
        'the attach waits for the VM',
      );
      const killedAt = Date.now();
      killed.process.kill('SIGKILL');
      await new Promise((r) => killed.process.once('exit', r));

      const dead = await jobEnd(a, dying.jobid);
      assert.equal(dead.jobstatus, 2);
      assert.equal(dead.jobresult.errorcode, 530);
      const attached = await jobEnd(a, waiting.jobid);
      assert.equal(attached.jobstatus, 1, JSON.stringify(attached.jobresult));
      const tookMs = Date.now() - killedAt;
      assert.ok(tookMs < 15_000, `taken over in ${tookMs} ms`);
      // Settled (Starting → Stopped) before the attach ran: the attach saw a Stopped VM.
      const vm = (await a.admin.request<any>('listVirtualMachines', { id: vmId })).virtualmachine[0];
      assert.equal(vm.state, 'Stopped');
      // The dead start's reservation is given back.
      const [after] = await sql<{ cpu: string; mem: string }>(
        'select cpu_allocated_mhz as cpu, memory_allocated_bytes as mem from hosts where id = ?',
        [host.id],
      );
      assert.deepEqual([Number(after.cpu), Number(after.mem)], [Number(host.cpu), Number(host.mem)]);
      const [state] = await sql<{ state: string }>('select state from management_servers where id = ?', [
        idK,
      ]);
      assert.equal(state.state, 'Down');
      await waitUntil(
        async () => (await sql('select name from cluster_locks where ms_id = ?', [idK])).length === 0,
        5_000,
        "K's rows released",
      );
      const l = (await waitUntil(
        async () => {
          const now = await leases();
          return TASKS.every((t) => now.has(t)) ? now : false;
        },
        10_000,
        "K's leases taken",
      )) as Map<string, number>;
      for (const t of TASKS) assert.notEqual(l.get(t), idK, t);
      // The attach ran on A after K's job: K's never ended, A's started after the kill.
      const log = edges().filter((e) => e.vm === vmId || e.command === 'attachVolume');
      assert.deepEqual(
        log.map((e) => `${e.server} ${e.command} ${e.edge}`),
        ['ms-k resetSSHKeyForVirtualMachine start', 'ms-a attachVolume start', 'ms-a attachVolume end'],
      );
      assert.ok(log[1].at >= killedAt);
    });
  });
}
