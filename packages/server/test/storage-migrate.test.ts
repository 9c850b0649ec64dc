/**
 * migrateVolume between pools of different types with a real NFS server and a real VM (npm run
 * test:storage): NFS-Ganesha in a network namespace (storage/nfs-ganesha.ts), reached in user
 * space (NIMBOSTACK_KVM_NFS=libnfs), and the local zone's directory pool. Through the API:
 * - live: a Running VM's ROOT disk (a linked clone on the NFS pool) moved to the directory pool
 *   with migrateVolume livemigrate=true while a writer in the guest writes numbered records to
 *   it; the same QEMU process runs throughout (no restart), the writer goes on after the switch,
 *   a live snapshot and a live resize find the disk's new block node, the old copy is gone from
 *   the export, and every record written is read back from the new image after the VM is stopped;
 * - offline: the Stopped VM's ROOT disk moved back to the NFS pool (a flat copy checked against
 *   the source), the records read back through NFS, and the VM boots from it again;
 * - with Swift (storage/swift.ts, storage/s3-store.ts): an S3 store for the zone receives the
 *   backup of a snapshot of that disk on NFS, which is overwritten through NFS and reverted from
 *   it (records back);
 * - with Ceph installed (storage/ceph.ts): the rebooted guest's ROOT disk moved live from NFS to
 *   RBD while it writes, the records read back through librbd; a data disk on RBD hot-plugged
 *   beside it and moved live to the directory pool: its cephx secret object leaves QEMU with its
 *   old node (read over the agent's monitor: fixtures/qmp-tap.ts), the ROOT disk's stays;
 * - with Swift too: the S3 store receives the backup of a snapshot of the Stopped VM's RBD disk,
 *   which is overwritten, reverted from it (records back) and boots; a template from the snapshot
 *   deploys with its ROOT on NFS and boots; at the end no object or bucket left;
 * - the Stopped VM's disk moved offline from RBD to NFS (no RBD image left) and booted;
 * - a move to a pool the host cannot write to fails and leaves the volume on its pool, intact;
 *   a destination without the offering's storage tag is refused.
 * Then everything deleted and no file left in the export; the servers stopped.
 * Needs root, QEMU with qemu-block-extra, nfs-ganesha(-vfs), rpcbind and the test template.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { waitUntil } from './agents.ts';
import type { TestServer } from './harness.ts';
import { readyKvmTestTemplate } from './kvm-advanced-zone.ts';
import { type Ceph, cephInstalled, startCeph } from './storage/ceph.ts';
import { figure, HOST, LocalKvm, storageSkip } from './storage/local-kvm.ts';
import { type NfsServer, nfsGaneshaInstalled, startNfsGanesha } from './storage/nfs-ganesha.ts';
import { addS3Store, type ZoneS3Store } from './storage/s3-store.ts';
import { type Swift, startSwift, swiftInstalled } from './storage/swift.ts';

const SKIP = storageSkip({
  installed: nfsGaneshaInstalled(),
  needs: 'nfs-ganesha, nfs-ganesha-vfs, rpcbind and qemu-block-extra',
});

/** Where the guest writes its records: past the template's 128 MiB, which the guest never uses. */
const FIRST_SECTOR = (256 * 2 ** 20) / 512;

let kvm: LocalKvm;
let server: TestServer;
let nfs: NfsServer | undefined;
let ceph: Ceph | undefined;
let swift: Swift | undefined;

/** The last record number the guest reported written (each is fsynced before it is reported). */
const lastWritten = (instance: string) =>
  Math.max(0, ...[...kvm.readConsole(instance).matchAll(/NIMBO-W (\d+)/g)].map((m) => Number(m[1])));

