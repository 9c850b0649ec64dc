/**
 * Templates and ISOs against the real server: downloads from a local HTTP server (progress,
 * checksum and 404 failures), the built-in template, every template filter for two users and an
 * administrator, sharing, copies between zones, extract links, deletion, bad input, limits, and
 * Debian's python3-cs registering and finding a template as Ansible's cs_template does.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import type { CloudStackClient } from '@nimbostack/client';
import { createAccountAndLogin, startServer, type TestServer } from './harness.ts';

const PYTHON = process.env.PYTHON ?? '/usr/bin/python3';
const BUILTIN = 'CentOS 5.5(64-bit) no GUI (Simulator)';
const MiB = 1024 ** 2;

/** A QCOW2 header claiming `virtual` bytes, padded with random data to `physical` bytes. */
function qcow2(virtual: number, physical: number): Buffer {
  const b = randomBytes(physical);
  b.fill(0, 0, 72);
  b.writeUInt32BE(0x514649fb, 0);
  b.writeUInt32BE(3, 4);
  b.writeUInt32BE(16, 20);
  b.writeBigUInt64BE(BigInt(virtual), 24);
  return b;
}

function iso9660(size: number): Buffer {
  const b = Buffer.alloc(size);
  b.write('\x01CD001', 0x8000, 'latin1');
  return b;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const images = {
  slow: qcow2(8 * 1024 ** 3, 4 * MiB),
  fast: qcow2(1024 ** 3, 256 * 1024),
  iso: iso9660(96 * 1024),
  /** An LXC root file system tarball (what the bytes are does not matter to the server: gzip's header does). */
  rootfs: gzipSync(randomBytes(64 * 1024)),
};

let files: Server;
let filesUrl = '';
let server: TestServer;
let admin: CloudStackClient;
let alice: CloudStackClient;
let bob: CloudStackClient;
const ids: Record<string, string> = {};
let osType = '';

const is = (code: number, text?: RegExp) => (e: any) =>
  e.errorcode === code && (!text || text.test(e.errortext));

function serveImages(): Promise<void> {
  files = createServer((req, res) => {
    const path = req.url ?? '';
    if (path === '/slow.qcow2') {
      // Slowly enough that progress shows: 4 MiB in 64 KiB pieces every 15 ms (about a second).
      res.writeHead(200, {
        'content-length': images.slow.length,
        'content-type': 'application/octet-stream',
      });
      let offset = 0;
      const timer = setInterval(() => {
        if (offset >= images.slow.length || res.destroyed) {
          clearInterval(timer);
          res.end();
          return;
        }
        res.write(images.slow.subarray(offset, offset + 65536));
        offset += 65536;
      }, 15);
      return;
    }
    const body =
      path === '/fast.qcow2'
        ? images.fast
        : path === '/tiny.iso'
          ? images.iso
          : path === '/rootfs.tar.gz'
            ? images.rootfs
            : undefined;
    if (!body) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-length': body.length }).end(body);
  });
  return new Promise((resolve) =>
    files.listen(0, '127.0.0.1', () => {
      filesUrl = `http://127.0.0.1:${(files.address() as AddressInfo).port}`;
      resolve();
    }),
  );
}

async function addZone(name: string, storeUrl: string): Promise<string> {
  const zone = (
    await admin.request<any>('createZone', {
      name,
      networktype: 'Advanced',
      dns1: '8.8.8.8',
      internaldns1: '8.8.4.4',
    })
  ).zone;
  await admin.request('addImageStore', {
    name: `${name}-store`,
    provider: 'NFS',
    url: storeUrl,
    zoneid: zone.id,
  });
  return zone.id;
}

async function templates(client: CloudStackClient, params: Record<string, any>): Promise<any[]> {
  return (await client.request<any>('listTemplates', params)).template ?? [];
}

/** Polls listTemplates until the template in the zone is no longer waiting or downloading. */
async function settled(id: string, zoneid: string, seen: string[] = []): Promise<any> {
  for (let i = 0; i < 300; i++) {
    const [t] = await templates(admin, { templatefilter: 'all', id, zoneid });
    if (t) {
      seen.push(t.status);
      if (t.isready || t.downloaddetails?.[0]?.downloadState === 'DOWNLOAD_ERROR') return t;
    }
    await new Promise((r) => setTimeout(r, 40));
  }
  throw new Error(`template ${id} did not settle: ${seen.slice(-3).join(' | ')}`);
}

async function register(client: CloudStackClient, params: Record<string, any>): Promise<any> {
  const r = await client.request<any>('registerTemplate', {
    format: 'QCOW2',
    hypervisor: 'KVM',
    ostypeid: osType,
    zoneid: ids.z1,
    url: `${filesUrl}/fast.qcow2`,
    ...params,
  });
  assert.equal(r.count, 1);
  return r.template[0];
}

/** Every file under a directory, relative to it. */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => join(d.parentPath, d.name).slice(dir.length + 1));
}

