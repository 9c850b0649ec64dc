/**
 * The fields the list*Metrics commands add to the objects of the plain lists (hosts, clusters,
 * zones, pools, volumes, instances); the plain objects' own fields are described in their folders.
 */
import type { FieldDescriptions, ResponseFields } from '../registry/response-fields.ts';

/** Allocation, measured use and threshold flags shared by host, cluster and zone metrics. */
const capacityFlags: FieldDescriptions = {
  cputhreshold:
    'true when the measured CPU use is above the cluster.cpu.allocated.capacity.notificationthreshold fraction.',
  cpudisablethreshold:
    'true when the measured CPU use is above the cluster.cpu.allocated.capacity.disablethreshold fraction.',
  cpuallocatedthreshold:
    'true when the CPU allocated to instances is above the notification threshold fraction.',
  cpuallocateddisablethreshold:
    'true when the CPU allocated to instances is above the disable threshold fraction.',
  memorythreshold:
    'true when the measured memory use is above the cluster.memory.allocated.capacity.notificationthreshold fraction.',
  memorydisablethreshold:
    'true when the measured memory use is above the cluster.memory.allocated.capacity.disablethreshold fraction.',
  memoryallocatedthreshold:
    'true when the memory allocated to instances is above the notification threshold fraction.',
  memoryallocateddisablethreshold:
    'true when the memory allocated to instances is above the disable threshold fraction.',
};

/** Cluster and zone metrics: figures summed over their hosts. */
const aggregate: FieldDescriptions = {
  ...capacityFlags,
  state: 'Allocation state, as allocationstate: Enabled or Disabled.',
  cputotal: 'CPU of its hosts in GHz, after the over-provisioning factor (e.g. "9.60 Ghz").',
  cpuallocated: 'Share of that CPU allocated to instances, as a percentage ("12.50%").',
  cpuused:
    'Average CPU utilisation its hosts’ agents last measured, as a percentage; absent before the first measurement.',
  cpumaxdeviation: 'How far the busiest host’s CPU utilisation is above the average, relative to it.',
  memorytotal: 'Memory of its hosts, after the over-provisioning factor, in GB ("15.50 GB").',
  memoryallocated: 'Share of that memory allocated to instances, as a percentage.',
  memoryused: 'Share of its hosts’ memory in use as their agents last measured it, as a percentage.',
  memorymaxdeviation: 'How far the host using the most memory is above the average, as a percentage of it.',
};

export const metricsResponseFields: ResponseFields = {
  host: {
    ...capacityFlags,
    powerstate: "Out-of-band power state: always 'Disabled' (out-of-band management is not offered).",
    instances: 'Instances on the host as "running / total".',
    systeminstances:
      'Not returned by Nimbostack: it runs no system VMs (its virtual routers are not counted here).',
    cputotalghz: 'CPU of the host (cores × speed × over-provisioning factor) in GHz.',
    cpuusedghz: 'CPU in use as the agent last measured it, in GHz.',
    cpuallocatedghz: 'CPU allocated to the instances placed on it, in GHz.',
    memorytotalgb: 'Memory of the host (× over-provisioning factor) in GB.',
    memoryusedgb: 'Memory in use on the host as its agent last measured it, in GB.',
    memoryallocatedgb: 'Memory allocated to the instances placed on it, in GB.',
    networkread: 'Network traffic received during the last statistics interval, in GB.',
    networkwrite: 'Network traffic sent during the last statistics interval, in GB.',
  },
  cluster: {
    ...aggregate,
    hosts: 'Hosts of the cluster as "up / total".',
    drsimbalance: 'Not returned by Nimbostack: it does not rebalance clusters (no DRS).',
  },
  zone: { ...aggregate, clusters: 'Clusters of the zone as "enabled / total".' },
  storagepool: {
    disksizeusedgb: 'Space used on the pool, in GB.',
    disksizetotalgb: 'Size of the pool in GB with its over-provisioning factor ("100.00 GB (x2.0)").',
    disksizeallocatedgb: 'Space allocated to volumes, in GB.',
    disksizeunallocatedgb: 'Size × over-provisioning factor − allocated, in GB.',
    storageusagethreshold:
      'true when the space used is above cluster.storage.capacity.notificationthreshold.',
    storageusagedisablethreshold: 'true when the space used is above pool.storage.capacity.disablethreshold.',
    storageallocatedthreshold:
      'true when the space allocated is above cluster.storage.allocated.capacity.notificationthreshold.',
    storageallocateddisablethreshold:
      'true when the space allocated is above pool.storage.allocated.capacity.disablethreshold.',
  },
  volume: {
    sizegb: 'Size of the volume in GB ("20.00 GB").',
    diskiopstotal: 'Not returned by Nimbostack: per-volume I/O operations are not measured.',
  },
  virtualmachine: {
    cputotal: 'CPU of the instance (cores × speed) in GHz ("1.0 Ghz").',
    memorytotal: 'Memory of the instance in GiB ("0.50 GiB").',
    networkread: 'Network traffic received during the last statistics interval, in MiB.',
    networkwrite: 'Network traffic sent during the last statistics interval, in MiB.',
    diskread: 'Bytes read from its disks since it started, in MiB.',
    diskwrite: 'Bytes written to its disks since it started, in MiB.',
    diskiopstotal: 'Not returned by Nimbostack: disk I/O operations are not measured.',
  },
};