/** Checks records 1..count in an image (a path or nfs:// URL) read on the host. */
function checkRecords(image: string, count: number): void {
  // A sparse raw copy: only the allocated clusters are read and written.
  const raw = join(kvm.root, 'records.raw');
  execFileSync('qemu-img', ['convert', '-U', '-O', 'raw', image, raw]);
  const bytes = Buffer.alloc((count + 1) * 512);
  const fd = openSync(raw, 'r');
  readSync(fd, bytes, 0, bytes.length, FIRST_SECTOR * 512);
  closeSync(fd);
  rmSync(raw);
  for (let i = 1; i <= count; i++) {
    const got = bytes.subarray(i * 512, i * 512 + 14).toString('latin1');
    assert.equal(got, `nimbo-${String(i).padStart(8, '0')}`, `record ${i} of ${count}`);
  }
}

before(async () => {
  if (SKIP) return;
  kvm = new LocalKvm('nimbo-migrate-');
  nfs = await startNfsGanesha();
  // The RBD leg runs where Ceph is installed (ceph-mon, ceph-mgr, ceph-osd, ceph-common); the S3
  // legs (snapshots of the NFS disk and of the RBD disk backed up to an S3 store and reverted, a
  // template from the latter on NFS) need Swift, started beside Ceph so that it adds no time.
  const timed = async <T>(name: string, start: () => Promise<T>): Promise<T> => {
    const t = Date.now();
    const started = await start();
    figure(name, Date.now() - t);
    return started;
  };
  const [c, w] = await Promise.allSettled([
    cephInstalled() ? timed('one-node Ceph (memstore): up', startCeph) : undefined,
    swiftInstalled() ? timed('Swift with s3api: up', startSwift) : undefined,
  ]);
  // Whichever started is kept, so that after() stops it even when the other failed.
  ceph = c.status === 'fulfilled' ? c.value : undefined;
  swift = w.status === 'fulfilled' ? w.value : undefined;
  for (const r of [c, w]) if (r.status === 'rejected') throw r.reason;
  if (!ceph) process.stdout.write('# Ceph is not installed: the move to RBD is not run\n');
  if (!swift) process.stdout.write('# Swift is not installed: the S3 backup legs are not run\n');
  // qmpTap: the RBD leg asks QEMU which secret objects it holds (kvm.qmp).
  server = await kvm.start({ NIMBOSTACK_KVM_NFS: 'libnfs' }, 2000, { qmpTap: true });
});

after(async () => {
  if (SKIP) return;
  await kvm?.stop(async () => {
    await nfs?.stop();
    await ceph?.stop();
    await swift?.stop();
  });
});

