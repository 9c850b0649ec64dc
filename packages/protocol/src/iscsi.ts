/**
 * Names of managed iSCSI volumes, shared by the server (whose storage provider makes one target
 * with one LUN per volume on the storage server) and the agents (which open that LUN through
 * QEMU's libiscsi). Both derive the target from the pool and volume uuids alone, so neither has
 * to ask the other, and a retried command finds the same target.
 */

/** The naming authority of the targets Nimbostack makes (an IQN is iqn.<yyyy-mm>.<domain>:<name>). */
const IQN_AUTHORITY = 'iqn.2026-12.org.nimbostack';

/** A managed iSCSI pool's target name prefix: what the agents get as the pool's `path`. */
export function iscsiTargetPrefix(poolUuid: string): string {
  return `${IQN_AUTHORITY}:${poolUuid.toLowerCase()}`;
}

/** The LUN number of a volume in its target: LUN 0 is tgt's controller, so the disk is 1. */
export const ISCSI_VOLUME_LUN = 1;

/** The target of one volume of a pool whose target prefix is `prefix`. */
export function iscsiTarget(prefix: string, volumeUuid: string): string {
  return `${prefix}.${volumeUuid.toLowerCase()}`;
}

/** The path recorded for a managed iSCSI volume: <target>/<lun>, as in an iscsi:// URL. */
export function iscsiVolumePath(prefix: string, volumeUuid: string): string {
  return `${iscsiTarget(prefix, volumeUuid)}/${ISCSI_VOLUME_LUN}`;
}

/** The target and LUN of a recorded path, when it is one of the pool's (else undefined). */
export function parseIscsiVolumePath(
  prefix: string,
  path: string,
): { target: string; lun: number } | undefined {
  const m = /^([a-z0-9.:-]+)\/(\d{1,3})$/.exec(path);
  if (m === null) return undefined;
  if (!m[1].startsWith(`${prefix}.`)) return undefined;
  return { target: m[1], lun: Number(m[2]) };
}
