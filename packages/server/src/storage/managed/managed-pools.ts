/**
 * Managed primary storage: pools whose provider makes each volume on the storage server (one
 * iSCSI target and LUN per volume, linux-tgt.ts) before a host uses it, and removes it after.
 * createStoragePool parses and checks a managed pool here (parseManagedPool, probeManagedPool);
 * volumes and VMs call prepareManagedVolume before asking a host to fill or open a volume and
 * removeManagedVolume when it is deleted. On Simulator pools the provider is not reached (there
 * is no storage server behind simulated hosts): the records are kept as for a real pool, so
 * scale tests cover them. docs/storage.md.
 */
import { iscsiTargetPrefix, iscsiVolumePath } from '@nimbostack/protocol';
import type { CallContext } from '../../context.ts';
import type { StoragePoolRow } from '../../db/schema.ts';
import { ApiError, internalError, invalidParameter } from '../../errors.ts';
import { LINUX_TGT, LinuxTgt, type LinuxTgtDetails } from './linux-tgt.ts';
import { privateKeyProblem } from './ssh.ts';

export { LINUX_TGT };

/** The iSCSI port when the URL names none. */
const ISCSI_PORT = 3260;

export interface ManagedPoolInput {
  poolType: 'Iscsi';
  hostAddress: string;
  port: number;
  /** The LUN directory on the storage server. */
  path: string;
  url: string;
  details: LinuxTgtDetails;
  privateKey: string;
}

const ADDRESS = /^(ALL|[0-9.]{7,15}(\/\d{1,2})?|[0-9a-fA-F:]{2,39}(\/\d{1,3})?)$/;

/** createStoragePool's details map as one object: details[0].sshkey=… or details[0].key/value pairs. */
export function detailsOf(raw: Record<string, string>[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of raw ?? []) {
    if ('key' in entry && 'value' in entry && Object.keys(entry).length === 2)
      out[entry.key.toLowerCase()] = entry.value;
    else for (const [k, v] of Object.entries(entry)) out[k.toLowerCase()] = v;
  }
  return out;
}

/**
 * A managed pool's URL and details: iscsi://portal[:port]/<directory on the storage server>, with
 * details sshkey (required: the private key, unencrypted), sshuser (root), sshhost (the portal),
 * sshport (22), sshhostkey (SHA256:… to pin; else the key seen first is pinned) and initiators
 * (addresses or CIDRs, comma-separated; default: the addresses of the pool's hosts).
 */
