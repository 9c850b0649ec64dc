/**
 * Descriptions of response fields, in our words. The field names and types are upstream's (the
 * catalog); what each field means in Nimbostack is said here once per response object, and once
 * for the fields that many objects share (account, domainid, zoneid …). Each capability folder
 * keeps the descriptions of the objects it presents in its own `response-fields.ts`.
 */

/** Field descriptions of one response object: field name → description. */
export type FieldDescriptions = Record<string, string>;

/**
 * Field descriptions by response object name (`virtualmachine`, `network` …), or by command name
 * for commands that answer inline fields (`queryAsyncJobResult`).
 */
export type ResponseFields = Record<string, FieldDescriptions>;

/** Fields whose meaning is the same on every object that has them. */
export const COMMON_FIELDS: FieldDescriptions = {
  // Identity and ownership
  id: "The object's UUID: the identifier every command takes to refer to it.",
  name: "The object's name.",
  description: 'Free-form text saying what the object is for.',
  displaytext:
    "Human-readable text: an object's free-form label, or, on the answer to an action, a note about its outcome (often left out).",
  success: 'true when the action was carried out; a failure is answered with an error instead.',
  type: 'What kind of object this is; the values depend on the object.',
  state: 'Where the object is in its life cycle; the values depend on the object.',
  account: 'Name of the account that owns the object.',
  accountid: 'UUID of the account that owns the object.',
  domain: 'Name of the domain the owner belongs to.',
  domainid: 'UUID of the domain the owner belongs to.',
  domainpath: 'Path of the owning domain from the root, written ROOT/parent/child (the root domain is ROOT).',
  project: 'Name of the project that owns the object, when a project does (account is then left out).',
  projectid: 'UUID of the project that owns the object, when a project does.',
  hasannotations:
    'Nimbostack keeps no annotations (admin comments) on objects, so this is false or left out.',
  icon: 'The object’s icon (base64image, resourcetype, resourceid) when listed with showicon=true and it has one.',
  tags: 'Resource tags on the object: a list of key/value pairs, each naming the tagged resource (type and UUID) and its owner.',
  created:
    'When the object was created: ISO 8601 date and time in UTC with offset, e.g. 2026-03-01T12:00:00+0000.',
  removed: 'When the object was removed (ISO 8601 with offset); left out while it exists.',
  details: 'Extra settings of the object as a map of string keys to string values.',
  fordisplay: 'false when an admin has hidden the object from end users in the UI; true otherwise.',
  isdefault: 'true when this is the default one of its kind.',
  ispublic: 'true when every account can see and use it, not only its owner.',
  isfeatured: 'true when an admin has marked it as featured (shown first to users).',
  status: 'Short text on the progress or outcome of the latest operation on the object.',
  path: 'Path of the object in its hierarchy or on its storage.',
  url: 'Address the object is reached at or was fetched from.',
  username: 'Login name of the user concerned.',
  userid: 'UUID of the user concerned.',
  roleid: 'UUID of the role concerned.',
  rolename: 'Name of the role concerned.',
  apikeyaccess:
    "Whether signing requests with API keys is allowed: 'ENABLED', 'DISABLED' or 'INHERIT' (follow the parent's setting).",
  resourcetype: 'Kind of resource concerned, e.g. UserVm, Volume, Network, Template.',
  tag: 'Tag (a label such as a host or storage tag) the entry is restricted to; left out when none.',
  scope:
    'Level the object applies to: ZONE, CLUSTER, HOST, GLOBAL, ACCOUNT or DOMAIN, depending on the object.',
  managementserverid: 'UUID of the management server process concerned.',
  managementservername: 'Host name of the management server concerned.',
  // Placement
  zoneid: 'UUID of the zone the object is in.',
  zonename: 'Name of the zone the object is in.',
  zone: 'Names of the zones the offering is limited to; left out when it is offered in every zone.',
  podid: 'UUID of the pod the object is in.',
  podname: 'Name of the pod the object is in.',
  clusterid: 'UUID of the cluster the object is in.',
  clustername: 'Name of the cluster the object is in.',
  hostid: 'UUID of the host concerned.',
  hostname: 'Name of the host concerned.',
  allocationstate: "Whether new resources may be placed here: 'Enabled' or 'Disabled'.",
  capacity: 'Capacity figures of the object, one entry per resource kind (used, total, percent used).',
  storageaccessgroups: 'Not returned by Nimbostack: storage access groups are not supported.',
  zonestorageaccessgroups: 'Not returned by Nimbostack: storage access groups are not supported.',
  arch: "CPU architecture: 'x86_64' or 'aarch64'.",
  hypervisor:
    "Hypervisor type: 'KVM' for virtual machines, 'LXC' for system containers, 'Simulator' for the built-in simulated hosts.",
  extensionid: 'Not returned by Nimbostack: it has no orchestrator extensions.',
  extensionname: 'Not returned by Nimbostack: it has no orchestrator extensions.',
  provider: 'Name of the provider that implements the object.',
  gputotal: 'Not returned by Nimbostack: GPUs are not managed.',
  memorytotal: 'Total memory, in MiB.',
  disksizetotal: 'Total disk space, in bytes.',
  // Compute
  virtualmachineid: 'UUID of the instance (VM) concerned.',
  virtualmachinename: 'Name of the instance (VM) concerned.',
  virtualmachinedisplayname: 'Display name of the instance (VM) concerned.',
  cpunumber: 'Number of virtual CPUs.',
  cpuspeed: 'Speed of each virtual CPU, in MHz.',
  memory: 'Memory, in MiB.',
  serviceofferingid: 'UUID of the service offering (CPU and memory size) used.',
  serviceofferingname: 'Name of the service offering used.',
  diskofferingid: 'UUID of the disk offering used.',
  diskofferingname: 'Name of the disk offering used.',
  templateid: 'UUID of the template the disk or instance was made from.',
  templatename: 'Name of the template the disk or instance was made from.',
  templatetype:
    "Kind of template: 'USER' (registered or created by an account) or 'BUILTIN' (shipped with Nimbostack).",
  ostypeid: 'UUID of the guest OS type.',
  osdisplayname: 'Display name of the guest OS type, e.g. "Ubuntu 22.04 (64-bit)".',
  oscategoryid: 'UUID of the guest OS category (e.g. Ubuntu, Windows).',
  oscategoryname: 'Name of the guest OS category.',
  passwordenabled: 'true when the template can receive a generated root password at deployment.',
  isdynamicallyscalable: 'Nimbostack cannot resize a running instance, so this is false.',
  userdataid: 'Not returned by Nimbostack: templates and instances are not linked to stored user data.',
  userdataname: 'Not returned by Nimbostack: templates and instances are not linked to stored user data.',
  userdatapolicy: 'Not returned by Nimbostack: templates and instances are not linked to stored user data.',
  affinitygroupid: 'UUID of the affinity group tied to the dedication; left out when none.',
  lbruleid: 'UUID of the load balancer rule the policy belongs to.',
  // Storage
  storagetype: "Where disks live: 'shared' (primary storage pools) or 'local' (the host's own disks).",
  provisioningtype: "How disk space is allocated: 'thin', 'sparse' or 'fat'.",
  size: 'Size, in bytes.',
  physicalsize: 'Space actually used on storage, in bytes.',
  virtualsize: 'Size the guest sees, in bytes.',
  miniops: 'Guaranteed minimum I/O operations per second; left out when not set.',
  maxiops: 'Maximum I/O operations per second; left out when not set.',
  diskBytesReadRate: 'Read throughput limit, in bytes per second; left out when unlimited.',
  diskBytesWriteRate: 'Write throughput limit, in bytes per second; left out when unlimited.',
  diskIopsReadRate: 'Read limit, in I/O operations per second; left out when unlimited.',
  diskIopsWriteRate: 'Write limit, in I/O operations per second; left out when unlimited.',
  isextractable: 'true when it may be downloaded (extracted) through an extract command.',
  downloaddetails: 'Download progress on each image store: store, progress and state.',
  extractId: 'UUID of the extract (download) request.',
  extractMode: "How the extract is delivered: 'HTTP_DOWNLOAD'.",
  resultstring: 'Error text when the extract failed; left out otherwise.',
  uploadpercentage: 'How far the extract or upload has got, in percent.',
  // Networking
  networkid: 'UUID of the network concerned.',
  networkname: 'Name of the network concerned.',
  physicalnetworkid: 'UUID of the physical network concerned.',
  traffictype: "Kind of traffic carried: 'Guest', 'Public', 'Management' or 'Storage'.",
  networkdomain: 'DNS domain given to instances on the network (their host names are qualified with it).',
  ipaddress: 'IPv4 address concerned.',
  ipaddressid: 'UUID of the public IP address the rule is on.',
  gateway: 'IPv4 gateway address.',
  netmask: 'IPv4 netmask, e.g. 255.255.255.0.',
  cidr: 'IPv4 address range in CIDR notation, e.g. 10.1.1.0/24.',
  cidrlist: 'Comma-separated source CIDRs the rule admits traffic from.',
  startip: 'First IPv4 address of the range.',
  endip: 'Last IPv4 address of the range.',
  vlan: 'VLAN ID (or URI such as vlan://100), or range of VLAN IDs, used.',
  vlanid: 'UUID of the public IP range (VLAN) the address comes from.',
  ip6cidr: 'Not returned by Nimbostack: IPv6 is not supported.',
  ip6gateway: 'Not returned by Nimbostack: IPv6 is not supported.',
  ip6dns1: 'First IPv6 DNS server; left out when none.',
  ip6dns2: 'Second IPv6 DNS server; left out when none.',
  dns1: 'First IPv4 DNS server handed to guests.',
  dns2: 'Second IPv4 DNS server handed to guests; left out when none.',
  forsystemvms: 'true when the range is reserved for system VMs (routers, console proxies).',
  forvirtualnetwork:
    'true when the address or range belongs to the public (virtual router) side, false for direct ones.',
  issystem: 'true when it exists for Nimbostack itself (system VMs, system networks) rather than for users.',
  issourcenat: "true when this is the network's source NAT address (outbound traffic leaves through it).",
  associatednetworkid: 'UUID of the guest network the address is assigned to.',
  publicip: 'Public IPv4 address concerned.',
  publicipid: 'UUID of the public IP address concerned.',
  protocol: "Protocol the rule matches: 'tcp', 'udp', 'icmp' or 'all'.",
  privateport: 'Port (or start-end range) on the instance that traffic is sent to.',
  publicport: 'Port (or start-end range) on the public address that traffic arrives at.',
  vpcid: 'Not returned by Nimbostack: it has no VPCs.',
  vpcname: 'Not returned by Nimbostack: it has no VPCs.',
  receivedbytes: 'Network traffic received, in bytes.',
  sentbytes: 'Network traffic sent, in bytes.',
};

/** Looks up the description of a response object's field: the object's own, else the common one. */
export class ResponseFieldIndex {
  private readonly objects = new Map<string, FieldDescriptions>();

  constructor(sources: ResponseFields[]) {
    // An object may be described by several folders (the metrics commands add fields to hosts,
    // zones, VMs …), but each field once.
    for (const source of sources)
      for (const [object, fields] of Object.entries(source)) {
        const known = this.objects.get(object) ?? {};
        const twice = Object.keys(fields).find((f) => f in known);
        if (twice) throw new Error(`response field ${object}.${twice} described twice`);
        this.objects.set(object, { ...known, ...fields });
      }
  }

  /** `object` is the response object name, or the command name for inline answers. */
  describe(object: string, field: string): string | undefined {
    return this.objects.get(object)?.[field] ?? COMMON_FIELDS[field];
  }
}
