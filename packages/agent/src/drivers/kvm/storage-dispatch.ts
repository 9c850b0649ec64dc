/**
 * The KVM host's storage commands, each sent to the storage of its pool's type: Ceph RBD pools to
 * RbdStorage (storage-rbd.ts), managed iSCSI pools to IscsiVolumes (iscsi-luns.ts), every other
 * pool (directories, NFS) to PoolStorage (storage.ts). A copy between pools of different types (or
 * between two iSCSI pools) goes to PoolStorage's copy between VolumeStores (volume-store.ts), where
 * each pool type has its VolumeStore (an RBD pool's is a session of rbd.ts).
 */
import type { CommandResult, ParsedPayload, StorageLocation } from '@nimbostack/protocol';
import { DriverError, type PoolTypeStorage, type StorageDriver } from '../driver.ts';
import type { IscsiVolumes } from './iscsi-luns.ts';
import type { RbdStorage } from './storage-rbd.ts';

export class StorageByPoolType implements StorageDriver {
  constructor(
    private readonly files: StorageDriver,
    private readonly rbd: RbdStorage,
    private readonly luns: IscsiVolumes,
  ) {}

  private of(pool: StorageLocation): PoolTypeStorage {
    if (pool.type === 'RBD') return this.rbd;
    if (pool.type === 'Iscsi') return this.luns;
    return this.files;
  }

  createVolume(p: ParsedPayload<'createVolume'>) {
    return this.of(p.pool).createVolume(p);
  }
  createVolumeFromTemplate(p: ParsedPayload<'createVolumeFromTemplate'>) {
    return this.of(p.pool).createVolumeFromTemplate(p);
  }
  resizeVolume(p: ParsedPayload<'resizeVolume'>) {
    return this.of(p.pool).resizeVolume(p);
  }
  deleteVolume(p: ParsedPayload<'deleteVolume'>) {
    return this.of(p.pool).deleteVolume(p);
  }
  /** RBD to RBD in the RBD store; between pool types, the file store's copy through VolumeStores. */
  copyVolume(p: ParsedPayload<'copyVolume'>): Promise<CommandResult<'copyVolume'>> {
    const bothRbd = p.pool.type === 'RBD' && p.source.pool.type === 'RBD';
    return (bothRbd ? this.rbd : this.files).copyVolume(p);
  }
  createSnapshot(p: ParsedPayload<'createSnapshot'>) {
    return this.of(p.pool).createSnapshot(p);
  }
  deleteSnapshot(p: ParsedPayload<'deleteSnapshot'>) {
    return this.of(p.pool).deleteSnapshot(p);
  }
  revertSnapshot(p: ParsedPayload<'revertSnapshot'>) {
    return this.of(p.pool).revertSnapshot(p);
  }
  async deleteTemplateCopies(pool: StorageLocation, templates: string[]) {
    const store = this.of(pool);
    if (!store.deleteTemplateCopies)
      throw new DriverError(`pools of type ${pool.type} keep no template copies`);
    await store.deleteTemplateCopies(pool, templates);
  }
  poolStats(pool: StorageLocation) {
    return this.of(pool).poolStats(pool);
  }
}
