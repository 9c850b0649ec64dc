/**
 * Image stores without an object store server (the real S3 and Swift runs are in
 * storage-object-stores.test.ts, npm run test:storage): S3 and Swift settings refused with 431
 * before anything is reached, an unreachable endpoint refused with 530 and nothing recorded, and
 * migrateSecondaryStorageData between two local stores of a zone: the template's file moves, its
 * record follows, the source is left empty and deletable, and the template still extracts.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createZone, waitUntil } from './agents.ts';
import { startServer, type TestServer } from './harness.ts';

const is = (code: number, text?: RegExp) => (e: any) =>
  e.errorcode === code && (!text || text.test(e.errortext));

const details = (d: Record<string, string>) =>
  Object.fromEntries(
    Object.entries(d).flatMap(([k, v], i) => [
      [`details[${i}].key`, k],
      [`details[${i}].value`, v],
    ]),
  );

/** Every file under a directory, relative to it. */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1));
}

describe('image stores: object store settings and migrateSecondaryStorageData', () => {
  let server: TestServer;
  let files: Server;
  let filesUrl = '';
  const dirs = [mkdtempSync(join(tmpdir(), 'nimbo-store-a-')), mkdtempSync(join(tmpdir(), 'nimbo-store-b-'))];
  const image = randomBytes(256 * 1024);
  image.fill(0, 0, 72);
  image.writeUInt32BE(0x514649fb, 0);
  image.writeUInt32BE(3, 4);
  image.writeBigUInt64BE(BigInt(1024 ** 3), 24);

  before(async () => {
    files = createServer((_req, res) => res.writeHead(200, { 'content-length': image.length }).end(image));
    await new Promise<void>((r) => files.listen(0, '127.0.0.1', r));
    filesUrl = `http://127.0.0.1:${(files.address() as AddressInfo).port}/tpl.qcow2`;
    server = await startServer();
  });

  after(async () => {
    await server?.stop();
    files?.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  test('bad S3 and Swift settings are refused and record nothing', async () => {
    const admin = server.admin;
    await assert.rejects(
      admin.request('addImageStore', { provider: 'Ceph', url: '/x' }),
      is(431, /use NFS, S3 or Swift/),
    );
    await assert.rejects(
      admin.request('addImageStore', { provider: 's3', ...details({ accesskey: 'a', bucket: 'abc' }) }),
      is(431, /needs secretkey/),
    );
    await assert.rejects(
      admin.request('addImageStoreS3', { accesskey: 'a', secretkey: 'b', bucket: 'ab', endpoint: 'h:1' }),
      is(431, /Invalid bucket name ab/),
    );
    await assert.rejects(
      admin.request('addImageStoreS3', {
        accesskey: 'a',
        secretkey: 'b',
        bucket: 'abc',
        endpoint: 'ftp://127.0.0.1',
      }),
      is(431, /use http or https/),
    );
    await assert.rejects(
      admin.request('addSwift', { url: 'http://127.0.0.1:1/auth/v1.0', account: 'a', username: 'u' }),
      is(431, /needs key/),
    );
    await assert.rejects(
      admin.request('updateCloudToUseObjectStore', { provider: 'NFS', url: '/x' }),
      is(431, /use S3 or Swift/),
    );
    // Nothing listens on port 1: the store cannot be reached, so it is not recorded.
    await assert.rejects(
      admin.request('addImageStoreS3', {
        accesskey: 'a',
        secretkey: 'b',
        bucket: 'abc',
        endpoint: '127.0.0.1:1',
      }),
      is(530, /Unable to reach bucket abc at http:\/\/127\.0\.0\.1:1: .*ECONNREFUSED/),
    );
    const stores = (await admin.request<any>('listImageStores', {})).imagestore ?? [];
    assert.deepEqual(stores, []);
  });

  test('migrateSecondaryStorageData moves a template between two local stores', async () => {
    const admin = server.admin;
    const zoneid = await createZone(admin, 'migrate-zone');
    const [a, b] = await Promise.all(
      dirs.map(
        async (url, i) =>
          (await admin.request<any>('addImageStore', { name: `store-${i}`, provider: 'NFS', url, zoneid }))
            .imagestore,
      ),
    );
    await assert.rejects(
      admin.call('migrateSecondaryStorageData', { srcpool: a.id, destpools: a.id }),
      is(431, /is the source/),
    );
    await admin.request('updateImageStore', { id: b.id, readonly: true });
    await assert.rejects(
      admin.call('migrateSecondaryStorageData', { srcpool: a.id, destpools: b.id }),
      is(431, /read-only/),
    );
    await admin.request('updateImageStore', { id: b.id, readonly: false });
    await admin.request('updateImageStore', { id: a.id, capacitybytes: 1024 ** 4 });
    const ostypeid = (await admin.request<any>('listOsTypes', {})).ostype[0].id;
    const tpl = (
      await admin.request<any>('registerTemplate', {
        name: 'moving',
        displaytext: 'moving',
        url: filesUrl,
        format: 'QCOW2',
        hypervisor: 'Simulator',
        zoneid,
        ostypeid,
        isextractable: true,
      })
    ).template[0];
    await waitUntil(
      async () =>
        (await admin.request<any>('listTemplates', { templatefilter: 'self', id: tpl.id })).template?.[0]
          ?.isready,
      20_000,
      'the template',
    );
    // Both stores also hold the built-in template, which every store of a zone is given.
    const placed = filesUnder(dirs[0]).filter((f) => f.includes(tpl.id));
    assert.equal(placed.length, 1, 'the roomiest store got it');
    assert.equal(filesUnder(dirs[1]).filter((f) => f.includes(tpl.id)).length, 0);
    await assert.rejects(admin.request('deleteImageStore', { id: a.id }), is(536));
    const moved = (await admin.call<any>('migrateSecondaryStorageData', { srcpool: a.id, destpools: b.id }))
      .imagestore;
    assert.equal(moved.success, true);
    assert.equal(moved.migrationtype, 'Complete');
    // Ours is copied; the built-in one, already on the destination, just leaves the source.
    assert.match(moved.message, /Moved 2 template or ISO copies and 0 snapshot backups/);
    assert.deepEqual(filesUnder(dirs[0]), []);
    assert.deepEqual(
      filesUnder(dirs[1]).filter((f) => f.includes(tpl.id)),
      placed,
      'the same path on the other store',
    );
    const url: string = (await admin.call<any>('extractTemplate', { id: tpl.id, mode: 'HTTP_DOWNLOAD' }))
      .template.url;
    const got = Buffer.from(await (await fetch(url)).arrayBuffer());
    assert.equal(
      createHash('sha256').update(got).digest('hex'),
      createHash('sha256').update(image).digest('hex'),
    );
    await admin.request('deleteImageStore', { id: a.id });
  });
});
