/**
 * NFS image stores reached in user space (npm run test:storage): NFS-Ganesha in a network
 * namespace (storage/nfs-ganesha.ts) and the KVM local zone whose server and host reach NFS in
 * user space (NIMBOSTACK_KVM_NFS=libnfs; this kernel has no NFS client).
 * - The NFSv3 client shared by the agent and the server (@nimbostack/protocol/nfs-client): a
 *   multi-megabyte stream copied onto the export in chunks (UNSTABLE writes, COMMIT, read back and
 *   compared), streamed back, replaced, small files, rename, removal with its directory, FSSTAT,
 *   and the errors of a missing file and of a path that is not exported.
 * - Through the API: addImageStore provider=NFS with an nfs:// URL refused with 530 and nothing
 *   recorded when the server cannot be reached or the path is not exported; added and sized by
 *   FSSTAT; the KVM test template registered into it from a local HTTP server (checksum checked,
 *   the file on the export read back through NFS with the same SHA-256); a VM deployed from it
 *   to Running (the template staged on the server for the host, same SHA-256); a snapshot of its
 *   ROOT disk backed up onto the export, reverted from it (staged back) and the VM started on the
 *   reverted disk; the
 *   snapshot and the template deleted with their files; the built-in template moved off by
 *   migrateSecondaryStorageData, and the store deleted with its staging directory.
 * Needs root, QEMU with qemu-block-extra, nfs-ganesha(-vfs), rpcbind and the test template.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, statfsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { NfsError, NfsExport } from '@nimbostack/protocol/nfs-client';
import { waitUntil } from './agents.ts';
import type { TestServer } from './harness.ts';
import { readyKvmTestTemplate } from './kvm-advanced-zone.ts';
import { figure, LocalKvm, storageSkip, TEMPLATE } from './storage/local-kvm.ts';
import { type NfsServer, nfsGaneshaInstalled, startNfsGanesha } from './storage/nfs-ganesha.ts';

const SKIP = storageSkip({
  installed: nfsGaneshaInstalled(),
  needs: 'nfs-ganesha, nfs-ganesha-vfs, rpcbind and qemu-block-extra',
});

const MiB = 1024 ** 2;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const is = (code: number, text?: RegExp) => (e: any) =>
  e.errorcode === code && (!text || text.test(e.errortext));

async function streamSha(stream: Readable): Promise<{ size: number; sha: string }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of stream) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { size, sha: hash.digest('hex') };
}

/**
 * Only one NFS-Ganesha can run on a machine (rpcbind): another suite's is waited for, never
 * stopped.
 */
async function startGaneshaWhenFree(): Promise<NfsServer> {
  const running = () =>
    ['ganesha.nfsd', 'rpcbind'].some((name) => {
      try {
        execFileSync('pgrep', ['-x', name], { stdio: 'pipe' });
        return true;
      } catch {
        return false;
      }
    });
  const deadline = Date.now() + 300_000;
  while (running()) {
    if (Date.now() > deadline) throw new Error('another NFS-Ganesha or rpcbind kept running for 5 minutes');
    await new Promise((r) => setTimeout(r, 5_000));
  }
  return startNfsGanesha();
}

let kvm: LocalKvm;
let server: TestServer;
let nfs: NfsServer | undefined;
let files: Server | undefined;
let filesUrl = '';

before(async () => {
  if (SKIP) return;
  kvm = new LocalKvm('nimbo-nfs-store-');
  const t = Date.now();
  nfs = await startGaneshaWhenFree();
  figure('NFS-Ganesha in its namespace: up', Date.now() - t);
  files = createServer((req, res) => {
    if (req.url !== '/template.qcow2') return void res.writeHead(404).end();
    createReadStream(TEMPLATE).pipe(res);
  });
  await new Promise<void>((r) => files!.listen(0, '127.0.0.1', r));
  filesUrl = `http://127.0.0.1:${(files.address() as AddressInfo).port}`;
  server = await kvm.start({ NIMBOSTACK_KVM_NFS: 'libnfs' }, 3000);
});

after(async () => {
  if (SKIP) return;
  files?.close();
  await kvm?.stop(() => nfs?.stop());
});

