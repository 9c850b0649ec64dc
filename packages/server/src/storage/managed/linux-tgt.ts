/**
 * LinuxTgt: the managed primary storage provider for a Linux SCSI target (tgt) server. As with
 * upstream's managed-storage plugins, every volume is its own iSCSI target with one LUN, made
 * when the volume first needs storage and removed with it; the hosts reach the LUN over iSCSI
 * (the KVM agent through QEMU's libiscsi). The provider manages the target as an operator would
 * on a storage server: it signs in over SSH with the key given to createStoragePool and runs
 * tgtadm there, each LUN backed by a sparse file in the pool's directory on that server. Access:
 * a target accepts only the initiator addresses given in the pool's details (default: the
 * addresses of the hosts that use the pool when the LUN is made). Capacity and use are those of
 * the file system holding the directory (df on the storage server). LUNs are thin provisioned,
 * so their files stay sparse. docs/storage.md.
 */
import { iscsiTarget, iscsiTargetPrefix, iscsiVolumePath, parseIscsiVolumePath } from '@nimbostack/protocol';
import { shellQuote as q, type SshResult, type SshTarget, sshRun } from './ssh.ts';

export const LINUX_TGT = 'LinuxTgt';

/** What the provider needs besides the SSH key (storage_pools.details as JSON). */
export interface LinuxTgtDetails {
  sshHost: string;
  sshPort: number;
  sshUser: string;
  /** The storage server's SSH host key fingerprint, pinned at the pool's creation. */
  hostKey?: string;
  /** Initiator addresses or CIDRs allowed to log in to the targets; empty: the pool's hosts. */
  initiators: string[];
}

export interface LinuxTgtPool {
  uuid: string;
  /** The directory on the storage server that holds the LUNs' backing files. */
  dir: string;
  details: LinuxTgtDetails;
  privateKey: string;
}

/** A failure the storage server reported (its tgtadm or shell output), not a transport one. */
export class TargetError extends Error {}

/** Serialises tgtadm changes on the server (target ids are picked as the highest in use plus one). */
const locked = (dir: string, script: string) =>
  `set -e; mkdir -p ${q(dir)}; exec 9>${q(`${dir}/.nimbostack-tgt.lock`)}; flock -w 60 9; ${script}`;

/** The target id of `iqn` in tgtadm's listing, as shell that sets $tid (empty when absent). */
const findTid = (iqn: string) =>
  `tid=$(tgtadm --lld iscsi --mode target --op show | sed -n 's/^Target \\([0-9]*\\): '${q(iqn.replace(/\./g, '\\.'))}'$/\\1/p')`;

export class LinuxTgt {
  private readonly prefix: string;

  constructor(private readonly pool: LinuxTgtPool) {
    this.prefix = iscsiTargetPrefix(pool.uuid);
  }

  private ssh(): SshTarget {
    const d = this.pool.details;
    return {
      host: d.sshHost,
      port: d.sshPort,
      user: d.sshUser,
      privateKey: this.pool.privateKey,
      hostKey: d.hostKey,
    };
  }

  private async run(script: string): Promise<SshResult> {
    const r = await sshRun(this.ssh(), script);
    if (r.code !== 0) {
      const why = (r.stderr || r.stdout).trim().split('\n').slice(-3).join(' ');
      throw new TargetError(
        `the storage server ${this.pool.details.sshHost} answered: ${why || `exit ${r.code}`}`,
      );
    }
    return r;
  }

  private file(volumeUuid: string): string {
    return `${this.pool.dir}/${volumeUuid}.lun`;
  }

  /**
   * Checks that the server runs tgtd and has the directory (made if missing), and measures it.
   * `hostKey` is the fingerprint the server presented, for the pool to pin.
   */
  async probe(): Promise<{ total: number; used: number; hostKey: string }> {
    const r = await this.run(
      `set -e; tgtadm --lld iscsi --mode target --op show >/dev/null; mkdir -p ${q(this.pool.dir)}; df -P -B1 ${q(this.pool.dir)} | tail -n 1`,
    );
    return { ...parseDf(r.stdout), hostKey: r.hostKey };
  }

  async stats(): Promise<{ total: number; used: number }> {
    return parseDf((await this.run(`df -P -B1 ${q(this.pool.dir)} | tail -n 1`)).stdout);
  }

