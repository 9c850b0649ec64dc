/**
 * enableStorageMaintenance and cancelStorageMaintenance: the commands; what maintenance does is
 * storage/pool-maintenance.ts. Apart from storage-pools.ts because maintenance stops and starts
 * VMs (compute), whose modules load storage-pools.ts themselves.
 */

import { defineCommand } from '../registry/command.ts';
import { p } from '../registry/params.ts';
import {
  cancelMaintenance,
  checkCanCancelMaintenance,
  checkCanEnterMaintenance,
  enterMaintenance,
} from '../storage/pool-maintenance.ts';
import { findStoragePool } from './common.ts';
import { presentStoragePools } from './storage-pools.ts';

export const enableStorageMaintenance = defineCommand({
  name: 'enableStorageMaintenance',
  description:
    'Puts an Up (or ErrorInMaintenance) primary storage pool in maintenance: it goes PrepareForMaintenance, the VMs running with a disk on it are stopped, then it is in Maintenance and gets no new volumes. Asynchronous.',
  params: { id: p.uuid({ required: true, description: 'ID of the pool.' }) },
  event: {
    type: 'MAINT.PREPARE.PS',
    description: (params) => `preparing storage pool ${params.id} for maintenance`,
  },
  async target(ctx, params) {
    const pool = await findStoragePool(ctx, params.id);
    checkCanEnterMaintenance(pool);
    return { type: 'StoragePool', id: pool.uuid };
  },
  async handler(ctx, params) {
    const pool = await enterMaintenance(ctx, (await findStoragePool(ctx, params.id)).id);
    return (await presentStoragePools(ctx, [pool]))[0];
  },
});

export const cancelStorageMaintenance = defineCommand({
  name: 'cancelStorageMaintenance',
  description:
    'Takes a primary storage pool out of Maintenance (or ErrorInMaintenance): it is Up again and the VMs its maintenance stopped are started. Asynchronous.',
  params: { id: p.uuid({ required: true, description: 'ID of the pool.' }) },
  event: {
    type: 'MAINT.CANCEL.PS',
    description: (params) => `cancelling maintenance of storage pool ${params.id}`,
  },
  async target(ctx, params) {
    const pool = await findStoragePool(ctx, params.id);
    checkCanCancelMaintenance(pool);
    return { type: 'StoragePool', id: pool.uuid };
  },
  async handler(ctx, params) {
    const pool = await cancelMaintenance(ctx, (await findStoragePool(ctx, params.id)).id);
    return (await presentStoragePools(ctx, [pool]))[0];
  },
});

export const storagePoolMaintenanceCommands = [enableStorageMaintenance, cancelStorageMaintenance];
