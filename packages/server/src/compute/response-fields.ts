/** Response fields of the objects the compute capability presents, in our words. */
import type { ResponseFields } from '../registry/response-fields.ts';

const noAutoscale = 'Not returned by Nimbostack: it has no autoscale groups.';
const noBackup = 'Not returned by Nimbostack: it has no backup offerings.';
const noGpu = 'Not returned by Nimbostack: GPUs and vGPUs are not managed.';
const noStats = 'Not returned by Nimbostack: per-instance usage statistics are not collected.';
const noLease = 'Not returned by Nimbostack: instances have no lease.';
const noVnf = 'Not returned by Nimbostack: it has no VNF appliances.';
const noPublicIp = 'Not returned by Nimbostack: look at the NICs and static NAT rules for public addresses.';
const noUserDataLink = 'Not returned by Nimbostack: instances are not linked to stored user data.';

const dedication = {
  id: 'UUID of the dedication record itself.',
  domainid:
    'UUID of the domain the resource is dedicated to (the owning account’s domain for an account dedication).',
  accountid: 'UUID of the account the resource is dedicated to; left out for a dedication to a whole domain.',
  affinitygroupid:
    'UUID of the account’s ExplicitDedication affinity group that deploys can name to land here; left out for a domain dedication.',
};

export const computeResponseFields: ResponseFields = {
  virtualmachine: {
    id: 'UUID of the instance.',
    name: 'Name of the instance: its host name on the guest network, unique in the account and network.',
    displayname: 'Display name of the instance, free-form; the name when none was given.',
    state:
      'Power and life-cycle state: Stopped, Starting, Running, Stopping, Migrating, Restoring, Error, Destroyed (recoverable until expunged) or Expunging.',
    created: 'When the instance was deployed (ISO 8601 with offset).',
    lastupdated: 'When the instance record last changed (ISO 8601 with offset).',
    hostid: 'UUID of the host the instance runs on, or last ran on; shown to root admins only.',
    hostname: 'Name of the host the instance runs on, or last ran on; shown to root admins only.',
    instancename:
      'Internal name the hypervisor knows the instance by (i-<account>-<id>-VM); shown to root admins only.',
    userid: 'UUID of the user who deployed the instance.',
    username: 'Login name of the user who deployed the instance.',
    haenable:
      'true when the service offering asks for high availability (the instance is restarted after its host fails).',
    groupid: 'UUID of the instance group the instance is filed under; left out when none.',
    group: 'Name of the instance group the instance is filed under; left out when none.',
    templateid: 'UUID of the template the root disk was made from.',
    templatename: 'Name of the template the root disk was made from.',
    templatedisplaytext: 'Display text of the template the root disk was made from.',
    templateformat: 'Disk image format of the template: QCOW2, RAW, VHD, VHDX or OVA.',
    templatetype: "Kind of the template used: 'USER' or 'BUILTIN'.",
    passwordenabled:
      'true when the template accepts a generated root password (reset and getVMPassword work).',
    isoid: 'UUID of the ISO attached to the instance’s CD drive; left out when none.',
    isoname: 'Name of the attached ISO; left out when none.',
    isodisplaytext: 'Display text of the attached ISO; left out when none.',
    serviceofferingid: 'UUID of the service offering that sizes the instance.',
    serviceofferingname: 'Name of the service offering that sizes the instance.',
    diskofferingid: 'Not returned by Nimbostack: see the instance’s volumes for their disk offerings.',
    diskofferingname: 'Not returned by Nimbostack: see the instance’s volumes for their disk offerings.',
    cpunumber: 'Number of virtual CPUs the instance has.',
    cpuspeed: 'Speed of each virtual CPU, in MHz.',
    memory: 'Memory of the instance, in MiB.',
    guestosid: 'UUID of the guest OS type of the instance.',
    ostypeid: 'UUID of the guest OS type of the instance (the same value as guestosid).',
    osdisplayname: 'Display name of the guest OS type of the instance.',
    rootdeviceid: 'Device number of the root disk: always 0.',
    rootdevicetype: 'Type of the root device: always ROOT.',
    hypervisor: "Hypervisor the instance runs on: 'KVM', 'LXC' or 'Simulator'.",
    arch: 'Not returned by Nimbostack on instances: see the architecture of the host’s cluster.',
    nic: 'The instance’s network interfaces, each a nic object (network, addresses, MAC, default or not).',
    ipaddress: 'IPv4 address of the instance’s default NIC.',
    securitygroup: 'Security groups the instance is in, each with its ingress and egress rules.',
    affinitygroup: 'Affinity groups the instance is in (name, type and the members).',
    keypairs: 'Names of the SSH key pairs installed in the instance, comma-separated; left out when none.',
    details:
      'Details given at deployment as a map of strings (e.g. cpuNumber, cpuSpeed and memory for a custom offering); left out when none.',
    isdynamicallyscalable:
      'Always false: Nimbostack changes CPU and memory only while the instance is stopped.',
    displayvm: 'false when the instance is hidden from the end user’s lists; true otherwise.',
    vmtype: 'Always User: system VMs are listed by their own commands.',
    password: 'Root password generated at deployment or reset; returned only in that answer, never on lists.',
    userdata: 'Not returned by Nimbostack: user data is served to the guest, not echoed back.',
    userdatadetails: noUserDataLink,
    userdataid: noUserDataLink,
    userdataname: noUserDataLink,
    userdatapolicy: noUserDataLink,
    autoscalevmgroupid: noAutoscale,
    autoscalevmgroupname: noAutoscale,
    backupofferingid: noBackup,
    backupofferingname: noBackup,
    bootmode: 'Not returned by Nimbostack: boot mode is not reported.',
    boottype: 'Not returned by Nimbostack: boot type is not reported.',
    cpuused: noStats,
    diskioread: noStats,
    diskiowrite: noStats,
    diskkbsread: noStats,
    diskkbswrite: noStats,
    networkkbsread: noStats,
    networkkbswrite: noStats,
    memoryintfreekbs: noStats,
    memorykbs: noStats,
    memorytargetkbs: noStats,
    receivedbytes: noStats,
    sentbytes: noStats,
    deleteprotection: 'Not returned by Nimbostack: instances have no delete protection.',
    forvirtualnetwork: 'Not returned by Nimbostack: see each NIC’s network.',
    gpucardid: noGpu,
    gpucardname: noGpu,
    gpucount: noGpu,
    vgpu: noGpu,
    vgpuprofileid: noGpu,
    vgpuprofilename: noGpu,
    maxheads: noGpu,
    maxresolutionx: noGpu,
    maxresolutiony: noGpu,
    videoram: noGpu,
    hostcontrolstate: 'Not returned by Nimbostack: the host’s agent state is shown on the host.',
    leaseduration: noLease,
    leaseexpiryaction: noLease,
    leaseexpirydate: noLease,
    pooltype: 'Not returned by Nimbostack: see the volumes’ storage pools.',
    publicip: noPublicIp,
    publicipid: noPublicIp,
    readonlydetails: 'Not returned by Nimbostack: no details are locked against changes.',
    servicestate: 'Not returned by Nimbostack: it runs no managed services in instances.',
    vnfdetails: noVnf,
    vnfnics: noVnf,
  },
  affinitygroup: {
    id: 'UUID of the affinity group.',
    name: 'Name of the affinity group, unique in the account.',
    description: 'Free-form description given at creation; left out when none.',
    type: "Placement rule: 'host anti-affinity' (members on different hosts), 'host affinity' (on one host) or 'ExplicitDedication' (on resources dedicated to the owner).",
    virtualmachineIds: 'UUIDs of the instances in the group; left out when it is empty.',
    dedicatedresources:
      'Not returned by Nimbostack: list the dedications with listDedicatedZones, …Pods, …Clusters, …Hosts.',
  },
  affinitygrouptype: {
    type: 'An affinity group type that createAffinityGroup accepts.',
  },
  instancegroup: {
    id: 'UUID of the instance group.',
    name: 'Name of the instance group, unique in the account.',
    created: 'When the group was created (ISO 8601 with offset).',
  },
  keypair: {
    id: 'UUID of the key pair.',
    name: 'Name of the key pair, unique in the account.',
    fingerprint: 'MD5 fingerprint of the public key, as colon-separated hex pairs.',
    privatekey:
      'Private key in PEM form; returned once, by createSSHKeyPair only, and not stored by Nimbostack.',
  },
  sshkeypair: {
    id: 'UUID of the key pair.',
    name: 'Name of the key pair, unique in the account.',
    fingerprint: 'MD5 fingerprint of the public key, as colon-separated hex pairs.',
  },
  userdata: {
    id: 'UUID of the stored user data.',
    name: 'Name of the stored user data, unique in the account.',
    userdata: 'The user data itself, base64-encoded as registered.',
    params: 'Comma-separated names of the variables the user data expects; left out when none.',
  },
  password: {
    encryptedpassword:
      'The instance’s root password encrypted with the public key of its SSH key pair (RSA, PKCS#1 v1.5), base64-encoded.',
  },
  dedicatedzone: {
    ...dedication,
    zoneid: 'UUID of the dedicated zone.',
    zonename: 'Name of the dedicated zone.',
  },
  dedicatedpod: {
    ...dedication,
    podid: 'UUID of the dedicated pod.',
    podname: 'Name of the dedicated pod.',
  },
  dedicatedcluster: {
    ...dedication,
    clusterid: 'UUID of the dedicated cluster.',
    clustername: 'Name of the dedicated cluster.',
  },
  dedicatedhost: {
    ...dedication,
    hostid: 'UUID of the dedicated host.',
    hostname: 'Name of the dedicated host.',
  },
  detailoptions: {
    details: 'Map of detail key to the values it may take; empty, as Nimbostack has no such keys.',
  },
};
