/**
 * Projects on every database (migration 0025 and the queries projects add: the NOT EXISTS of lists
 * without projectid, -1, membership checks, the figures of listProjects, roles, invitations and
 * deletion with cleanup).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createAccountAndLogin, startServer, type TestServer, testDatabases } from './harness.ts';

for (const db of testDatabases()) {
  describe(`projects on ${db}`, () => {
    let server: TestServer;
    before(async () => {
      server = await startServer({ db });
    });
    after(() => server.stop());

    test('create, join, resources by projectid and -1, roles, invitations, limits, delete', async () => {
      const { client: lead } = await createAccountAndLogin(server, { name: 'lead' });
      const { client: mate } = await createAccountAndLogin(server, { name: 'mate' });
      const p = (await lead.call<any>('createProject', { name: 'multi' })).project;
      assert.equal(p.vmlimit, '20');
      await lead.call('addAccountToProject', { projectid: p.id, account: 'mate' });
      await mate.request('createSSHKeyPair', { name: 'shared', projectid: p.id });
      await mate.request('createSSHKeyPair', { name: 'mine' });
      const names = async (params: Record<string, string>) =>
        ((await mate.request<any>('listSSHKeyPairs', params)).sshkeypair ?? [])
          .map((k: any) => k.name)
          .sort();
      assert.deepEqual(await names({}), ['mine']);
      assert.deepEqual(await names({ projectid: p.id }), ['shared']);
      assert.deepEqual(await names({ projectid: '-1' }), ['shared']);
      const all = await server.admin.request<any>('listSSHKeyPairs', { listall: true });
      assert.deepEqual(all.sshkeypair.map((k: any) => k.name).sort(), ['mine']);
      const role = (await lead.request<any>('createProjectRole', { projectid: p.id, name: 'ro' }))
        .projectrole;
      await lead.request('createProjectRolePermission', {
        projectid: p.id,
        projectroleid: role.id,
        rule: 'list*',
        permission: 'allow',
      });
      assert.equal((await lead.request<any>('listProjectRolePermissions', { projectid: p.id })).count, 1);
      await server.admin.request('updateConfiguration', { name: 'project.invite.required', value: 'true' });
      const { client: third } = await createAccountAndLogin(server, { name: 'third' });
      await lead.call('addAccountToProject', { projectid: p.id, account: 'third', projectroleid: role.id });
      await third.call('updateProjectInvitation', { projectid: p.id });
      assert.equal((await third.request<any>('listProjectAccounts', { projectid: p.id })).count, 3);
      await server.admin.request('updateResourceLimit', { projectid: p.id, resourcetype: 2, max: 3 });
      const shown = (await lead.request<any>('listProjects', { id: p.id })).project[0];
      assert.equal(shown.volumelimit, '3');
      assert.deepEqual(
        shown.owner.map((o: any) => o.account),
        ['lead'],
      );
      await lead.call('deleteProject', { id: p.id, cleanup: true });
      assert.equal((await lead.request<any>('listProjects', {})).count ?? 0, 0);
      assert.deepEqual(await names({}), ['mine']);
    });
  });
}