  /**
   * Makes the volume's target and LUN (a sparse file of `sizeBytes`) and lets `initiators` in.
   * A target already there (a retried creation) is kept as it is. Answers the volume's path.
   */
  async createLun(volumeUuid: string, sizeBytes: number, initiators: string[]): Promise<string> {
    const iqn = iscsiTarget(this.prefix, volumeUuid);
    const file = this.file(volumeUuid);
    const acl = initiators.length > 0 ? initiators : ['ALL'];
    const tgt = 'tgtadm --lld iscsi';
    await this.run(
      locked(
        this.pool.dir,
        [
          findTid(iqn),
          'if [ -n "$tid" ]; then exit 0; fi',
          `tid=$(( $(${tgt} --mode target --op show | sed -n 's/^Target \\([0-9]*\\): .*/\\1/p' | sort -n | tail -n 1) + 1 ))`,
          `truncate -s ${Math.ceil(sizeBytes / 512) * 512} ${q(file)}`,
          `${tgt} --mode target --op new --tid "$tid" --targetname ${q(iqn)}`,
          // A half-made target is removed, so a retry starts clean ($tid expands now; the
          // directory's characters are checked at the pool's creation).
          `trap "${tgt} --mode target --op delete --force --tid $tid 2>/dev/null; rm -f ${file}" EXIT`,
          `${tgt} --mode logicalunit --op new --tid "$tid" --lun 1 --backing-store ${q(file)}`,
          // Thin: initiators learn which blocks hold data (GET LBA STATUS) and zero ranges by
          // unmapping (holes punched in the file), so copying a mostly empty LUN to or from
          // secondary storage moves only its data.
          `${tgt} --mode logicalunit --op update --tid "$tid" --lun 1 --params thin_provisioning=1`,
          ...acl.map((a) => `${tgt} --mode target --op bind --tid "$tid" --initiator-address ${q(a)}`),
          'trap - EXIT',
        ].join('\n'),
      ),
    );
    return iscsiVolumePath(this.prefix, volumeUuid);
  }

  /** The target, LUN and volume uuid of a path this pool recorded. */
  private lunOf(path: string): { target: string; lun: number; volumeUuid: string } {
    const lun = parseIscsiVolumePath(this.prefix, path);
    if (!lun) throw new TargetError(`${path} is not a LUN of this pool`);
    return { ...lun, volumeUuid: lun.target.slice(this.prefix.length + 1) };
  }

  /**
   * Sets the LUN's size: its backing file is grown (sparse) or cut to `sizeBytes`, then tgtd opens
   * it again, since tgt reads a LUN's size only when it opens the file (`--op update` with
   * `online=0,path=<file>`: the LU is taken offline, the file reopened and the LU back online
   * within that one request, which tgtd's event loop handles between two commands; the target, its
   * ACL, its sessions and the LU's settings such as thin provisioning stay). An initiator logged in
   * keeps its session and reads the new size at its next READ CAPACITY. Answers the file's size.
   */
  async resizeLun(path: string, sizeBytes: number): Promise<number> {
    const lun = this.lunOf(path);
    const file = this.file(lun.volumeUuid);
    const r = await this.run(
      locked(
        this.pool.dir,
        [
          findTid(lun.target),
          `if [ -z "$tid" ]; then echo ${q(`target ${lun.target} is not on this server`)} >&2; exit 1; fi`,
          // truncate would make a missing file anew, empty: a lost backing file is an error.
          `if [ ! -f ${q(file)} ]; then echo ${q(`${file} is missing`)} >&2; exit 1; fi`,
          `truncate -s ${Math.ceil(sizeBytes / 512) * 512} ${q(file)}`,
          `tgtadm --lld iscsi --mode logicalunit --op update --tid "$tid" --lun ${lun.lun} --params online=0,path=${q(file)}`,
          `stat -c %s ${q(file)}`,
        ].join('\n'),
      ),
    );
    return Number(r.stdout.trim().split('\n').at(-1));
  }

  /** Removes the volume's target (closing any session left) and its backing file; gone already is fine. */
  async deleteLun(path: string): Promise<void> {
    const lun = this.lunOf(path);
    await this.run(
      locked(
        this.pool.dir,
        [
          findTid(lun.target),
          'if [ -n "$tid" ]; then tgtadm --lld iscsi --mode target --op delete --force --tid "$tid"; fi',
          `rm -f ${q(this.file(lun.volumeUuid))}`,
        ].join('\n'),
      ),
    );
  }

  /** The pool's targets on the server (each volume's target name), for checks and clean-up. */
  async targets(): Promise<string[]> {
    const r = await this.run('tgtadm --lld iscsi --mode target --op show');
    return r.stdout
      .split('\n')
      .map((l) => /^Target \d+: (\S+)$/.exec(l)?.[1])
      .filter((t): t is string => t?.startsWith(`${this.prefix}.`) === true);
  }
}

function parseDf(out: string): { total: number; used: number } {
  // Filesystem 1-blocks Used Available Capacity Mounted-on
  const f = out.trim().split(/\s+/);
  const total = Number(f[1]);
  const used = Number(f[2]);
  if (!Number.isFinite(total) || !Number.isFinite(used) || total <= 0)
    throw new TargetError(`cannot read the size of the pool's directory from df: ${out.trim()}`);
  return { total, used };
}
