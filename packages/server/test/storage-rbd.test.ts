/**
 * Ceph RBD primary storage with a real Ceph and a real VM (npm run test:storage): a one-node Ceph
 * on memstore started by the suite (storage/ceph.ts), reached by the KVM local zone's host
 * through QEMU's librbd and the rbd CLI with a cephx user limited to the pool. Through the API:
 * an RBD pool added to the cluster (its key never shown again, its size measured on Ceph) and
 * tagged so that tagged offerings land on it; a VM boots from a ROOT disk that is an RBD clone of
 * the template's protected snapshot (imported into the pool once); a data volume on RBD is
 * hot-plugged, written and read back by the guest, read on the host through librbd, and grown
 * live; a snapshot of the running ROOT disk (an RBD snapshot exported to secondary storage), a
 * template made from it, and the disk reverted to it with the VM stopped (it boots again); with
 * tgt installed (storage/tgt.ts, started before Ceph), the detached data volume moved offline from
 * RBD into a LUN a managed iSCSI pool's provider makes (qemu-img compare against a copy taken
 * before, the RBD image gone); then everything deleted (the LUN and its target too), the pools
 * removed (the template image with the RBD one), no RBD image left, and the servers stopped.
 * Needs kvm.root, QEMU with qemu-block-extra, the Ceph packages and the test template (and tgt
 * with openssh-server for the iSCSI move).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { waitUntil } from './agents.ts';
import type { TestServer } from './harness.ts';
import { readyKvmTestTemplate } from './kvm-advanced-zone.ts';
import { type Ceph, cephInstalled, startCeph } from './storage/ceph.ts';
import { dataDiskProbe, figure, HOST, LocalKvm, storageSkip, taggedOfferings } from './storage/local-kvm.ts';
import { startTgt, type TgtServer, tgtInstalled } from './storage/tgt.ts';

const SKIP = storageSkip({
  installed: cephInstalled(),
  needs: 'ceph-mon, ceph-mgr, ceph-osd, ceph-common and qemu-block-extra',
});

let kvm: LocalKvm;
let server: TestServer;
let ceph: Ceph | undefined;
let tgt: TgtServer | undefined;

/** An image as `rbd info` shows it to the cluster's admin. */
const rbdInfo = (image: string) =>
  JSON.parse(ceph!.rbd('info', '--format', 'json', `${ceph!.pool}/${image}`));
/** The first bytes of an image, read through librbd as the admin. */
function imageHead(image: string, bytes: number): Buffer {
  const raw = join(kvm.root, `${image}.raw`);
  execFileSync('qemu-img', [
    'convert',
    '-U',
    '-f',
    'raw',
    '-O',
    'raw',
    `rbd:${ceph!.pool}/${image}:conf=${ceph!.conf}`,
    raw,
  ]);
  const head = readFileSync(raw).subarray(0, bytes);
  rmSync(raw);
  return head;
}

before(async () => {
  if (SKIP) return;
  kvm = new LocalKvm('nimbo-rbd-');
  const timed = async <T>(name: string, start: () => Promise<T>): Promise<T> => {
    const t = Date.now();
    const started = await start();
    figure(name, Date.now() - t);
    return started;
  };
  // tgtd and sshd (the iSCSI pool the data volume moves to) first: they start in about a second,
  // but beside Ceph's start on a loaded machine sshd missed its 20 s.
  if (tgtInstalled()) tgt = await timed('tgtd and sshd in their namespace: up', startTgt);
  else process.stdout.write('# tgt is not installed: the move to an iSCSI LUN is not run\n');
  ceph = await timed('one-node Ceph (memstore): up', startCeph);
  server = await kvm.start({}, 1000);
});

after(async () => {
  if (SKIP) return;
  await kvm?.stop(async () => {
    const t = Date.now();
    await ceph?.stop();
    figure('Ceph stopped and its directory removed', Date.now() - t);
    await tgt?.stop();
  });
});

