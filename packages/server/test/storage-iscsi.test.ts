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
 * Needs root, QEMU with qemu-block-extra, tgt, openssh-server and the test template.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { waitUntil } from './agents.ts';
import { startServer, type TestServer } from './harness.ts';
import { readyKvmTestTemplate } from './kvm-advanced-zone.ts';
import { startTgt, type TgtServer, tgtInstalled } from './storage/tgt.ts';

const TEMPLATE = process.env.NIMBOSTACK_TEST_TEMPLATE ?? '/var/lib/nimbostack/test-template.qcow2';
const HOST = 'local-kvm';
const SKIP =
  process.env.NIMBOSTACK_TEST_STORAGE !== '1'
    ? 'real storage suite: run it with npm run test:storage'
    : process.getuid?.() !== 0
      ? 'needs root'
      : !existsSync(TEMPLATE)
        ? `${TEMPLATE} is missing: run npm run setup:host`
        : !tgtInstalled()
          ? 'needs tgt, openssh-server and qemu-block-extra'
          : false;

let server: TestServer;
let tgt: TgtServer | undefined;
let root = '';

const figure = (name: string, ms: number) =>
  process.stdout.write(`# figure ${name}: ${(ms / 1000).toFixed(2)} s\n`);

const fails = (code: number, text?: RegExp) => (e: any) => {
  assert.equal(e.errorcode, code, e.message);
  if (text) assert.match(e.message, text);
  return true;
};

function readConsole(instance: string): string {
  const path = join(root, 'agent', HOST, 'vms', instance, 'console.log');
  return existsSync(path) ? readFileSync(path).toString('utf8').replace(/\r/g, '') : '';
}

async function consoleLine(instance: string, pattern: RegExp, timeoutMs = 240_000): Promise<string> {
  const line = await waitUntil(
    async () =>
      readConsole(instance)
        .split('\n')
        .find((l) => pattern.test(l)),
    timeoutMs,
    `console line ${pattern} of ${instance}`,
  ).catch((e) => {
    throw new Error(`${(e as Error).message}\n${readConsole(instance).slice(-2000)}`);
  });
  return line!;
}

function qemuPids(): number[] {
  const vms = join(root, 'agent', HOST, 'vms');
  if (!existsSync(vms)) return [];
  return readdirSync(vms)
    .map((n) => join(vms, n, 'vm.json'))
    .filter((f) => existsSync(f))
    .map((f) => JSON.parse(readFileSync(f, 'utf8')).pid as number);
}