describe('the NFSv3 client against NFS-Ganesha', { skip: SKIP }, () => {
  test('streams files to and from the export in chunks, checked, and manages files', async () => {
    const client = new NfsExport(nfs!.address, nfs!.exportPath);
    // 5 MiB and a few bytes, fed in odd pieces: several WRITEs whatever the server's size.
    const data = randomBytes(5 * MiB + 13);
    const pieces = function* () {
      for (let at = 0; at < data.length; at += 100_003) yield data.subarray(at, at + 100_003);
    };
    let t = Date.now();
    const copy = await client.copyIn('dir/sub/big.bin', pieces());
    figure('5 MiB copied onto the export (written, committed, read back)', Date.now() - t);
    assert.deepEqual(copy, { size: data.length, sha256: sha256(data) });
    assert.ok(readFileSync(join(nfs!.exportPath, 'dir/sub/big.bin')).equals(data), 'the bytes on the export');
    assert.equal(await client.size('dir/sub/big.bin'), data.length);
    assert.equal(await client.size('dir/sub/none'), undefined);
    assert.equal(await client.size('nowhere/none'), undefined);
    t = Date.now();
    const read = await client.readStream('dir/sub/big.bin');
    assert.equal(read.length, data.length);
    assert.deepEqual(await streamSha(read.stream), { size: data.length, sha: sha256(data) });
    figure('5 MiB streamed back', Date.now() - t);
    // Replacing a file: a reader sees the old or the new one, never a mix.
    const smaller = randomBytes(70_000);
    await client.copyIn('dir/sub/big.bin', [smaller]);
    assert.ok((await client.readFile('dir/sub/big.bin')).equals(smaller));
    assert.ok(
      !nfs!.files().some((f) => f.endsWith('.tmp')),
      `no temporary file is left (${nfs!.files().join(', ')})`,
    );

    await client.writeFile('small.json', Buffer.from('{"a":1}'));
    assert.equal((await client.readFile('small.json')).toString(), '{"a":1}');
    await client.rename('small.json', 'renamed.json');
    assert.equal(await client.exists('small.json'), false);
    assert.equal(await client.exists('renamed.json'), true);
    await client.remove('renamed.json');
    await client.remove('renamed.json'); // already gone: fine

    // A file's own directory goes with it once empty; its parent stays.
    await client.remove('dir/sub/big.bin', { dirIfEmpty: true });
    assert.deepEqual(nfs!.files(), ['dir']);
    await client.remove('dir/none', { dirIfEmpty: true });
    assert.deepEqual(nfs!.files(), [], 'dir was empty once none was "removed"');

    const fs = statfsSync(nfs!.exportPath);
    const stats = await client.stats();
    assert.equal(stats.capacityBytes, fs.blocks * fs.bsize);
    assert.ok(stats.usedBytes > 0 && stats.usedBytes < stats.capacityBytes);

    await assert.rejects(
      client.readStream('missing.bin'),
      (e) => e instanceof NfsError && /missing\.bin: no such file/.test(e.message),
    );
    await assert.rejects(
      new NfsExport(nfs!.address, '/not/exported').exists('x'),
      (e) => e instanceof NfsError && /refused to mount \/not\/exported/.test(e.message),
    );
  });
});