describe('Ceph RBD primary storage with a real Ceph and a real VM', { skip: SKIP }, () => {
  test('an RBD pool through the API: a VM boots from a clone on it, a data volume is written and read back, snapshots, nothing is left', async () => {
    const admin = server.admin;
    const c = ceph!;
    const zoneid = (await admin.request<any>('listZones', {})).zone[0].id;
    const local = (await admin.request<any>('listHosts', { zoneid, type: 'Routing' })).host[0];
    assert.equal(local.name, HOST);

    // The pool, with upstream's URL form; the key is base64 and goes %-escaped.
    let t = Date.now();
    const pool = (
      await admin.request<any>('createStoragePool', {
        zoneid,
        podid: local.podid,
        clusterid: local.clusterid,
        name: 'ceph',
        url: `rbd://${c.user}:${encodeURIComponent(c.key)}@${c.monitor}:${c.port}/${c.pool}`,
        tags: 'rbd',
      })
    ).storagepool;
    figure('createStoragePool (measured on Ceph by the host)', Date.now() - t);
    assert.equal(pool.type, 'RBD');
    assert.equal(pool.ipaddress, c.monitor);
    assert.equal(pool.path, c.pool);
    // Its size is Ceph's: what the pool uses plus what it may still take (`ceph df`).
    const df = JSON.parse(c.ceph('df', '--format', 'json')).pools.find((p: any) => p.name === c.pool).stats;
    const cephSize = Number(df.bytes_used) + Number(df.max_avail);
    assert.ok(
      Math.abs(pool.disksizetotal - cephSize) < cephSize * 0.05,
      `the pool's size ${pool.disksizetotal} is Ceph's (${cephSize})`,
    );
    assert.ok(pool.disksizetotal > 1e9 && pool.disksizetotal <= 2 ** 31, 'memstore: about 2 GiB');
    const listed = JSON.stringify(await admin.request<any>('listStoragePools', { id: pool.id }));
    assert.ok(!listed.includes(c.key), 'the key is never shown');
    assert.ok(!listed.includes(encodeURIComponent(c.key)), 'not even escaped');

    // VM HA's heartbeat (agent/src/heartbeat.ts) reaches the pool as the host's disks do: its
    // record is a RADOS object of the pool, fresh within the heartbeat interval (10 s).
    const beat = await waitUntil(
      async () => {
        try {
          const r = JSON.parse(
            execFileSync(
              'rados',
              ['-c', c.conf, '-p', c.pool, 'get', `.nimbostack-heartbeat/${local.id}.json`, '-'],
              {
                encoding: 'utf8',
                stdio: 'pipe',
              },
            ),
          );
          return Date.now() - r.time < 15_000 ? r : undefined;
        } catch {
          return undefined;
        }
      },
      30_000,
      'the heartbeat record in the pool',
    );
    assert.equal(beat.host, local.id);

    const templateid = await readyKvmTestTemplate(admin, zoneid);
    const { serviceofferingid, diskofferingid } = await taggedOfferings(admin, 'rbd', 'RBD');

    // The guest writes this to its data disk once it appears and reads it back (dataDiskProbe).
    const marker = `nimbo-rbd-${process.pid}`;
    t = Date.now();
    const vm = (
      await admin.call<any>('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid,
        name: 'rbd-vm',
        userdata: dataDiskProbe(marker),
      })
    ).virtualmachine;
    figure('deploy (template imported into the pool, ROOT an RBD clone) → Running', Date.now() - t);
    assert.equal(vm.state, 'Running');
    const instance = (await admin.request<any>('listVirtualMachines', { id: vm.id })).virtualmachine[0]
      .instancename;
    await kvm.consoleLine(instance, /NIMBO: ready hostname=rbd-vm/);
    figure('deploy → the guest booted from RBD is ready', Date.now() - t);

    const rootVolume = (await admin.request<any>('listVolumes', { virtualmachineid: vm.id, type: 'ROOT' }))
      .volume[0];
    assert.equal(rootVolume.storageid, pool.id, 'the ROOT disk is on the RBD pool');
    const templateTpl = c.images().find((i) => /^template-[0-9a-f-]+$/.test(i));
    assert.ok(templateTpl, `the template was imported into the pool once (${c.images().join(', ')})`);
    const info = rbdInfo(rootVolume.id);
    assert.deepEqual(
      { pool: info.parent?.pool, image: info.parent?.image, snapshot: info.parent?.snapshot },
      { pool: c.pool, image: templateTpl, snapshot: 'base' },
      "the ROOT disk is a clone of the template's protected snapshot",
    );
    // QEMU opens the disk through librbd; the key is a secret object, not on its command line.
    const [pid] = kvm.qemuPids();
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    assert.match(cmdline, /"driver":"rbd"/);
    assert.match(cmdline, new RegExp(`"image":"${rootVolume.id}"`));
    assert.ok(!cmdline.includes(c.key), 'the cephx key is not on the command line');
    const vmDir = join(kvm.root, 'agent', HOST, 'vms', instance);
    assert.ok(!readFileSync(join(vmDir, 'vm.json'), 'utf8').includes(c.key), 'nor in the VM record');
    assert.deepEqual(
      readdirSync(vmDir).filter((f) => f.endsWith('.key')),
      [],
      'the key files QEMU read at start are gone',
    );

    // A data volume on RBD, hot-plugged (secret over QMP), written and read back by the guest.
    const data = (await admin.call<any>('createVolume', { name: 'rbd-data', zoneid, diskofferingid })).volume;
    t = Date.now();
    await admin.call('attachVolume', { id: data.id, virtualmachineid: vm.id });
    const line = await kvm.consoleLine(instance, /NIMBO-DATA read/);
    figure('attachVolume → the guest wrote and read its RBD data disk', Date.now() - t);
    assert.equal(line.trim(), `NIMBO-DATA read ${marker}`);
    assert.equal((await admin.request<any>('listVolumes', { id: data.id })).volume[0].storageid, pool.id);
    // The bytes are in Ceph: read through librbd on the host.
    assert.equal(imageHead(data.id, marker.length).toString(), marker);

    // A live resize of the attached data disk (QMP block_resize through librbd).
    const bigger = (
      await admin.request<any>('createDiskOffering', {
        name: 'rbd-2',
        displaytext: '2 GB on RBD',
        disksize: 2,
        tags: 'rbd',
      })
    ).diskoffering.id;
    const resized = (await admin.call<any>('resizeVolume', { id: data.id, diskofferingid: bigger })).volume;
    assert.equal(resized.size, 2 * 2 ** 30);
    assert.equal(rbdInfo(data.id).size, 2 * 2 ** 30, 'the RBD image grew');

    // A snapshot of the running ROOT disk: an RBD snapshot, exported to secondary storage, dropped.
    t = Date.now();
    const snap = (await admin.call<any>('createSnapshot', { volumeid: rootVolume.id })).snapshot;
    figure('createSnapshot of the running ROOT disk on RBD (backed up)', Date.now() - t);
    assert.equal(snap.state, 'BackedUp');
    const backup = String(
      execFileSync('find', [kvm.root, '-name', `${snap.id}.qcow2`], { encoding: 'utf8' }),
    ).trim();
    assert.ok(backup, 'the backup is a file on secondary storage');
    assert.equal(JSON.parse(c.rbd('snap', 'ls', '--format', 'json', `${c.pool}/${rootVolume.id}`)).length, 0);

    // A template from the snapshot (its backup copied on secondary storage).
    t = Date.now();
    const made = (
      await admin.call<any>('createTemplate', {
        snapshotid: snap.id,
        name: 'from-rbd-snap',
        displaytext: 'from an RBD snapshot',
        ostypeid: (await admin.request<any>('listOsTypes', {})).ostype[0].id,
      })
    ).template;
    figure('createTemplate from the RBD snapshot', Date.now() - t);
    assert.equal(made.isready, true);

    // Stopped, the ROOT disk reverted to the snapshot: still a clone of the template, and it boots.
    await admin.call('detachVolume', { id: data.id });
    await admin.call('stopVirtualMachine', { id: vm.id });
    t = Date.now();
    await admin.call('revertSnapshot', { id: snap.id });
    figure('revertSnapshot of the ROOT disk on RBD', Date.now() - t);
    assert.equal(rbdInfo(rootVolume.id).parent?.image, templateTpl, 'still a clone');
    rmSync(join(vmDir, 'console.log'), { force: true });
    await admin.call('startVirtualMachine', { id: vm.id });
    await kvm.consoleLine(instance, /NIMBO: ready hostname=rbd-vm/);
    await admin.call('deleteSnapshot', { id: snap.id });
    assert.ok(!existsSync(backup), 'the backup is deleted');
    await admin.call('deleteTemplate', { id: made.id });

    // Offline RBD → a managed iSCSI LUN: the provider makes the LUN, the host copies into it.
    const lunPool = tgt ? await moveToLun(data.id, { zoneid, local }) : undefined;

    // Delete, destroy, remove the pool: no RBD image is left.
    await admin.request('deleteVolume', { id: data.id });
    assert.ok(!c.images().includes(data.id), 'the data volume is deleted from the pool');
    if (lunPool) {
      assert.ok(!tgt!.targets().some((n) => n.endsWith(data.id)), 'its LUN and target are removed');
      assert.ok(!tgt!.files().includes(`${data.id}.lun`), "and the LUN's backing file");
      await admin.request('deleteStoragePool', { id: lunPool });
      assert.deepEqual(tgt!.targets(), [], 'no target is left on tgtd');
    }
    await admin.call('destroyVirtualMachine', { id: vm.id, expunge: true });
    await waitUntil(async () => !c.images().includes(rootVolume.id), 30_000, 'the ROOT disk to be deleted');
    assert.equal(spawnSync('kill', ['-0', String(pid)]).status, 1, 'QEMU is gone');
    t = Date.now();
    await admin.request('deleteStoragePool', { id: pool.id });
    figure('deleteStoragePool (the template image unprotected and removed)', Date.now() - t);
    assert.deepEqual(c.images(), [], 'no RBD image is left (rbd ls)');
  });
});

