/**
 * Object-store image stores against a real OpenStack Swift (test/storage/swift.ts starts it on
 * loopback ports, with its S3 layer): a Swift store for the seeded local zone and an S3 store for
 * every zone added through the API (bad credentials refused with nothing recorded), a template
 * registered into the Swift container in parts with its checksum checked, an extract link signed
 * by the object store downloaded with curl, a deploy staging the template on the management
 * server, a read-only store receiving nothing new, migrateSecondaryStorageData moving the copy to
 * the S3 store, updateCloudToUseObjectStore, a volume uploaded from a URL into the Swift container
 * (extracted by a signed link, copied to primary storage when attached, its object then gone; a
 * second one deleted with its object), and at the end no object, no bucket, no staging
 * directory and no Swift process left. Needs Debian's swift and memcached: `npm run test:storage`.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { HeadBucketCommand, HeadObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { s3Client } from '../src/storage/object-stores.ts';
import { seededLocalZone, waitUntil } from './agents.ts';
import { startServer, type TestServer } from './harness.ts';
import {
  SWIFT_ACCOUNT,
  SWIFT_KEY,
  SWIFT_USER,
  type Swift,
  startSwift,
  swiftInstalled,
} from './storage/swift.ts';

const SKIP =
  process.env.NIMBOSTACK_TEST_STORAGE !== '1'
    ? 'storage suite: run it with npm run test:storage'
    : !swiftInstalled()
      ? 'needs swift-proxy-server and memcached (apt-get install swift swift-proxy ...)'
      : false;

const MiB = 1024 ** 2;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A QCOW2 header claiming `virtual` bytes, padded with random data to `physical` bytes. */
function qcow2(virtual: number, physical: number): Buffer {
  const b = randomBytes(physical);
  b.fill(0, 0, 72);
  b.writeUInt32BE(0x514649fb, 0);
  b.writeUInt32BE(3, 4);
  b.writeUInt32BE(16, 20);
  b.writeBigUInt64BE(BigInt(virtual), 24);
  return b;
}

// 40 MiB: three parts of 16 MiB, so the upload is a multipart one.
const IMAGE = qcow2(2 * 1024 ** 3, 40 * MiB);
const VOLUME = qcow2(1024 ** 3, 3 * MiB);
const S3_BUCKET = `nimbo-s3-${Date.now().toString(36)}`;
const CLOUD_BUCKET = `nimbo-cloud-${Date.now().toString(36)}`;

const is = (code: number, text?: RegExp) => (e: any) =>
  e.errorcode === code && (!text || text.test(e.errortext));

const details = (d: Record<string, string>) =>
  Object.fromEntries(
    Object.entries(d).flatMap(([k, v], i) => [
      [`details[${i}].key`, k],
      [`details[${i}].value`, v],
    ]),
  );