describe('an NFS image store reached in user space', { skip: SKIP, timeout: 600_000 }, () => {
  test('added, registered into, deployed from, snapshots backed up to and restored from, deleted', async () => {
    const admin = server.admin;
    const zoneid: string = (await admin.request<any>('listZones', {})).zone[0].id;
    const url = `nfs://${nfs!.address}${nfs!.exportPath}`;
    const client = new NfsExport(nfs!.address, nfs!.exportPath);
    const storesBefore = (await admin.request<any>('listImageStores', {})).imagestore.length;

    // Refusals: the server is reached before anything is recorded.
    await assert.rejects(
      admin.request('addImageStore', { provider: 'NFS', zoneid, url: 'nfs://127.0.0.1/export' }),
      is(530, /Cannot use NFS export nfs:\/\/127\.0\.0\.1\/export as an image store: NFS: cannot reach/),
    );
    await assert.rejects(
      admin.request('addImageStore', { provider: 'NFS', zoneid, url: `nfs://${nfs!.address}/not/exported` }),
      is(530, /refused to mount \/not\/exported/),
    );
    assert.equal((await admin.request<any>('listImageStores', {})).imagestore.length, storesBefore);

    let t = Date.now();
    const store = (
      await admin.request<any>('addImageStore', { provider: 'NFS', name: 'ganesha', zoneid, url })
    ).imagestore;
    figure('addImageStore (export probed and sized over NFS)', Date.now() - t);
    assert.equal(store.providername, 'NFS');
    assert.equal(store.protocol, 'nfs');
    assert.equal(store.url, url);
    const fs = statfsSync(nfs!.exportPath);
    assert.equal(store.disksizetotal, fs.blocks * fs.bsize, "the store's size is the export's (FSSTAT)");
    const staging = join(server.dataDir, 'image-stores', store.id);
    assert.ok(!nfs!.files().some((f) => f.includes('probe')), 'the probe file is gone');

    // New templates and snapshots go to the NFS store, not to the zone's local one.
    const local = (await admin.request<any>('listImageStores', { protocol: 'file' })).imagestore[0];
    await admin.request('updateImageStore', { id: local.id, readonly: true });

    const image = readFileSync(TEMPLATE);
    t = Date.now();
    const registered = (
      await admin.request<any>('registerTemplate', {
        name: 'on-nfs',
        displaytext: 'test template on an NFS store',
        url: `${filesUrl}/template.qcow2`,
        format: 'QCOW2',
        hypervisor: 'KVM',
        zoneid,
        ostypeid: (await admin.request<any>('listOsTypes', {})).ostype[0].id,
        checksum: `{SHA-256}${sha256(image)}`,
      })
    ).template[0];
    const ready = await waitUntil(
      async () => {
        const tpl = (await admin.request<any>('listTemplates', { templatefilter: 'self', id: registered.id }))
          .template?.[0];
        if (tpl?.status && /mismatch|Unable|Error/i.test(tpl.status)) throw new Error(tpl.status);
        return tpl?.isready ? tpl : undefined;
      },
      120_000,
      'the template on the NFS store',
    );
    figure(`${(image.length / MiB).toFixed(1)} MiB template registered onto the export`, Date.now() - t);
    const onExport = nfs!.files().filter((f) => f.includes(registered.id) && f.endsWith('.qcow2'));
    assert.equal(onExport.length, 1, `the template is on the export: ${nfs!.files().join(', ')}`);
    const viaNfs = await client.readStream(onExport[0]);
    assert.deepEqual(await streamSha(viaNfs.stream), { size: image.length, sha: sha256(image) });
    assert.ok(!existsSync(join(staging, onExport[0])), 'the staged download was removed');
    assert.ok(ready.size > 0);

    // A deploy: the server stages the template for the host, which copies it into its pool.
    const small: string = (await admin.request<any>('listServiceOfferings', { name: 'Small Instance' }))
      .serviceoffering[0].id;
    t = Date.now();
    const vm = (
      await admin.call<any>('deployVirtualMachine', {
        zoneid,
        templateid: registered.id,
        serviceofferingid: small,
        name: 'from-nfs-store',
      })
    ).virtualmachine;
    figure('deploy from the NFS store (template staged) → Running', Date.now() - t);
    assert.equal(vm.state, 'Running');
    // The host copied the very bytes registered (the guest's boot is proven elsewhere for this
    // template; waiting for it here would double the suite's time).
    const staged = readFileSync(join(staging, onExport[0]));
    assert.equal(sha256(staged), sha256(image), 'the template was staged for the host, bytes intact');

    // A volume uploaded from a URL lives on the export (the zone's first writable store), its
    // extract link is served staged, and attaching it to the running VM copies it into the host's
    // pool and removes it from the export; a second one deleted while Uploaded goes with its file.
    const upload = async (name: string) => {
      const { id } = (
        await admin.call<any>('uploadVolume', {
          name,
          zoneid,
          format: 'QCOW2',
          url: `${filesUrl}/template.qcow2`,
          checksum: `{SHA-256}${sha256(image)}`,
        })
      ).volume;
      const v = await waitUntil(
        async () => {
          const v = (await admin.request<any>('listVolumes', { id })).volume?.[0];
          if (v?.state === 'UploadError') throw new Error(v.status);
          return v?.state === 'Uploaded' ? v : undefined;
        },
        60_000,
        `volume ${name} uploaded`,
      );
      const file = nfs!.files().find((f) => f.includes(id));
      assert.ok(file, `the uploaded volume is on the export: ${nfs!.files().join(', ')}`);
      const back = await client.readStream(file);
      assert.deepEqual(await streamSha(back.stream), { size: image.length, sha: sha256(image) });
      assert.ok(!existsSync(join(staging, file)), 'the staged download was removed');
      return { v, file };
    };
    t = Date.now();
    const up = await upload('uploaded-to-nfs');
    figure('volume uploaded onto the export', Date.now() - t);
    const link = (await admin.call<any>('extractVolume', { id: up.v.id, zoneid, mode: 'HTTP_DOWNLOAD' }))
      .volume.url;
    assert.equal(sha256(execFileSync('curl', ['-sf', link], { maxBuffer: 64 * MiB })), sha256(image));
    t = Date.now();
    const attached = (await admin.call<any>('attachVolume', { id: up.v.id, virtualmachineid: vm.id })).volume;
    figure('uploaded volume attached to the running VM (staged, copied to its pool)', Date.now() - t);
    assert.equal(attached.state, 'Ready');
    assert.equal(await client.exists(up.file), false, 'the upload left the export once copied');
    assert.ok(!existsSync(join(staging, up.file)), 'and its staged copy');
    await admin.call('stopVirtualMachine', { id: vm.id, forced: true });
    // Detached from the stopped VM (the guest is not waited for, so it would not answer a live
    // unplug), then deleted.
    await admin.call('detachVolume', { id: up.v.id });
    await admin.request('deleteVolume', { id: up.v.id });
    const gone = await upload('deleted-from-nfs');
    await admin.request('deleteVolume', { id: gone.v.id });
    assert.equal(await client.exists(gone.file), false, 'deleting the volume deleted its file');

    // A snapshot of the ROOT disk: the host writes it into the staging directory, the server
    // copies it onto the export (read back and compared) and removes the staged file.
    const rootVol = (await admin.request<any>('listVolumes', { virtualmachineid: vm.id, type: 'ROOT' }))
      .volume[0];
    t = Date.now();
    const snap = (await admin.call<any>('createSnapshot', { volumeid: rootVol.id })).snapshot;
    figure('ROOT disk snapshot backed up onto the export', Date.now() - t);
    assert.equal(snap.state, 'BackedUp');
    const key = `snapshots/${snap.id}.qcow2`;
    const size = await client.size(key);
    assert.ok(size !== undefined && size > 0, `the backup is on the export (${nfs!.files().join(', ')})`);
    assert.ok(!existsSync(join(staging, key)), 'the staged backup was removed');

    // Reverting stages it back; the VM starts on the reverted disk.
    t = Date.now();
    await admin.call('revertSnapshot', { id: snap.id });
    figure('revert from the export (staging included)', Date.now() - t);
    assert.equal(readFileSync(join(staging, key)).length, size);
    const started = (await admin.call<any>('startVirtualMachine', { id: vm.id })).virtualmachine;
    assert.equal(started.state, 'Running');
    await admin.call('stopVirtualMachine', { id: vm.id, forced: true });

    await admin.call('deleteSnapshot', { id: snap.id });
    assert.equal(await client.exists(key), false, 'deleting the snapshot deleted its file');
    assert.ok(!existsSync(join(staging, key)), 'and its staged copy');
    await admin.call('destroyVirtualMachine', { id: vm.id, expunge: true });
    await admin.request('deleteTemplate', { id: registered.id, zoneid });
    await waitUntil(
      async () => !nfs!.files().some((f) => f.includes(registered.id)),
      30_000,
      "the template's file and folder to leave the export",
    );

    // The store was given the built-in template (every zonal store is): it moves home first.
    await admin.request('updateImageStore', { id: local.id, readonly: false });
    t = Date.now();
    const moved = (
      await admin.call<any>('migrateSecondaryStorageData', { srcpool: store.id, destpools: local.id })
    ).imagestore;
    figure('migrateSecondaryStorageData NFS store → local store', Date.now() - t);
    assert.match(moved.message, /Moved [1-9]\d* template/);
    await admin.request('deleteImageStore', { id: store.id });
    assert.ok(!existsSync(staging), 'the staging directory went with the store');
    const left = String(execFileSync('find', [nfs!.exportPath, '-type', 'f'], { stdio: 'pipe' })).trim();
    assert.equal(left, '', 'no file is left on the export');
    await readyKvmTestTemplate(admin, zoneid);
  });
});
