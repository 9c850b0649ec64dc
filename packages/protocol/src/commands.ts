/**
 * The commands a management server sends to a host agent, each with a payload schema and an
 * answer (result) schema. Every command is idempotent on the agent: repeating one that already
 * took effect (starting a running VM, deleting a missing volume) succeeds, so the server may retry
 * after a timeout without knowing whether the first attempt ran.
 */
import { z } from 'zod';
import { RouterVpcRouting } from './vpc-routing.ts';
import { RouterVpn, RouterVpnStatus } from './vpn.ts';

const name = z.string().min(1).max(255);
const bytes = z.number().int().nonnegative();

/** Power states as CloudStack reports them from hypervisors. */
export const PowerState = z.enum(['PowerOn', 'PowerOff', 'PowerUnknown']);
export type PowerState = z.infer<typeof PowerState>;

export const VmPowerReport = z.object({ name, state: PowerState });
export type VmPowerReport = z.infer<typeof VmPowerReport>;

/** Where a volume lives: a primary storage pool (or secondary store) as the agent reaches it. */
export const StorageLocation = z.object({
  uuid: z.string().min(1).max(64),
  type: z.enum(['Filesystem', 'NetworkFilesystem', 'SharedMountPoint', 'RBD', 'Iscsi', 'Simulator']),
  /**
   * A directory; a primary NFS pool's export path (with `host`); an RBD pool's Ceph pool name; a
   * managed iSCSI pool's target name prefix (iscsi.ts: each volume is the target prefix.<uuid>).
   */
  path: z.string().min(1).max(1024),
  /**
   * The server of a primary NFS pool, the Ceph monitor of an RBD pool, or the iSCSI portal of a
   * managed iSCSI pool (`port`: 3260 by default). A NetworkFilesystem
   * location without it (an image store) is a directory the host already has.
   */
  host: z.string().min(1).max(255).optional(),
  port: z.number().int().min(1).max(65535).optional(),
  /** RBD: the cephx user and key (the key travels only to agents, over the agent connection). */
  user: z.string().min(1).max(255).optional(),
  secret: z.string().min(1).max(1024).optional(),
});
export type StorageLocation = z.infer<typeof StorageLocation>;

export const VmDisk = z.object({
  volumeUuid: z.string().min(1).max(64),
  path: z.string().min(1).max(1024),
  pool: StorageLocation,
  deviceId: z.number().int().nonnegative(),
  type: z.enum(['ROOT', 'DATADISK', 'ISO']),
});

const ipv4 = z.string().regex(/^\d{1,3}(\.\d{1,3}){3}$/);
const cidr4 = z.string().regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/);
const mac = z.string().regex(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i);
const port = z.number().int().min(0).max(65535);

/**
 * One security group rule as a host enforces it. The server resolves rules that name another
 * security group into that group's members' addresses (as /32 CIDRs), so agents know no groups.
 */
export const SecurityRule = z.object({
  protocol: z.enum(['tcp', 'udp', 'icmp', 'all']),
  startPort: port.optional(),
  endPort: port.optional(),
  /** ICMP type and code; -1 or absent means any. */
  icmpType: z.number().int().min(-1).max(255).optional(),
  icmpCode: z.number().int().min(-1).max(255).optional(),
  cidrs: z.array(cidr4),
});
export type SecurityRule = z.infer<typeof SecurityRule>;

/**
 * The filtering of one NIC. When present the host enforces it: traffic to the NIC is dropped
 * unless an ingress rule (or an answer to the NIC's own traffic) allows it; traffic from it must
 * carry the NIC's MAC and IP (anti-spoofing; DHCP is allowed) and, when `egress` is present,
 * match an egress rule. Absent `egress` means unrestricted egress, CloudStack's default while a
 * group has no egress rules.
 */
export const NicSecurity = z.object({
  ingress: z.array(SecurityRule),
  egress: z.array(SecurityRule).optional(),
  /**
   * The address of the network's virtual router: DHCP, DNS (53) and the metadata and password
   * services (80, 8080) on it stay reachable whatever the egress rules say, as on CloudStack.
   */
  router: ipv4.optional(),
});
export type NicSecurity = z.infer<typeof NicSecurity>;