before(async () => {
  await serveImages();
  server = await startServer({
    nodeArgs: ['--import', join(import.meta.dirname, 'fixtures/template-hooks.ts')],
  });
  admin = server.admin;
  ids.store1 = join(server.dataDir, 'secondary-1');
  ids.store2 = join(server.dataDir, 'secondary-2');
  mkdirSync(ids.store1);
  mkdirSync(ids.store2);
  ids.z1 = await addZone('tpl-z1', ids.store1);
  ids.z2 = await addZone('tpl-z2', ids.store2);
  ids.z3 = await addZone('tpl-nfs', 'nfs://192.0.2.1/export/secondary');
  osType = (await admin.request<any>('listOsTypes', { description: 'Ubuntu 22.04 LTS' })).ostype[0].id;
  const a = await createAccountAndLogin(server, { name: 'alice' });
  alice = a.client;
  bob = (await createAccountAndLogin(server, { name: 'bob' })).client;
});
after(async () => {
  await server.stop();
  files.close();
});

describe('the built-in template', () => {
  test('is real data in every local image store and ready in each zone', async () => {
    for (const zoneid of [ids.z1, ids.z2]) {
      const [t] = await templates(alice, { templatefilter: 'featured', name: BUILTIN, zoneid });
      const ready = t.isready ? t : await settled(t.id, zoneid);
      assert.equal(ready.isready, true);
      assert.equal(ready.status, 'Download Complete');
      assert.equal(ready.hypervisor, 'Simulator');
      assert.equal(ready.templatetype, 'BUILTIN');
      assert.equal(ready.size, 2 * 1024 ** 3);
      assert.equal(ready.physicalsize, 256 * 1024);
    }
    for (const store of [ids.store1, ids.store2]) {
      const [file] = filesUnder(store).filter((f) => f.endsWith('.qcow2'));
      assert.ok(file, `no built-in image in ${store}`);
      assert.equal(statSync(join(store, file)).size, 256 * 1024);
    }
  });

  test('an NFS store that is not mounted fails visibly with the reason', async () => {
    const [t] = await templates(admin, { templatefilter: 'all', name: BUILTIN, zoneid: ids.z3 });
    const done = await settled(t.id, ids.z3);
    assert.equal(done.isready, false);
    assert.match(done.status, /not mounted on this management server/);
  });
});