before(async () => {
  if (SKIP) return;
  root = mkdtempSync(join(tmpdir(), 'nimbo-iscsi-'));
  const t = Date.now();
  tgt = await startTgt();
  figure('tgtd and sshd in their namespace: up', Date.now() - t);
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
  if (SKIP) return;
  if (server) {
    const vms = await server.admin.request<any>('listVirtualMachines', { listall: true }).catch(() => ({}));
    for (const v of vms.virtualmachine ?? [])
      await server.admin.call('destroyVirtualMachine', { id: v.id, expunge: true }).catch(() => undefined);
    const routers = await server.admin.request<any>('listRouters', {}).catch(() => ({}));
    for (const r of routers.router ?? [])
      await server.admin.call('destroyRouter', { id: r.id }).catch(() => undefined);
  }
  // QEMU outlives the server: a failed test may leave one running from a LUN.
  for (const pid of qemuPids()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  if (server) {
    const hosts = await server.admin.request<any>('listHosts', {}).catch(() => ({}));
    for (const h of hosts.host ?? [])
      await server.admin.request('deleteHost', { id: h.id, forced: true }).catch(() => undefined);
    await server.stop();
  }
  await tgt?.stop();
  rmSync(root, { recursive: true, force: true });
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
    const serviceofferingid = (
      await admin.request<any>('createServiceOffering', {
        name: 'iscsi-small',
        displaytext: 'small, ROOT on iSCSI',
        cpunumber: 1,
        cpuspeed: 500,
        memory: 256,
        tags: 'iscsi',
      })
    ).serviceoffering.id;
    const diskofferingid = (
      await admin.request<any>('createDiskOffering', {
        name: 'iscsi-1',
        displaytext: '1 GB on iSCSI',
        disksize: 1,
        tags: 'iscsi',
      })
    ).diskoffering.id;

    // The guest waits for its data disk, writes a marker to it, drops its caches and reads it back.
    const marker = `nimbo-iscsi-${process.pid}`;
    const script = [
      '#!/bin/sh',
      '(',
      '  for i in $(seq 1 240); do [ -b /dev/vdb ] && break; sleep 1; done',
      `  printf '%s\\n' '${marker}' > /run/marker`,
      '  dd if=/run/marker of=/dev/vdb bs=512 count=1 conv=sync,fsync 2>/dev/null',
      '  sync; echo 3 > /proc/sys/vm/drop_caches',
      '  echo "NIMBO-DATA read $(dd if=/dev/vdb bs=512 count=1 2>/dev/null | head -n 1)"',
      ') > /dev/console 2>&1 &',
      '',
    ].join('\n');
    t = Date.now();
    const vm = (
      await admin.call<any>('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid,
        name: 'iscsi-vm',
        userdata: Buffer.from(script).toString('base64'),
      })
    ).virtualmachine;
    figure('deploy (a LUN made over SSH, the template copied into it) → Running', Date.now() - t);
    assert.equal(vm.state, 'Running');
    const instance = (await admin.request<any>('listVirtualMachines', { id: vm.id })).virtualmachine[0]
      .instancename;
    await consoleLine(instance, /NIMBO: ready hostname=iscsi-vm/);
    figure('deploy → the guest booted from its iSCSI LUN is ready', Date.now() - t);
    const rootVolume = (await admin.request<any>('listVolumes', { virtualmachineid: vm.id, type: 'ROOT' }))
      .volume[0];
    assert.equal(rootVolume.storageid, pool.id, 'the ROOT disk is on the iSCSI pool');
    const targetOf = (volumeId: string) => `iqn.2026-12.org.nimbostack:${pool.id}.${volumeId}`;
    assert.ok(tgt!.targets().includes(targetOf(rootVolume.id)), 'the ROOT LUN is a target on tgtd');
    const acl = tgt!.tgtadm('--mode', 'target', '--op', 'show');
    assert.match(acl, new RegExp(`ACL information:\\n\\s+${tgt!.initiator.replace(/\./g, '\\.')}`));
    // QEMU opens the disk through libiscsi, not a local path.
    const [pid] = qemuPids();
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    assert.match(cmdline, /"driver":"iscsi"/);
    assert.ok(cmdline.includes(`"target":"${targetOf(rootVolume.id)}"`));

    // A data volume: its LUN is made when it is attached; the guest writes and reads it.
    const data = (await admin.call<any>('createVolume', { name: 'iscsi-data', zoneid, diskofferingid }))
      .volume;
    assert.ok(!tgt!.targets().includes(targetOf(data.id)), 'no LUN before the volume needs one');
    t = Date.now();
    await admin.call('attachVolume', { id: data.id, virtualmachineid: vm.id });
    const line = await consoleLine(instance, /NIMBO-DATA read/);
    figure('attachVolume → the guest wrote and read its iSCSI data disk', Date.now() - t);
    assert.equal(line.trim(), `NIMBO-DATA read ${marker}`);
    assert.ok(tgt!.targets().includes(targetOf(data.id)), 'the data LUN is a target on tgtd');
    assert.ok(tgt!.files().includes(`${data.id}.lun`), "the LUN's backing file is on the storage server");
    const lunUrl = `iscsi://${tgt!.address}:3260/${targetOf(data.id)}/1`;
    const firstBytes = () => {
      const raw = join(root, 'data.raw');
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