export const VmNic = z.object({
  mac,
  ip: z.string().max(64).optional(),
  network: z.string().max(255).optional(),
  vlan: z.number().int().min(0).max(4095).optional(),
  /** The host bridge the NIC plugs into (KVM: a tap device on it); without one the NIC has no link. */
  bridge: z.string().min(1).max(15).optional(),
  deviceId: z.number().int().nonnegative(),
  /** Security groups of the NIC; absent on networks without the security group service. */
  security: NicSecurity.optional(),
});

export const VmSpec = z.object({
  name,
  uuid: z.string().min(1).max(64),
  cpus: z.number().int().positive(),
  cpuMhz: z.number().int().positive(),
  memoryBytes: bytes,
  disks: z.array(VmDisk).default([]),
  nics: z.array(VmNic).default([]),
  userData: z.string().optional(),
});
export type VmSpec = z.infer<typeof VmSpec>;

/**
 * A guest network as one host carries it: a Linux bridge, joined to the same network on other
 * hosts over VXLAN when `vni` is set.
 */
export const GuestNetwork = z.object({
  uuid: z.string().min(1).max(64),
  /** Interface names are at most 15 characters. */
  bridge: z.string().min(1).max(15),
  cidr: cidr4,
  gateway: ipv4,
  /** Puts the gateway address on this host's bridge, so the host routes for (and reaches) guests. */
  gatewayOnHost: z.boolean().default(false),
  /** The VXLAN id carrying the network between hosts; absent, the bridge stays local to the host. */
  vni: z.number().int().min(1).max(16777215).optional(),
  /** Management addresses of the other hosts carrying the network (VXLAN head-end replication). */
  peers: z.array(z.string().min(1).max(255)).default([]),
  /** The DNS domain the router answers VM names in. */
  domain: z.string().max(255).default('cloud.internal'),
});
export type GuestNetwork = z.infer<typeof GuestNetwork>;

/** What a router knows of one VM: its DHCP lease, its DNS name and its metadata. */
export const RouterVmEntry = z.object({
  mac,
  ip: ipv4,
  /** The VM's host name (DNS and DHCP option 12, and meta-data/local-hostname). */
  hostname: name,
  /** meta-data/instance-id: the VM's uuid. */
  instanceId: z.string().min(1).max(64),
  /** meta-data/vm-id and the instance name upstream's router also serves. */
  vmName: name,
  /** Base64 user data, served decoded at latest/user-data. */
  userData: z.string().optional(),
  publicKeys: z.array(z.string().max(16384)).default([]),
  serviceOffering: z.string().max(255).optional(),
  availabilityZone: z.string().max(255).optional(),
  /** A password to hand out once through the password service (port 8080), until the guest saves it. */
  password: z.string().max(255).optional(),
  /**
   * false: this is not the VM's default NIC, so DHCP gives it no default route (option 3), as
   * upstream's router does; a VM with NICs in several networks routes through its default one.
   */
  defaultGateway: z.boolean().optional(),
});
export type RouterVmEntry = z.infer<typeof RouterVmEntry>;

/**
 * The public side of an isolated network's router: a second interface (eth1) plugged into the
 * zone's public bridge, carrying every public address the network holds. The router routes to the
 * internet through `gateway` (the gateway of the source-NAT address's public range).
 */
export const RouterPublic = z.object({
  /** The host bridge of the zone's public traffic (the Public traffic type's KVM label). */
  bridge: z.string().min(1).max(15),
  mac,
  gateway: ipv4,
  /** Every public address of the network, each with the prefix length of its range. */
  addresses: z.array(z.object({ ip: ipv4, prefix: z.number().int().min(1).max(32) })).min(1),
  /** The address guests' traffic leaves from (source NAT); absent, guests do not reach out. */
  sourceNat: ipv4.optional(),
});
export type RouterPublic = z.infer<typeof RouterPublic>;

