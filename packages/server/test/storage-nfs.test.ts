/**
 * NFS primary storage with a real NFS server and a real VM (npm run test:storage): NFS-Ganesha in
 * a network namespace reached over a veth pair (storage/nfs-ganesha.ts), and the KVM local zone
 * whose host reaches NFS pools in user space (NIMBOSTACK_KVM_NFS=libnfs, as an agent's --nfs
 * libnfs: QEMU's nfs:// driver, no kernel mount; this kernel has no NFS client). Through the API:
 * an NFS pool added to the
 * cluster (type NetworkFilesystem, its size measured on the export by the agent) and tagged so
 * that tagged offerings land on it; a VM boots from a ROOT disk on the
 * export (a linked clone of the template copied into the pool); a data volume on the export is
 * hot-plugged, written and read back by the guest, and its bytes are read back on the host
 * through NFS, and grown live; a snapshot of the running ROOT disk, reverted with the VM stopped
 * (still a linked clone, and it boots again); migrateVolume of the data disk to the zone's
 * directory pool and back; then everything deleted, the pool removed, and no file left in the
 * export; the servers stopped.
 * Needs kvm.root, QEMU with qemu-block-extra, nfs-ganesha(-vfs), rpcbind and the test template.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { NfsExport } from '@nimbostack/protocol/nfs-client';
import { waitUntil } from './agents.ts';
import type { TestServer } from './harness.ts';
import { readyKvmTestTemplate } from './kvm-advanced-zone.ts';
import { dataDiskProbe, figure, HOST, LocalKvm, storageSkip, taggedOfferings } from './storage/local-kvm.ts';
import { type NfsServer, nfsGaneshaInstalled, startNfsGanesha } from './storage/nfs-ganesha.ts';

const SKIP = storageSkip({
  installed: nfsGaneshaInstalled(),
  needs: 'nfs-ganesha, nfs-ganesha-vfs, rpcbind and qemu-block-extra',
});

let kvm: LocalKvm;
let server: TestServer;
let nfs: NfsServer | undefined;

const nfsUrl = (name: string) => `nfs://${nfs!.address}${nfs!.exportPath}/${name}`;

before(async () => {
  if (SKIP) return;
  kvm = new LocalKvm('nimbo-nfs-');
  const t = Date.now();
  nfs = await startNfsGanesha();
  figure('NFS-Ganesha in its namespace: up', Date.now() - t);
  // Its own range of VM, router and network ids (the names instances, taps and routers get), apart
  // from the other real-host suites that may run beside it (storage-iscsi.test.ts has 4000).
  server = await kvm.start({ NIMBOSTACK_KVM_NFS: 'libnfs' }, 5000);
});

after(async () => {
  if (SKIP) return;
  await kvm?.stop(() => nfs?.stop());
});

describe('NFS primary storage with a real NFS server and a real VM', { skip: SKIP }, () => {
  test('an NFS pool through the API: a VM boots from it, a data volume on it is written and read back, nothing is left', async () => {
    const admin = server.admin;
    const zoneid = (await admin.request<any>('listZones', {})).zone[0].id;
    const local = (await admin.request<any>('listHosts', { zoneid, type: 'Routing' })).host[0];

    assert.equal(local.name, HOST);

    // The pool: its size comes from the export's file system, measured through NFS (FSSTAT).
    let t = Date.now();
    const pool = (
      await admin.request<any>('createStoragePool', {
        zoneid,
        podid: local.podid,
        clusterid: local.clusterid,
        name: 'ganesha',
        url: `nfs://${nfs!.address}${nfs!.exportPath}`,
        tags: 'nfs',
      })
    ).storagepool;
    figure('createStoragePool (measured by the host)', Date.now() - t);
    assert.equal(pool.type, 'NetworkFilesystem');
    assert.equal(pool.ipaddress, nfs!.address);
    assert.equal(pool.path, nfs!.exportPath);
    assert.equal(pool.scope, 'CLUSTER');
    const fs = statfsSync(nfs!.exportPath);
    assert.equal(pool.disksizetotal, fs.blocks * fs.bsize, "the pool's size is the export's file system's");
    assert.ok(pool.disksizeused > 0 && pool.disksizeused < pool.disksizetotal, 'its use is measured too');
    // VM HA's heartbeat (agent/src/heartbeat.ts) reaches the pool as the host's disks do, here in
    // user space: the record appears on the export within the heartbeat interval (10 s), fresh,
    // and the agent's NFSv3 client reads it back.
    const record = `.nimbostack-heartbeat/${local.id}.json`;
    const beat = await waitUntil(
      async () => {
        const path = join(nfs!.exportPath, record);
        if (!existsSync(path)) return undefined;
        const r = JSON.parse(readFileSync(path, 'utf8'));
        return Date.now() - r.time < 15_000 ? r : undefined;
      },
      30_000,
      'the heartbeat record on the export',
    );
    assert.equal(beat.host, local.id);
    const viaNfs = JSON.parse(
      (await new NfsExport(nfs!.address, nfs!.exportPath).readFile(record)).toString(),
    );
    assert.equal(viaNfs.host, local.id);
    const types = await admin.request<any>('listStorageProviders', { type: 'primary' });
    assert.deepEqual(
      types.dataStoreProvider.map((p: any) => p.name),
      ['DefaultPrimary', 'LinuxTgt'],
    );

    const templateid = await readyKvmTestTemplate(admin, zoneid);
    const { serviceofferingid, diskofferingid } = await taggedOfferings(admin, 'nfs', 'NFS');

    // The guest writes this to its data disk once it appears and reads it back (dataDiskProbe).
    const marker = `nimbo-nfs-${process.pid}`;
    t = Date.now();
    const vm = (
      await admin.call<any>('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid,
        name: 'nfs-vm',
        userdata: dataDiskProbe(marker),
      })
    ).virtualmachine;
    figure('deploy (template copied into the pool, linked clone on NFS) → Running', Date.now() - t);
    assert.equal(vm.state, 'Running');
    const instance = (await admin.request<any>('listVirtualMachines', { id: vm.id })).virtualmachine[0]
      .instancename;
    await kvm.consoleLine(instance, /NIMBO: ready hostname=nfs-vm/);
    figure('deploy → the guest booted from NFS is ready', Date.now() - t);

    const rootVolume = (await admin.request<any>('listVolumes', { virtualmachineid: vm.id, type: 'ROOT' }))
      .volume[0];
    assert.equal(rootVolume.storageid, pool.id, 'the ROOT disk is on the NFS pool');
    const files = nfs!.files();
    assert.ok(files.includes(rootVolume.id), `the ROOT disk's file is in the export (${files.join(', ')})`);
    assert.ok(
      files.some((f) => /^template-[0-9a-f-]+\.qcow2$/.test(f)),
      'the template was copied into the pool once',
    );
    // QEMU opens the disk through its NFS driver, not a local path.
    const [pid] = kvm.qemuPids();
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    assert.match(cmdline, /"driver":"nfs"/);
    assert.match(cmdline, new RegExp(`"path":"${nfs!.exportPath}/${rootVolume.id}"`));

    // A data volume on the pool, hot-plugged, written and read back by the guest.
    const data = (await admin.call<any>('createVolume', { name: 'nfs-data', zoneid, diskofferingid })).volume;
    t = Date.now();
    await admin.call('attachVolume', { id: data.id, virtualmachineid: vm.id });
    const line = await kvm.consoleLine(instance, /NIMBO-DATA read/);
    figure('attachVolume → the guest wrote and read its NFS data disk', Date.now() - t);
    assert.equal(line.trim(), `NIMBO-DATA read ${marker}`);
    const attached = (await admin.request<any>('listVolumes', { id: data.id })).volume[0];
    assert.equal(attached.storageid, pool.id);
    // The bytes are on the NFS server: read through NFS on the host (not the export's directory).
    const raw = join(kvm.root, 'data.raw');
    execFileSync('qemu-img', ['convert', '-U', '-O', 'raw', nfsUrl(data.id), raw]);
    assert.equal(readFileSync(raw).subarray(0, marker.length).toString(), marker);
    rmSync(raw);

    // A live resize of the attached data disk on NFS (QMP block_resize on the nfs node).
    const bigger = (
      await admin.request<any>('createDiskOffering', {
        name: 'nfs-2',
        displaytext: '2 GB on NFS',
        disksize: 2,
        tags: 'nfs',
      })
    ).diskoffering.id;
    const resized = (await admin.call<any>('resizeVolume', { id: data.id, diskofferingid: bigger })).volume;
    assert.equal(resized.size, 2 * 2 ** 30);
    const info = JSON.parse(
      execFileSync('qemu-img', ['info', '-U', '--output=json', nfsUrl(data.id)], { encoding: 'utf8' }),
    );
    assert.equal(info['virtual-size'], 2 * 2 ** 30, 'the image on the export grew');

    // A snapshot of the running ROOT disk (copied while the guest writes to an overlay), then,
    // stopped, the disk reverted to it: still a linked clone of the pool's template, and it boots.
    t = Date.now();
    const snap = (await admin.call<any>('createSnapshot', { volumeid: rootVolume.id })).snapshot;
    figure('createSnapshot of the running ROOT disk on NFS', Date.now() - t);
    assert.equal(snap.state, 'BackedUp');
    await admin.call('detachVolume', { id: data.id });
    await admin.call('stopVirtualMachine', { id: vm.id });
    t = Date.now();
    await admin.call('revertSnapshot', { id: snap.id });
    figure('revertSnapshot of the ROOT disk on NFS', Date.now() - t);
    const rootInfo = JSON.parse(
      execFileSync('qemu-img', ['info', '-U', '--output=json', nfsUrl(rootVolume.id)], { encoding: 'utf8' }),
    );
    assert.match(rootInfo['backing-filename'], /template-[0-9a-f-]+\.qcow2$/);
    rmSync(join(kvm.root, 'agent', HOST, 'vms', instance, 'console.log'), { force: true });
    await admin.call('startVirtualMachine', { id: vm.id });
    await kvm.consoleLine(instance, /NIMBO: ready hostname=nfs-vm/);
    await admin.call('deleteSnapshot', { id: snap.id });

    // migrateVolume of the detached data disk to the zone's directory pool and back to NFS.
    const dirPool = (
      await admin.request<any>('listStoragePools', { zoneid, clusterid: local.clusterid })
    ).storagepool.find((p: any) => p.type === 'Filesystem');
    // The disk's offering is tagged nfs: a destination must carry the tag too (upstream's rule).
    await assert.rejects(
      admin.request('migrateVolume', { volumeid: data.id, storageid: dirPool.id }),
      (e: any) => e.errorcode === 431 && /storage tags/.test(e.errortext),
    );
    await admin.request('updateStoragePool', { id: dirPool.id, tags: 'nfs' });
    t = Date.now();
    let moved = (await admin.call<any>('migrateVolume', { volumeid: data.id, storageid: dirPool.id })).volume;
    figure('migrateVolume NFS → directory pool', Date.now() - t);
    assert.equal(moved.storageid, dirPool.id);
    assert.ok(!nfs!.files().includes(data.id), 'the source on the export is deleted');
    moved = (await admin.call<any>('migrateVolume', { volumeid: data.id, storageid: pool.id })).volume;
    assert.equal(moved.storageid, pool.id);
    assert.ok(nfs!.files().includes(data.id), 'back on the export');

    // Delete, destroy: the pool's files go with their volumes.
    await admin.request('deleteVolume', { id: data.id });
    assert.ok(!nfs!.files().includes(data.id), 'the data volume is deleted from the export');
    await admin.call('destroyVirtualMachine', { id: vm.id, expunge: true });
    await waitUntil(async () => !nfs!.files().includes(rootVolume.id), 30_000, 'the ROOT disk to be deleted');
    assert.equal(spawnSync('kill', ['-0', String(pid)]).status, 1, 'QEMU is gone');

    t = Date.now();
    await admin.request('deleteStoragePool', { id: pool.id });
    figure('deleteStoragePool', Date.now() - t);
    // High availability's heartbeat records outlive the pool (the host is told to stop writing
    // them, and a neighbour may still need to read them): not this suite's files.
    const left = nfs!.files().filter((f) => !f.startsWith('.nimbostack-heartbeat'));
    assert.deepEqual(left, [], 'no file is left in the export');
  });
});
