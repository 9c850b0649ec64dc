/**
 * Managed iSCSI primary storage with a real target and a real VM (npm run test:storage): a Linux
 * tgt target and an OpenSSH server in a network namespace reached over a veth pair
 * (storage/tgt.ts), and the KVM local zone. Through the API: a LinuxTgt pool added with the SSH
 * key (bad credentials and an unreachable server refused with nothing recorded), then measured
 * again by its provider at storage.stats.interval; a VM whose ROOT
 * disk is a LUN the provider made and the host filled from the template, booted through QEMU's
 * libiscsi; a data volume whose LUN appears on the target when it is attached, written and read
 * back by the guest, grown live (the guest sees the new size; cutting it live refused),
 * snapshotted while attached (with Swift installed, the backup an object in an S3 store's bucket;
 * else on secondary storage), detached, its LUN overwritten and reverted to the snapshot, grown
 * offline (the guest sees it once attached again) and cut back with shrinkok; migrateVolume of the data volume offline to the
 * directory pool (LUN removed) and back (a new LUN made by the provider, the marker read over
 * iSCSI), a move into the pool whose copy fails (its new LUN removed, the volume left where it
 * was), and of the running VM's ROOT disk live from its LUN to the directory pool and live back
 * into a new LUN (same QEMU each time, the old copy removed, the guest boots from the moved disk
 * after a restart, its ROOT LUN grown while Stopped and seen so); then the data volume deleted (its target
 * and file gone), the VM expunged, the pool removed, the servers stopped.
 * Needs kvm.root, QEMU with qemu-block-extra, tgt, openssh-server and the test template (and
 * Swift for the S3 leg: storage/swift.ts).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync, statfsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { waitUntil } from './agents.ts';
import type { TestServer } from './harness.ts';
import { readyKvmTestTemplate } from './kvm-advanced-zone.ts';
import { dataDiskProbe, figure, HOST, LocalKvm, storageSkip, taggedOfferings } from './storage/local-kvm.ts';
import { addS3Store } from './storage/s3-store.ts';
import { type Swift, startSwift, swiftInstalled } from './storage/swift.ts';
import { startTgt, type TgtServer, tgtInstalled } from './storage/tgt.ts';

const SKIP = storageSkip({ installed: tgtInstalled(), needs: 'tgt, openssh-server and qemu-block-extra' });

let kvm: LocalKvm;
let server: TestServer;
let tgt: TgtServer | undefined;
let swift: Swift | undefined;

const GiB = 2 ** 30;

const fails = (code: number, text?: RegExp) => (e: any) => {
  assert.equal(e.errorcode, code, e.message);
  if (text) assert.match(e.message, text);
  return true;
};

before(async () => {
  if (SKIP) return;
  kvm = new LocalKvm('nimbo-iscsi-');
  const timed = async <T>(name: string, start: () => Promise<T>): Promise<T> => {
    const t = Date.now();
    const started = await start();
    figure(name, Date.now() - t);
    return started;
  };
  tgt = await timed('tgtd and sshd in their namespace: up', startTgt);
  // Swift (the S3 store the data volume's snapshot is backed up to) starts beside the cloud, so
  // that it adds little time (tgtd and sshd first: they start in a second, but not while Swift
  // loads the machine); without Swift that leg is not run.
  const [w, k] = await Promise.allSettled([
    swiftInstalled() ? timed('Swift with s3api: up', startSwift) : undefined,
    kvm.start({}, 4000),
  ]);
  // Whatever started is kept, so that after() stops it even when the other failed.
  swift = w.status === 'fulfilled' ? w.value : undefined;
  if (k.status === 'fulfilled') server = k.value;
  for (const r of [w, k]) if (r.status === 'rejected') throw r.reason;
  if (!swift) process.stdout.write('# Swift is not installed: the S3 backup leg is not run\n');
});

after(async () => {
  if (SKIP) return;
  await kvm?.stop(async () => {
    await tgt?.stop();
    await swift?.stop();
  });
});

/**
 * User data: the data disk probe (dataDiskProbe), and a line "NIMBO-SIZE <disk> <sectors>" on the
 * console whenever the guest's kernel sees a disk's size change (or the disk come or go).
 */