describe('object-store image stores (S3 and Swift)', { skip: SKIP, timeout: 600_000 }, () => {
  let swift: Swift;
  let server: TestServer;
  let files: Server;
  let filesUrl = '';
  let s3: ReturnType<typeof s3Client>;
  const stores: Record<string, any> = {};

  const objects = async (bucket: string) =>
    ((await s3.send(new ListObjectsV2Command({ Bucket: bucket }))).Contents ?? []).map((o) => o.Key);
  const bucketGone = async (bucket: string) =>
    s3.send(new HeadBucketCommand({ Bucket: bucket })).then(
      () => false,
      (e) => e.$metadata?.httpStatusCode === 404,
    );

  before(async () => {
    const t0 = Date.now();
    swift = await startSwift();
    process.stdout.write(`# figure swift start: ${((Date.now() - t0) / 1000).toFixed(2)} s\n`);
    s3 = s3Client(
      {
        endpoint: swift.endpoint,
        bucket: '',
        region: 'us-east-1',
        accessKey: `${SWIFT_ACCOUNT}:${SWIFT_USER}`,
        createdBucket: false,
      },
      SWIFT_KEY,
    );
    files = createServer((req, res) => {
      const body = req.url === '/image.qcow2' ? IMAGE : req.url === '/volume.qcow2' ? VOLUME : undefined;
      if (!body) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-length': body.length }).end(body);
    });
    await new Promise<void>((r) => files.listen(0, '127.0.0.1', r));
    filesUrl = `http://127.0.0.1:${(files.address() as AddressInfo).port}`;
    server = await startServer({ env: { NIMBOSTACK_SEED_LOCAL_ZONE: 'true' } });
  });

  after(async () => {
    await server?.stop();
    files?.close();
    s3?.destroy();
    await swift?.stop();
    if (swift) assert.ok(!existsSync(swift.dir), 'the Swift directory is removed');
  });

  test('stores are added through the API; bad settings are refused and leave nothing', async () => {
    const admin = server.admin;
    const { zoneid } = await seededLocalZone(admin);
    stores.swift = (
      await admin.request<any>('addImageStore', {
        provider: 'Swift',
        name: 'swift-zone',
        zoneid,
        url: swift.authUrl,
        ...details({ account: SWIFT_ACCOUNT, username: SWIFT_USER, key: SWIFT_KEY }),
      })
    ).imagestore;
    assert.equal(stores.swift.providername, 'Swift');
    assert.equal(stores.swift.protocol, 'http');
    assert.equal(stores.swift.scope, 'ZONE');
    assert.equal(stores.swift.readonly, false);
    stores.s3 = (
      await admin.request<any>('addImageStoreS3', {
        accesskey: `${SWIFT_ACCOUNT}:${SWIFT_USER}`,
        secretkey: SWIFT_KEY,
        bucket: S3_BUCKET,
        endpoint: swift.endpoint.replace('http://', ''),
      })
    ).imagestore;
    assert.equal(stores.s3.providername, 'S3');
    assert.equal(stores.s3.scope, 'REGION');
    assert.equal(stores.s3.url, `${swift.endpoint}/${S3_BUCKET}`);
    assert.equal(await bucketGone(S3_BUCKET), false, 'the S3 bucket was made');

    // A wrong key: the store answers, the API says why with 530, and nothing is recorded.
    await assert.rejects(
      admin.request('addImageStoreS3', {
        accesskey: `${SWIFT_ACCOUNT}:${SWIFT_USER}`,
        secretkey: 'wrong',
        bucket: 'nimbo-never',
        endpoint: swift.endpoint,
      }),
      is(530, /Unable to reach bucket nimbo-never/),
    );
    await assert.rejects(
      admin.request('addImageStore', { provider: 'S3', ...details({ accesskey: 'a', secretkey: 'b' }) }),
      is(431, /needs bucket/),
    );
    await assert.rejects(
      admin.request('addImageStoreS3', {
        accesskey: 'a',
        secretkey: 'b',
        bucket: 'Bad_Name',
        endpoint: swift.endpoint,
      }),
      is(431, /Invalid bucket name/),
    );
    await assert.rejects(admin.request('addSwift', { url: swift.authUrl, account: 'test' }), is(431));
    const listed = (await admin.request<any>('listImageStores', {})).imagestore;
    assert.deepEqual(
      listed.map((s: any) => s.providername).sort(),
      ['NFS', 'S3', 'Swift'],
      'only the two good stores were added beside the local one',
    );
    assert.deepEqual(
      (await admin.request<any>('listImageStores', { provider: 'swift' })).imagestore.map((s: any) => s.id),
      [stores.swift.id],
    );
  });

  test('a template goes into the object store, extracts by a signed link and deploys', async () => {
    const admin = server.admin;
    const { zoneid, small } = await seededLocalZone(admin);
    const ostypeid = (await admin.request<any>('listOsTypes', {})).ostype[0].id;
    const t0 = Date.now();
    const tpl = (
      await admin.request<any>('registerTemplate', {
        name: 'object-tpl',
        displaytext: 'object-tpl',
        url: `${filesUrl}/image.qcow2`,
        format: 'QCOW2',
        hypervisor: 'Simulator',
        zoneid,
        ostypeid,
        checksum: `{SHA-256}${sha256(IMAGE)}`,
        isextractable: true,
      })
    ).template[0];
    const ready = await waitUntil(
      async () => {
        const t = (await admin.request<any>('listTemplates', { templatefilter: 'self', id: tpl.id }))
          .template?.[0];
        if (t?.status && /mismatch|Unable|Error/i.test(t.status)) throw new Error(t.status);
        return t?.isready ? t : undefined;
      },
      120_000,
      'the template in the object store',
    );
    process.stdout.write(`# figure 40 MiB template into Swift: ${((Date.now() - t0) / 1000).toFixed(2)} s\n`);
    assert.equal(ready.size, 2 * 1024 ** 3);
    // Object stores come before the local store; the zone's own before the region-wide one.
    // The container also holds the built-in template, which every zonal store is given.
    const container = `nimbostack-${stores.swift.id}`;
    const keys = (await objects(container)).filter((k) => k?.includes(tpl.id));
    assert.equal(keys.length, 1, `the template is in the Swift container: ${keys}`);
    const head = await s3.send(new HeadObjectCommand({ Bucket: container, Key: keys[0] }));
    assert.equal(Number(head.ContentLength), IMAGE.length);
    assert.match(head.ETag ?? '', /-3"?$/, 'uploaded in three parts');
    assert.deepEqual(await objects(S3_BUCKET), [], 'nothing on the region-wide store');
    const staging = join(server.dataDir, 'image-stores', stores.swift.id);
    assert.ok(!existsSync(join(staging, keys[0] as string)), 'the staged download was removed');

    // The extract link is the object store's own, and curl gets the very bytes.
    const extract = (await admin.call<any>('extractTemplate', { id: tpl.id, mode: 'HTTP_DOWNLOAD', zoneid }))
      .template;
    assert.ok(extract.url.startsWith(`${swift.endpoint}/${container}/`), extract.url);
    assert.match(extract.url, /X-Amz-Expires=\d+/);
    const got = execFileSync('curl', ['-sf', extract.url], { maxBuffer: 64 * MiB });
    assert.equal(sha256(got), sha256(IMAGE));

    // A deploy reads the template from the staging directory, which the server fills first.
    const vm = (
      await admin.call<any>('deployVirtualMachine', {
        zoneid,
        templateid: tpl.id,
        serviceofferingid: small,
        name: 'from-object-store',
      })
    ).virtualmachine;
    assert.equal(vm.state, 'Running');
    const staged = join(staging, keys[0] as string);
    assert.equal(statSync(staged).size, IMAGE.length, 'staged for the agent');
    assert.equal(sha256(readFileSync(staged)), sha256(IMAGE));
    await admin.call('destroyVirtualMachine', { id: vm.id, expunge: true });
    stores.template = tpl.id;

    // What the stores hold, as they say it: Swift's container HEAD, the S3 bucket's listing.
    await admin.request('updateConfiguration', { name: 'storage.stats.interval', value: '1000' });
    const inContainer = (
      (await s3.send(new ListObjectsV2Command({ Bucket: container }))).Contents ?? []
    ).reduce((n, o) => n + Number(o.Size ?? 0), 0);
    assert.ok(inContainer >= IMAGE.length);
    const measured = await waitUntil(
      async () => {
        const listed = (await admin.request<any>('listSwifts', {})).swift ?? [];
        const s = listed.find((x: any) => x.id === stores.swift.id);
        // Swift counts what it stores: the objects, and the manifests of multipart ones (bytes).
        return s?.disksizeused >= inContainer && s.disksizeused < inContainer + 64 * 1024 ? s : undefined;
      },
      30_000,
      `the Swift store measured at ${inContainer} bytes`,
    ).catch(async (e) => {
      const said = server.logs.filter((l) => l.includes('object store')).slice(-3);
      const listed = (await admin.request<any>('listSwifts', {})).swift ?? [];
      throw new Error(`${e.message}; listed ${JSON.stringify(listed)}; the server said: ${said.join(' | ')}`);
    });
    assert.equal(measured.providername, 'Swift');
    assert.equal(measured.disksizetotal, undefined, 'no quota on the container or account: no size');
    // Measured in the same round, after the Swift store.
    const onS3 = await waitUntil(
      async () => {
        const s = (await admin.request<any>('listImageStores', { id: stores.s3.id })).imagestore[0];
        return s.disksizeused === 0 ? s : undefined;
      },
      15_000,
      'the empty S3 bucket measured by its listing',
    );
    assert.equal(onS3.disksizetotal, undefined);
    await admin.request('updateConfiguration', { name: 'storage.stats.interval', value: '60000' });
  });

  test('uploaded volumes live in the object store until copied to primary storage', async () => {
    const admin = server.admin;
    const { zoneid, templateid, small } = await seededLocalZone(admin);
    const container = `nimbostack-${stores.swift.id}`;
    const staging = join(server.dataDir, 'image-stores', stores.swift.id);
    const upload = async (name: string) => {
      const t0 = Date.now();
      const { id } = (
        await admin.call<any>('uploadVolume', {
          name,
          zoneid,
          format: 'QCOW2',
          url: `${filesUrl}/volume.qcow2`,
          checksum: `{SHA-256}${sha256(VOLUME)}`,
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
      process.stdout.write(`# figure 3 MiB volume into Swift: ${((Date.now() - t0) / 1000).toFixed(2)} s\n`);
      const keys = (await objects(container)).filter((k) => k?.includes(id));
      assert.equal(keys.length, 1, `the volume is in the Swift container (the zone's first store): ${keys}`);
      const head = await s3.send(new HeadObjectCommand({ Bucket: container, Key: keys[0] }));
      assert.equal(Number(head.ContentLength), VOLUME.length);
      assert.ok(!existsSync(join(staging, keys[0] as string)), 'the staged download was removed');
      return { v, key: keys[0] as string };
    };
    const { v, key } = await upload('uploaded-to-swift');
    assert.equal(v.size, 1024 ** 3);

    // Its extract link is the object store's own.
    const extract = (await admin.call<any>('extractVolume', { id: v.id, zoneid, mode: 'HTTP_DOWNLOAD' }))
      .volume;
    assert.ok(extract.url.startsWith(`${swift.endpoint}/${container}/`), extract.url);
    assert.equal(sha256(execFileSync('curl', ['-sf', extract.url], { maxBuffer: 16 * MiB })), sha256(VOLUME));

    // Attached to a running VM: staged, copied to primary storage by the host, its object gone.
    const vm = (
      await admin.call<any>('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid: small,
        name: 'up',
      })
    ).virtualmachine;
    const attached = (await admin.call<any>('attachVolume', { id: v.id, virtualmachineid: vm.id })).volume;
    assert.equal(attached.state, 'Ready');
    assert.equal(attached.virtualmachineid, vm.id);
    assert.ok(attached.storageid, 'on a primary storage pool');
    assert.ok(!(await objects(container)).includes(key), 'the object went once the volume was copied');
    assert.ok(!existsSync(join(staging, key)), 'and its staged copy');
    await admin.call('detachVolume', { id: v.id });
    await admin.request('deleteVolume', { id: v.id });
    await admin.call('destroyVirtualMachine', { id: vm.id, expunge: true });

    // Deleted while Uploaded: the object goes with it.
    const second = await upload('deleted-from-swift');
    await admin.request('deleteVolume', { id: second.v.id });
    assert.ok(!(await objects(container)).includes(second.key), 'deleting the volume deleted its object');
    assert.ok(!existsSync(join(staging, second.key)));
  });

  test('a read-only store gets nothing new; migrateSecondaryStorageData moves its copies', async () => {
    const admin = server.admin;
    const { zoneid } = await seededLocalZone(admin);
    const ro = (await admin.request<any>('updateImageStore', { id: stores.swift.id, readonly: true }))
      .imagestore;
    assert.equal(ro.readonly, true);
    assert.deepEqual(
      (await admin.request<any>('listImageStores', { readonly: true })).imagestore.map((s: any) => s.id),
      [stores.swift.id],
    );
    const ostypeid = (await admin.request<any>('listOsTypes', {})).ostype[0].id;
    const second = (
      await admin.request<any>('registerTemplate', {
        name: 'second-tpl',
        displaytext: 'second-tpl',
        url: `${filesUrl}/image.qcow2`,
        format: 'QCOW2',
        hypervisor: 'Simulator',
        zoneid,
        ostypeid,
      })
    ).template[0];
    await waitUntil(
      async () =>
        (await admin.request<any>('listTemplates', { templatefilter: 'self', id: second.id })).template?.[0]
          ?.isready,
      120_000,
      'the second template',
    );
    const container = `nimbostack-${stores.swift.id}`;
    assert.ok(
      !(await objects(container)).some((k) => k?.includes(second.id)),
      'nothing new on the read-only Swift store',
    );
    assert.equal((await objects(S3_BUCKET)).length, 1, 'the region-wide S3 store got it');

    const t0 = Date.now();
    const moved = (
      await admin.call<any>('migrateSecondaryStorageData', {
        srcpool: stores.swift.id,
        destpools: stores.s3.id,
      })
    ).imagestore;
    process.stdout.write(`# figure migrate 40 MiB Swift→S3: ${((Date.now() - t0) / 1000).toFixed(2)} s\n`);
    assert.equal(moved.success, true);
    assert.match(moved.message, /Moved 2 template/, 'ours and the built-in one');
    assert.deepEqual(await objects(container), [], 'the Swift container is empty');
    assert.equal((await objects(S3_BUCKET)).length, 3);
    const extract = (
      await admin.call<any>('extractTemplate', { id: stores.template, mode: 'HTTP_DOWNLOAD', zoneid })
    ).template;
    assert.ok(extract.url.startsWith(`${swift.endpoint}/${S3_BUCKET}/`), extract.url);
    assert.equal(sha256(execFileSync('curl', ['-sf', extract.url], { maxBuffer: 64 * MiB })), sha256(IMAGE));
    for (const id of [stores.template, second.id]) await admin.call('deleteTemplate', { id });
    assert.equal((await objects(S3_BUCKET)).length, 1, 'deleting the templates deleted their objects');
  });

  test('updateCloudToUseObjectStore; deleting the stores leaves no bucket behind', async () => {
    const admin = server.admin;
    // Back to the local store, which already holds the built-in template: the S3 copy just goes.
    const local = (await admin.request<any>('listImageStores', { provider: 'NFS' })).imagestore[0];
    await admin.call('migrateSecondaryStorageData', { srcpool: stores.s3.id, destpools: local.id });
    assert.deepEqual(await objects(S3_BUCKET), []);
    const cloud = (
      await admin.request<any>('updateCloudToUseObjectStore', {
        provider: 'S3',
        name: 'cloud-store',
        ...details({
          accesskey: `${SWIFT_ACCOUNT}:${SWIFT_USER}`,
          secretkey: SWIFT_KEY,
          bucket: CLOUD_BUCKET,
          endpoint: swift.endpoint,
        }),
      })
    ).imagestore;
    assert.equal(cloud.scope, 'REGION');
    const all = (await admin.request<any>('listImageStores', {})).imagestore;
    assert.equal(
      all.find((s: any) => s.providername === 'NFS').readonly,
      true,
      'the local store is read-only',
    );
    for (const s of [cloud, stores.s3, stores.swift]) await admin.request('deleteImageStore', { id: s.id });
    for (const bucket of [CLOUD_BUCKET, S3_BUCKET, `nimbostack-${stores.swift.id}`])
      assert.equal(await bucketGone(bucket), true, `bucket ${bucket} removed`);
    for (const s of [cloud, stores.s3, stores.swift])
      assert.ok(!existsSync(join(server.dataDir, 'image-stores', s.id)), 'staging directory removed');
  });
});