describe('volumes moved between NFS, directory and RBD pools; an S3 store', { skip: SKIP }, () => {
  test("a running VM's ROOT disk moves live while the guest writes; offline back; failures change nothing", async () => {
    const admin = server.admin;
    const zoneid = (await admin.request<any>('listZones', {})).zone[0].id;
    const local = (await admin.request<any>('listHosts', { zoneid, type: 'Routing' })).host[0];
    const nfsPool = (
      await admin.request<any>('createStoragePool', {
        zoneid,
        podid: local.podid,
        clusterid: local.clusterid,
        name: 'ganesha',
        url: `nfs://${nfs!.address}${nfs!.exportPath}`,
        tags: 'nfs',
      })
    ).storagepool;
    const dirPool = (
      await admin.request<any>('listStoragePools', { zoneid, clusterid: local.clusterid })
    ).storagepool.find((p: any) => p.type === 'Filesystem');
    const templateid = await readyKvmTestTemplate(admin, zoneid);
    const serviceofferingid = (
      await admin.request<any>('createServiceOffering', {
        name: 'move-small',
        displaytext: 'small, ROOT on NFS',
        cpunumber: 1,
        cpuspeed: 500,
        memory: 256,
        tags: 'nfs',
      })
    ).serviceoffering.id;

    // The writer: numbered 512-byte records, each fsynced to the ROOT disk past the file system,
    // each reported on the console once written; it stops at 100000 or when the VM stops.
    const script = [
      '#!/bin/sh',
      '(',
      '  i=1',
      '  while [ $i -le 100000 ]; do',
      `    printf 'nimbo-%08d' $i | dd of=/dev/vda bs=512 seek=$((${FIRST_SECTOR} + i)) count=1 conv=sync,fsync 2>/dev/null || break`,
      '    echo "NIMBO-W $i"',
      '    i=$((i + 1))',
      '  done',
      ') > /dev/console 2>&1 &',
      '',
    ].join('\n');
    let t = Date.now();
    const vm = (
      await admin.call<any>('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid,
        rootdisksize: 1,
        name: 'move-vm',
        userdata: Buffer.from(script).toString('base64'),
      })
    ).virtualmachine;
    const instance = (await admin.request<any>('listVirtualMachines', { id: vm.id })).virtualmachine[0]
      .instancename;
    await kvm.consoleLine(instance, /NIMBO-W 20\b/, { last: true });
    figure('deploy → the guest writing to its ROOT disk on NFS', Date.now() - t);
    const rootVolume = (await admin.request<any>('listVolumes', { virtualmachineid: vm.id, type: 'ROOT' }))
      .volume[0];
    assert.equal(rootVolume.storageid, nfsPool.id);
    assert.ok(nfs!.files().includes(rootVolume.id));
    const [pid] = kvm.qemuPids();

    // A move to a pool the host cannot write to (its path is under a regular file) fails; the
    // volume stays where it is and the guest writes on.
    writeFileSync(join(kvm.root, 'not-a-directory'), '');
    const badPool = (
      await admin.request<any>('createStoragePool', {
        zoneid,
        podid: local.podid,
        clusterid: local.clusterid,
        name: 'unwritable',
        url: `file://${kvm.root}/not-a-directory/pool`,
        capacitybytes: 2 ** 40,
        tags: 'nfs',
      })
    ).storagepool;
    await assert.rejects(
      admin.call('migrateVolume', { volumeid: rootVolume.id, storageid: badPool.id, livemigrate: true }),
      (e: any) => e.errorcode === 530,
    );
    const kept = (await admin.request<any>('listVolumes', { id: rootVolume.id })).volume[0];
    assert.equal(kept.storageid, nfsPool.id, 'the volume stays on its pool');
    assert.ok(nfs!.files().includes(rootVolume.id));
    assert.equal(
      Number(
        (await admin.request<any>('listStoragePools', { id: badPool.id })).storagepool[0].disksizeallocated,
      ),
      0,
      'nothing stays reserved on the pool',
    );
    await admin.request('deleteStoragePool', { id: badPool.id });

    // Live: NFS → directory pool while the guest writes.
    // The ROOT disk's offering is tagged nfs: the destination must carry the tag too.
    await assert.rejects(
      admin.request('migrateVolume', { volumeid: rootVolume.id, storageid: dirPool.id, livemigrate: true }),
      (e: any) => e.errorcode === 431 && /storage tags/.test(e.errortext),
    );
    await admin.request('updateStoragePool', { id: dirPool.id, tags: 'nfs' });
    const beforeMove = lastWritten(instance);
    t = Date.now();
    const moved = (
      await admin.call<any>('migrateVolume', {
        volumeid: rootVolume.id,
        storageid: dirPool.id,
        livemigrate: true,
      })
    ).volume;
    figure('migrateVolume livemigrate=true NFS → directory (1 GiB ROOT, guest writing)', Date.now() - t);
    const atSwitch = lastWritten(instance);
    assert.equal(moved.storageid, dirPool.id);
    // A small disk is copied in well under a second: the guest may not get to report a record.
    process.stdout.write(
      `# records reported before the move: ${beforeMove}, when it returned: ${atSwitch}\n`,
    );
    assert.equal(kvm.qemuPids()[0], pid, 'the same QEMU process: no restart');
    assert.equal(
      (await admin.request<any>('listVirtualMachines', { id: vm.id })).virtualmachine[0].state,
      'Running',
    );
    assert.ok(!nfs!.files().includes(rootVolume.id), 'the old copy is deleted from the export');
    const newFile = join(dirPool.path, rootVolume.id);
    assert.ok(existsSync(newFile), `the new copy is in the directory pool (${newFile})`);
    const info = JSON.parse(
      execFileSync('qemu-img', ['info', '-U', '--output=json', newFile], { encoding: 'utf8' }),
    );
    assert.equal(info['backing-filename'], undefined, 'a standalone image: the template is folded in');
    assert.equal(info['virtual-size'], 2 ** 30);
    // The guest goes on writing to the new image, without a restart (it would print ready again).
    await waitUntil(async () => lastWritten(instance) >= atSwitch + 30, 60_000, 'writes after the switch');
    assert.equal(
      kvm.readConsole(instance).match(/NIMBO: ready/g)?.length ?? 0,
      1,
      'the guest did not reboot',
    );
    // The disk's block node has a new name now: a live snapshot (an overlay on that node, committed
    // back) and a live resize find it.
    const snap = (await admin.call<any>('createSnapshot', { volumeid: rootVolume.id })).snapshot;
    assert.equal(snap.state, 'BackedUp');
    await admin.call('deleteSnapshot', { id: snap.id });
    const grown = (await admin.call<any>('resizeVolume', { id: rootVolume.id, size: 2 })).volume;
    assert.equal(grown.size, 2 * 2 ** 30);

    // Stopped: every record the guest reported is in the new image.
    await admin.call('stopVirtualMachine', { id: vm.id, forced: true });
    const written = lastWritten(instance);
    checkRecords(newFile, written);
    process.stdout.write(
      `# ${written} records written, ${written - beforeMove} of them during or after the move\n`,
    );

    // Offline: directory → NFS, checked, and the VM boots from it.
    t = Date.now();
    const back = (await admin.call<any>('migrateVolume', { volumeid: rootVolume.id, storageid: nfsPool.id }))
      .volume;
    figure('migrateVolume offline directory → NFS (2 GiB ROOT)', Date.now() - t);
    assert.equal(back.storageid, nfsPool.id);
    assert.ok(!existsSync(newFile), 'the directory copy is deleted');
    const onNfs = `nfs://${nfs!.address}${nfs!.exportPath}/${rootVolume.id}`;
    checkRecords(onNfs, written);

    // With Swift: an S3 store for the zone (kept for the RBD leg) receives a snapshot of the
    // disk on NFS; the records are overwritten through NFS, and the revert from S3 brings them back.
    const s3 = swift ? await addS3Store(admin, swift, zoneid, 'nimbo-migrate-backups') : undefined;
    if (s3) {
      t = Date.now();
      const snap = (await admin.call<any>('createSnapshot', { volumeid: rootVolume.id })).snapshot;
      figure('snapshot of the NFS ROOT disk backed up to S3', Date.now() - t);
      assert.equal(snap.state, 'BackedUp');
      const keys = await s3.objects();
      assert.ok(
        keys.some((k) => k.includes(snap.id)),
        `the backup is an object in the bucket (${keys.join(', ')})`,
      );
      execFileSync('qemu-io', [
        '-f',
        'qcow2',
        '-c',
        `write -P 0 ${FIRST_SECTOR * 512} ${(written + 1) * 512}`,
        onNfs,
      ]);
      assert.throws(() => checkRecords(onNfs, written), /record 1 of/);
      t = Date.now();
      await admin.call('revertSnapshot', { id: snap.id });
      figure('revert of the NFS ROOT disk from S3', Date.now() - t);
      checkRecords(onNfs, written);
      await admin.call('deleteSnapshot', { id: snap.id });
      assert.ok(!(await s3.objects()).some((k) => k.includes(snap.id)), 'its object went with it');
    }
    rmSync(join(kvm.root, 'agent', HOST, 'vms', instance, 'console.log'), { force: true });
    await admin.call('startVirtualMachine', { id: vm.id });
    await kvm.consoleLine(instance, /NIMBO: ready hostname=move-vm/, { last: true });

    if (ceph) {
      // Live NFS → RBD (a raw image; QEMU gets the cephx key as a secret object) while the
      // guest, booted again, writes its records anew.
      const c = ceph;
      const rbdPool = (
        await admin.request<any>('createStoragePool', {
          zoneid,
          podid: local.podid,
          clusterid: local.clusterid,
          name: 'ceph',
          url: `rbd://${c.user}:${encodeURIComponent(c.key)}@${c.monitor}:${c.port}/${c.pool}`,
          tags: 'nfs,ceph',
        })
      ).storagepool;
      await kvm.consoleLine(instance, /NIMBO-W 20\b/, { timeoutMs: 90_000, last: true });
      const beforeRbd = lastWritten(instance);
      t = Date.now();
      const onRbd = (
        await admin.call<any>('migrateVolume', {
          volumeid: rootVolume.id,
          storageid: rbdPool.id,
          livemigrate: true,
        })
      ).volume;
      figure('migrateVolume livemigrate=true NFS → RBD (2 GiB ROOT, guest writing)', Date.now() - t);
      assert.equal(onRbd.storageid, rbdPool.id);
      // Named apart from the NFS copy's relative path (the uuid), which the server deletes next.
      const image = c.images().find((i) => i.startsWith(rootVolume.id));
      assert.ok(image, `the ROOT disk is an RBD image (${c.images().join(', ')})`);
      assert.ok(!nfs!.files().includes(rootVolume.id), 'and gone from the export');
      const atRbd = lastWritten(instance);
      await waitUntil(
        async () => lastWritten(instance) >= atRbd + 30,
        60_000,
        'writes after the switch to RBD',
      );
      assert.ok(
        !readFileSync(join(kvm.root, 'agent', HOST, 'vms', instance, 'vm.json'), 'utf8').includes(c.key),
      );
      await secretLeg(c, { zoneid, vm, instance, rbdPool, dirPool });
      await admin.call('stopVirtualMachine', { id: vm.id, forced: true });
      const onCeph = lastWritten(instance);
      checkRecords(`rbd:${c.pool}/${image}:conf=${c.conf}`, onCeph);
      process.stdout.write(`# ${onCeph} records on RBD, ${onCeph - beforeRbd} during or after the move\n`);
      if (s3) await s3Leg(c, s3, { zoneid, vm, instance, rootVolume, nfsPool, records: onCeph });
      // Offline RBD → NFS (a copy between pool types through the host's VolumeStores).
      t = Date.now();
      const offNfs = (
        await admin.call<any>('migrateVolume', { volumeid: rootVolume.id, storageid: nfsPool.id })
      ).volume;
      figure('migrateVolume offline RBD → NFS (2 GiB ROOT)', Date.now() - t);
      assert.equal(offNfs.storageid, nfsPool.id);
      await waitUntil(async () => !c.images().includes(image!), 30_000, 'the RBD copy to be deleted');
      assert.ok(
        nfs!.files().some((f) => f.startsWith(rootVolume.id)),
        `the ROOT disk is in the export (${nfs!.files().join(', ')})`,
      );
      rmSync(join(kvm.root, 'agent', HOST, 'vms', instance, 'console.log'), { force: true });
      await admin.call('startVirtualMachine', { id: vm.id });
      await kvm.consoleLine(instance, /NIMBO: ready hostname=move-vm/, { timeoutMs: 120_000, last: true });
      await admin.call('stopVirtualMachine', { id: vm.id, forced: true });
      await admin.request('deleteStoragePool', { id: rbdPool.id });
      assert.deepEqual(c.images(), [], 'no RBD image left');
    }
    await s3?.remove();
    await admin.call('destroyVirtualMachine', { id: vm.id, expunge: true }).catch(() => undefined);
    await waitUntil(
      async () => !nfs!.files().some((f) => f.startsWith(rootVolume.id)),
      30_000,
      'the ROOT disk to be deleted',
    );
    await admin.request('deleteStoragePool', { id: nfsPool.id });
    const left = nfs!.files().filter((f) => !f.startsWith('.nimbostack-heartbeat'));
    assert.deepEqual(left, [], 'no file is left in the export');
  });
});