function probeAndSizes(marker: string): string {
  const sizes = [
    '(',
    '  a=; b=',
    '  while true; do',
    '    x=$(cat /sys/block/vda/size 2>/dev/null); y=$(cat /sys/block/vdb/size 2>/dev/null)',
    '    [ "$x" != "$a" ] && echo "NIMBO-SIZE vda $x"',
    '    [ "$y" != "$b" ] && echo "NIMBO-SIZE vdb $y"',
    '    a=$x; b=$y; sleep 1',
    '  done',
    ') > /dev/console 2>&1 &',
    '',
  ].join('\n');
  return Buffer.from(Buffer.from(dataDiskProbe(marker), 'base64').toString() + sizes).toString('base64');
}

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

    // Measured again by its provider every storage.stats.interval (pool-monitor.ts, on the server
    // holding its lease): 512 MiB written beside the LUN directory shows in disksizeused.
    await admin.request('updateConfiguration', { name: 'storage.stats.interval', value: '2000' });
    const filler = join(dirname(tgt!.lunDir), 'filler');
    execFileSync('fallocate', ['-l', String(512 * 2 ** 20), filler]);
    try {
      t = Date.now();
      await waitUntil(
        async () =>
          (await admin.request<any>('listStoragePools', { id: pool.id })).storagepool[0].disksizeused >=
          pool.disksizeused + 384 * 2 ** 20,
        30_000,
        "the pool's use measured again by its provider",
      );
      figure('the managed pool measured again (storage.stats.interval 2 s)', Date.now() - t);
    } finally {
      rmSync(filler, { force: true });
      await admin.request('updateConfiguration', { name: 'storage.stats.interval', value: '60000' });
    }
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
        userdata: probeAndSizes(marker),
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
    const lunSize = () =>
      JSON.parse(execFileSync('qemu-img', ['info', '--output=json', lunUrl], { encoding: 'utf8' }))[
        'virtual-size'
      ];

    // Grown live: the provider grows the LUN's file and has tgtd open it again, then QEMU reads the
    // new capacity (block_resize) and the guest's kernel sees it. Not cut live (431).
    t = Date.now();
    const grown = (await admin.call<any>('resizeVolume', { id: data.id, size: 2 })).volume;
    figure('resizeVolume 1 → 2 GB of the attached iSCSI data disk (live)', Date.now() - t);
    assert.equal(grown.size, 2 * GiB);
    assert.equal(lunSize(), 2 * GiB, 'the LUN presents its new size');
    await kvm.consoleLine(instance, /NIMBO-SIZE vdb 4194304\b/, { timeoutMs: 30_000 });
    figure('resizeVolume live → the guest sees the new size', Date.now() - t);
    assert.equal(firstBytes(), marker);
    await assert.rejects(
      admin.call('resizeVolume', { id: data.id, size: 1, shrinkok: true }),
      fails(431, /stop the VM or detach/),
    );
    assert.equal(lunSize(), 2 * GiB, 'the refusal changed nothing');

    // A snapshot while attached (copied while the guest writes to an overlay; with Swift, backed
    // up to the zone's S3 store), then detached, the LUN overwritten, and reverted: the marker is
    // back.
    const s3 = swift ? await addS3Store(admin, swift, zoneid, 'nimbo-iscsi-backups') : undefined;
    t = Date.now();
    const snap = (await admin.call<any>('createSnapshot', { volumeid: data.id })).snapshot;
    figure(
      `createSnapshot of the attached iSCSI data disk (to ${s3 ? 'S3' : 'secondary storage'})`,
      Date.now() - t,
    );
    assert.equal(snap.state, 'BackedUp');
    if (s3) {
      const keys = await s3.objects();
      assert.ok(
        keys.some((k) => k.includes(snap.id)),
        `the backup is an object in the bucket (${keys.join(', ')})`,
      );
    }
    await admin.call('detachVolume', { id: data.id });
    execFileSync('qemu-io', ['-f', 'raw', '-c', 'write -z 0 1M', lunUrl]);
    assert.notEqual(firstBytes(), marker);
    t = Date.now();
    await admin.call('revertSnapshot', { id: snap.id });
    figure(`revertSnapshot of the iSCSI data disk${s3 ? ' (from S3)' : ''}`, Date.now() - t);
    assert.equal(firstBytes(), marker, 'the snapshot was copied back into the LUN');
    await admin.call('deleteSnapshot', { id: snap.id });
    if (s3) {
      assert.ok(!(await s3.objects()).some((k) => k.includes(snap.id)), 'its object went with it');
      await s3.remove();
    }

    // Offline (detached): grown to 3 GB, presented so over iSCSI and seen by the guest once
    // attached again; cut back to 2 GB with shrinkok only, the data before the cut kept.
    t = Date.now();
    await admin.call('resizeVolume', { id: data.id, size: 3 });
    figure('resizeVolume 2 → 3 GB of the detached iSCSI data disk', Date.now() - t);
    assert.equal(lunSize(), 3 * GiB, 'the LUN presents its new size');
    await admin.call('attachVolume', { id: data.id, virtualmachineid: vm.id });
    await kvm.consoleLine(instance, /NIMBO-SIZE vdb 6291456\b/, { timeoutMs: 60_000 });
    await admin.call('detachVolume', { id: data.id });
    await assert.rejects(admin.call('resizeVolume', { id: data.id, size: 2 }), fails(431, /shrinkok/));
    assert.equal(lunSize(), 3 * GiB, 'the refusal changed nothing');
    const cut = (await admin.call<any>('resizeVolume', { id: data.id, size: 2, shrinkok: true })).volume;
    assert.equal(cut.size, 2 * GiB);
    assert.equal(lunSize(), 2 * GiB, 'the LUN is cut');
    assert.equal(firstBytes(), marker, 'the data before the cut is kept');

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
    // Stopped, its ROOT LUN grown by 1 GB: the guest boots from it and sees the new size.
    await admin.call('stopVirtualMachine', { id: vm.id, forced: true });
    const rootGb = Math.floor(Number(back.size) / GiB) + 1;
    t = Date.now();
    await admin.call('resizeVolume', { id: rootVolume.id, size: rootGb });
    figure("resizeVolume of the Stopped VM's ROOT LUN", Date.now() - t);
    rmSync(join(kvm.root, 'agent', HOST, 'vms', instance, 'console.log'), { force: true });
    await admin.call('startVirtualMachine', { id: vm.id });
    await kvm.consoleLine(instance, /NIMBO: ready hostname=iscsi-vm/, { last: true });
    await kvm.consoleLine(instance, new RegExp(`NIMBO-SIZE vda ${(rootGb * GiB) / 512}\\b`), {
      timeoutMs: 30_000,
    });
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