const ruleProtocol = z.enum(['tcp', 'udp', 'icmp', 'all']);

/**
 * A firewall rule as the router enforces it. Ingress rules admit traffic to `publicIp` (port
 * forwards, static NAT and load balancers alike) from `sourceCidrs`; egress rules match guest
 * traffic leaving the network, from `sourceCidrs` (guest addresses) to `destCidrs`.
 */
export const RouterFirewallRule = z.object({
  publicIp: ipv4.optional(),
  protocol: ruleProtocol,
  startPort: port.optional(),
  endPort: port.optional(),
  /** ICMP type and code; -1 or absent means any. */
  icmpType: z.number().int().min(-1).max(255).optional(),
  icmpCode: z.number().int().min(-1).max(255).optional(),
  /** Empty means any source. */
  sourceCidrs: z.array(cidr4).default([]),
  /** Empty means any destination. */
  destCidrs: z.array(cidr4).default([]),
});
export type RouterFirewallRule = z.infer<typeof RouterFirewallRule>;

/**
 * A port forward: `publicIp`:publicStart-publicEnd to `privateIp`:privateStart-privateEnd. The
 * two ranges have the same length (port n of the public range goes to port n of the private one).
 */
export const RouterPortForward = z.object({
  publicIp: ipv4,
  protocol: z.enum(['tcp', 'udp']),
  publicStart: port,
  publicEnd: port,
  privateIp: ipv4,
  privateStart: port,
  privateEnd: port,
});
export type RouterPortForward = z.infer<typeof RouterPortForward>;

/** A load balancer on the router (HAProxy): `publicIp`:publicPort spread over the members. */
export const RouterLoadBalancer = z.object({
  /** The rule's uuid: names the HAProxy frontend and backend. */
  id: z.string().min(1).max(64),
  publicIp: ipv4,
  publicPort: port,
  privatePort: port,
  protocol: z.enum(['tcp', 'http']).default('tcp'),
  algorithm: z.enum(['roundrobin', 'leastconn', 'source']),
  members: z.array(z.object({ ip: ipv4 })),
  /** Session stickiness (upstream's LbCookie, AppCookie or SourceBased with their parameters). */
  stickiness: z
    .object({
      method: z.enum(['LbCookie', 'AppCookie', 'SourceBased']),
      params: z.record(z.string(), z.string()).default({}),
    })
    .optional(),
  /** A health check: members failing it get no traffic. HTTP when pingPath is set, else TCP connect. */
  healthCheck: z
    .object({
      pingPath: z.string().max(1024).optional(),
      intervalSec: z.number().int().positive().default(5),
      timeoutSec: z.number().int().positive().default(2),
      healthyThreshold: z.number().int().positive().default(2),
      unhealthyThreshold: z.number().int().positive().default(5),
    })
    .optional(),
});
export type RouterLoadBalancer = z.infer<typeof RouterLoadBalancer>;

/**
 * Everything an isolated network's router enforces on its public side, always sent whole (the
 * agent replaces the previous set atomically). Ingress to a public address is denied unless a
 * firewall rule admits it; guest traffic out is allowed or denied by `egressDefaultAllow`, and
 * egress rules make the exception.
 */
export const RouterRules = z.object({
  egressDefaultAllow: z.boolean().default(true),
  egress: z.array(RouterFirewallRule).default([]),
  firewall: z.array(RouterFirewallRule).default([]),
  portForwards: z.array(RouterPortForward).default([]),
  staticNats: z.array(z.object({ publicIp: ipv4, privateIp: ipv4 })).default([]),
  loadBalancers: z.array(RouterLoadBalancer).default([]),
});
export type RouterRules = z.infer<typeof RouterRules>;

/** One guest interface of a router: its address and MAC on one guest network's bridge. */
export const RouterGuest = z.object({
  network: GuestNetwork,
  ip: ipv4,
  mac,
});
export type RouterGuest = z.infer<typeof RouterGuest>;

/** How many guest interfaces one router carries at most (VPC tiers). */
export const MAX_ROUTER_GUESTS = 32;