describe('registering and downloading', () => {
  test('progress shows in status until "Download Complete"; the file is verified and in place', async () => {
    const t = await register(alice, {
      name: 'alice-slow',
      url: `${filesUrl}/slow.qcow2`,
      checksum: `{SHA-256}${sha256(images.slow)}`,
      displaytext: 'Alice slow',
    });
    ids.aliceSlow = t.id;
    assert.equal(t.isready, false);
    assert.equal(t.account, 'alice');
    assert.equal(t.zoneid, ids.z1);
    const seen: string[] = [];
    const done = await settled(t.id, ids.z1, seen);
    assert.ok(
      seen.some((s) => /^([1-9]\d?)% Downloaded$/.test(s)),
      `no progress among ${[...new Set(seen)].join(', ')}`,
    );
    assert.equal(done.status, 'Download Complete');
    assert.equal(done.isready, true);
    assert.equal(done.size, 8 * 1024 ** 3);
    assert.equal(done.physicalsize, images.slow.length);
    assert.equal(done.checksum, `{SHA-256}${sha256(images.slow)}`);
    assert.deepEqual(done.downloaddetails, [
      { downloadState: 'DOWNLOADED', datastore: 'tpl-z1-store', downloadPercent: '100' },
    ]);
    const stored = filesUnder(ids.store1).filter((f) => f.includes(t.id));
    assert.equal(stored.length, 1);
    assert.equal(statSync(join(ids.store1, stored[0])).size, images.slow.length);
    assert.ok(!filesUnder(ids.store1).some((f) => f.endsWith('.part')));
  });

  test('LXC templates are root file system tarballs (TAR); other formats and hypervisors do not mix', async () => {
    const t = await register(alice, {
      name: 'alice-rootfs',
      format: 'TAR',
      hypervisor: 'lxc',
      url: `${filesUrl}/rootfs.tar.gz`,
    });
    assert.equal(t.hypervisor, 'LXC');
    assert.equal(t.format, 'TAR');
    const done = await settled(t.id, ids.z1);
    assert.equal(done.isready, true);
    assert.equal(done.physicalsize, images.rootfs.length);
    assert.ok(filesUnder(ids.store1).some((f) => f.includes(t.id) && f.endsWith('.tar')));
    await assert.rejects(
      register(alice, { name: 'x', format: 'TAR', hypervisor: 'KVM', url: `${filesUrl}/rootfs.tar.gz` }),
      is(431, /KVM cannot boot TAR images/),
    );
    await assert.rejects(register(alice, { name: 'x', hypervisor: 'LXC' }), is(431, /LXC cannot boot QCOW2/));
    const qcow = await register(alice, { name: 'alice-not-tar', format: 'TAR', hypervisor: 'LXC' });
    const failed = await settled(qcow.id, ids.z1);
    assert.equal(failed.isready, false);
    assert.match(failed.status, /not a TAR image \(neither a tar archive nor gzip-compressed\)/);
    for (const id of [t.id, qcow.id]) await alice.call('deleteTemplate', { id });
  });

  test('a checksum mismatch and a 404 fail with the reason and leave no file', async () => {
    const wrong = await register(alice, { name: 'alice-wrongsum', checksum: `{SHA-256}${'0'.repeat(64)}` });
    const failed = await settled(wrong.id, ids.z1);
    assert.equal(failed.isready, false);
    assert.match(failed.status, /Checksum mismatch: expected \{SHA-256\}0{64}/);
    const missing = await register(alice, { name: 'alice-404', url: `${filesUrl}/missing.qcow2` });
    const gone = await settled(missing.id, ids.z1);
    assert.match(gone.status, /HTTP 404/);
    assert.equal(gone.downloaddetails[0].downloadState, 'DOWNLOAD_ERROR');
    const md5 = createHash('md5').update(images.fast).digest('hex');
    const plain = await register(alice, { name: 'alice-md5', checksum: md5 });
    assert.equal((await settled(plain.id, ids.z1)).isready, true);
    const notQcow = await register(alice, { name: 'alice-notqcow', url: `${filesUrl}/tiny.iso` });
    assert.match((await settled(notQcow.id, ids.z1)).status, /not a QCOW2 image/);
    assert.ok(
      !filesUnder(ids.store1).some(
        (f) => f.includes(wrong.id) || f.includes(missing.id) || f.includes(notQcow.id),
      ),
    );
    const events = await alice.request<any>('listEvents', { type: 'TEMPLATE.DOWNLOAD.FAILED' });
    assert.ok(events.count >= 3);
  });

  test('bad input is refused with 431 and creates nothing', async () => {
    const before = (await templates(alice, { templatefilter: 'self' })).length;
    const bad: [Record<string, any>, RegExp][] = [
      [
        { zoneid: '11111111-1111-1111-1111-111111111111' },
        /Invalid parameter zoneid value=.* entity does not exist/,
      ],
      [
        { ostypeid: '11111111-1111-1111-1111-111111111111' },
        /Invalid parameter ostypeid value=.* entity does not exist/,
      ],
      [{ format: 'FOO' }, /Invalid format FOO/],
      [{ checksum: '{SHA-256}abc' }, /64 hexadecimal digits/],
      [{ checksum: '{CRC32}abcd' }, /Invalid checksum/],
      [{ zoneid: undefined }, /zoneid/],
      [{ url: 'ftp://example.com/x.qcow2' }, /Unsupported URL/],
      [{ url: '/etc/passwd' }, /Only root administrators/],
      [{ format: 'OVA' }, /KVM cannot boot OVA/],
      [{ format: 'ISO' }, /registerIso/],
      [{ isfeatured: true }, /featured/],
    ];
    for (const [params, text] of bad) {
      await assert.rejects(
        register(alice, { name: 'bad', ...params }),
        is(431, text),
        JSON.stringify(params),
      );
    }
    assert.equal((await templates(alice, { templatefilter: 'self' })).length, before);
  });

  test('the template limit (max.account.templates) gives 535 and nothing is created', async () => {
    const carol = await createAccountAndLogin(server, { name: 'carol' });
    await admin.request('updateResourceLimit', {
      account: 'carol',
      domainid: carol.account.domainid as string,
      resourcetype: 4,
      max: 1,
    });
    await register(carol.client, { name: 'carol-1' });
    await assert.rejects(register(carol.client, { name: 'carol-2' }), is(535, /template/));
    assert.equal((await templates(carol.client, { templatefilter: 'self' })).length, 1);
  });

  test('a download beyond the secondary storage limit fails with the reason', async () => {
    const dave = await createAccountAndLogin(server, { name: 'dave' });
    await admin.request('updateResourceLimit', {
      account: 'dave',
      domainid: dave.account.domainid as string,
      resourcetype: 11,
      max: 0,
    });
    const t = await register(dave.client, { name: 'dave-1' });
    const failed = await settled(t.id, ids.z1);
    assert.equal(failed.isready, false);
    assert.match(failed.status, /secondary_storage/);
    assert.ok(!filesUnder(ids.store1).some((f) => f.includes(t.id)));
  });
});

