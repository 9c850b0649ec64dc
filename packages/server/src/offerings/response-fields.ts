/** Response fields of the service and disk offerings, in our words. */
import type { FieldDescriptions, ResponseFields } from '../registry/response-fields.ts';

const noBurst = 'Not returned by Nimbostack: disk I/O bursts are not supported.';
const noGpu = 'Not returned by Nimbostack: GPUs and vGPUs are not managed.';
const noVsphere = 'Not returned by Nimbostack: there are no VMware hosts.';

/** Disk and scope fields both kinds of offering share. */
const storage: FieldDescriptions = {
  storagetype: "Where the disks go: 'shared' (primary storage pools) or 'local' (the host's own disks).",
  provisioningtype: "How disk space is taken: 'thin', 'sparse' or 'fat'.",
  cacheMode: "Disk cache mode the hypervisor uses: 'none', 'writeback' or 'writethrough'.",
  miniops: 'Guaranteed minimum IOPS of the disk; left out when not set.',
  maxiops: 'Maximum IOPS of the disk; left out when not set.',
  iscustomizediops: 'true when min and max IOPS are given per disk at creation.',
  diskBytesReadRate: 'Read throughput cap, in bytes per second; left out when unlimited.',
  diskBytesWriteRate: 'Write throughput cap, in bytes per second; left out when unlimited.',
  diskIopsReadRate: 'Read cap, in I/O operations per second; left out when unlimited.',
  diskIopsWriteRate: 'Write cap, in I/O operations per second; left out when unlimited.',
  hypervisorsnapshotreserve:
    'Extra space kept for hypervisor snapshots, as a percentage of the disk size; left out when none.',
  state: "'Active' (can be chosen) or 'Inactive' (kept for the disks and instances that use it).",
  created: 'When the offering was created (ISO 8601 with offset).',
  hasannotations: 'Always false: Nimbostack keeps no annotations.',
  domainid: 'Comma-separated UUIDs of the domains the offering is limited to; left out when public.',
  domain: 'Comma-separated names of the domains the offering is limited to; left out when public.',
  zoneid: 'Comma-separated UUIDs of the zones the offering is limited to; left out when in every zone.',
  zone: 'Comma-separated names of the zones the offering is limited to; left out when in every zone.',
  vspherestoragepolicy: noVsphere,
  diskBytesReadRateMax: noBurst,
  diskBytesReadRateMaxLength: noBurst,
  diskBytesWriteRateMax: noBurst,
  diskBytesWriteRateMaxLength: noBurst,
  diskIopsReadRateMax: noBurst,
  diskIopsReadRateMaxLength: noBurst,
  diskIopsWriteRateMax: noBurst,
  diskIopsWriteRateMaxLength: noBurst,
};

export const offeringResponseFields: ResponseFields = {
  serviceoffering: {
    ...storage,
    id: 'UUID of the service offering.',
    name: 'Name of the service offering.',
    displaytext: 'Free-form description of the offering.',
    cpunumber:
      'Number of virtual CPUs of its instances; left out when chosen at deployment (custom offering).',
    cpuspeed: 'Speed of each virtual CPU, in MHz; left out when chosen at deployment.',
    memory: 'Memory of its instances, in MiB; left out when chosen at deployment (custom offering).',
    storagetags: 'Storage tags root disks must land on, comma-separated; left out when none.',
    hosttags: 'Host tag its instances must run on; left out when none.',
    offerha: 'true when its instances are restarted on another host after their host fails.',
    limitcpuuse: 'true when instances are held to their CPU share even when the host has spare CPU.',
    isvolatile: 'true when the root disk is replaced with a fresh one from the template at every reboot.',
    issystem: 'true for offerings that size system VMs (virtual routers) rather than user instances.',
    systemvmtype:
      "Kind of system VM a system offering sizes, e.g. 'domainrouter'; left out for user offerings.",
    defaultuse: 'true for the system offering used by default for its kind of system VM.',
    iscustomized:
      'true when CPU count and memory are chosen at deployment, within the limits in serviceofferingdetails.',
    rootdisksize: 'Size of the root disk it gives, in GiB; 0 means the template’s size.',
    networkrate: 'Bandwidth cap of its instances’ NICs, in Mbit/s; left out when none.',
    deploymentplanner:
      'Placement strategy for its instances, e.g. FirstFitPlanner; left out for the default.',
    dynamicscalingenabled:
      'true when instances of the offering may be scaled; Nimbostack scales only stopped ones.',
    diskofferingstrictness:
      'true when the root disk must keep the offering’s disk offering (it cannot be changed).',
    diskofferingid:
      'UUID of the disk offering for the root disk; left out when the offering carries its own disk settings.',
    diskofferingname: 'Name of the disk offering for the root disk; left out when none.',
    diskofferingdisplaytext: 'Display text of the disk offering for the root disk; left out when none.',
    serviceofferingdetails:
      'Limits of a custom offering: mincpunumber, maxcpunumber, minmemory and maxmemory (MiB); left out when none.',
    encryptroot: 'true when root disks are encrypted.',
    gpucardid: noGpu,
    gpucardname: noGpu,
    gpucount: noGpu,
    gpudisplay: noGpu,
    vgpuprofileid: noGpu,
    vgpuprofilename: noGpu,
    maxheads: noGpu,
    maxresolutionx: noGpu,
    maxresolutiony: noGpu,
    videoram: noGpu,
    leaseduration: 'Not returned by Nimbostack: instances have no lease.',
    leaseexpiryaction: 'Not returned by Nimbostack: instances have no lease.',
    purgeresources: 'Not returned by Nimbostack: expunging always removes an instance’s resources.',
  },
  diskoffering: {
    ...storage,
    id: 'UUID of the disk offering.',
    name: 'Name of the disk offering.',
    displaytext: 'Free-form description of the offering.',
    disksize: 'Size of the disks it makes, in GiB; 0 when the size is chosen at creation.',
    iscustomized: 'true when the disk size is chosen when the volume is created.',
    tags: 'Storage tags the disks must land on, comma-separated; left out when none.',
    displayoffering: 'false when the offering is hidden from end users.',
    encrypt: 'true when its disks are encrypted.',
    disksizestrictness: 'true when volumes of the offering cannot be resized to another size.',
    details: 'Not returned by Nimbostack: disk offering details are not kept.',
    suitableforvirtualmachine: 'Not returned by Nimbostack: offerings are not matched against an instance.',
  },
};
