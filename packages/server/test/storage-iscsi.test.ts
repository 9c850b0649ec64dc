/**
 * Managed iSCSI primary storage with a real target and a real VM (npm run test:storage): a Linux
 * tgt target and an OpenSSH server in a network namespace reached over a veth pair
 * (storage/tgt.ts), and the KVM local zone. Through the API: a LinuxTgt pool added with the SSH
 * key (bad credentials and an unreachable server refused with nothing recorded); a VM whose ROOT
 * disk is a LUN the provider made and the host filled from the template, booted through QEMU's
 * libiscsi; a data volume whose LUN appears on the target when it is attached, written and read
 * back by the guest, snapshotted while attached (backup on secondary storage), detached, its LUN
 * overwritten and reverted to the snapshot; migrateVolume of the data volume offline to the
 * directory pool (LUN removed) and back (a new LUN made by the provider, the marker read over
 * iSCSI), a move into the pool whose copy fails (its new LUN removed, the volume left where it
 * was), and of the running VM's ROOT disk live from its LUN to the directory pool and live back
 * into a new LUN (same QEMU each time, the old copy removed, the guest boots from the moved disk
 * after a restart); then the data volume deleted (its target
 * and file gone), the VM expunged, the pool removed, the servers stopped.
 * Needs kvm.root, QEMU with qemu-block-extra, tgt, openssh-server and the test template.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { waitUntil } from './agents.ts';
import type { TestServer } from './harness.ts';
import { readyKvmTestTemplate } from './kvm-advanced-zone.ts';
import { dataDiskProbe, figure, HOST, LocalKvm, storageSkip, taggedOfferings } from './storage/local-kvm.ts';
import { startTgt, type TgtServer, tgtInstalled } from './storage/tgt.ts';

const SKIP = storageSkip({ installed: tgtInstalled(), needs: 'tgt, openssh-server and qemu-block-extra' });

let kvm: LocalKvm;
let server: TestServer;
let tgt: TgtServer | undefined;

const fails = (code: number, text?: RegExp) => (e: any) => {
  assert.equal(e.errorcode, code, e.message);
  if (text) assert.match(e.message, text);
  return true;
};

before(async () => {
  if (SKIP) return;
  kvm = new LocalKvm('nimbo-iscsi-');
  const t = Date.now();
  tgt = await startTgt();
  figure('tgtd and sshd in their namespace: up', Date.now() - t);
  server = await kvm.start({});
});

after(async () => {
  if (SKIP) return;
  await kvm?.stop(async () => {
    await tgt?.stop();
  });
});

describe('managed iSCSI primary storage with a real tgt target and a real VM', { skip: SKIP }, () => {
  test('a LinuxTgt pool through the API: LUNs made and removed over SSH, a VM on them, snapshot and revert', async () => {
    const admin = server.admin;
    const zoneid = (await admin.request<any>('listZones', {})).zone[0].id;
    const local = (await admin.request<any>('listHosts', { zoneid, type: 'Routing' })).host[0];
    assert.equal(local.name, HOST);
    const t0 = Date.now();
    const base = {
      zoneid,
      podid: local.podid,
      clusterid: local.clusterid,
      provider: 'LinuxTgt',
      managed: true,
      url: `iscsi://${tgt!.address}/${tgt!.lunDir.replace(/^\//, '')}`,
      tags: 'iscsi',
    };
    const pools = async () => (await admin.request<any>('listStoragePools', {})).storagepool ?? [];
    const before = (await pools()).length;

    // Refused with nothing recorded: no key, a key the server does not know, a closed SSH port.
    await assert.rejects(admin.request('createStoragePool', { ...base, name: 'tgt' }), fails(431, /sshkey/));
    const stranger = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
      publicKeyEncoding: { type: 'spki', format: 'pem' },
    }).privateKey;
    await assert.rejects(
      admin.request('createStoragePool', { ...base, name: 'tgt', 'details[0].sshkey': stranger }),
      fails(530, /key was refused/),
    );
    await assert.rejects(
      admin.request('createStoragePool', {
        ...base,
        name: 'tgt',
        'details[0].sshkey': tgt!.privateKey,
        'details[0].sshport': '2222',
      }),
      fails(530, /connection refused/),
    );
    await assert.rejects(
      admin.request('createStoragePool', {
        ...base,
        name: 'tgt',
        'details[0].sshkey': tgt!.privateKey,
        'details[0].sshhostkey': `SHA256:${'A'.repeat(43)}`,
      }),
      fails(530, /host key/),
    );
    assert.equal((await pools()).length, before, 'no pool was recorded by the refused attempts');

    let t = Date.now();
    const pool = (
      await admin.request<any>('createStoragePool', {
        ...base,
        name: 'tgt',
        'details[0].sshkey': tgt!.privateKey,
        'details[0].initiators': tgt!.initiator,
      })
    ).storagepool;
    figure('createStoragePool (SSH sign-in, tgtadm, df on the storage server)', Date.now() - t);
    assert.equal(pool.type, 'Iscsi');
    assert.equal(pool.provider, 'LinuxTgt');
    assert.equal(pool.managed, true);
    assert.equal(pool.ipaddress, tgt!.address);
    assert.equal(pool.path, tgt!.lunDir);
    const fs = statfsSync(tgt!.lunDir);
    assert.equal(
      pool.disksizetotal,
      fs.blocks * fs.bsize,
      "the pool's size is its directory's file system's",
    );
    assert.ok(!JSON.stringify(pool).includes('PRIVATE KEY'), 'the key is never shown');
    const providers = await admin.request<any>('listStorageProviders', { type: 'primary' });
    assert.deepEqual(
      providers.dataStoreProvider.map((p: any) => p.name),
      ['DefaultPrimary', 'LinuxTgt'],
    );

    const templateid = await readyKvmTestTemplate(admin, zoneid);
    const { serviceofferingid, diskofferingid } = await taggedOfferings(admin, 'iscsi', 'iSCSI');

    // The guest writes this to its data disk once it appears and reads it back (dataDiskProbe).
    const marker = `nimbo-iscsi-${process.pid}`;
    t = Date.now();
    const vm = (
      await admin.call<any>('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid,
        name: 'iscsi-vm',
        userdata: dataDiskProbe(marker),
      })
    ).virtualmachine;
    figure('deploy (a LUN made over SSH, the template copied into it) → Running', Date.now() - t);
    assert.equal(vm.state, 'Running');
    const instance = (await admin.request<any>('listVirtualMachines', { id: vm.id })).virtualmachine[0]
      .instancename;
    await kvm.consoleLine(instance, /NIMBO: ready hostname=iscsi-vm/);
    figure('deploy → the guest booted from its iSCSI LUN is ready', Date.now() - t);
    const rootVolume = (await admin.request<any>('listVolumes', { virtualmachineid: vm.id, type: 'ROOT' }))
      .volume[0];
    assert.equal(rootVolume.storageid, pool.id, 'the ROOT disk is on the iSCSI pool');
    const targetOf = (volumeId: string) => `iqn.2026-12.org.nimbostack:${pool.id}.${volumeId}`;
    assert.ok(tgt!.targets().includes(targetOf(rootVolume.id)), 'the ROOT LUN is a target on tgtd');
    const acl = tgt!.tgtadm('--mode', 'target', '--op', 'show');
    assert.match(acl, new RegExp(`ACL information:\\n\\s+${tgt!.initiator.replace(/\./g, '\\.')}`));
    // QEMU opens the disk through libiscsi, not a local path.
    const [pid] = kvm.qemuPids();
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    assert.match(cmdline, /"driver":"iscsi"/);
    assert.ok(cmdline.includes(`"target":"${targetOf(rootVolume.id)}"`));

    // A data volume: its LUN is made when it is attached; the guest writes and reads it.
    const data = (await admin.call<any>('createVolume', { name: 'iscsi-data', zoneid, diskofferingid }))
      .volume;
    assert.ok(!tgt!.targets().includes(targetOf(data.id)), 'no LUN before the volume needs one');
    t = Date.now();
    await admin.call('attachVolume', { id: data.id, virtualmachineid: vm.id });
    const line = await kvm.consoleLine(instance, /NIMBO-DATA read/);
    figure('attachVolume → the guest wrote and read its iSCSI data disk', Date.now() - t);
    assert.equal(line.trim(), `NIMBO-DATA read ${marker}`);
    assert.ok(tgt!.targets().includes(targetOf(data.id)), 'the data LUN is a target on tgtd');
    assert.ok(tgt!.files().includes(`${data.id}.lun`), "the LUN's backing file is on the storage server");
    const lunUrl = `iscsi://${tgt!.address}:3260/${targetOf(data.id)}/1`;
    const firstBytes = () => {
      const raw = join(kvm.root, 'data.raw');
      execFileSync('qemu-img', [
        'dd',
        '-f',
        'raw',
        '-O',
        'raw',
        'bs=512',
        'count=1',
        `if=${lunUrl}`,
        `of=${raw}`,
      ]);
      const text = readFileSync(raw).subarray(0, marker.length).toString();
      rmSync(raw);
      return text;
    };
    assert.equal(firstBytes(), marker, 'the bytes are on the target (read over iSCSI from the host)');

    // A snapshot while attached (copied while the guest writes to an overlay), then detached, the
    // LUN overwritten, and reverted: the marker is back.
    t = Date.now();
    const snap = (await admin.call<any>('createSnapshot', { volumeid: data.id })).snapshot;
    figure('createSnapshot of the attached iSCSI data disk (to secondary storage)', Date.now() - t);
    assert.equal(snap.state, 'BackedUp');
    await admin.call('detachVolume', { id: data.id });
    execFileSync('qemu-io', ['-f', 'raw', '-c', 'write -z 0 1M', lunUrl]);
    assert.notEqual(firstBytes(), marker);
    t = Date.now();
    await admin.call('revertSnapshot', { id: snap.id });
    figure('revertSnapshot of the iSCSI data disk', Date.now() - t);
    assert.equal(firstBytes(), marker, 'the snapshot was copied back into the LUN');
    await admin.call('deleteSnapshot', { id: snap.id });

    // Resizing a LUN is the provider's, which does not: refused, nothing changed.
    await assert.rejects(
      admin.call('resizeVolume', { id: data.id, size: 2 }),
      fails(431, /managed storage pool/),
    );

    // migrateVolume offline to the zone's directory pool and back: on the way out the copy is
    // checked and the LUN removed; on the way back the provider makes a new LUN first and the host
    // copies into it. The offerings are tagged iscsi, so the destination must carry the tag too.
    const dirPool = (
      await admin.request<any>('listStoragePools', { zoneid, clusterid: local.clusterid })
    ).storagepool.find((p: any) => p.type === 'Filesystem');
    await admin.request('updateStoragePool', { id: dirPool.id, tags: 'iscsi' });
    t = Date.now();
    let moved = (await admin.call<any>('migrateVolume', { volumeid: data.id, storageid: dirPool.id })).volume;
    figure('migrateVolume offline iSCSI LUN → directory pool (data disk)', Date.now() - t);
    assert.equal(moved.storageid, dirPool.id);
    assert.ok(!tgt!.targets().includes(targetOf(data.id)), 'the LUN is removed once the move is recorded');
    assert.ok(!tgt!.files().includes(`${data.id}.lun`), "the LUN's backing file is gone");
    const headOf = (image: string, format: string) => {
      const raw = join(kvm.root, 'head.raw');
      execFileSync('qemu-img', [
        'dd',
        '-f',
        format,
        '-O',
        'raw',
        'bs=512',
        'count=1',
        `if=${image}`,
        `of=${raw}`,
      ]);
      const text = readFileSync(raw).subarray(0, marker.length).toString();
      rmSync(raw);
      return text;
    };
    assert.equal(headOf(join(dirPool.path, data.id), 'qcow2'), marker, 'the copy in the directory pool');
    // A move into the iSCSI pool whose copy fails (the source file taken away for the time of the
    // call): the LUN made for it is removed again and the volume stays where it was.
    const dataFile = join(dirPool.path, data.id);
    renameSync(dataFile, `${dataFile}.away`);
    try {
      await assert.rejects(
        admin.call('migrateVolume', { volumeid: data.id, storageid: pool.id }),
        fails(530, /does not exist/),
      );
    } finally {
      renameSync(`${dataFile}.away`, dataFile);
    }
    assert.ok(!tgt!.targets().includes(targetOf(data.id)), 'the LUN made for the failed move is removed');
    assert.ok(!tgt!.files().includes(`${data.id}.lun`), 'and its file');
    assert.equal(
      (await admin.request<any>('listVolumes', { id: data.id })).volume[0].storageid,
      dirPool.id,
      'the volume stays on the directory pool',
    );
    t = Date.now();
    moved = (await admin.call<any>('migrateVolume', { volumeid: data.id, storageid: pool.id })).volume;
    figure('migrateVolume offline directory pool → new iSCSI LUN (data disk)', Date.now() - t);
    assert.equal(moved.storageid, pool.id);
    assert.ok(tgt!.targets().includes(targetOf(data.id)), 'the provider made a new LUN for it');
    assert.equal(firstBytes(), marker, 'the bytes are back on the target');
    assert.ok(!existsSync(join(dirPool.path, data.id)), 'the directory copy is deleted');

    // The running VM's ROOT disk moved live from its LUN to the directory pool (QEMU mirrors the
    // iscsi node into a new qcow2 file and switches the guest to it), then the LUN removed.
    t = Date.now();
    const movedRoot = (
      await admin.call<any>('migrateVolume', {
        volumeid: rootVolume.id,
        storageid: dirPool.id,
        livemigrate: true,
      })
    ).volume;
    figure('migrateVolume livemigrate=true iSCSI LUN → directory pool (ROOT, running)', Date.now() - t);
    assert.equal(movedRoot.storageid, dirPool.id);
    assert.equal(kvm.qemuPids()[0], pid, 'the same QEMU process: no restart');
    assert.equal(
      (await admin.request<any>('listVirtualMachines', { id: vm.id })).virtualmachine[0].state,
      'Running',
    );
    assert.ok(!tgt!.targets().includes(targetOf(rootVolume.id)), 'the ROOT LUN is removed');
    assert.ok(!tgt!.files().includes(`${rootVolume.id}.lun`), "the ROOT LUN's file is gone");
    const rootFile = join(dirPool.path, rootVolume.id);
    assert.ok(existsSync(rootFile), 'the ROOT disk is a file in the directory pool now');
    assert.equal(
      kvm.readConsole(instance).match(/NIMBO: ready/g)?.length ?? 0,
      1,
      'the guest did not reboot',
    );
    // Stopped and started again: the guest boots from the moved disk.
    await admin.call('stopVirtualMachine', { id: vm.id, forced: true });
    rmSync(join(kvm.root, 'agent', HOST, 'vms', instance, 'console.log'), { force: true });
    t = Date.now();
    await admin.call('startVirtualMachine', { id: vm.id });
    await kvm.consoleLine(instance, /NIMBO: ready hostname=iscsi-vm/, { last: true });
    figure('start → the guest booted from the ROOT disk moved off its LUN', Date.now() - t);
    const pid2 = kvm.qemuPids()[0];

    // And live back into a new LUN the provider makes first (QEMU mirrors the qcow2 file into an
    // iscsi node); the guest boots from the LUN after a restart.
    t = Date.now();
    const back = (
      await admin.call<any>('migrateVolume', {
        volumeid: rootVolume.id,
        storageid: pool.id,
        livemigrate: true,
      })
    ).volume;
    figure('migrateVolume livemigrate=true directory pool → new iSCSI LUN (ROOT, running)', Date.now() - t);
    assert.equal(back.storageid, pool.id);
    assert.equal(kvm.qemuPids()[0], pid2, 'the same QEMU process: no restart');
    assert.ok(tgt!.targets().includes(targetOf(rootVolume.id)), 'a new ROOT LUN');
    assert.ok(!existsSync(rootFile), 'the directory copy is deleted');
    await admin.call('stopVirtualMachine', { id: vm.id, forced: true });
    rmSync(join(kvm.root, 'agent', HOST, 'vms', instance, 'console.log'), { force: true });
    await admin.call('startVirtualMachine', { id: vm.id });
    await kvm.consoleLine(instance, /NIMBO: ready hostname=iscsi-vm/, { last: true });
    const pid3 = kvm.qemuPids()[0];
    assert.match(readFileSync(`/proc/${pid3}/cmdline`, 'utf8'), /"driver":"iscsi"/, 'booted from the LUN');

    // Deleted: the target and its file go with the volume; the ROOT disk with the VM.
    await admin.request('deleteVolume', { id: data.id });
    assert.ok(!tgt!.targets().includes(targetOf(data.id)), 'the data LUN is gone from tgtd');
    assert.ok(!tgt!.files().includes(`${data.id}.lun`), 'its backing file is gone');
    await admin.call('destroyVirtualMachine', { id: vm.id, expunge: true });
    await waitUntil(
      async () => !tgt!.targets().includes(targetOf(rootVolume.id)),
      30_000,
      'the ROOT LUN to be removed',
    );
    assert.equal(spawnSync('kill', ['-0', String(pid3)]).status, 1, 'QEMU is gone');

    await admin.request('deleteStoragePool', { id: pool.id });
    assert.deepEqual(tgt!.targets(), [], 'no target is left on tgtd');
    assert.deepEqual(tgt!.files(), [], 'no LUN file is left on the storage server');
    figure('the whole managed iSCSI scenario', Date.now() - t0);
  });
});
