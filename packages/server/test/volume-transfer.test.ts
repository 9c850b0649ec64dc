/**
 * uploadVolume and extractVolume through the real server on simulator hosts: volumes downloaded
 * from an HTTP server of the test into secondary storage (progress, checksum, failures with their
 * reason, limits), attached to VMs (copied to primary storage), deleted, and served back through
 * extract links; bad input refused with nothing created.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { emptyQcow2 } from '../src/storage/images.ts';
import { seededLocalZone, waitUntil } from './agents.ts';
import { createAccountAndLogin, startServer, type TestServer } from './harness.ts';

const GiB = 2 ** 30;
let server: TestServer;
let http: Server;
let base: string;
let zoneid: string;
let templateid: string;
let small: string;
let customDisk: string;
const qcow = emptyQcow2(3 * GiB);
const raw = Buffer.alloc(2 * 2 ** 20, 7);
const sha256 = (b: Buffer) => `{SHA-256}${createHash('sha256').update(b).digest('hex')}`;
const fails = (code: number, text?: RegExp) => (e: any) => {
  assert.equal(e.errorcode, code, e.message);
  if (text) assert.match(e.message, text);
  return true;
};

before(async () => {
  http = createServer((req, res) => {
    const body = req.url === '/disk.qcow2' ? qcow : req.url === '/disk.raw' ? raw : undefined;
    if (!body) {
      res.writeHead(404).end('not here');
      return;
    }
    res.writeHead(200, { 'content-length': body.length }).end(body);
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  server = await startServer({ env: { NIMBOSTACK_SEED_LOCAL_ZONE: 'true' } });
  ({ zoneid, templateid, small, customDisk } = await seededLocalZone(server.admin));
});
after(async () => {
  await server?.stop();
  await new Promise((r) => http?.close(r));
});

async function settled(client: any, id: string) {
  let v: any;
  await waitUntil(
    async () => {
      v = (await client.request('listVolumes', { id })).volume?.[0];
      return v && v.state !== 'UploadOp';
    },
    15_000,
    `upload of ${id}`,
  );
  return v;
}

/** uploadVolume, then the volume once its download has settled (Uploaded or UploadError). */
async function uploaded(client: any, params: Record<string, string>) {
  return settled(client, (await client.call('uploadVolume', params)).volume.id);
}

