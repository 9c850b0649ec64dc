/**
 * Snapshot backups on an object store with a real host: the KVM local zone (this machine as the
 * host, its agent in the server process) and a Swift store for the zone (test/storage/swift.ts).
 * A VM's root disk is snapshotted: the agent writes the backup into the store's staging directory,
 * the server uploads it to the Swift container and removes the staged file; reverting the disk
 * and making a volume from the snapshot stage it back first, and the volume is attached to the
 * VM; extractVolume's link is signed by Swift; deleting the snapshot deletes its object, and
 * deleting the store its container (with the extract copy).
 * Needs root, QEMU, the test template (npm run setup:host) and Swift: `npm run test:storage`.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { HeadBucketCommand, HeadObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { s3Client } from '../src/storage/object-stores.ts';
import { startServer, type TestServer } from './harness.ts';
import { readyKvmTestTemplate } from './kvm-advanced-zone.ts';
import {
  SWIFT_ACCOUNT,
  SWIFT_KEY,
  SWIFT_USER,
  type Swift,
  startSwift,
  swiftInstalled,
} from './storage/swift.ts';

const TEMPLATE = process.env.NIMBOSTACK_TEST_TEMPLATE ?? '/var/lib/nimbostack/test-template.qcow2';
const SKIP =
  process.env.NIMBOSTACK_TEST_STORAGE !== '1'
    ? 'storage suite: run it with npm run test:storage'
    : !swiftInstalled()
      ? 'needs swift-proxy-server and memcached'
      : process.getuid?.() !== 0
        ? 'needs root (a KVM host)'
        : !existsSync(TEMPLATE)
          ? `${TEMPLATE} is missing: run npm run setup:host`
          : false;

const figure = (name: string, ms: number) =>
  process.stdout.write(`# figure ${name}: ${(ms / 1000).toFixed(2)} s\n`);

describe('snapshot backups on a Swift store, with a KVM host', { skip: SKIP, timeout: 600_000 }, () => {
  let swift: Swift;
  let server: TestServer;
  let root = '';
  let s3: ReturnType<typeof s3Client>;

  before(async () => {
    swift = await startSwift();
    s3 = s3Client(
      {
        endpoint: swift.endpoint,
        bucket: '',
        region: 'us-east-1',
        accessKey: `${SWIFT_ACCOUNT}:${SWIFT_USER}`,
        createdBucket: false,
      },
      SWIFT_KEY,
    );
    root = mkdtempSync(join(tmpdir(), 'nimbo-kvm-objsnap-'));
    server = await startServer({
      env: {
        NIMBOSTACK_SEED_LOCAL_ZONE: 'true',
        NIMBOSTACK_HYPERVISOR: 'kvm',
        NIMBOSTACK_KVM_STATE_DIR: join(root, 'agent'),
        NIMBOSTACK_KVM_STORAGE_DIR: root,
        NIMBOSTACK_KVM_TEMPLATE: TEMPLATE,
      },
    });
  });

  after(async () => {
    if (server) {
      // VMs and the router go through the API, even after a failure.
      const admin = server.admin;
      const vms = await admin.request<any>('listVirtualMachines', { listall: true }).catch(() => ({}));
      for (const v of vms.virtualmachine ?? [])
        await admin.call('destroyVirtualMachine', { id: v.id, expunge: true }).catch(() => undefined);
      const hosts = await admin.request<any>('listHosts', {}).catch(() => ({}));
      for (const h of hosts.host ?? [])
        await admin.request('deleteHost', { id: h.id, forced: true }).catch(() => undefined);
      await server.stop();
    }
    s3?.destroy();
    await swift?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  test('a root disk snapshot goes to Swift, is restored from it and deleted', async () => {
    const admin = server.admin;
    const zoneid: string = (await admin.request<any>('listZones', {})).zone[0].id;
    const templateid: string = await readyKvmTestTemplate(admin, zoneid);
    const small: string = (await admin.request<any>('listServiceOfferings', { name: 'Small Instance' }))
      .serviceoffering[0].id;
    const store = (
      await admin.request<any>('addImageStore', {
        provider: 'Swift',
        name: 'swift-snapshots',
        zoneid,
        url: swift.authUrl,
        'details[0].key': 'account',
        'details[0].value': SWIFT_ACCOUNT,
        'details[1].key': 'username',
        'details[1].value': SWIFT_USER,
        'details[2].key': 'key',
        'details[2].value': SWIFT_KEY,
      })
    ).imagestore;
    const container = `nimbostack-${store.id}`;
    const staging = join(server.dataDir, 'image-stores', store.id);
    const vm = (
      await admin.call<any>('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid: small,
        name: 'objsnap',
      })
    ).virtualmachine;
    assert.equal(vm.state, 'Running');
    await admin.call('stopVirtualMachine', { id: vm.id });
    const rootVol = (await admin.request<any>('listVolumes', { virtualmachineid: vm.id, type: 'ROOT' }))
      .volume[0];

    let t0 = Date.now();
    const snap = (await admin.call<any>('createSnapshot', { volumeid: rootVol.id })).snapshot;
    figure('root disk snapshot backed up to Swift', Date.now() - t0);
    assert.equal(snap.state, 'BackedUp');
    const key = `snapshots/${snap.id}.qcow2`;
    const head = await s3.send(new HeadObjectCommand({ Bucket: container, Key: key }));
    assert.ok(Number(head.ContentLength) > 0, 'the backup is an object in the container');
    assert.ok(!existsSync(join(staging, key)), 'the staged backup was removed after the upload');

    // Reverting stages it back for the agent.
    t0 = Date.now();
    await admin.call('revertSnapshot', { id: snap.id });
    figure('revert from Swift (staging included)', Date.now() - t0);
    assert.equal(statSync(join(staging, key)).size, Number(head.ContentLength));

    // A volume made from it is created from the staged backup when the VM starts with it.
    const restored = (await admin.call<any>('createVolume', { snapshotid: snap.id, name: 'restored' }))
      .volume;
    await admin.call('attachVolume', { id: restored.id, virtualmachineid: vm.id });
    t0 = Date.now();
    await admin.call('startVirtualMachine', { id: vm.id });
    figure('VM started with a volume made from the snapshot', Date.now() - t0);
    const made = (await admin.request<any>('listVolumes', { id: restored.id })).volume[0];
    assert.equal(made.state, 'Ready');
    assert.equal(made.virtualmachineid, vm.id);
    assert.equal(made.size, rootVol.size, 'the size of the snapshotted disk');
    // Stopped first: a guest still booting does not answer a hot unplug.
    await admin.call('stopVirtualMachine', { id: vm.id, forced: true });
    await admin.call('detachVolume', { id: restored.id });

    // extractVolume: the host copies the disk into the staging directory, the server uploads it
    // and the link is Swift's own; curl gets a QCOW2 image of the disk's size.
    t0 = Date.now();
    const extract = (
      await admin.call<any>('extractVolume', { id: rootVol.id, zoneid, mode: 'HTTP_DOWNLOAD' })
    ).volume;
    figure('extractVolume of the root disk through Swift', Date.now() - t0);
    assert.ok(extract.url.startsWith(`${swift.endpoint}/${container}/`), extract.url);
    const file = join(root, 'extracted.qcow2');
    execFileSync('curl', ['-sf', '-o', file, extract.url]);
    const info = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', file], { encoding: 'utf8' }));
    assert.equal(info.format, 'qcow2');
    assert.equal(info['virtual-size'], rootVol.size);
    await admin.request('deleteVolume', { id: restored.id });

    await admin.call('deleteSnapshot', { id: snap.id });
    const keys = (await s3.send(new ListObjectsV2Command({ Bucket: container }))).Contents ?? [];
    assert.ok(!keys.some((o) => o.Key === key), 'deleting the snapshot deleted its object');

    await admin.call('destroyVirtualMachine', { id: vm.id, expunge: true });
    // The store still holds the built-in template every zonal store is given: move it home first.
    const local = (await admin.request<any>('listImageStores', { provider: 'NFS' })).imagestore[0];
    await admin.call('migrateSecondaryStorageData', { srcpool: store.id, destpools: local.id });
    await admin.request('deleteImageStore', { id: store.id });
    const gone = await s3.send(new HeadBucketCommand({ Bucket: container })).then(
      () => false,
      (e) => e.$metadata?.httpStatusCode === 404,
    );
    assert.ok(gone, 'the container went with the store');
    assert.ok(!existsSync(staging), 'and its staging directory');
  });
});
