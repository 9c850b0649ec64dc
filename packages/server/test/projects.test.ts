/**
 * Projects (issue 17): the project account that owns a project's resources, membership (accounts
 * and users), project roles held on members' calls, invitations, lists with projectid and -1, a
 * member against a non-member, suspension and deletion, limits of a project.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { CloudStackClient } from '@nimbostack/client';
import { waitUntil } from './agents.ts';
import { createAccountAndLogin, startServer, type TestServer } from './harness.ts';

let server: TestServer;
let admin: CloudStackClient;
let alice: CloudStackClient; // creates projects (their Admin)
let bob: CloudStackClient; // joins some as a Regular member
let carol: CloudStackClient; // never a member
let bobUserId: string;
const is = (code: number, text?: RegExp) => (e: any) => {
  assert.equal(e.errorcode, code, e.message);
  if (text) assert.match(e.errortext ?? e.message, text);
  return true;
};

before(async () => {
  server = await startServer();
  admin = server.admin;
  alice = (await createAccountAndLogin(server, { name: 'alice' })).client;
  const b = await createAccountAndLogin(server, { name: 'bob' });
  bob = b.client;
  bobUserId = b.userId;
  carol = (await createAccountAndLogin(server, { name: 'carol' })).client;
});
after(() => server.stop());

async function newProject(name: string, via = alice) {
  return (await via.call<any>('createProject', { name, displaytext: `${name} project` })).project;
}

describe('projects', () => {
  test('createProject: a project account of type 5 owns it, the creator is its Admin; listProjects shows figures', async () => {
    const p = await newProject('web');
    assert.equal(p.name, 'web');
    assert.equal(p.state, 'Active');
    assert.match(p.projectaccountname, /^PrjAcct-web-\d+$/);
    assert.deepEqual(
      p.owner.map((o: any) => o.account),
      ['alice'],
    );
    assert.equal(p.vmlimit, '20');
    assert.equal(p.vmtotal, 0);
    assert.equal(p.vmavailable, '20');
    const acct = await server.admin.request<any>('listAccounts', {
      listall: true,
      name: p.projectaccountname,
    });
    assert.equal(acct.count ?? 0, 0, 'listAccounts leaves project accounts out');
    // The owner's count of projects went up (resource type 5).
    const limits = await alice.request<any>('listResourceLimits', { resourcetype: 5 });
    assert.equal(limits.resourcelimit[0].max, 10);
    const mine = await alice.request<any>('listProjects', {});
    assert.deepEqual(
      mine.project.map((x: any) => x.id),
      [p.id],
    );
    assert.equal((await carol.request<any>('listProjects', {})).count ?? 0, 0);
    assert.equal(
      (await admin.request<any>('listProjects', {})).count ?? 0,
      0,
      'admins list their own by default',
    );
    assert.ok(
      (await admin.request<any>('listProjects', { listall: true })).project.some((x: any) => x.id === p.id),
    );
  });

  test('refusals: duplicate name 431, unknown project 431, account with projectid 431, non-member 531', async () => {
    const p = await newProject('dup');
    await assert.rejects(alice.call('createProject', { name: 'dup' }), is(431, /already exists/));
    await assert.rejects(
      alice.request('listSSHKeyPairs', { projectid: '4c6f3b9e-6b7a-4f43-9d55-000000000000' }),
      is(431, /Invalid parameter projectid value=/),
    );
    await assert.rejects(carol.request('listSSHKeyPairs', { projectid: p.id }), is(531));
    await assert.rejects(carol.call('createSSHKeyPair', { name: 'k', projectid: p.id }), is(531));
    await assert.rejects(
      admin.call('createSSHKeyPair', { name: 'k', projectid: p.id, account: 'alice' }),
      is(431, /can't be specified together/),
    );
    await assert.rejects(carol.call('deleteProject', { id: p.id }), is(531));
    await assert.rejects(carol.call('updateProject', { id: p.id, displaytext: 'x' }), is(531));
  });

  test('project resources: owned by the project, listed with projectid and -1, hidden without, members may act on them', async () => {
    const p = await newProject('keys');
    const k = (await alice.request<any>('createSSHKeyPair', { name: 'deploy', projectid: p.id })).keypair;
    assert.equal(k.projectid, p.id);
    assert.equal(k.project, 'keys');
    assert.equal(k.account, undefined, 'a project resource names its project, not its account');
    // Without projectid, project resources are not listed, even to the project's Admin.
    assert.ok(
      !((await alice.request<any>('listSSHKeyPairs', {})).sshkeypair ?? []).some(
        (x: any) => x.name === 'deploy',
      ),
    );
    const inProject = await alice.request<any>('listSSHKeyPairs', { projectid: p.id });
    assert.deepEqual(
      inProject.sshkeypair.map((x: any) => x.name),
      ['deploy'],
    );
    const all = await alice.request<any>('listSSHKeyPairs', { projectid: '-1' });
    assert.ok(all.sshkeypair.some((x: any) => x.name === 'deploy' && x.projectid === p.id));
    assert.equal((await carol.request<any>('listSSHKeyPairs', { projectid: '-1' })).count ?? 0, 0);
    assert.ok(
      (await admin.request<any>('listSSHKeyPairs', { projectid: '-1' })).sshkeypair.some(
        (x: any) => x.name === 'deploy',
      ),
    );
    assert.ok(
      !((await admin.request<any>('listSSHKeyPairs', { listall: true })).sshkeypair ?? []).some(
        (x: any) => x.name === 'deploy',
      ),
      'listall without projectid skips project resources',
    );
    // bob joins and can then see and use the project's key; carol still cannot.
    await assert.rejects(bob.request('listSSHKeyPairs', { projectid: p.id }), is(531));
    await alice.call('addAccountToProject', { projectid: p.id, account: 'bob' });
    assert.equal((await bob.request<any>('listSSHKeyPairs', { projectid: p.id })).count, 1);
    await bob.request('createSSHKeyPair', { name: 'bobs', projectid: p.id });
    assert.equal((await alice.request<any>('listSSHKeyPairs', { projectid: p.id })).count, 2);
    await bob.request('deleteSSHKeyPair', { name: 'bobs', projectid: p.id });
    // A member tags the project's resource; the tag is listed with projectid, like the resource.
    const group = (await alice.call<any>('createSecurityGroup', { name: 'g', projectid: p.id }))
      .securitygroup;
    await bob.call('createTags', {
      resourcetype: 'SecurityGroup',
      resourceids: group.id,
      'tags[0].key': 'team',
      'tags[0].value': 'keys',
    });
    assert.deepEqual(
      (await bob.request<any>('listTags', { projectid: p.id })).tag.map((t: any) => [
        t.key,
        t.resourceid,
        t.projectid,
      ]),
      [['team', group.id, p.id]],
    );
    assert.equal((await bob.request<any>('listTags', {})).count ?? 0, 0);
    await assert.rejects(
      carol.call('createTags', { resourcetype: 'SecurityGroup', resourceids: group.id, 'tags[0].key': 'x' }),
      is(531),
    );
  });

  test('membership: listProjectAccounts, roles, the only Admin stays, a Regular member cannot manage', async () => {
    const p = await newProject('team');
    await alice.call('addAccountToProject', { projectid: p.id, account: 'bob' });
    const members = await bob.request<any>('listProjectAccounts', { projectid: p.id });
    assert.deepEqual(members.projectaccount.map((m: any) => [m.account, m.role]).sort(), [
      ['alice', 'Admin'],
      ['bob', 'Regular'],
    ]);
    await assert.rejects(bob.call('addAccountToProject', { projectid: p.id, account: 'carol' }), is(531));
    await assert.rejects(bob.call('suspendProject', { id: p.id }), is(531));
    await assert.rejects(
      alice.call('deleteAccountFromProject', { projectid: p.id, account: 'alice' }),
      is(431, /owner of the project/),
    );
    await assert.rejects(
      alice.call('deleteAccountFromProject', { projectid: p.id, account: 'carol' }),
      is(431, /not assigned/),
    );
    // Swapping the owner: bob becomes the Admin, alice Regular.
    const swapped = (await alice.call<any>('updateProject', { id: p.id, account: 'bob' })).project;
    assert.deepEqual(
      swapped.owner.map((o: any) => o.account),
      ['bob'],
    );
    await bob.call('deleteAccountFromProject', { projectid: p.id, account: 'alice' });
    await assert.rejects(alice.request('listProjectAccounts', { projectid: p.id }), is(531));
  });

  test('deleting accounts: a project Admin is refused (431), a Regular member leaves its projects', async () => {
    const p = await newProject('leavers');
    const { account } = await createAccountAndLogin(server, { name: 'leaver' });
    await alice.call('addAccountToProject', { projectid: p.id, account: 'leaver' });
    const aliceId = (await admin.request<any>('listAccounts', { name: 'alice', listall: true })).account[0]
      .id;
    await assert.rejects(admin.call('deleteAccount', { id: aliceId }), is(431, /manages project\(s\)/));
    await admin.call('deleteAccount', { id: account.id as string });
    const members = await alice.request<any>('listProjectAccounts', { projectid: p.id });
    assert.deepEqual(
      members.projectaccount.map((m: any) => m.account),
      ['alice'],
    );
  });

  test("events of calls made in a project are the project's: listed with projectid to its members", async () => {
    const p = await newProject('audited');
    await alice.call('addAccountToProject', { projectid: p.id, account: 'bob' });
    await alice.call('createAffinityGroup', {
      name: 'audited-ag',
      type: 'host anti-affinity',
      projectid: p.id,
    });
    const mine = (e: any) => e.type === 'AG.CREATE' && /audited-ag/.test(e.description);
    const inProject = (await bob.request<any>('listEvents', { projectid: p.id })).event ?? [];
    assert.ok(inProject.some(mine), 'the member sees the project event');
    assert.ok(inProject.every((e: any) => e.projectid === p.id && e.account === undefined));
    assert.ok(
      !((await alice.request<any>('listEvents', {})).event ?? []).some(mine),
      "not among alice's own",
    );
    await assert.rejects(carol.request('listEvents', { projectid: p.id }), is(531));
    // A webhook of the project (it receives the project's events), listed with projectid only. Its
    // loopback target is allowed by the operator's list (non-admins may not target loopback).
    await admin.request('updateConfiguration', {
      name: 'webhook.delivery.allowed.private.networks',
      value: '127.0.0.1/32',
    });
    const hook = (
      await alice.request<any>('createWebhook', {
        name: 'audit',
        payloadurl: 'http://127.0.0.1:9/x',
        projectid: p.id,
      })
    ).webhook;
    assert.equal(hook.projectid, p.id);
    assert.deepEqual(
      (await bob.request<any>('listWebhooks', { projectid: p.id })).webhook.map((w: any) => w.name),
      ['audit'],
    );
    assert.equal((await alice.request<any>('listWebhooks', {})).count ?? 0, 0);
  });

  test('users as members (4.15+): only that user gets access', async () => {
    const p = await newProject('solo');
    await alice.call('addUserToProject', { projectid: p.id, username: 'bob' });
    const members = await alice.request<any>('listProjectAccounts', { projectid: p.id });
    const bobRow = members.projectaccount.find((m: any) => m.account === 'bob');
    assert.equal(bobRow.userid, bobUserId);
    assert.equal(bobRow.username, 'bob');
    assert.equal(
      (await bob.request<any>('listProjects', {})).project.some((x: any) => x.id === p.id),
      true,
    );
    await assert.rejects(
      alice
        .call('addAccountToProject', { projectid: p.id, account: 'bob' })
        .then(() => alice.call('addUserToProject', { projectid: p.id, username: 'bob' })),
      is(431, /already part of the project/),
    );
    await alice.call('deleteUserFromProject', { projectid: p.id, userid: bobUserId });
    // A second user of bob's account, a member on their own, goes with the user when deleted.
    const extra = (
      await admin.request<any>('createUser', {
        account: 'bob',
        domainid: p.domainid,
        username: 'bob2',
        password: 'secret-pw',
        email: 'bob2@example.com',
        firstname: 'b',
        lastname: 'b',
      })
    ).user;
    await alice.call('deleteAccountFromProject', { projectid: p.id, account: 'bob' });
    await alice.call('addUserToProject', { projectid: p.id, username: 'bob2', roletype: 'Admin' });
    await assert.rejects(admin.request('deleteUser', { id: extra.id }), is(431, /manages project/));
    await alice.call('updateProject', { id: p.id, userid: extra.id, roletype: 'Regular', swapowner: false });
    await admin.request('deleteUser', { id: extra.id });
    assert.deepEqual(
      (await alice.request<any>('listProjectAccounts', { projectid: p.id })).projectaccount.map(
        (m: any) => m.account,
      ),
      ['alice'],
    );
  });

  test('project roles: rules hold a Regular member in the project; the first match decides, none denies', async () => {
    const p = await newProject('roles');
    const role = (await alice.request<any>('createProjectRole', { projectid: p.id, name: 'readonly' }))
      .projectrole;
    assert.equal(role.projectid, p.id);
    await assert.rejects(alice.request('createProjectRole', { projectid: p.id, name: 'readonly' }), is(431));
    const r1 = (
      await alice.request<any>('createProjectRolePermission', {
        projectid: p.id,
        projectroleid: role.id,
        rule: 'list*',
        permission: 'allow',
      })
    ).projectrolepermission;
    assert.equal(r1.rule, 'list*');
    await alice.call('addAccountToProject', { projectid: p.id, account: 'bob', projectroleid: role.id });
    assert.equal((await bob.request<any>('listSSHKeyPairs', { projectid: p.id })).count ?? 0, 0);
    await assert.rejects(
      bob.request('createSSHKeyPair', { name: 'nope', projectid: p.id }),
      is(531, /denied for the user's\/account's project role/),
    );
    // Without projectid the call is bob's own: no project role applies.
    await bob.request('createSSHKeyPair', { name: 'bob-own' });
    const r2 = (
      await alice.request<any>('createProjectRolePermission', {
        projectid: p.id,
        projectroleid: role.id,
        rule: 'createSSHKeyPair',
        permission: 'allow',
      })
    ).projectrolepermission;
    await bob.request('createSSHKeyPair', { name: 'now-ok', projectid: p.id });
    const rules = await bob.request<any>('listProjectRolePermissions', {
      projectid: p.id,
      projectroleid: role.id,
    });
    assert.deepEqual(
      rules.projectrolepermission.map((r: any) => r.rule),
      ['list*', 'createSSHKeyPair'],
    );
    await alice.request('updateProjectRolePermission', {
      projectid: p.id,
      projectroleid: role.id,
      ruleorder: `${r2.id},${r1.id}`,
    });
    await alice.request('updateProjectRolePermission', {
      projectid: p.id,
      projectroleid: role.id,
      projectrolepermissionid: r2.id,
      permission: 'deny',
    });
    await assert.rejects(bob.request('createSSHKeyPair', { name: 'again', projectid: p.id }), is(531));
    await assert.rejects(
      alice.request('deleteProjectRole', { id: role.id, projectid: p.id }),
      is(431, /assigned/),
    );
    await alice.request('deleteProjectRolePermission', { id: r2.id, projectid: p.id });
    await assert.rejects(bob.request('createProjectRole', { projectid: p.id, name: 'x' }), is(531));
    assert.equal((await bob.request<any>('listProjectRoles', { projectid: p.id })).count, 1);
  });

  test('invitations: with project.invite.required an account is invited and joins on accepting', async () => {
    await admin.request('updateConfiguration', { name: 'project.invite.required', value: 'true' });
    try {
      const p = await newProject('invites');
      await alice.call('addAccountToProject', { projectid: p.id, account: 'carol' });
      await assert.rejects(carol.request('listProjectAccounts', { projectid: p.id }), is(531));
      const inv = await carol.request<any>('listProjectInvitations', {});
      assert.equal(inv.count, 1);
      assert.equal(inv.projectinvitation[0].projectid, p.id);
      assert.equal(inv.projectinvitation[0].state, 'Pending');
      await assert.rejects(
        alice.call('addAccountToProject', { projectid: p.id, account: 'carol' }),
        is(431, /pending/),
      );
      await carol.call('updateProjectInvitation', { projectid: p.id });
      assert.equal((await carol.request<any>('listProjectAccounts', { projectid: p.id })).count, 2);
      assert.equal((await carol.request<any>('listProjectInvitations', { state: 'Completed' })).count, 1);
      // A declined invitation adds nobody; an invitation can be withdrawn by the project's Admin.
      await alice.call('addUserToProject', { projectid: p.id, username: 'bob' });
      await bob.call('updateProjectInvitation', { projectid: p.id, accept: false });
      assert.ok(
        !(await alice.request<any>('listProjectAccounts', { projectid: p.id })).projectaccount.some(
          (m: any) => m.account === 'bob',
        ),
      );
      await alice.call('addAccountToProject', { projectid: p.id, account: 'bob' });
      const pending = (
        await admin.request<any>('listProjectInvitations', {
          listall: true,
          projectid: p.id,
          state: 'Pending',
        })
      ).projectinvitation;
      assert.equal(pending.length, 1);
      await assert.rejects(carol.call('deleteProjectInvitation', { id: pending[0].id }), is(531));
      await alice.call('deleteProjectInvitation', { id: pending[0].id });
      await assert.rejects(
        bob.call('updateProjectInvitation', { projectid: p.id }),
        is(431, /Unable to find invitation/),
      );
    } finally {
      await admin.request('updateConfiguration', { name: 'project.invite.required', value: 'false' });
    }
  });

  test('suspend and activate; nothing is added to a suspended project; delete with and without cleanup', async () => {
    const p = await newProject('life');
    await alice.request('createSSHKeyPair', { name: 'life-key', projectid: p.id });
    const s = (await alice.call<any>('suspendProject', { id: p.id })).project;
    assert.equal(s.state, 'Suspended');
    await assert.rejects(
      alice.request('createSSHKeyPair', { name: 'late', projectid: p.id }),
      is(531, /no longer active/),
    );
    await assert.rejects(alice.call('addAccountToProject', { projectid: p.id, account: 'bob' }), is(431));
    assert.equal((await alice.call<any>('activateProject', { id: p.id })).project.state, 'Active');
    await alice.request('createSSHKeyPair', { name: 'late', projectid: p.id });
    const before = (await alice.request<any>('listResourceLimits', { resourcetype: 5 })).resourcelimit[0];
    await alice.call('deleteProject', { id: p.id });
    await assert.rejects(alice.request('listSSHKeyPairs', { projectid: p.id }), is(431));
    const rows = await admin.request<any>('listProjects', { listall: true, name: 'life' });
    assert.equal(rows.count ?? 0, 0);
    // The name is free again.
    await newProject('life');
    assert.ok(before);
  });

  test('project limits: updateResourceLimit and listResourceLimits with projectid; max.project.* defaults', async () => {
    const p = await newProject('limited');
    const limits = await alice.request<any>('listResourceLimits', { projectid: p.id });
    const keys = limits.resourcelimit.find((l: any) => l.resourcetype === '0');
    assert.equal(keys.max, 20);
    assert.equal(keys.projectid, p.id);
    await assert.rejects(
      alice.request('updateResourceLimit', { projectid: p.id, resourcetype: 0, max: 1 }),
      is(432),
    );
    await admin.request('updateResourceLimit', { projectid: p.id, resourcetype: 0, max: 1 });
    const shown = (await alice.request<any>('listProjects', { id: p.id })).project[0];
    assert.equal(shown.vmlimit, '1');
    await admin.request('updateConfiguration', { name: 'max.project.volumes', value: '7' });
    assert.equal((await alice.request<any>('listProjects', { id: p.id })).project[0].volumelimit, '7');
    const counted = await admin.request<any>('updateResourceCount', {
      projectid: p.id,
      domainid: shown.domainid,
      resourcetype: 0,
    });
    assert.equal(counted.resourcecount[0].resourcecount, 0);
  });
});

describe('projects with VMs (the local simulator zone)', () => {
  let local: TestServer;
  let lead: CloudStackClient;
  let zoneid: string;
  let templateid: string;
  let offeringid: string;
  before(async () => {
    local = await startServer({ env: { NIMBOSTACK_SEED_LOCAL_ZONE: 'true' } });
    lead = (await createAccountAndLogin(local, { name: 'vmlead' })).client;
    zoneid = (await local.admin.request<any>('listZones', {})).zone[0].id;
    templateid = await waitUntil(
      async () =>
        (
          await local.admin.request<any>('listTemplates', { templatefilter: 'featured', zoneid })
        ).template?.find((t: any) => t.isready)?.id,
      20_000,
      'the built-in template',
    );
    offeringid = (await local.admin.request<any>('listServiceOfferings', {})).serviceoffering.find(
      (o: any) => o.name === 'Small Instance',
    ).id;
  });
  after(() => local.stop());

  test("a VM deployed in a project counts against the project's limits; suspending stops it; delete needs cleanup", async () => {
    const p = (await lead.call<any>('createProject', { name: 'vms' })).project;
    const vm = (
      await lead.call<any>('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid: offeringid,
        projectid: p.id,
      })
    ).virtualmachine;
    assert.equal(vm.projectid, p.id);
    assert.equal(vm.project, 'vms');
    assert.equal(vm.state, 'Running');
    const shown = (await lead.request<any>('listProjects', { id: p.id })).project[0];
    assert.equal(shown.vmtotal, 1);
    assert.equal(shown.vmrunning, 1);
    assert.equal(shown.vmavailable, '19');
    // The lead's own account holds no VM: the project's account does.
    const own = await lead.request<any>('listResourceLimits', { resourcetype: 0 });
    assert.ok(own.resourcelimit[0]);
    assert.equal((await lead.request<any>('listVirtualMachines', {})).count ?? 0, 0);
    assert.equal((await lead.request<any>('listVirtualMachines', { projectid: p.id })).count, 1);
    // An admin's list leaves project VMs out, and so does its count, asked when the page is full:
    // the scope's VMs less the project accounts' (iam/access.ts scopedCount).
    await local.admin.call('deployVirtualMachine', { zoneid, templateid, serviceofferingid: offeringid });
    const every = await local.admin.request<any>('listVirtualMachines', { listall: true, pagesize: -1 });
    assert.ok(every.count >= 1);
    assert.ok(every.virtualmachine.every((v: any) => v.id !== vm.id));
    const firstOfOne = await local.admin.request<any>('listVirtualMachines', {
      listall: true,
      page: 1,
      pagesize: 1,
    });
    assert.equal(firstOfOne.virtualmachine.length, 1);
    assert.equal(firstOfOne.count, every.count);
    const projectVms = await local.admin.request<any>('listVirtualMachines', {
      listall: true,
      projectid: '-1',
      page: 1,
      pagesize: 1,
    });
    assert.equal(projectVms.count, 1);
    // The project's limit holds: 1 VM, a second one is refused with 535 and leaves nothing.
    await local.admin.request('updateResourceLimit', { projectid: p.id, resourcetype: 0, max: 1 });
    await assert.rejects(
      lead.call('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid: offeringid,
        projectid: p.id,
      }),
      is(535),
    );
    assert.equal((await lead.request<any>('listVirtualMachines', { projectid: p.id })).count, 1);
    const suspended = (await lead.call<any>('suspendProject', { id: p.id })).project;
    assert.equal(suspended.state, 'Suspended');
    const stopped = (await lead.request<any>('listVirtualMachines', { projectid: p.id })).virtualmachine[0];
    assert.equal(stopped.state, 'Stopped');
    await lead.call('activateProject', { id: p.id });
    // Usage of the project's VM is the project's.
    const today = new Date().toISOString().slice(0, 10);
    await local.admin.request('generateUsageRecords', { startdate: today, enddate: today });
    const usage = (
      await local.admin.request<any>('listUsageRecords', {
        startdate: today,
        enddate: today,
        projectid: p.id,
      })
    ).usagerecord;
    assert.ok(usage.some((r: any) => r.usagetype === 2 && r.usageid === vm.id));
    assert.ok(usage.every((r: any) => r.projectid === p.id));
    await assert.rejects(
      lead.call('deleteProject', { id: p.id }),
      is(530, /Can't delete the project yet because it has 1 UserVmVO to clean up/),
    );
    // A template shared with the project: listTemplatePermissions names it, its members see it shared.
    await local.admin.request('updateTemplatePermissions', { id: templateid, op: 'add', projectids: p.id });
    const perms = (await local.admin.request<any>('listTemplatePermissions', { id: templateid }))
      .templatepermission;
    assert.deepEqual(perms.projectids, [p.id]);
    const shared = await lead.request<any>('listTemplates', {
      templatefilter: 'sharedexecutable',
      projectid: p.id,
    });
    assert.ok(shared.template.some((t: any) => t.id === templateid));
    await lead.call('deleteProject', { id: p.id, cleanup: true });
    assert.equal(
      (await local.admin.request<any>('listVirtualMachines', { listall: true, id: vm.id })).count ?? 0,
      0,
    );
  });
});
