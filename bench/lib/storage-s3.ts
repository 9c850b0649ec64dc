/**
 * The storage benchmark's snapshot case: a volume snapshot backed up to an S3 image store (Swift's
 * s3api, started by the benchmark) through the API, against its floor in the same run.
 *
 * The backup's path (docs/storage.md): the agent converts the volume into the store's staging
 * directory on the management server (qemu-img convert, its template folded in), then the server
 * uploads the file with the AWS SDK's multipart Upload (16 MiB parts, 2 at a time) and checks the
 * stored size. The floor is those two steps alone on the same bytes: qemu-img convert of the same
 * volume into the same directory, and a plain multipart upload of the backup's own bytes (read
 * back from the bucket) with the same SDK, client settings (object-stores.ts's s3Client) and part
 * settings, to the same bucket.
 */
import { execFileSync } from 'node:child_process';
import { createReadStream, createWriteStream, mkdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  ListObjectsV2Command,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { CloudStackClient } from '@nimbostack/client';
import { s3Client } from '../../packages/server/src/storage/object-stores.ts';
import {
  SWIFT_ACCOUNT,
  SWIFT_KEY,
  SWIFT_USER,
  type Swift,
} from '../../packages/server/test/storage/swift.ts';
import { round } from './measure.ts';
import type { BenchPool } from './storage-pools.ts';

/** As the server's putFile (object-stores.ts): 16 MiB parts, two in flight. */
const PART_SIZE = 16 * 1024 * 1024;
const QUEUE_SIZE = 2;
const DATA_GIB = 1;

export interface S3Bench {
  volumeGiB: number;
  writtenMiB: number;
  objectBytes: number;
  /** createSnapshot → BackedUp (the job done), each in ms. */
  snapshotMs: number[];
  snapshotP50Ms: number;
  /** qemu-img convert of the volume into the staging directory (median), ms. */
  floorConvertMs: number;
  /** A plain multipart upload of the backup's bytes (median), ms. */
  floorUploadMs: number;
  floorUploadRunsMs: number[];
  /** Objects or a bucket still there after the store was deleted. */
  leftovers: string[];
}

export interface S3Options {
  admin: CloudStackClient;
  zoneid: string;
  templateid: string;
  swift: Swift;
  /** The directory pool the VM and its data disk go on (its tag steers them). */
  pool: BenchPool;
  /** The server's data directory (the store's staging directory is under it). */
  dataDir: string;
  work: string;
  snapshots: number;
  writtenMiB: number;
  floorRuns: number;
  log(s: string): void;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? round(s[Math.floor((s.length - 1) / 2)]!, 1) : Number.NaN;
};

export async function s3Snapshots(o: S3Options): Promise<S3Bench> {
  const { admin, zoneid } = o;
  const bucket = `nimbo-bench-${process.pid}`;
  const details = {
    accesskey: `${SWIFT_ACCOUNT}:${SWIFT_USER}`,
    secretkey: SWIFT_KEY,
    bucket,
    endpoint: o.swift.endpoint,
  };
  const store = (
    await admin.request<any>('addImageStore', {
      provider: 'S3',
      name: 'bench-s3',
      zoneid,
      ...Object.fromEntries(
        Object.entries(details).flatMap(([k, v], i) => [
          [`details[${i}].key`, k],
          [`details[${i}].value`, v],
        ]),
      ),
    })
  ).imagestore;
  const s3 = s3Client(
    {
      endpoint: o.swift.endpoint,
      bucket,
      region: 'us-east-1',
      accessKey: details.accesskey,
      createdBucket: false,
    },
    SWIFT_KEY,
  );
  const staging = join(o.dataDir, 'image-stores', store.id);
  const local = join(o.work, 'floor-object.qcow2');
  let vmId: string | undefined;
  let dataId: string | undefined;
  const snapIds: string[] = [];
  try {
    const serviceofferingid = (
      await admin.request<any>('listServiceOfferings', { name: `bench-${o.pool.tag}` })
    ).serviceoffering[0].id;
    const diskofferingid = (
      await admin.request<any>('createDiskOffering', {
        name: 'bench-s3-data',
        displaytext: `${DATA_GIB} GB on ${o.pool.tag}`,
        disksize: DATA_GIB,
        tags: o.pool.tag,
      })
    ).diskoffering.id;
    const vm = (
      await admin.call<any>('deployVirtualMachine', {
        zoneid,
        templateid: o.templateid,
        serviceofferingid,
        diskofferingid,
        name: 'bench-s3',
      })
    ).virtualmachine;
    vmId = vm.id;
    await admin.call('stopVirtualMachine', { id: vm.id, forced: true });
    const data = (await admin.request<any>('listVolumes', { virtualmachineid: vm.id, type: 'DATADISK' }))
      .volume[0];
    dataId = data.id;
    const file = o.pool.image(data.id);
    // What a guest writing its disk would leave: written clusters, copied whole into the backup.
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x5a 0 ${o.writtenMiB}M`, file], {
      stdio: 'pipe',
    });

    const snapshotMs: number[] = [];
    for (let i = 0; i < o.snapshots; i++) {
      const t0 = performance.now();
      const snap = (await admin.call<any>('createSnapshot', { volumeid: data.id })).snapshot;
      snapshotMs.push(round(performance.now() - t0, 1));
      snapIds.push(snap.id);
      if (snap.state !== 'BackedUp') throw new Error(`snapshot ${snap.id} is ${snap.state}`);
    }
    o.log(`S3: createSnapshot p50 ${median(snapshotMs)} ms (${snapshotMs.length})`);

    // Floor 1: the agent's copy, the same command into the same directory.
    mkdirSync(staging, { recursive: true });
    const convert: number[] = [];
    for (let i = 0; i < o.floorRuns; i++) {
      const out = join(staging, `floor-${process.pid}-${i}.qcow2`);
      const t0 = performance.now();
      execFileSync('qemu-img', ['convert', '-O', 'qcow2', file, out], { stdio: 'pipe' });
      convert.push(performance.now() - t0);
      rmSync(out, { force: true });
    }

    // Floor 2: the backup's own bytes uploaded again with the same SDK and settings.
    const key = `snapshots/${snapIds[0]}.qcow2`;
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    await pipeline(got.Body as Readable, createWriteStream(local));
    const objectBytes = statSync(local).size;
    const upload: number[] = [];
    for (let i = 0; i < o.floorRuns; i++) {
      const floorKey = `bench-floor/${process.pid}-${i}`;
      const t0 = performance.now();
      await new Upload({
        client: s3,
        params: { Bucket: bucket, Key: floorKey, Body: createReadStream(local), ContentLength: objectBytes },
        partSize: PART_SIZE,
        queueSize: QUEUE_SIZE,
        leavePartsOnError: false,
      }).done();
      upload.push(round(performance.now() - t0, 1));
      await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: floorKey }));
    }
    const result = {
      volumeGiB: DATA_GIB,
      writtenMiB: o.writtenMiB,
      objectBytes,
      snapshotMs,
      snapshotP50Ms: median(snapshotMs),
      floorConvertMs: median(convert),
      floorUploadMs: median(upload),
      floorUploadRunsMs: upload,
      leftovers: [] as string[],
    };
    o.log(`S3: floor convert ${result.floorConvertMs} ms, upload ${result.floorUploadMs} ms`);

    // Everything goes through the API: snapshots, the VM, then the store (its built-in template
    // moved home first) and with it the bucket it made.
    for (const id of snapIds.splice(0)) await admin.call('deleteSnapshot', { id });
    await admin.call('destroyVirtualMachine', { id: vm.id, expunge: true });
    vmId = undefined;
    // A destroyed VM's data disk stays, detached (as upstream): it goes on its own.
    await admin.request('deleteVolume', { id: data.id });
    dataId = undefined;
    const home = (await admin.request<any>('listImageStores', { provider: 'NFS' })).imagestore[0];
    await admin.call('migrateSecondaryStorageData', { srcpool: store.id, destpools: home.id });
    await admin.request('deleteImageStore', { id: store.id });
    const bucketLeft = await s3.send(new HeadBucketCommand({ Bucket: bucket })).then(
      () => true,
      (e) => e.$metadata?.httpStatusCode !== 404,
    );
    if (bucketLeft) {
      const objects = (await s3.send(new ListObjectsV2Command({ Bucket: bucket }))).Contents ?? [];
      result.leftovers.push(`bucket ${bucket}`, ...objects.map((x) => `s3:${x.Key}`));
    }
    return result;
  } finally {
    for (const id of snapIds) await admin.call('deleteSnapshot', { id }).catch(() => undefined);
    if (vmId) await admin.call('destroyVirtualMachine', { id: vmId, expunge: true }).catch(() => undefined);
    if (dataId) await admin.request('deleteVolume', { id: dataId }).catch(() => undefined);
    rmSync(local, { force: true });
    s3.destroy();
  }
}