describe('filters, sharing and updates', () => {
  before(async () => {
    ids.featured = (await register(admin, { name: 'admin-featured', ispublic: true, isfeatured: true })).id;
    ids.community = (await register(admin, { name: 'admin-community', ispublic: true })).id;
    ids.bobShared = (await register(bob, { name: 'bob-shared' })).id;
    ids.bobPrivate = (await register(bob, { name: 'bob-private' })).id;
    for (const id of [ids.featured, ids.community, ids.bobShared, ids.bobPrivate]) await settled(id, ids.z1);
    await bob.request('updateTemplatePermissions', { id: ids.bobShared, op: 'add', accounts: 'alice' });
  });

  const names = async (client: CloudStackClient, templatefilter: string, extra: Record<string, any> = {}) =>
    (await templates(client, { templatefilter, zoneid: ids.z1, ...extra })).map((t) => t.name).sort();

  test('each filter for a user, another user and an administrator', async () => {
    assert.deepEqual(await names(alice, 'featured'), [BUILTIN, 'admin-featured'].sort());
    assert.deepEqual(await names(alice, 'community'), ['admin-community']);
    assert.deepEqual(await names(alice, 'selfexecutable'), ['alice-md5', 'alice-slow']);
    const self = await names(alice, 'self');
    for (const n of ['alice-slow', 'alice-md5', 'alice-wrongsum', 'alice-404'])
      assert.ok(self.includes(n), n);
    assert.deepEqual(await names(alice, 'sharedexecutable'), ['bob-shared']);
    assert.deepEqual(
      await names(alice, 'executable'),
      [BUILTIN, 'admin-community', 'admin-featured', 'alice-md5', 'alice-slow', 'bob-shared'].sort(),
    );
    await assert.rejects(alice.request('listTemplates', { templatefilter: 'all' }), is(431, /admin only/));
    await assert.rejects(alice.request('listTemplates', { templatefilter: 'mine' }), is(431));

    assert.deepEqual(await names(bob, 'selfexecutable'), ['bob-private', 'bob-shared']);
    assert.deepEqual(await names(bob, 'sharedexecutable'), []);
    assert.ok(!(await names(bob, 'executable')).includes('alice-slow'));

    const adminSelf = await names(admin, 'self');
    assert.deepEqual(adminSelf, [BUILTIN, 'admin-community', 'admin-featured'].sort());
    assert.ok(!(await names(admin, 'executable')).includes('bob-private'));
    const everything = await names(admin, 'all');
    for (const n of ['alice-slow', 'alice-404', 'bob-private', 'admin-featured'])
      assert.ok(everything.includes(n), n);
    assert.ok((await names(admin, 'executable', { listall: true })).includes('bob-private'));
    assert.deepEqual(
      await names(admin, 'self', {
        account: 'bob',
        domainid: (await bob.request<any>('listAccounts')).account[0].domainid,
      }),
      ['bob-private', 'bob-shared'],
    );
  });

  test('name, keyword, hypervisor, ids and tags narrow the list; paging counts pairs', async () => {
    assert.deepEqual(await names(alice, 'executable', { keyword: 'admin-' }), [
      'admin-community',
      'admin-featured',
    ]);
    assert.deepEqual(await names(alice, 'executable', { keyword: 'ADMIN-C' }), ['admin-community']);
    assert.deepEqual(await names(alice, 'executable', { keyword: 'admin_' }), []);
    assert.deepEqual(await names(alice, 'executable', { hypervisor: 'Simulator' }), [BUILTIN]);
    assert.deepEqual(await names(alice, 'executable', { name: 'bob-shared' }), ['bob-shared']);
    await alice.call('createTags', {
      resourcetype: 'Template',
      resourceids: ids.aliceSlow,
      tags: [{ key: 'env', value: 'prod' }],
    });
    const tagged = await templates(alice, { templatefilter: 'self', tags: [{ key: 'env', value: 'prod' }] });
    assert.deepEqual(
      tagged.map((t) => t.name),
      ['alice-slow'],
    );
    assert.deepEqual(
      tagged[0].tags.map((t: any) => [t.key, t.value]),
      [['env', 'prod']],
    );
    const page = await alice.request<any>('listTemplates', {
      templatefilter: 'executable',
      zoneid: ids.z1,
      page: 1,
      pagesize: 2,
    });
    assert.equal(page.count, 6);
    assert.equal(page.template.length, 2);
  });

  test('permissions: listing, removing, making public; only the owner may change them', async () => {
    const perms = await bob.request<any>('listTemplatePermissions', { id: ids.bobShared });
    assert.deepEqual(perms.templatepermission.account, ['alice']);
    assert.equal(perms.templatepermission.ispublic, false);
    await assert.rejects(alice.request('listTemplatePermissions', { id: ids.bobShared }), is(531));
    await assert.rejects(
      alice.request('updateTemplatePermissions', { id: ids.bobShared, ispublic: true }),
      is(531),
    );
    await assert.rejects(
      bob.request('updateTemplatePermissions', { id: ids.bobShared, accounts: 'nobody', op: 'add' }),
      is(431),
    );
    await assert.rejects(
      bob.request('updateTemplatePermissions', { id: ids.bobShared, isfeatured: true }),
      is(431),
    );
    await bob.request('updateTemplatePermissions', { id: ids.bobShared, op: 'remove', accounts: 'alice' });
    assert.deepEqual(await names(alice, 'sharedexecutable'), []);
    await bob.request('updateTemplatePermissions', { id: ids.bobPrivate, ispublic: true });
    assert.ok((await names(alice, 'community')).includes('bob-private'));
    await bob.request('updateTemplatePermissions', { id: ids.bobPrivate, ispublic: false });
  });

  test('updateTemplate changes names, OS type and details for the owner only', async () => {
    const other = (await admin.request<any>('listOsTypes', { description: 'Debian GNU/Linux 12 (64-bit)' }))
      .ostype[0];
    const t = (
      await alice.request<any>('updateTemplate', {
        id: ids.aliceSlow,
        displaytext: 'Alice slow, renamed',
        ostypeid: other.id,
        passwordenabled: true,
        details: [{ rootDiskController: 'scsi' }],
      })
    ).template;
    assert.equal(t.displaytext, 'Alice slow, renamed');
    assert.equal(t.ostypename, 'Debian GNU/Linux 12 (64-bit)');
    assert.equal(t.passwordenabled, true);
    assert.deepEqual(t.details, { rootDiskController: 'scsi' });
    await assert.rejects(bob.request('updateTemplate', { id: ids.aliceSlow, name: 'stolen' }), is(531));
  });
});