describe('uploadVolume', () => {
  test('a QCOW2 volume is downloaded to secondary storage, attached (copied to primary) and kept', async () => {
    const { client } = await createAccountAndLogin(server, { name: 'up1' });
    const job = (
      await client.call<any>('uploadVolume', {
        name: 'imported',
        zoneid,
        format: 'QCOW2',
        url: `${base}/disk.qcow2`,
        checksum: sha256(qcow),
        diskofferingid: customDisk,
      })
    ).volume;
    assert.equal(job.name, 'imported');
    assert.ok(['UploadOp', 'Uploaded'].includes(job.state), job.state);
    const v = await settled(client, job.id);
    assert.equal(v.state, 'Uploaded', v.status);
    assert.equal(v.status, 'Upload Complete');
    assert.equal(v.size, 3 * GiB, 'the virtual size is read from the QCOW2 header');
    assert.equal(v.type, 'DATADISK');
    assert.equal(v.diskofferingid, customDisk);
    assert.equal(v.virtualmachineid, undefined);

    // Served back as it came.
    const link = (await client.call<any>('extractVolume', { id: v.id, zoneid, mode: 'HTTP_DOWNLOAD' }))
      .volume;
    assert.equal(link.id, v.id);
    assert.equal(link.state, 'DOWNLOAD_URL_CREATED');
    assert.equal(link.extractMode, 'HTTP_DOWNLOAD');
    assert.equal(link.zoneid, zoneid);
    const got = Buffer.from(await (await fetch(link.url)).arrayBuffer());
    assert.ok(got.equals(qcow), 'the extract link serves the uploaded file');

    const vm = (
      await client.call<any>('deployVirtualMachine', { zoneid, templateid, serviceofferingid: small })
    ).virtualmachine;
    // A copy that fails on the host leaves the volume Uploaded, to be attached again.
    await server.admin.request('configureSimulator', {
      name: 'createVolume',
      value: 'result:fail;message:simulated copy fault',
      count: 1,
      zoneid,
    });
    await assert.rejects(client.call('attachVolume', { id: v.id, virtualmachineid: vm.id }), (e: any) =>
      /simulated copy fault/.test(e.message),
    );
    assert.equal((await client.request<any>('listVolumes', { id: v.id })).volume[0].state, 'Uploaded');
    const attached = (await client.call<any>('attachVolume', { id: v.id, virtualmachineid: vm.id })).volume;
    assert.equal(attached.state, 'Ready');
    assert.equal(attached.virtualmachineid, vm.id);
    const asAdmin = (await server.admin.request<any>('listVolumes', { id: v.id, listall: true })).volume[0];
    assert.ok(asAdmin.storageid, 'the volume is on primary storage now');
    assert.ok(
      (await fetch(link.url)).status === 404,
      'the upload on secondary storage is gone once the volume is on primary storage',
    );
    await client.call('detachVolume', { id: v.id });
    await client.request('deleteVolume', { id: v.id });
    await server.admin.call('destroyVirtualMachine', { id: vm.id, expunge: true });
  });

  test('an Uploaded volume attached to a stopped VM is copied when the VM starts; deleting one removes its file', async () => {
    const { client } = await createAccountAndLogin(server, { name: 'up2' });
    const v = await uploaded(client, { name: 'rawdisk', zoneid, format: 'RAW', url: `${base}/disk.raw` });
    assert.equal(v.state, 'Uploaded', v.status);
    assert.equal(v.size, raw.length);
    const vm = (
      await client.call<any>('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid: small,
        startvm: false,
      })
    ).virtualmachine;
    const att = (await client.call<any>('attachVolume', { id: v.id, virtualmachineid: vm.id })).volume;
    assert.equal(att.state, 'Uploaded', 'nothing is copied while the VM is stopped');
    await client.call('startVirtualMachine', { id: vm.id });
    assert.equal((await client.request<any>('listVolumes', { id: v.id })).volume[0].state, 'Ready');
    await server.admin.call('destroyVirtualMachine', { id: vm.id, expunge: true });
    await client.request('deleteVolume', { id: v.id });

    const other = await uploaded(client, { name: 'gone', zoneid, format: 'RAW', url: `${base}/disk.raw` });
    const link = (await client.call<any>('extractVolume', { id: other.id, zoneid, mode: 'HTTP_DOWNLOAD' }))
      .volume;
    assert.equal((await fetch(link.url)).status, 200);
    await client.request('deleteVolume', { id: other.id });
    assert.equal(
      (await fetch(link.url)).status,
      404,
      'the deleted volume file is gone from secondary storage',
    );
    assert.equal((await client.request<any>('listVolumes', {})).count ?? 0, 0);
  });

  test('failed downloads show why and can be deleted; they cannot be attached', async () => {
    const { client } = await createAccountAndLogin(server, { name: 'up3' });
    const missing = await uploaded(client, {
      name: 'missing',
      zoneid,
      format: 'QCOW2',
      url: `${base}/nope.qcow2`,
    });
    assert.equal(missing.state, 'UploadError');
    assert.match(missing.status, /HTTP 404/);
    const corrupt = await uploaded(client, {
      name: 'corrupt',
      zoneid,
      format: 'QCOW2',
      url: `${base}/disk.qcow2`,
      checksum: sha256(raw),
    });
    assert.equal(corrupt.state, 'UploadError');
    assert.match(corrupt.status, /Checksum mismatch/);
    const notQcow = await uploaded(client, {
      name: 'notqcow',
      zoneid,
      format: 'QCOW2',
      url: `${base}/disk.raw`,
    });
    assert.equal(notQcow.state, 'UploadError');
    assert.match(notQcow.status, /not a QCOW2 image/);
    const events = await client.request<any>('listEvents', { type: 'VOLUME.UPLOAD', level: 'ERROR' });
    assert.ok(events.count >= 3);

    const vm = (
      await client.call<any>('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid: small,
        startvm: false,
      })
    ).virtualmachine;
    await assert.rejects(
      client.call('attachVolume', { id: missing.id, virtualmachineid: vm.id }),
      fails(431, /UploadError/),
    );
    await assert.rejects(
      client.call('extractVolume', { id: missing.id, zoneid, mode: 'HTTP_DOWNLOAD' }),
      fails(431, /UploadError/),
    );
    for (const v of [missing, corrupt, notQcow]) await client.request('deleteVolume', { id: v.id });
    await server.admin.call('destroyVirtualMachine', { id: vm.id, expunge: true });
    assert.equal((await client.request<any>('listVolumes', {})).count ?? 0, 0);
  });

  test('the secondary storage limit fails the upload with the reason; the volume limit refuses it', async () => {
    const { account, client } = await createAccountAndLogin(server, { name: 'up4' });
    await server.admin.request('updateResourceLimit', {
      resourcetype: 11,
      max: 0,
      account: 'up4',
      domainid: account.domainid as string,
    });
    const v = await uploaded(client, { name: 'big', zoneid, format: 'RAW', url: `${base}/disk.raw` });
    assert.equal(v.state, 'UploadError');
    assert.match(v.status, /secondary_storage/);
    await client.request('deleteVolume', { id: v.id });
    await server.admin.request('updateResourceLimit', {
      resourcetype: 2,
      max: 0,
      account: 'up4',
      domainid: account.domainid as string,
    });
    await assert.rejects(
      client.call('uploadVolume', { name: 'none', zoneid, format: 'RAW', url: `${base}/disk.raw` }),
      fails(535),
    );
    assert.equal((await client.request<any>('listVolumes', {})).count ?? 0, 0);
  });

  test('bad input is refused and records nothing', async () => {
    const { client } = await createAccountAndLogin(server, { name: 'up5' });
    const fixed = (await server.admin.request<any>('listDiskOfferings', {})).diskoffering.find(
      (d: any) => !d.iscustomized,
    ).id;
    const good = { name: 'x', zoneid, format: 'QCOW2', url: `${base}/disk.qcow2` };
    const cases: [Record<string, string>, RegExp][] = [
      [{ format: 'ISO' }, /Invalid format ISO/],
      [{ format: 'FOO' }, /Invalid format FOO/],
      [{ url: 'ftp://example.com/x.qcow2' }, /http:\/\/ or https:\/\//],
      [{ url: 'file:///etc/passwd' }, /http:\/\/ or https:\/\//],
      [{ url: 'not a url' }, /Invalid URL/],
      [{ checksum: '{SHA-256}abc' }, /Invalid checksum/],
      [{ diskofferingid: fixed }, /Please specify a custom sized disk offering/],
      [{ zoneid: '00000000-0000-4000-8000-000000000000' }, /zone/i],
      [{ name: '  ' }, /name/],
    ];
    for (const [change, why] of cases)
      await assert.rejects(client.call('uploadVolume', { ...good, ...change }), fails(431, why));
    await assert.rejects(client.call('uploadVolume', { zoneid, format: 'QCOW2', url: good.url }), fails(431));
    assert.equal((await client.request<any>('listVolumes', {})).count ?? 0, 0);
  });
});

