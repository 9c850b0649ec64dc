/** Async jobs as rows, their serialisation, events, settings and tags. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { createAccountAndLogin, startServer, type TestServer } from './harness.ts';

let server: TestServer;
const is = (code: number) => (e: any) => e.errorcode === code;

before(async () => {
  server = await startServer();
});
after(() => server.stop());

describe('async jobs', () => {
  test('queryAsyncJobResult has the fields clients read', async () => {
    const { account } = await createAccountAndLogin(server, { name: 'tagged' });
    const queued = await server.admin.request<any>('createTags', {
      resourcetype: 'Account',
      resourceids: account.id as string,
      tags: [{ key: 'env', value: 'prod' }],
    });
    assert.deepEqual(Object.keys(queued), ['jobid']);
    const job = await server.admin.waitForJob(queued.jobid);
    assert.equal(job.jobstatus, 1);
    assert.equal(job.jobresultcode, 0);
    assert.equal(job.jobresulttype, 'object');
    assert.deepEqual(job.jobresult, { success: true });
    assert.equal(job.cmd, 'org.apache.cloudstack.api.command.user.tag.CreateTagsCmd');
    assert.equal(job.jobinstancetype, 'Account');
    assert.equal(job.jobinstanceid, account.id);
    assert.match(String(job.created), /\+0000$/);
    assert.match(String(job.completed), /\+0000$/);
    assert.equal(job.account, 'admin');
    const listed = await server.admin.request<any>('listAsyncJobs', { listall: true });
    assert.ok(listed.asyncjobs.some((j: any) => j.jobid === queued.jobid));
  });

  test('a failed job has jobstatus 2 and the error in jobresult', async () => {
    const { account } = await createAccountAndLogin(server, { name: 'dup' });
    const tag = {
      resourcetype: 'Account',
      resourceids: account.id as string,
      tags: [{ key: 'k', value: 'v' }],
    };
    await server.admin.call('createTags', tag);
    const queued = await server.admin.request<any>('createTags', tag);
    await assert.rejects(server.admin.waitForJob(queued.jobid), is(431));
    const final = await server.admin.request<any>('queryAsyncJobResult', { jobid: queued.jobid });
    assert.equal(final.jobstatus, 2);
    assert.equal(final.jobresultcode, 431);
    assert.equal(final.jobresult.errorcode, 431);
    assert.match(final.jobresult.errortext, /already exists/);
  });

  test('customjobid chooses the job id', async () => {
    const { account } = await createAccountAndLogin(server, { name: 'custom' });
    const jobid = '0b5e2f4e-1c1e-4c55-9d61-2d2a2f0f0001';
    const queued = await server.admin.request<any>('createTags', {
      resourcetype: 'Account',
      resourceids: account.id as string,
      tags: [{ key: 'c', value: 'd' }],
      customjobid: jobid,
    });
    assert.equal(queued.jobid, jobid);
    await server.admin.waitForJob(jobid);
  });

  test('jobs on the same entity run one after another', async () => {
    const { account } = await createAccountAndLogin(server, { name: 'serial' });
    const id = account.id as string;
    const [first, second] = await Promise.all([
      server.admin.request<any>('disableAccount', { id, lock: false }),
      server.admin.request<any>('deleteAccount', { id }),
    ]);
    await server.admin.waitForJob(first.jobid);
    await server.admin.waitForJob(second.jobid);
    const events = (
      await server.admin.request<any>('listEvents', { listall: true, resourceid: id, pagesize: -1 })
    ).event;
    // Newest first: reverse to read in order.
    const order = events.reverse().map((e: any) => `${e.type}:${e.state}`);
    const disableDone = order.indexOf('ACCOUNT.DISABLE:Completed');
    const deleteStarted = order.indexOf('ACCOUNT.DELETE:Started');
    assert.ok(disableDone >= 0 && deleteStarted > disableDone, order.join(' '));
  });

  test('a job left unfinished by a stopped server is failed cleanly at the next start', async () => {
    const s = await startServer();
    await s.stop({ keepData: true });
    const db = new Database(`${s.dataDir}/nimbostack.db`);
    const ms = db.prepare('select id from management_servers order by id desc limit 1').get() as {
      id: number;
    };
    const user = db.prepare("select id, account_id from users where username = 'admin'").get() as {
      id: number;
      account_id: number;
    };
    const jobid = '7d0c0b5e-0000-4000-8000-000000000001';
    db.prepare(
      `insert into async_jobs (uuid, user_id, account_id, domain_id, command, cmd, params, status, process_status, result_code, ms_id, created)
       values (?, ?, ?, 1, 'deleteAccount', 'x', '{}', 0, 0, 0, ?, ?)`,
    ).run(jobid, user.id, user.account_id, ms.id, Date.now());
    db.close();
    const again = await startServer({ dataDir: s.dataDir, databaseUrl: s.databaseUrl });
    try {
      const job = await again.admin.request<any>('queryAsyncJobResult', { jobid });
      assert.equal(job.jobstatus, 2);
      assert.equal(job.jobresultcode, 530);
      assert.match(job.jobresult.errortext, /management server running it stopped/);
    } finally {
      await again.stop();
    }
  });

  test('an unknown job id is 431', async () => {
    await assert.rejects(
      server.admin.request('queryAsyncJobResult', { jobid: '00000000-0000-4000-8000-000000000000' }),
      is(431),
    );
  });
});

describe('events', () => {
  test('async commands log Scheduled, Started and Completed; sync ones Completed', async () => {
    const { account } = await createAccountAndLogin(server, { name: 'evented' });
    await server.admin.call('deleteAccount', { id: account.id as string });
    const events = (
      await server.admin.request<any>('listEvents', {
        listall: true,
        type: 'ACCOUNT.DELETE',
        resourceid: account.id as string,
      })
    ).event;
    assert.deepEqual(events.map((e: any) => e.state).sort(), [
      'Completed',
      'Completed',
      'Scheduled',
      'Started',
    ]);
    const created = (
      await server.admin.request<any>('listEvents', {
        listall: true,
        type: 'ACCOUNT.CREATE',
        resourceid: account.id as string,
      })
    ).event[0];
    assert.equal(created.level, 'INFO');
    assert.equal(created.account, 'admin');
    assert.equal(created.domain, 'ROOT');
    assert.match(created.created, /\+0000$/);
  });

  test('users see their own events only', async () => {
    const { client } = await createAccountAndLogin(server, { name: 'quiet' });
    const mine = await client.request<any>('listEvents', { listall: true });
    for (const e of mine.event ?? []) assert.equal(e.account, 'quiet');
    assert.ok((mine.event ?? []).some((e: any) => e.type === 'USER.LOGIN'));
  });

  test('archive and delete events by type and by id; filters are validated', async () => {
    const before = (await server.admin.request<any>('listEvents', { listall: true, type: 'USER.LOGIN' }))
      .count;
    assert.ok(before > 0);
    await server.admin.request('archiveEvents', { type: 'USER.LOGIN' });
    assert.deepEqual(await server.admin.request('listEvents', { listall: true, type: 'USER.LOGIN' }), {});
    const archived = await server.admin.request<any>('listEvents', {
      listall: true,
      type: 'USER.LOGIN',
      archived: true,
    });
    assert.equal(archived.count, before);
    await server.admin.request('deleteEvents', { ids: archived.event[0].id });
    assert.equal(
      (await server.admin.request<any>('listEvents', { listall: true, type: 'USER.LOGIN', archived: true }))
        .count,
      before - 1,
    );
    await assert.rejects(server.admin.request('archiveEvents', {}), is(431));
    await assert.rejects(server.admin.request('listEvents', { level: 'LOUD' }), is(431));
    await assert.rejects(server.admin.request('listEvents', { startdate: 'yesterday' }), is(431));
    const ranged = await server.admin.request<any>('listEvents', {
      listall: true,
      startdate: '2000-01-01 00:00:00',
      enddate: '2999-01-01',
    });
    assert.ok(ranged.count > 0);
  });
});

describe('settings', () => {
  test('list, update with typed validation, and reset to default', async () => {
    const listed = (await server.admin.request<any>('listConfigurations', { name: 'default.page.size' }))
      .configuration[0];
    assert.equal(listed.value, '500');
    assert.equal(listed.defaultvalue, '500');
    assert.equal(listed.type, 'Integer');
    await assert.rejects(
      server.admin.request('updateConfiguration', { name: 'default.page.size', value: 'lots' }),
      is(431),
    );
    await assert.rejects(
      server.admin.request('updateConfiguration', { name: 'api.throttling.enabled', value: 'maybe' }),
      is(431),
    );
    await assert.rejects(
      server.admin.request('updateConfiguration', { name: 'no.such.setting', value: '1' }),
      is(431),
    );
    await assert.rejects(
      server.admin.request('updateConfiguration', { name: 'default.page.size', value: '0' }),
      is(431),
    );
    const updated = (
      await server.admin.request<any>('updateConfiguration', { name: 'default.page.size', value: '2' })
    ).configuration;
    assert.equal(updated.value, '2');
    const paged = await server.admin.request<any>('listAccounts', { listall: true });
    assert.equal(paged.account.length, 2);
    await assert.rejects(
      server.admin.request('listAccounts', { listall: true, page: 1, pagesize: 3 }),
      is(431),
    );
    await server.admin.request('updateConfiguration', { name: 'default.page.size', value: '' });
    const reset = (await server.admin.request<any>('listConfigurations', { name: 'default.page.size' }))
      .configuration[0];
    assert.equal(reset.value, '500');
  });

  test('account-scoped values', async () => {
    const { account } = await createAccountAndLogin(server, { name: 'scoped' });
    const id = account.id as string;
    await assert.rejects(
      server.admin.request('updateConfiguration', { name: 'default.page.size', value: '3', accountid: id }),
      is(431),
    );
    await server.admin.request('updateConfiguration', {
      name: 'allow.user.view.destroyed.vm',
      value: 'true',
      accountid: id,
    });
    const scoped = (
      await server.admin.request<any>('listConfigurations', {
        name: 'allow.user.view.destroyed.vm',
        accountid: id,
      })
    ).configuration[0];
    assert.equal(scoped.value, 'true');
    assert.equal(scoped.scope, 'account');
    const global = (
      await server.admin.request<any>('listConfigurations', { name: 'allow.user.view.destroyed.vm' })
    ).configuration[0];
    assert.equal(global.value, 'false');
  });
});

describe('tags', () => {
  test('create, list with filters, delete by key', async () => {
    const { account } = await createAccountAndLogin(server, { name: 'tagme' });
    const id = account.id as string;
    await server.admin.call('createTags', {
      resourcetype: 'account',
      resourceids: id,
      tags: [
        { key: 'team', value: 'blue' },
        { key: 'cost', value: '42' },
      ],
    });
    const tags = await server.admin.request<any>('listTags', { listall: true, resourceid: id });
    assert.equal(tags.count, 2);
    assert.equal(tags.tag[0].resourcetype, 'Account');
    assert.equal(tags.tag[0].account, 'tagme');
    const blue = await server.admin.request<any>('listTags', { listall: true, key: 'team', value: 'blue' });
    assert.equal(blue.tag[0].resourceid, id);
    await server.admin.call('deleteTags', {
      resourcetype: 'Account',
      resourceids: id,
      tags: [{ key: 'team' }],
    });
    assert.equal((await server.admin.request<any>('listTags', { listall: true, resourceid: id })).count, 1);
    await assert.rejects(
      server.admin.call('deleteTags', { resourcetype: 'Account', resourceids: id, tags: [{ key: 'nope' }] }),
      is(431),
    );
  });

  test('bad tag requests are refused before a job is queued', async () => {
    const { account } = await createAccountAndLogin(server, { name: 'tagbad' });
    await assert.rejects(
      server.admin.request('createTags', {
        resourcetype: 'Spaceship',
        resourceids: account.id as string,
        tags: [{ key: 'a', value: 'b' }],
      }),
      is(431),
    );
    await assert.rejects(
      server.admin.request('createTags', {
        resourcetype: 'Account',
        resourceids: '00000000-0000-4000-8000-000000000000',
        tags: [{ key: 'a', value: 'b' }],
      }),
      is(431),
    );
    await assert.rejects(
      server.admin.request('createTags', { resourcetype: 'Account', resourceids: account.id as string }),
      is(431),
    );
    await assert.rejects(
      server.admin.call('createTags', {
        resourcetype: 'Account',
        resourceids: account.id as string,
        tags: [{ key: 'a', value: '' }],
      }),
      is(431),
    );
  });
});