/**
 * The running VM's ROOT disk is on RBD (its node opened with a cephx secret object): a data disk
 * on RBD is hot-plugged (its own secret object) and moved live to the directory pool; once its old
 * node is closed its secret object is gone from QEMU, the ROOT disk's stays, and the RBD image is
 * deleted. QEMU's objects are read over the agent's monitor connection (fixtures/qmp-tap.ts).
 */
async function secretLeg(
  c: Ceph,
  ctx: { zoneid: string; vm: any; instance: string; rbdPool: any; dirPool: any },
): Promise<void> {
  const admin = server.admin;
  const { zoneid, vm, instance, rbdPool, dirPool } = ctx;
  const secrets = async () =>
    (await kvm.qmp<{ name: string; type: string }[]>(instance, 'qom-list', { path: '/objects' }))
      .filter((o) => o.type === 'child<secret>')
      .map((o) => o.name)
      .sort();
  const withRoot = await secrets();
  assert.equal(withRoot.length, 1, `the ROOT disk's node has its secret (${withRoot.join(', ')})`);
  const diskofferingid = (
    await admin.request<any>('createDiskOffering', {
      name: 'ceph-1',
      displaytext: '1 GB on RBD',
      disksize: 1,
      tags: 'ceph',
    })
  ).diskoffering.id;
  const data = (await admin.call<any>('createVolume', { name: 'ceph-data', zoneid, diskofferingid })).volume;
  await admin.call('attachVolume', { id: data.id, virtualmachineid: vm.id });
  assert.equal((await admin.request<any>('listVolumes', { id: data.id })).volume[0].storageid, rbdPool.id);
  const withData = await secrets();
  assert.equal(withData.length, 2, `the data disk's node has its own (${withData.join(', ')})`);
  await admin.request('updateStoragePool', { id: dirPool.id, tags: 'nfs,ceph' });
  const t = Date.now();
  const moved = (
    await admin.call<any>('migrateVolume', { volumeid: data.id, storageid: dirPool.id, livemigrate: true })
  ).volume;
  figure('migrateVolume livemigrate=true RBD → directory (1 GiB data disk)', Date.now() - t);
  assert.equal(moved.storageid, dirPool.id);
  assert.deepEqual(await secrets(), withRoot, "the moved disk's secret is gone, the ROOT disk's stays");
  await waitUntil(async () => !c.images().includes(data.id), 30_000, 'the RBD copy to be deleted');
  await admin.call('detachVolume', { id: data.id });
  await admin.request('deleteVolume', { id: data.id });
  assert.ok(!existsSync(join(dirPool.path, data.id)), 'the moved copy is deleted');
}