describe('extractVolume', () => {
  test('running VMs refuse, stopped ones and detached disks give a link; modes and permissions as upstream', async () => {
    const { client } = await createAccountAndLogin(server, { name: 'ex1' });
    const vm = (
      await client.call<any>('deployVirtualMachine', { zoneid, templateid, serviceofferingid: small })
    ).virtualmachine;
    const root = (await client.request<any>('listVolumes', { virtualmachineid: vm.id })).volume[0];
    await assert.rejects(
      client.call('extractVolume', { id: root.id, zoneid, mode: 'HTTP_DOWNLOAD' }),
      fails(
        531,
        /Invalid state of the volume with specified ID. It should be either detached or the VM should be in stopped state./,
      ),
    );
    await assert.rejects(
      client.call('extractVolume', { id: root.id, zoneid, mode: 'FTP_UPLOAD', url: 'ftp://example.com/x' }),
      fails(431, /FTP_UPLOAD is not supported/),
    );
    await assert.rejects(
      client.call('extractVolume', { id: root.id, zoneid, mode: 'SCP' }),
      fails(431, /valid extract Mode/),
    );
    await client.call('stopVirtualMachine', { id: vm.id });
    // The ROOT disk carries the built-in template, which may not leave the cloud.
    await assert.rejects(
      client.call('extractVolume', { id: root.id, zoneid, mode: 'HTTP_DOWNLOAD' }),
      fails(531, /not allowed to be extracted/),
    );
    const other = await createAccountAndLogin(server, { name: 'ex2' });
    await assert.rejects(
      other.client.call('extractVolume', { id: root.id, zoneid, mode: 'HTTP_DOWNLOAD' }),
      (e: any) => e.errorcode === 531 || e.errorcode === 431,
    );
    const link = (
      await server.admin.call<any>('extractVolume', { id: root.id, zoneid, mode: 'HTTP_DOWNLOAD' })
    ).volume;
    assert.equal(link.id, root.id);
    assert.equal(link.state, 'DOWNLOAD_URL_CREATED');
    assert.match(link.url, /\/client\/extract\/[A-Za-z0-9_-]+\/extract-[0-9a-f-]+$/);
    // A detached data disk (made on primary storage while attached to the running VM) gives a link
    // to its owner: data disks carry no template.
    await client.call('startVirtualMachine', { id: vm.id });
    const disk = (
      await client.call<any>('createVolume', {
        zoneid,
        diskofferingid: customDisk,
        size: 1,
        name: 'data',
        virtualmachineid: vm.id,
      })
    ).volume;
    assert.equal(disk.state, 'Ready');
    await client.call('detachVolume', { id: disk.id });
    const diskLink = (await client.call<any>('extractVolume', { id: disk.id, zoneid, mode: 'HTTP_DOWNLOAD' }))
      .volume;
    assert.equal(diskLink.name, 'data');
    assert.notEqual(diskLink.url, link.url);
    await client.request('deleteVolume', { id: disk.id });
    const events = await server.admin.request<any>('listEvents', { type: 'VOLUME.EXTRACT', listall: true });
    assert.ok(events.count >= 1);
    await server.admin.call('destroyVirtualMachine', { id: vm.id, expunge: true });
  });
});
