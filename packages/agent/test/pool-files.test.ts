/**
 * How the KVM driver reaches a pool's files (pool-files.ts), without a real NFS server: the choice
 * by pool type and NFS path, the names QEMU and qemu-img get, what the server records, and the
 * pools it refuses. The NFS paths against a real server are test:storage's (storage-nfs.test.ts).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { DirectoryFiles, PoolAccess } from '../src/drivers/kvm/pool-files.ts';

const dir = mkdtempSync(join(tmpdir(), 'nimbo-pool-files-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const uuid = '6c1f2d9e-0a57-4d39-9c1b-3f5bd1f0c0a1';

describe('pool files', () => {
  test('a directory pool: absolute paths, recorded as such, measured by statfs', async () => {
    const files = await new PoolAccess({ nfs: 'libnfs', mountRoot: dir }).files({
      uuid,
      type: 'Filesystem',
      path: join(dir, 'local'),
    });
    assert.ok(files instanceof DirectoryFiles);
    assert.equal(files.image('v1'), join(dir, 'local', 'v1'));
    assert.equal(files.recorded('v1'), join(dir, 'local', 'v1'));
    assert.equal(files.image('/elsewhere/x.qcow2'), '/elsewhere/x.qcow2');
    assert.deepEqual(files.blockFile('v1', false), {
      driver: 'file',
      filename: join(dir, 'local', 'v1'),
      'read-only': false,
    });
    const stats = await files.stats();
    assert.ok(stats.capacityBytes > 0 && stats.usedBytes <= stats.capacityBytes);
    // An image store's NFS location (no server named) is a directory the host has.
    const store = await new PoolAccess({ nfs: 'libnfs', mountRoot: dir }).files({
      uuid,
      type: 'NetworkFilesystem',
      path: join(dir, 'store'),
    });
    assert.equal(store.image('t.qcow2'), join(dir, 'store', 't.qcow2'));
  });

  test('small records in a directory pool: written whole, read back; a pool not there is never made', async () => {
    // A kernel-mounted export is such a directory, with names relative to it.
    const mount = join(dir, 'mounted');
    const files = new DirectoryFiles(mount, true);
    await assert.rejects(files.writeText('.hb/h1.json', '{}'), /not there \(pool not mounted\?\)/);
    assert.ok(!existsSync(mount), 'the mount point is not made by a write');
    mkdirSync(mount);
    await files.writeText('.hb/h1.json', '{"time":1}');
    await files.writeText('.hb/h1.json', '{"time":2}');
    assert.equal(await files.readText('.hb/h1.json'), '{"time":2}');
    assert.deepEqual(readdirSync(join(mount, '.hb')), ['h1.json'], 'no temporary file is left');
    await assert.rejects(files.readText('.hb/h2.json'), /ENOENT/);
  });

  test("an NFS pool in user space: nfs:// URLs, QEMU's nfs driver, names recorded relative to the export", async () => {
    const files = await new PoolAccess({ nfs: 'libnfs', mountRoot: dir }).files({
      uuid,
      type: 'NetworkFilesystem',
      path: '/export/vms',
      host: '192.0.2.10',
      port: 2049,
    });
    assert.equal(files.image('v1'), 'nfs://192.0.2.10/export/vms/v1');
    assert.equal(files.image('snapshots/s1.qcow2'), 'nfs://192.0.2.10/export/vms/snapshots/s1.qcow2');
    assert.equal(files.recorded('v1'), 'v1');
    assert.deepEqual(files.blockFile('v1', true), {
      driver: 'nfs',
      server: { type: 'inet', host: '192.0.2.10' },
      path: '/export/vms/v1',
      'read-only': true,
    });
    assert.throws(() => files.image('/etc/passwd'), /not a file of NFS export/);
    const v6 = await new PoolAccess({ nfs: 'libnfs', mountRoot: dir }).files({
      uuid,
      type: 'NetworkFilesystem',
      path: '/e',
      host: '2001:db8::5',
    });
    assert.equal(v6.image('v1'), 'nfs://[2001:db8::5]/e/v1');
  });

  test('refused: another NFS port, RBD pools (not opened yet), simulator pools', async () => {
    const access = new PoolAccess({ nfs: 'libnfs', mountRoot: dir });
    await assert.rejects(
      access.files({ uuid, type: 'NetworkFilesystem', path: '/e', host: 'h', port: 2050 }),
      /only the standard port 2049/,
    );
    await assert.rejects(
      access.files({ uuid, type: 'RBD', path: 'vms', host: 'mon' }),
      /does not open RBD pools/,
    );
    await assert.rejects(access.files({ uuid, type: 'Simulator', path: '/sim' }), /simulator pool/);
  });
});
