/**
 * Managed iSCSI primary storage with a real target and a real VM (npm run test:storage): a Linux
 * tgt target and an OpenSSH server in a network namespace reached over a veth pair
 * (storage/tgt.ts), and the KVM local zone. Through the API: a LinuxTgt pool added with the SSH
 * key (bad credentials and an unreachable server refused with nothing recorded); a VM whose ROOT
 * disk is a LUN the provider made and the host filled from the template, booted through QEMU's
 * libiscsi; a data volume whose LUN appears on the target when it is attached, written and read
 * back by the guest, snapshotted while attached (backup on secondary storage), detached, its LUN
 * overwritten and reverted to the snapshot; then deleted (its target and file gone), the VM
 * expunged (the ROOT LUN gone), the pool removed, the servers stopped.
 * Needs kvm.root, QEMU with qemu-block-extra, tgt, openssh-server and the test template.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, rmSync, statfsSync } from 'node:fs';
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

    // Deleted: the target and its file go with the volume; the ROOT LUN with the VM.
    await admin.request('deleteVolume', { id: data.id });
    assert.ok(!tgt!.targets().includes(targetOf(data.id)), 'the data LUN is gone from tgtd');
    assert.ok(!tgt!.files().includes(`${data.id}.lun`), 'its backing file is gone');
    await admin.call('destroyVirtualMachine', { id: vm.id, expunge: true });
    await waitUntil(
      async () => !tgt!.targets().includes(targetOf(rootVolume.id)),
      30_000,
      'the ROOT LUN to be removed',
    );
    assert.equal(spawnSync('kill', ['-0', String(pid)]).status, 1, 'QEMU is gone');

    await admin.request('deleteStoragePool', { id: pool.id });
    assert.deepEqual(tgt!.targets(), [], 'no target is left on tgtd');
    assert.deepEqual(tgt!.files(), [], 'no LUN file is left on the storage server');
    figure('the whole managed iSCSI scenario', Date.now() - t0);
  });
});