describe('copy, extract and delete', () => {
  test('zoneid=-1 registers for every zone with secondary storage; deleting removes every copy', async () => {
    const r = await admin.request<any>('registerTemplate', {
      name: 'everywhere',
      format: 'QCOW2',
      hypervisor: 'KVM',
      ostypeid: osType,
      zoneid: '-1',
      url: `${filesUrl}/fast.qcow2`,
    });
    assert.deepEqual(r.template.map((t: any) => t.zonename).sort(), ['tpl-nfs', 'tpl-z1', 'tpl-z2']);
    assert.ok(r.template.every((t: any) => t.crossZones === true));
    const id = r.template[0].id;
    assert.equal((await settled(id, ids.z1)).isready, true);
    assert.equal((await settled(id, ids.z2)).isready, true);
    assert.match((await settled(id, ids.z3)).status, /not mounted/);
    await admin.call('deleteTemplate', { id });
    for (const store of [ids.store1, ids.store2]) assert.ok(!filesUnder(store).some((f) => f.includes(id)));
    assert.deepEqual(await templates(admin, { templatefilter: 'all', id }), []);
  });

  test("copyTemplate copies the file into another zone's store", async () => {
    const copied = await admin.call<any>('copyTemplate', {
      id: ids.featured,
      sourcezoneid: ids.z1,
      destzoneid: ids.z2,
    });
    assert.equal(copied.template.zoneid, ids.z2);
    assert.equal(copied.template.isready, true);
    const both = await templates(alice, { templatefilter: 'featured', id: ids.featured });
    assert.deepEqual(both.map((t) => t.zonename).sort(), ['tpl-z1', 'tpl-z2']);
    const [file] = filesUnder(ids.store2).filter((f) => f.includes(ids.featured));
    assert.equal(statSync(join(ids.store2, file)).size, images.fast.length);
    await assert.rejects(
      admin.call('copyTemplate', { id: ids.featured, destzoneid: ids.z2 }),
      is(431, /already in zone/),
    );
    await assert.rejects(alice.request('copyTemplate', { id: ids.featured, destzoneid: ids.z2 }), is(531));
  });

  test('extractTemplate gives a working, unguessable URL once the template is extractable', async () => {
    await assert.rejects(
      alice.call('extractTemplate', { id: ids.aliceSlow, mode: 'HTTP_DOWNLOAD' }),
      is(431, /not extractable/),
    );
    await assert.rejects(
      alice.request('updateTemplatePermissions', { id: ids.aliceSlow, isextractable: true }),
      is(431),
    );
    await admin.request('updateTemplatePermissions', { id: ids.aliceSlow, isextractable: true });
    const r = await alice.call<any>('extractTemplate', {
      id: ids.aliceSlow,
      mode: 'HTTP_DOWNLOAD',
      zoneid: ids.z1,
    });
    assert.equal(r.template.state, 'DOWNLOAD_URL_CREATED');
    assert.equal(r.template.extractMode, 'HTTP_DOWNLOAD');
    assert.match(r.template.url, new RegExp(`^${server.url}/client/extract/[A-Za-z0-9_-]{32}/`));
    const res = await fetch(r.template.url);
    assert.equal(res.status, 200);
    assert.equal(sha256(Buffer.from(await res.arrayBuffer())), sha256(images.slow));
    const forged = r.template.url.replace(/extract\/[^/]+/, `extract/${'A'.repeat(32)}`);
    assert.equal((await fetch(forged)).status, 404);
    await assert.rejects(alice.call('extractTemplate', { id: ids.aliceSlow, mode: 'FTP_UPLOAD' }), is(431));
  });

  test('deletion is refused while in use unless forced, and removes the files', async () => {
    const busy = await register(alice, { name: 'alice-busy', displaytext: 'web [in use]' });
    await settled(busy.id, ids.z1);
    await assert.rejects(
      alice.call('deleteTemplate', { id: busy.id }),
      is(431, /used by VM web-1.*forced=true/),
    );
    assert.ok(filesUnder(ids.store1).some((f) => f.includes(busy.id)));
    await alice.call('deleteTemplate', { id: busy.id, forced: true });
    assert.ok(!filesUnder(ids.store1).some((f) => f.includes(busy.id)));

    await assert.rejects(bob.call('deleteTemplate', { id: ids.aliceSlow }), is(531));
    assert.deepEqual(await alice.call('deleteTemplate', { id: ids.aliceSlow }), { success: true });
    assert.ok(!filesUnder(ids.store1).some((f) => f.includes(ids.aliceSlow)));
    assert.deepEqual(await templates(alice, { templatefilter: 'self', id: ids.aliceSlow }), []);
    const [removed] = await templates(admin, { templatefilter: 'all', id: ids.aliceSlow, showremoved: true });
    assert.ok(removed.removed);
    await assert.rejects(alice.request('listTemplatePermissions', { id: ids.aliceSlow }), is(431));
  });
});