/**
 * The detached data volume moved offline from the RBD pool into a new LUN of a managed iSCSI pool
 * (LinuxTgt, tagged rbd like the volume's offering): its bytes as they were on RBD (qemu-img
 * compare of a copy taken before against the LUN, read over iSCSI), the RBD image gone. Answers
 * the iSCSI pool's id.
 */
async function moveToLun(volume: string, ctx: { zoneid: string; local: any }): Promise<string> {
  const admin = server.admin;
  const c = ceph!;
  const t0 = tgt!;
  const pool = (
    await admin.request<any>('createStoragePool', {
      zoneid: ctx.zoneid,
      podid: ctx.local.podid,
      clusterid: ctx.local.clusterid,
      name: 'tgt',
      provider: 'LinuxTgt',
      managed: true,
      url: `iscsi://${t0.address}/${t0.lunDir.replace(/^\//, '')}`,
      tags: 'rbd',
      'details[0].sshkey': t0.privateKey,
      'details[0].initiators': t0.initiator,
    })
  ).storagepool;
  const before = join(kvm.root, `${volume}.before.raw`);
  execFileSync('qemu-img', [
    'convert',
    '-f',
    'raw',
    '-O',
    'raw',
    `rbd:${c.pool}/${volume}:conf=${c.conf}`,
    before,
  ]);
  try {
    let t = Date.now();
    const moved = (await admin.call<any>('migrateVolume', { volumeid: volume, storageid: pool.id })).volume;
    figure('migrateVolume offline RBD → new iSCSI LUN (2 GiB data disk)', Date.now() - t);
    assert.equal(moved.storageid, pool.id);
    const target = t0.targets().find((n) => n.endsWith(volume));
    assert.ok(target, `the provider made a LUN for it (${t0.targets().join(', ')})`);
    assert.ok(!c.images().includes(volume), 'the RBD image is deleted once the move is recorded');
    t = Date.now();
    execFileSync('qemu-img', [
      'compare',
      '-f',
      'raw',
      '-F',
      'raw',
      before,
      `iscsi://${t0.address}:3260/${target}/1`,
    ]);
    figure('qemu-img compare of the copy taken before with the LUN (over iSCSI)', Date.now() - t);
  } finally {
    rmSync(before, { force: true });
  }
  return pool.id;
}