/**
 * A virtual router: a network namespace on the host with one guest interface per network it
 * serves. A Basic zone's, shared or isolated network's router has exactly one (`network`, `ip`,
 * `mac`: eth0); a VPC's router has one per tier (`guests`; the VPC's first tier is eth0), and none
 * while the VPC has no tier. The VMs of every guest interface are in `vms` (a VM's address tells
 * which network it is on). Guest networks of one router are routed to each other.
 */
const RouterSpecFields = z.object({
  name,
  guests: z.array(RouterGuest).max(MAX_ROUTER_GUESTS),
  vms: z.array(RouterVmEntry).default([]),
  /** Isolated networks and VPCs: the public interface and its addresses (Basic zones' routers have none). */
  public: RouterPublic.optional(),
  rules: RouterRules.optional(),
  /** Its remote-access VPN and site-to-site connections (vpn.ts). */
  vpn: RouterVpn.optional(),
  /** A VPC's network ACLs, private gateways and static routes (vpc-routing.ts). */
  vpc: RouterVpcRouting.optional(),
});
/** The one-network form (`network`, `ip`, `mac`), as servers and stored specs before VPCs say it. */
const oneGuest = (v: unknown) => {
  if (v && typeof v === 'object' && !('guests' in v) && 'network' in v) {
    const { network, ip, mac: m, ...rest } = v as Record<string, unknown>;
    return { ...rest, guests: [{ network, ip, mac: m }] };
  }
  return v;
};
export const RouterSpec = z.preprocess(oneGuest, RouterSpecFields);
export type RouterSpec = z.infer<typeof RouterSpecFields>;

const empty = z.object({}).strict();
const nothing = z.object({});

/**
 * Command kinds with their payload and answer schemas. Adding a kind here makes it sendable by the
 * server and dispatchable on the agent; agents answer kinds they do not know with `unsupported`.
 */