describe('ISOs', () => {
  test('register, list, refuse a non-ISO file, extract and delete', async () => {
    const r = await alice.request<any>('registerIso', {
      name: 'alice-iso',
      url: `${filesUrl}/tiny.iso`,
      zoneid: ids.z1,
      ostypeid: osType,
      isextractable: true,
    });
    const iso = r.iso[0];
    assert.equal(iso.bootable, true);
    let listed: any;
    for (let i = 0; i < 100 && !listed?.isready; i++) {
      [listed] = (await alice.request<any>('listIsos', { isofilter: 'self', id: iso.id })).iso;
      await new Promise((res) => setTimeout(res, 30));
    }
    assert.equal(listed.status, 'Successfully Installed');
    assert.equal(listed.size, images.iso.length);
    assert.equal(listed.format, undefined);
    assert.equal((await templates(alice, { templatefilter: 'self', id: iso.id })).length, 0);
    await assert.rejects(
      alice.request('registerIso', { name: 'x', url: `${filesUrl}/tiny.iso`, zoneid: ids.z1 }),
      is(431, /ostypeid/),
    );
    const notIso = (
      await alice.request<any>('registerIso', {
        name: 'not-iso',
        url: `${filesUrl}/fast.qcow2`,
        zoneid: ids.z1,
        bootable: false,
      })
    ).iso[0];
    let failed: any;
    for (let i = 0; i < 100 && !failed?.status?.includes('ISO 9660'); i++) {
      [failed] = (await alice.request<any>('listIsos', { isofilter: 'self', id: notIso.id })).iso;
      await new Promise((res) => setTimeout(res, 30));
    }
    assert.match(failed.status, /not an ISO 9660 image/);
    const copied = await alice.call<any>('copyIso', { id: iso.id, destzoneid: ids.z2 });
    assert.equal(copied.iso.zoneid, ids.z2);
    assert.equal(copied.iso.isready, true);
    await alice.request('updateIsoPermissions', { id: iso.id, ispublic: true });
    const seen = await bob.request<any>('listIsos', { isofilter: 'executable', id: iso.id });
    assert.deepEqual(seen.iso.map((i: any) => i.zonename).sort(), ['tpl-z1', 'tpl-z2']);
    const x = await alice.call<any>('extractIso', { id: iso.id, mode: 'HTTP_DOWNLOAD' });
    assert.equal((await fetch(x.iso.url)).status, 200);
    assert.deepEqual(await alice.call('deleteIso', { id: iso.id }), { success: true });
    assert.equal((await alice.request<any>('listIsos', { isofilter: 'self', id: iso.id })).count, undefined);
  });
});