export function parseManagedPool(
  provider: string,
  rawUrl: string,
  details: Record<string, string>,
): ManagedPoolInput {
  if (provider !== LINUX_TGT)
    throw invalidParameter(`Unsupported managed storage provider ${provider}; use ${LINUX_TGT}`);
  const m = /^iscsi:\/\/(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?(\/[A-Za-z0-9._/-]*)$/i.exec(
    rawUrl.trim(),
  );
  if (!m)
    throw invalidParameter(
      `Invalid managed iSCSI URL ${rawUrl}: use iscsi://portal[:port]/directory, the directory on the storage server that holds the LUN files (letters, digits, . _ - /)`,
    );
  const host = m[1].replace(/^\[|\]$/g, '');
  const port = m[2] ? Number(m[2]) : ISCSI_PORT;
  const path = m[3].replace(/\/{2,}/g, '/').replace(/(.)\/$/, '$1');
  if (port < 1 || port > 65535) throw invalidParameter(`Invalid port in ${rawUrl}`);
  if (path === '/' || path.split('/').includes('..'))
    throw invalidParameter(`The LUN directory of ${rawUrl} must be a directory below /, without ..`);
  const key = details.sshkey;
  if (!key)
    throw invalidParameter(
      `A ${LINUX_TGT} pool needs details sshkey: the private key its provider signs in with`,
    );
  const problem = privateKeyProblem(key);
  if (problem) throw invalidParameter(`The sshkey of the pool is not a usable private key: ${problem}`);
  const sshPort = details.sshport === undefined ? 22 : Number(details.sshport);
  if (!Number.isInteger(sshPort) || sshPort < 1 || sshPort > 65535)
    throw invalidParameter(`Invalid sshport ${details.sshport}`);
  const sshUser = details.sshuser ?? 'root';
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(sshUser)) throw invalidParameter(`Invalid sshuser ${sshUser}`);
  const sshHost = details.sshhost ?? host;
  if (!/^[A-Za-z0-9.:-]{1,255}$/.test(sshHost)) throw invalidParameter(`Invalid sshhost ${sshHost}`);
  if (details.sshhostkey !== undefined && !/^SHA256:[A-Za-z0-9+/]{43}$/.test(details.sshhostkey))
    throw invalidParameter('sshhostkey is a SHA-256 fingerprint as ssh-keygen -l prints it: SHA256:…');
  const initiators = (details.initiators ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  for (const a of initiators)
    if (!ADDRESS.test(a))
      throw invalidParameter(`Invalid initiator address ${a}: use addresses, CIDRs or ALL`);
  return {
    poolType: 'Iscsi',
    hostAddress: host,
    port,
    path,
    url: `iscsi://${m[1]}:${port}${path}`,
    details: { sshHost, sshPort, sshUser, hostKey: details.sshhostkey, initiators },
    privateKey: key,
  };
}

/** Turns a provider failure into the CloudStack error an API caller gets. */
function providerError(what: string, err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  const why = (err as Error).message;
  return internalError(`${what}: ${why}`);
}

/**
 * Reaches the storage server of a pool about to be created: signs in, checks tgtd answers and
 * the directory is there, measures it. Answers the details with the host key pinned.
 */
export async function probeManagedPool(
  uuid: string,
  input: ManagedPoolInput,
): Promise<{ total: number; used: number; details: LinuxTgtDetails }> {
  try {
    const tgt = new LinuxTgt({ uuid, dir: input.path, details: input.details, privateKey: input.privateKey });
    const seen = await tgt.probe();
    return { total: seen.total, used: seen.used, details: { ...input.details, hostKey: seen.hostKey } };
  } catch (err) {
    throw providerError(`Cannot use storage server ${input.details.sshHost} for the pool`, err);
  }
}

const simulated = (pool: StoragePoolRow) => pool.hypervisor === 'Simulator';

function providerOf(ctx: Pick<CallContext, 'app'>, pool: StoragePoolRow): LinuxTgt {
  if (!pool.details || !pool.provider_secret)
    throw internalError(`Storage pool ${pool.name} has no provider settings`);
  return new LinuxTgt({
    uuid: pool.uuid,
    dir: pool.path,
    details: JSON.parse(pool.details) as LinuxTgtDetails,
    privateKey: ctx.app.secrets.decrypt(pool.provider_secret),
  });
}

/** The addresses a volume's target lets in: the pool's list, or its hosts' addresses now. */
async function initiatorsFor(ctx: Pick<CallContext, 'app'>, pool: StoragePoolRow): Promise<string[]> {
  const listed = (JSON.parse(pool.details ?? '{}') as Partial<LinuxTgtDetails>).initiators ?? [];
  if (listed.length > 0) return listed;
  let q = ctx.app.store.db
    .selectFrom('hosts')
    .select('private_ip')
    .where('zone_id', '=', pool.zone_id)
    .where('type', '=', 'Routing')
    .where('removed', 'is', null);
  q = pool.cluster_id !== null ? q.where('cluster_id', '=', pool.cluster_id) : q;
  const ips = (await q.execute()).map((h) => h.private_ip).filter((ip): ip is string => !!ip);
  if (ips.length === 0)
    throw internalError(`Storage pool ${pool.name} has no host whose address its targets could let in`);
  return [...new Set(ips)];
}

/**
 * Makes a volume's LUN on a managed pool before a host fills or opens it (nothing to do on other
 * pools); answers the path to record. A LUN already there (a retry) is kept.
 */
export async function prepareManagedVolume(
  ctx: Pick<CallContext, 'app'>,
  pool: StoragePoolRow,
  volume: { uuid: string; name: string },
  sizeBytes: number,
): Promise<void> {
  if (!isManaged(pool) || simulated(pool)) return;
  try {
    await providerOf(ctx, pool).createLun(volume.uuid, sizeBytes, await initiatorsFor(ctx, pool));
  } catch (err) {
    throw providerError(`Could not make the LUN of volume ${volume.name} on storage pool ${pool.name}`, err);
  }
}

/** Removes a volume's LUN from a managed pool's storage server; false on other pools. */
export async function removeManagedVolume(
  ctx: Pick<CallContext, 'app'>,
  pool: StoragePoolRow,
  path: string,
): Promise<boolean> {
  if (!isManaged(pool)) return false;
  if (simulated(pool)) return true;
  try {
    await providerOf(ctx, pool).deleteLun(path);
  } catch (err) {
    throw providerError(`Could not remove LUN ${path} from storage pool ${pool.name}`, err);
  }
  return true;
}

/**
 * Sets the size of a volume's LUN on a managed pool's storage server before a host is asked to
 * see it (nothing to do on other pools, and on simulated ones). Answers whether it was done.
 */
export async function resizeManagedVolume(
  ctx: Pick<CallContext, 'app'>,
  pool: StoragePoolRow,
  volume: { name: string; path: string },
  sizeBytes: number,
): Promise<boolean> {
  if (!isManaged(pool)) return false;
  if (simulated(pool)) return true;
  try {
    await providerOf(ctx, pool).resizeLun(volume.path, sizeBytes);
  } catch (err) {
    throw providerError(
      `Could not resize the LUN of volume ${volume.name} on storage pool ${pool.name}`,
      err,
    );
  }
  return true;
}

/**
 * A managed pool's size and use as its storage server measures them (the pool monitor's figures
 * for pools that hosts do not measure); undefined for simulated pools, which have no server.
 */
export async function measureManagedPool(
  ctx: Pick<CallContext, 'app'>,
  pool: StoragePoolRow,
): Promise<{ capacityBytes: number; usedBytes: number } | undefined> {
  if (!isManaged(pool) || simulated(pool)) return undefined;
  try {
    const seen = await providerOf(ctx, pool).stats();
    return { capacityBytes: seen.total, usedBytes: seen.used };
  } catch (err) {
    throw providerError(`Storage pool ${pool.name} could not be measured on its storage server`, err);
  }
}

/**
 * Whether a pool's volumes are made by its provider. By provider, not by the `managed` flag alone:
 * pools added before managed storage existed may carry the flag recorded with DefaultPrimary.
 */
export function isManaged(pool: Pick<StoragePoolRow, 'managed' | 'provider'>): boolean {
  return pool.managed === 1 && pool.provider === LINUX_TGT;
}

/**
 * Removes the LUN made for a volume whose creation then failed on the host (best effort: a LUN
 * left is logged, and removed by a retry's success or the volume's deletion).
 */
export async function discardManagedVolume(
  ctx: Pick<CallContext, 'app'>,
  pool: StoragePoolRow,
  volumeUuid: string,
): Promise<void> {
  if (!isManaged(pool) || simulated(pool)) return;
  const path = iscsiVolumePath(iscsiTargetPrefix(pool.uuid), volumeUuid);
  await removeManagedVolume(ctx, pool, path).catch((err) =>
    ctx.app.log.warn(
      { err, pool: pool.uuid, path },
      'the LUN of a volume that failed was left on the target',
    ),
  );
}