export const COMMANDS = {
  /**
   * Acknowledges a host's startup: the agent may begin pinging for it. `managementServers`, when
   * the server has a list (its `host` setting), is the agent port URLs to fail over to, already in
   * the order indirect.agent.lb.algorithm gives this host; agents of an older version ignore it.
   */
  ready: {
    payload: z.object({
      hostId: z.string().min(1).max(64),
      pingIntervalMs: z.number().int().positive(),
      managementServers: z
        .array(
          z
            .string()
            .regex(/^wss?:\/\/\S+$/)
            .max(1000),
        )
        .max(64)
        .optional(),
    }),
    result: nothing,
  },
  /** Drops one host's session; the agent sends a fresh startup for it (reconnectHost). */
  reconnect: { payload: empty, result: nothing },
  checkHealth: {
    payload: empty,
    result: z.object({ healthy: z.boolean(), detail: z.string().optional() }),
  },
  getHostStats: {
    payload: empty,
    result: z.object({
      cpuUtilization: z.number().min(0).max(100),
      memoryUsedBytes: bytes,
      networkReadKbs: z.number().nonnegative(),
      networkWriteKbs: z.number().nonnegative(),
    }),
  },
  getVmStats: {
    payload: z.object({ vms: z.array(name) }),
    result: z.object({
      stats: z.array(
        z.object({
          name,
          cpuUtilization: z.number().min(0).max(100),
          memoryBytes: bytes,
          networkReadKbs: z.number().nonnegative(),
          networkWriteKbs: z.number().nonnegative(),
          diskReadBytes: bytes,
          diskWriteBytes: bytes,
        }),
      ),
    }),
  },
  startVm: {
    payload: z.object({ vm: VmSpec }),
    result: z.object({ state: PowerState, vncPort: z.number().int().optional() }),
  },
  stopVm: { payload: z.object({ name, force: z.boolean().default(false) }), result: nothing },
  rebootVm: { payload: z.object({ name }), result: nothing },
  /**
   * Sent to the destination before migrateVm: it gets ready to receive the VM. A KVM destination
   * answers the TCP port it listens on for the VM's memory; the server passes it to migrateVm.
   */
  prepareMigration: {
    payload: z.object({ vm: VmSpec }),
    result: z.object({ port: z.number().int().min(1).max(65535).optional() }),
  },
  /** Sent to the source: moves the running VM to the destination host (its management address). */
  migrateVm: {
    payload: z.object({
      name,
      destination: z.object({
        host: name,
        address: z.string().max(255).optional(),
        port: z.number().int().min(1).max(65535).optional(),
      }),
    }),
    result: nothing,
  },
  /**
   * Hot-plugs a NIC into a running VM (addNicToVirtualMachine): on KVM a tap on `nic.bridge` and a
   * virtio-net device with the NIC's MAC, filtered like at start when `nic.security` is given. A
   * NIC with that MAC already plugged in succeeds; another NIC at its device id is refused.
   */
  plugNic: { payload: z.object({ vm: name, nic: VmNic }), result: nothing },
  /** Hot-unplugs the running VM's NIC with that MAC (its device, tap and filtering); a NIC not there is gone. */
  unplugNic: { payload: z.object({ vm: name, mac }), result: nothing },
  attachVolume: { payload: z.object({ vm: name, disk: VmDisk }), result: nothing },
  detachVolume: { payload: z.object({ vm: name, disk: VmDisk }), result: nothing },
  createVolume: {
    payload: z.object({
      volumeUuid: z.string().min(1).max(64),
      sizeBytes: bytes,
      pool: StorageLocation,
      /**
       * An image the new volume starts as a copy of (grown to sizeBytes): a snapshot backup
       * (createSnapshot's path) or an uploaded volume's file on an image store (RAW or QCOW2).
       */
      fromSnapshot: z.string().min(1).max(1024).optional(),
    }),
    result: z.object({ path: z.string(), sizeBytes: bytes }),
  },
  createVolumeFromTemplate: {
    payload: z.object({
      volumeUuid: z.string().min(1).max(64),
      sizeBytes: bytes.optional(),
      pool: StorageLocation,
      template: z.object({ uuid: z.string().min(1).max(64), path: z.string().max(1024), sizeBytes: bytes }),
      templateStore: StorageLocation.optional(),
    }),
    result: z.object({ path: z.string(), sizeBytes: bytes }),
  },
  resizeVolume: {
    payload: z.object({
      path: z.string().min(1).max(1024),
      pool: StorageLocation,
      newSizeBytes: bytes,
      shrinkOk: z.boolean().default(false),
    }),
    result: z.object({ sizeBytes: bytes }),
  },
  deleteVolume: {
    payload: z.object({ path: z.string().min(1).max(1024), pool: StorageLocation }),
    result: nothing,
  },
  /**
   * Copies a volume that no running VM uses to another pool (migrateVolume), as a standalone image
   * named by the volume's uuid. The source is left in place for the server to delete.
   */
  copyVolume: {
    payload: z.object({
      volumeUuid: z.string().min(1).max(64),
      source: z.object({ path: z.string().min(1).max(1024), pool: StorageLocation }),
      pool: StorageLocation,
    }),
    result: z.object({ path: z.string(), sizeBytes: bytes }),
  },
  /**
   * Moves a disk of a running VM to another pool with the guest running (migrateVolume
   * livemigrate=true): an empty volume is made on `pool`, QEMU mirrors the disk into it while the
   * guest writes, and the VM switches to it. Answers the new volume; the old one is left for the
   * server to delete. A disk already on `pool` answers where it is (a retried command).
   */
  moveVolumeLive: {
    payload: z.object({ vm: name, disk: VmDisk, pool: StorageLocation }),
    result: z.object({ path: z.string(), sizeBytes: bytes }),
  },
  /**
   * Size and use of a primary storage pool as its backend reports them (a directory: statfs; an
   * NFS export reached in user space: the server's FSSTAT answer), for createStoragePool.
   */
  getPoolStats: {
    payload: z.object({ pool: StorageLocation }),
    result: z.object({ capacityBytes: bytes, usedBytes: bytes }),
  },
  /**
   * Removes the pool's copies of these templates (the linked clones' bases the host made there),
   * before the pool is deleted: the server sends it once no volume is left on the pool. Copies
   * not there are fine.
   */
  deleteTemplateCopies: {
    payload: z.object({ pool: StorageLocation, templates: z.array(z.string().min(1).max(64)).max(100_000) }),
    result: nothing,
  },
  createSnapshot: {
    payload: z.object({
      snapshotUuid: z.string().min(1).max(64),
      /** The volume, or a snapshot's backup to copy (a template made from a snapshot). */
      volumePath: z.string().min(1).max(1024),
      pool: StorageLocation,
      vm: name.optional(),
      /** Where the snapshot is backed up as a flat image (secondary storage); the pool when absent. */
      secondary: StorageLocation.optional(),
    }),
    result: z.object({ path: z.string(), sizeBytes: bytes }),
  },
  deleteSnapshot: {
    payload: z.object({ path: z.string().min(1).max(1024), pool: StorageLocation }),
    result: nothing,
  },
  revertSnapshot: {
    payload: z.object({
      snapshotPath: z.string().min(1).max(1024),
      volumePath: z.string().min(1),
      pool: StorageLocation,
    }),
    result: nothing,
  },
  /** Creates the network's bridge (and VXLAN link) on the host, or updates its peers. */
  setupNetwork: { payload: z.object({ network: GuestNetwork }), result: nothing },
  /**
   * Removes the network's bridge and VXLAN link from the host; refused while VM NICs are plugged
   * in or a router runs on it (stop the router first). A missing bridge is already torn down.
   */
  teardownNetwork: { payload: z.object({ network: GuestNetwork }), result: nothing },
  /**
   * Starts the router (namespace, DHCP and DNS, metadata on port 80, password service on 8080),
   * or brings a running one up to date with the spec (its VM entries are replaced).
   */
  startRouter: { payload: z.object({ router: RouterSpec }), result: nothing },
  /** Stops the router's processes and removes its namespace; a missing router is already stopped. */
  stopRouter: { payload: z.object({ name }), result: nothing },
  /** Adds or replaces VM entries (by MAC) and removes others, on a running router. */
  updateRouter: {
    payload: z.object({ name, add: z.array(RouterVmEntry).default([]), remove: z.array(mac).default([]) }),
    result: nothing,
  },
  /**
   * What a running router holds of its VMs, condensed (router-digest.ts): the server compares it
   * with its records instead of sending every entry again. With `entries`, also each entry's MAC
   * and hash, so the server sends only what differs.
   */
  routerDigest: {
    payload: z.object({ name, entries: z.boolean().default(false) }),
    result: z.object({
      digest: z.string().max(64),
      entries: z.array(z.tuple([mac, z.string().regex(/^[0-9a-f]{16}$/)])).optional(),
    }),
  },
  /**
   * Replaces a running router's public addresses and everything it enforces on them (NAT, port
   * forwards, firewall, egress, load balancers) with what is given. It answers once the rules are
   * in force; `loadBalancerMs` is how long the load balancer's reload took, when it had to.
   */
  applyRouterRules: {
    payload: z.object({ name, public: RouterPublic.optional(), rules: RouterRules }),
    result: z.object({ loadBalancerMs: z.number().nonnegative().optional() }),
  },
  /**
   * Replaces a running router's VPNs with what is given (none: strongSwan stops), restarts the
   * site-to-site connections named in `reset`, and answers each connection's state right after.
   */
  applyRouterVpn: {
    payload: z.object({ name, vpn: RouterVpn, reset: z.array(z.string().max(64)).default([]) }),
    result: RouterVpnStatus,
  },
  /** The state of each site-to-site connection of a running router, as its tunnels are now. */
  routerVpnStatus: { payload: z.object({ name }), result: RouterVpnStatus },
  /** Replaces the filtering of a running VM's NICs (matched by MAC); a VM not here is ignored. */
  applySecurityRules: {
    payload: z.object({ vm: name, nics: z.array(z.object({ mac, ip: ipv4, security: NicSecurity })) }),
    result: nothing,
  },
  /**
   * The last `maxBytes` of what the VM printed on its serial console (KVM: ttyS0's log; LXC: the
   * container's console log; the simulator: the power events it keeps), base64-encoded as EC2's
   * GetConsoleOutput gives it; empty when the host has none. The log outlives a stop on the host.
   */
  getConsoleOutput: {
    payload: z.object({
      name,
      maxBytes: z
        .number()
        .int()
        .positive()
        .max(1024 * 1024)
        .default(64 * 1024),
    }),
    result: z.object({ output: z.string() }),
  },
  /**
   * Opens the VM's console for one browser session: the agent connects to the VM's VNC server on
   * the host (127.0.0.1) and to the management server's agent port at `/tunnel/<tunnel>`,
   * presenting `secret`, and pipes the two until either side closes. It answers once the tunnel
   * is open; a repeated command for a tunnel that is already open succeeds without a second one.
   */
  openConsole: {
    payload: z.object({
      vm: name,
      tunnel: z.string().regex(/^[A-Za-z0-9_-]{8,64}$/),
      secret: z.string().min(16).max(128),
    }),
    result: nothing,
  },
  /**
   * Keeps the host's storage heartbeat (VM high availability): every `intervalMs` the agent
   * writes a small record (its time and running VMs) for host `hostId` to each listed shared
   * pool, until told otherwise; an empty list stops it. Answers the pools the first write reached.
   * With `fenceAfterMs`, a host that wrote once and then could write to none of its pools for
   * that long stops its VMs itself: its neighbours will soon take it for dead and start them.
   */
  setHeartbeat: {
    payload: z.object({
      hostId: z.string().min(1).max(64),
      intervalMs: z.number().int().min(100),
      pools: z.array(StorageLocation),
      fenceAfterMs: z.number().int().positive().optional(),
    }),
    result: z.object({ written: z.array(z.string()) }),
  },
  /**
   * Investigation of another host of the cluster whose agent is gone: whether this host reaches
   * its address (null: it cannot tell, e.g. the address is its own), how old its heartbeat is on
   * each pool (null: none there) with the VMs it last listed, and which of the listed disks a
   * running hypervisor process still holds (null: this driver cannot tell).
   */
  checkHost: {
    payload: z.object({
      hostId: z.string().min(1).max(64),
      address: z.string().max(64).optional(),
      pools: z.array(StorageLocation),
      disks: z.array(z.object({ vm: name, path: z.string().min(1).max(1024) })),
    }),
    result: z.object({
      reachable: z.boolean().nullable(),
      heartbeats: z.array(
        z.object({
          pool: z.string().min(1).max(64),
          ageMs: z.number().int().nullable(),
          vms: z.array(name),
        }),
      ),
      disksInUse: z.array(z.string().max(1024)).nullable(),
    }),
  },
  /**
   * Simulator only: the next `count` commands of `kind` (or every one when count is absent) fail
   * with `message`, and/or take `latencyMs` longer. Real drivers answer `unsupported`.
   */
  configureSimulator: {
    payload: z.object({
      kind: z.string().min(1).max(64),
      count: z.number().int().positive().optional(),
      fail: z.boolean().default(false),
      message: z.string().max(1024).optional(),
      latencyMs: z.number().int().nonnegative().optional(),
    }),
    result: nothing,
  },
} as const;

export type CommandKind = keyof typeof COMMANDS;
export type CommandPayload<K extends CommandKind> = z.input<(typeof COMMANDS)[K]['payload']>;
export type ParsedPayload<K extends CommandKind> = z.output<(typeof COMMANDS)[K]['payload']>;
export type CommandResult<K extends CommandKind> = z.output<(typeof COMMANDS)[K]['result']>;

export const COMMAND_KINDS = Object.keys(COMMANDS) as CommandKind[];

export function isCommandKind(kind: string): kind is CommandKind {
  return Object.hasOwn(COMMANDS, kind);
}