describe('the python cs client', () => {
  test('registers a template and finds it with templatefilter=executable as cs_template does', async () => {
    const user = (await admin.request<any>('listUsers', { username: 'admin' })).user[0];
    const keys = await admin.request<any>('registerUserKeys', { id: user.id });
    // Asynchronously: the image server lives in this process and must keep serving meanwhile.
    const { stdout } = await promisify(execFile)(
      PYTHON,
      [
        join(import.meta.dirname, 'clients/cs_templates.py'),
        server.api,
        keys.userkeys.apikey,
        keys.userkeys.secretkey,
        ids.z1,
        osType,
        `${filesUrl}/fast.qcow2`,
        `{SHA-256}${sha256(images.fast)}`,
      ],
      { encoding: 'utf8' },
    );
    const out = JSON.parse(stdout);
    assert.ok(out.before.includes(BUILTIN));
    assert.equal(out.registered.name, 'ansible-tpl');
    assert.equal(out.registered.passwordenabled, true);
    const [found] = out.found;
    assert.equal(found.isready, true);
    for (const field of ['id', 'name', 'displaytext', 'hypervisor', 'format', 'ostypename', 'size', 'zoneid'])
      assert.ok(found[field] !== undefined, field);
    assert.equal(found.hypervisor, 'KVM');
  });
});

describe('a restart in the middle of a download', () => {
  test('the next management server takes the download over and completes it', async () => {
    const t = await register(admin, { name: 'restart-slow', url: `${filesUrl}/slow.qcow2` });
    for (let i = 0; i < 200; i++) {
      const [now] = await templates(admin, { templatefilter: 'self', id: t.id });
      if (/^[1-9]\d?% Downloaded$/.test(now.status)) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const { dataDir, databaseUrl } = server;
    await server.stop({ keepData: true });
    server = await startServer({
      dataDir,
      databaseUrl,
      nodeArgs: ['--import', join(import.meta.dirname, 'fixtures/template-hooks.ts')],
    });
    admin = server.admin;
    const done = await settled(t.id, ids.z1);
    assert.equal(done.status, 'Download Complete');
    assert.equal(done.physicalsize, images.slow.length);
    assert.ok(!filesUnder(ids.store1).some((f) => f.endsWith('.part')));
  });
});