/**
 * The Stopped VM's ROOT disk is on RBD: a snapshot of the disk is backed up to the zone's S3 store
 * (Swift's s3api) and reverted, and the VM boots again; a template made from the snapshot is
 * deployed with its ROOT on the NFS pool and boots; then the snapshot and template are deleted
 * with their objects.
 */
async function s3Leg(
  c: Ceph,
  s3: ZoneS3Store,
  ctx: { zoneid: string; vm: any; instance: string; rootVolume: any; nfsPool: any; records: number },
): Promise<void> {
  const admin = server.admin;
  const { zoneid, vm, instance, rootVolume, nfsPool, records } = ctx;
  const objects = () => s3.objects();
  let t = Date.now();
  const snap = (await admin.call<any>('createSnapshot', { volumeid: rootVolume.id })).snapshot;
  figure('snapshot of the RBD ROOT disk backed up to S3', Date.now() - t);
  assert.equal(snap.state, 'BackedUp');
  const keys = await objects();
  assert.ok(
    keys.some((k) => k.includes(snap.id)),
    `the backup is an object in the bucket (${keys.join(', ')})`,
  );
  const image = c.images().find((i) => i.startsWith(rootVolume.id));
  assert.ok(image, 'the disk is still an RBD image');
  const spec = `rbd:${c.pool}/${image}:conf=${c.conf}`;
  // The records are overwritten after the snapshot: the revert brings them back.
  execFileSync('qemu-io', [
    '-f',
    'raw',
    '-c',
    `write -P 0 ${FIRST_SECTOR * 512} ${(records + 1) * 512}`,
    spec,
  ]);
  assert.throws(() => checkRecords(spec, records), /record 1 of/);
  t = Date.now();
  await admin.call('revertSnapshot', { id: snap.id });
  figure('revert of the RBD ROOT disk from S3', Date.now() - t);
  const reverted = c.images().find((i) => i.startsWith(rootVolume.id));
  checkRecords(`rbd:${c.pool}/${reverted}:conf=${c.conf}`, records);
  rmSync(join(kvm.root, 'agent', HOST, 'vms', instance, 'console.log'), { force: true });
  await admin.call('startVirtualMachine', { id: vm.id });
  await kvm.consoleLine(instance, /NIMBO: ready hostname=move-vm/, { timeoutMs: 120_000, last: true });
  await admin.call('stopVirtualMachine', { id: vm.id, forced: true });

  // A template from the snapshot, deployed with its ROOT on the NFS pool (the only pool tagged
  // ganesha).
  t = Date.now();
  const made = (
    await admin.call<any>('createTemplate', {
      snapshotid: snap.id,
      name: 'from-rbd-snap',
      displaytext: 'from a snapshot of an RBD disk',
      ostypeid: (await admin.request<any>('listOsTypes', {})).ostype[0].id,
    })
  ).template;
  figure('createTemplate from the snapshot on S3', Date.now() - t);
  assert.equal(made.isready, true);
  const withTemplate = await objects();
  assert.ok(
    withTemplate.some((k) => k.includes(made.id)),
    `the template is an object in the bucket (${withTemplate.join(', ')})`,
  );
  await admin.request('updateStoragePool', { id: nfsPool.id, tags: 'nfs,ganesha' });
  const onNfs = (
    await admin.request<any>('createServiceOffering', {
      name: 'on-ganesha',
      displaytext: 'small, ROOT on the NFS pool',
      cpunumber: 1,
      cpuspeed: 500,
      memory: 256,
      tags: 'ganesha',
    })
  ).serviceoffering.id;
  t = Date.now();
  const copy = (
    await admin.call<any>('deployVirtualMachine', {
      zoneid,
      templateid: made.id,
      serviceofferingid: onNfs,
      name: 'from-snap',
    })
  ).virtualmachine;
  const copyInstance = (await admin.request<any>('listVirtualMachines', { id: copy.id })).virtualmachine[0]
    .instancename;
  await kvm.consoleLine(copyInstance, /NIMBO: ready hostname=from-snap/, { timeoutMs: 120_000 });
  figure('deploy from the snapshot template on NFS → guest ready', Date.now() - t);
  const copyRoot = (await admin.request<any>('listVolumes', { virtualmachineid: copy.id, type: 'ROOT' }))
    .volume[0];
  assert.equal(copyRoot.storageid, nfsPool.id, 'its ROOT disk is on the NFS pool');
  await admin.call('destroyVirtualMachine', { id: copy.id, expunge: true });
  await admin.call('deleteSnapshot', { id: snap.id });
  await admin.call('deleteTemplate', { id: made.id });
  const ours = (await objects()).filter((k) => k.includes(snap.id) || k.includes(made.id));
  assert.deepEqual(ours, [], 'deleting the snapshot and the template deleted their objects');
}
