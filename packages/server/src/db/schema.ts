/**
 * Row types of every table, as Kysely sees them. Public ids are the `uuid` columns; the integer
 * `id` keys stay inside the server. Times are epoch milliseconds; flags are 0/1 integers so that
 * SQLite, PostgreSQL and MySQL return the same values.
 */
import type { Generated, Insertable, Selectable } from 'kysely';
import type { Ec2LaunchTable } from '../ec2/tables.ts';
import type { GuiThemeScopeTable, GuiThemeTable } from '../gui-themes/tables.ts';
import type { ResourceIconTable } from '../icons/tables.ts';
import type { LdapConfigurationTable, LdapLinkTable } from '../ldap/tables.ts';
import type {
  NetworkAclItemTable,
  NetworkAclListTable,
  VpcPrivateGatewayTable,
  VpcStaticRouteTable,
} from '../network/vpc-acl-tables.ts';
import type {
  RemoteAccessVpnTable,
  VpnConnectionTable,
  VpnCustomerGatewayTable,
  VpnGatewayTable,
  VpnUserTable,
} from '../network/vpn/tables.ts';
import type {
  ProjectInvitationTable,
  ProjectMemberTable,
  ProjectRolePermissionTable,
  ProjectRoleTable,
  ProjectTable,
} from '../projects/tables.ts';

export type Flag = 0 | 1;

export interface ManagementServerTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  version: string;
  started: number;
  last_heartbeat: number;
  state: string;
  /** Where peers reach this server's agent port (http(s)://address:port); null before 0033. */
  peer_url: string | null;
}

/** The cloud's key check (migration 0032): which key the cloud's secrets are sealed with. */
export interface CloudKeyTable {
  /** Always 1: one cloud, one key. */
  id: number;
  /** The key's public name (Secrets.fingerprint), for messages. */
  fingerprint: string;
  /** A known text sealed with the key: a key that opens it is the cloud's. */
  check_value: string;
  created: number;
}

/** API calls per account and throttling window, counted for the whole cloud (migration 0032). */
export interface ApiCallCountTable {
  /** Which API: 'api' (CloudStack) or 'ec2'. */
  scope: string;
  account_id: number;
  /** Epoch ms at which the window starts (a multiple of its length). */
  window_start: number;
  calls: number;
}

export interface DomainTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  parent_id: number | null;
  /** "/" for ROOT, "/a/b/" below it: a prefix match finds a whole subtree. */
  path: string;
  level: number;
  state: string;
  network_domain: string | null;
  created: number;
}

export interface RoleTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  type: string;
  description: string | null;
  is_default: Flag;
  is_public: Flag;
  created: number;
}

export interface RolePermissionTable {
  id: Generated<number>;
  uuid: string;
  role_id: number;
  rule: string;
  permission: string;
  description: string | null;
  sort_order: number;
}

export interface AccountTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  /** 0 user, 1 root admin, 2 domain admin, 3 resource admin, 5 project. */
  type: number;
  role_id: number;
  domain_id: number;
  state: string;
  network_domain: string | null;
  created: number;
}

export interface UserTable {
  id: Generated<number>;
  uuid: string;
  username: string;
  password: string;
  firstname: string;
  lastname: string;
  email: string | null;
  timezone: string | null;
  account_id: number;
  state: string;
  api_key: string | null;
  /** Encrypted with the server key (see iam/secrets.ts), never stored in clear. */
  secret_key: string | null;
  is_default: Flag;
  source: string;
  created: number;
  /** Consecutive failed logins since the last success (incorrect.login.attempts.allowed). */
  login_attempts: Generated<number>;
  /** 'totp' or 'staticpin' once two-factor authentication is set up. */
  user_2fa_provider: string | null;
  /** The TOTP secret or static PIN, encrypted with the server key like secret_key. */
  key_for_2fa: string | null;
  user_2fa_enabled: Generated<Flag>;
  /** Whether a first code confirmed the setup; an unconfirmed setup is dropped at the next login. */
  user_2fa_verified: Generated<Flag>;
  /** The TOTP time step of the last code accepted: RFC 6238 lets each code be used once. */
  last_2fa_step: number | null;
}

export interface SessionTable {
  id: Generated<number>;
  session_id: string;
  session_key: string;
  user_id: number;
  created: number;
  last_access: number;
  /** 0 until the session's user passes two-factor authentication, when they must. */
  verified_2fa: Generated<Flag>;
}

/**
 * An object held by one management server (migration 0034, jobs/locks.ts): a job's object
 * (job_id set), a step's lock, or a scheduled task's lease (expires set).
 */
export interface ClusterLockTable {
  name: string;
  ms_id: number;
  job_id: number | null;
  token: string;
  acquired: number;
  expires: number | null;
}

/** One object of an async job (migration 0034): jobs on an object start in submission order. */
export interface AsyncJobObjectTable {
  object_key: string;
  job_id: number;
}

export interface AsyncJobTable {
  id: Generated<number>;
  uuid: string;
  user_id: number;
  account_id: number;
  domain_id: number;
  command: string;
  cmd: string;
  params: string;
  instance_type: string | null;
  instance_id: string | null;
  /** 0 in progress, 1 succeeded, 2 failed. */
  status: number;
  process_status: number;
  result_code: number;
  result_type: string | null;
  result: string | null;
  ms_id: number;
  created: number;
  completed: number | null;
}

export interface EventTable {
  id: Generated<number>;
  uuid: string;
  type: string;
  level: string;
  state: string;
  description: string;
  user_id: number;
  account_id: number;
  domain_id: number;
  resource_type: string | null;
  resource_id: string | null;
  start_id: number | null;
  created: number;
  archived: Flag;
}

/** A host's HA configuration and state (migration 0035, ha/host-ha.ts). */
export interface HostHaTable {
  id: Generated<number>;
  host_id: number;
  /** The host-HA provider configured (configureHAForHost); null: the hypervisor's default. */
  provider: string | null;
  /** 0 after disableHAForHost: the host's failure is left to the operator. */
  enabled: Flag;
  /** Upstream's HA states: Available, Suspect, Checking, Degraded, Fenced, Ineligible, Disabled. */
  state: string;
  /** What the last investigation found, for the operator. */
  detail: string | null;
  updated: number;
}

/** A VM of a fenced host to restart elsewhere (migration 0035, ha/vm-ha.ts). */
export interface HaWorkTable {
  id: Generated<number>;
  vm_id: number;
  /** The host it ran on when that host was fenced. */
  host_id: number;
  /** Pending, Running (claimed by ms_id), Done, Failed. */
  state: string;
  attempts: number;
  next_attempt: number;
  ms_id: number | null;
  last_error: string | null;
  created: number;
  updated: number;
}

/** A resource state-change message waiting for the message bus (migration 0031). */
export interface StateEventTable {
  id: Generated<number>;
  uuid: string;
  routing_key: string;
  body: string;
  created: number;
}

/**
 * An event waiting to be handed to one consumer: 'bus' or 'webhook' (migration 0022), or 'state'
 * for a state_events row (event_id is then that table's id; migration 0031).
 */
export interface EventOutboxTable {
  id: Generated<number>;
  event_id: number;
  target: string;
  attempts: Generated<number>;
  next_attempt: number;
  lease_token: string | null;
  lease_server: number | null;
  lease_until: number | null;
  last_error: string | null;
}

/** A webhook (migration 0022): scope Local, Domain or Global; state Enabled or Disabled. */
export interface WebhookTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  description: string | null;
  account_id: number;
  domain_id: number;
  payload_url: string;
  secret_key: string | null;
  ssl_verification: Flag;
  scope: string;
  state: string;
  created: number;
  removed: number | null;
}

/** One attempt at delivering an event (or a test payload) to a webhook (migration 0022). */
export interface WebhookDeliveryTable {
  id: Generated<number>;
  uuid: string;
  webhook_id: number;
  event_id: number | null;
  event_type: string;
  management_server_id: number;
  headers: string | null;
  payload: string | null;
  success: Flag;
  response: string | null;
  start_time: number;
  end_time: number;
}

export interface ConfigurationTable {
  name: string;
  value: string | null;
  updated: number;
}

export interface ScopedConfigurationTable {
  id: Generated<number>;
  name: string;
  scope: string;
  scope_id: number;
  value: string;
}

export interface ResourceTagTable {
  id: Generated<number>;
  uuid: string;
  key: string;
  value: string;
  resource_type: string;
  resource_id: number;
  resource_uuid: string;
  account_id: number;
  domain_id: number;
  customer: string | null;
  created: number;
}

export interface ZoneTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  description: string | null;
  /** Basic or Advanced. */
  network_type: string;
  /** Enabled or Disabled. */
  allocation_state: string;
  dns1: string;
  dns2: string | null;
  internal_dns1: string;
  internal_dns2: string | null;
  ip6_dns1: string | null;
  ip6_dns2: string | null;
  guest_cidr: string | null;
  network_domain: string | null;
  /** A zone dedicated to one domain. */
  domain_id: number | null;
  security_groups_enabled: Flag;
  local_storage_enabled: Flag;
  is_edge: Flag;
  dhcp_provider: string;
  zone_token: string;
  sort_key: number;
  created: number;
  removed: number | null;
}

export interface PodTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  zone_id: number;
  gateway: string;
  netmask: string;
  start_ip: string | null;
  end_ip: string | null;
  allocation_state: string;
  created: number;
  removed: number | null;
}

export interface ClusterTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  zone_id: number;
  pod_id: number;
  hypervisor: string;
  cluster_type: string;
  allocation_state: string;
  /** Managed or Unmanaged. */
  managed_state: string;
  arch: string;
  created: number;
  removed: number | null;
}

export interface PhysicalNetworkTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  zone_id: number;
  domain_id: number | null;
  state: string;
  /** Comma-separated: VLAN, VXLAN, GRE, L3... */
  isolation_methods: string;
  vlan: string | null;
  network_speed: string | null;
  broadcast_domain_range: string;
  tags: string | null;
  created: number;
  removed: number | null;
}

export interface TrafficTypeTable {
  id: Generated<number>;
  uuid: string;
  physical_network_id: number;
  /** Guest, Management, Public or Storage. */
  traffic_type: string;
  kvm_label: string | null;
  xen_label: string | null;
  vmware_label: string | null;
  hyperv_label: string | null;
  ovm3_label: string | null;
  vlan: string | null;
  isolation_method: string | null;
}

export interface StoragePoolTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  zone_id: number;
  pod_id: number | null;
  /** Host-local pools (scope HOST): the one host that reaches them. */
  host_id: Generated<number | null>;
  cluster_id: number | null;
  /** CLUSTER, ZONE or HOST. */
  scope: string;
  /** Filesystem, NetworkFilesystem, SharedMountPoint... (upstream StoragePoolType). */
  pool_type: string;
  path: string;
  host_address: string;
  port: number;
  url: string;
  hypervisor: string | null;
  provider: string;
  capacity_bytes: number;
  used_bytes: number;
  allocated_bytes: number;
  capacity_iops: number | null;
  /** 1: the operator gave the size; measurements refresh only used_bytes (migration 0039). */
  capacity_given: Generated<Flag>;
  managed: Flag;
  /** Up, Disabled, PrepareForMaintenance, Maintenance... */
  state: string;
  /** Comma-separated storage tags. */
  tags: string | null;
  is_tag_a_rule: Flag;
  /** RBD: the cephx user, and its key sealed with the server key (migration 0036). */
  auth_user: Generated<string | null>;
  auth_secret: Generated<string | null>;
  /** Managed pools: the provider's settings as JSON, and its credential sealed (migration 0040). */
  details: Generated<string | null>;
  provider_secret: Generated<string | null>;
  created: number;
  removed: number | null;
}

/** A VM a pool's maintenance stopped (migration 0039), started again when it is cancelled. */
export interface StoragePoolWorkTable {
  id: Generated<number>;
  pool_id: number;
  vm_id: number;
  stopped: Flag;
  started: Flag;
  /** The management server that did the work. */
  ms_id: number | null;
  created: number;
}

/** Whether a host reached a pool at its last check (migration 0039). */
export interface StoragePoolHostTable {
  id: Generated<number>;
  pool_id: number;
  host_id: number;
  reachable: Flag;
  /** Why it did not, as the host said. */
  error: string | null;
  checked: number;
}

export interface ImageStoreTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  zone_id: number | null;
  provider: string;
  protocol: string;
  url: string;
  path: string;
  host_address: string | null;
  scope: string;
  readonly: Flag;
  capacity_bytes: number | null;
  used_bytes: number | null;
  /** S3 and Swift stores: their non-secret settings as JSON (storage/object-stores.ts). */
  details: Generated<string | null>;
  /** S3 and Swift stores: the secret key, sealed with the server key. */
  secret: Generated<string | null>;
  created: number;
  removed: number | null;
}

export interface DiskOfferingTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  display_text: string;
  disk_size_bytes: number;
  customized: Flag;
  customized_iops: Flag;
  min_iops: number | null;
  max_iops: number | null;
  /** shared or local. */
  storage_type: string;
  /** thin, sparse or fat. */
  provisioning_type: string;
  tags: string | null;
  cache_mode: string | null;
  bytes_read_rate: number | null;
  bytes_write_rate: number | null;
  iops_read_rate: number | null;
  iops_write_rate: number | null;
  hypervisor_snapshot_reserve: number | null;
  encrypt: Flag;
  disk_size_strictness: Flag;
  display_offering: Flag;
  /** The root-disk part of a service offering, hidden from listDiskOfferings. */
  compute_only: Flag;
  state: string;
  sort_key: number;
  created: number;
  removed: number | null;
}

export interface ServiceOfferingTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  display_text: string;
  /** Null on customized offerings: the caller chooses at deploy time. */
  cpu_number: number | null;
  cpu_speed: number | null;
  memory_mb: number | null;
  min_cpu_number: number | null;
  max_cpu_number: number | null;
  min_memory_mb: number | null;
  max_memory_mb: number | null;
  offer_ha: Flag;
  limit_cpu_use: Flag;
  is_volatile: Flag;
  dynamic_scaling_enabled: Flag;
  host_tags: string | null;
  network_rate: number | null;
  deployment_planner: string | null;
  disk_offering_id: number;
  disk_offering_strictness: Flag;
  root_disk_size_bytes: number | null;
  is_system: Flag;
  system_vm_type: string | null;
  default_use: Flag;
  state: string;
  sort_key: number;
  created: number;
  removed: number | null;
}

export interface OfferingScopeTable {
  id: Generated<number>;
  /** service or disk. */
  offering_type: string;
  offering_id: number;
  /** domain or zone. */
  scope: string;
  scope_id: number;
}

export interface OsCategoryTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  is_featured: Flag;
  sort_key: number;
  created: number;
}

export interface OsTypeTable {
  id: Generated<number>;
  uuid: string;
  category_id: number;
  description: string;
  display_name: string;
  bits: number;
  is_user_defined: Flag;
  for_display: Flag;
  created: number;
}

export interface AlertTable {
  id: Generated<number>;
  uuid: string;
  /** Upstream AlertManager type numbers (0 memory, 1 cpu, 2 storage...). */
  type: number;
  name: string;
  subject: string;
  zone_id: number | null;
  pod_id: number | null;
  cluster_id: number | null;
  source_key: string | null;
  sent_count: number;
  created: number;
  last_sent: number;
  resolved: number | null;
  archived: Flag;
}

/** A hypervisor host. Its name is its identity towards the agent that presents it. */
export interface HostTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  zone_id: number;
  pod_id: number | null;
  cluster_id: number | null;
  /** Routing (a hypervisor host), as upstream's Host.Type. */
  type: string;
  hypervisor: string | null;
  hypervisor_version: string | null;
  /** Connection status: Connecting, Up, Disconnected, Alert, Down, Removed. */
  state: string;
  /** Enabled, Disabled, PrepareForMaintenance, ErrorInPrepareForMaintenance, Maintenance. */
  resource_state: string;
  cpu_sockets: number | null;
  cpu_cores: number | null;
  cpu_speed_mhz: number | null;
  memory_bytes: number | null;
  cpu_allocated_mhz: Generated<number>;
  memory_allocated_bytes: Generated<number>;
  local_storage_bytes: Generated<number>;
  private_ip: string | null;
  agent_version: string | null;
  url: string;
  /** sha256 of the agent's token, never the token itself. */
  token_hash: string;
  /** JSON object of extra details (addHost externaldetails). */
  details: string | null;
  annotation: string | null;
  /** The management server the host's agent is connected to. */
  ms_id: number | null;
  last_pinged: number | null;
  /** When the host last stopped being Up; Alert and Down are reached from it. */
  disconnected: number | null;
  created: number;
  removed: number | null;
}

export interface HostTagTable {
  id: Generated<number>;
  host_id: number;
  tag: string;
  is_implicit: Flag;
}

export interface ResourceLimitTable {
  id: Generated<number>;
  owner_type: 'account' | 'domain';
  owner_id: number;
  resource_type: number;
  /** -1 means unlimited. */
  max: number;
}

export interface ResourceCountTable {
  id: Generated<number>;
  owner_type: 'account' | 'domain';
  owner_id: number;
  resource_type: number;
  count: number;
}

export interface SshKeyPairTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  account_id: number;
  domain_id: number;
  public_key: string;
  /** Lower-case colon-separated MD5 of the key blob. */
  fingerprint: string;
  created: number;
}

export interface UserDataTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  account_id: number;
  domain_id: number;
  /** Base64, as registered. */
  user_data: string;
  params: string | null;
  created: number;
}

export interface VmTable {
  id: Generated<number>;
  uuid: string;
  /** Host name of the guest (CloudStack's `name`). */
  name: string;
  /** Hypervisor-side name, i-<account>-<vm>-VM. */
  instance_name: string;
  display_name: string;
  account_id: number;
  domain_id: number;
  user_id: number;
  zone_id: number;
  pod_id: number | null;
  cluster_id: number | null;
  host_id: number | null;
  last_host_id: number | null;
  template_id: number | null;
  iso_id: number | null;
  service_offering_id: number;
  disk_offering_id: number | null;
  cpu_number: number;
  cpu_speed: number;
  memory_mb: number;
  hypervisor: string;
  guest_os_id: number | null;
  /** Running, Stopped, Starting, Stopping, Destroyed, Expunging, Migrating, Error... */
  state: string;
  ha_enabled: Flag;
  display_vm: Flag;
  group_id: number | null;
  /** Comma-separated SSH key pair names given at deploy or reset. */
  keypairs: string | null;
  /** Base64 user data. */
  user_data: string | null;
  user_data_id: number | null;
  /** Encrypted with the server key. */
  password: string | null;
  /** 1 while the router has not been handed the VM's new password yet. */
  password_pending: Generated<number>;
  /** JSON object of VM details. */
  details: string | null;
  created: number;
  updated: number;
  /** When the VM was expunged; expunged rows are hidden everywhere. */
  removed: number | null;
}

export interface VolumeTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  account_id: number;
  domain_id: number;
  zone_id: number;
  pool_id: number | null;
  vm_id: number | null;
  device_id: number | null;
  /** ROOT or DATADISK. */
  type: string;
  /** Allocated, Creating, Ready, Attaching, Migrating, Resizing, Snapshotting, Destroy, Expunged... */
  state: string;
  size_bytes: number;
  physical_size_bytes: number | null;
  path: string | null;
  format: string | null;
  disk_offering_id: number | null;
  template_id: number | null;
  snapshot_id: number | null;
  provisioning_type: string;
  min_iops: number | null;
  max_iops: number | null;
  display_volume: Flag;
  attached: number | null;
  created: number;
  removed: number | null;
  /** Uploaded volumes (uploadVolume) live on secondary storage until first attached. */
  image_store_id: Generated<number | null>;
  store_path: Generated<string | null>;
  upload_url: Generated<string | null>;
  upload_checksum: Generated<string | null>;
  /** Progress or failure of an upload ("35% Uploaded", the error). */
  upload_status: Generated<string | null>;
  /** The management server running the upload (a stopped one's upload is taken over). */
  upload_ms_id: Generated<number | null>;
}

/** A template or an ISO (is_iso). Sizes live on the store copies, which are what exists. */
export interface TemplateTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  display_text: string;
  is_iso: Flag;
  /** QCOW2, RAW, VHD, VHDX, OVA or ISO. */
  format: string;
  /** USER, BUILTIN, SYSTEM or ROUTING. */
  type: string;
  bootable: Flag;
  os_type_id: number;
  /** Null for ISOs, which boot on any hypervisor. */
  hypervisor: string | null;
  account_id: number;
  domain_id: number;
  user_id: number;
  is_public: Flag;
  is_featured: Flag;
  is_extractable: Flag;
  password_enabled: Flag;
  sshkey_enabled: Flag;
  dynamically_scalable: Flag;
  requires_hvm: Flag;
  /** Registered for every zone (zoneid=-1): new zones' image stores get a copy too. */
  cross_zones: Flag;
  bits: number;
  url: string;
  /** As registered: {SHA-256}hex, {MD5}hex or a bare MD5. */
  checksum: string | null;
  template_tag: string | null;
  /** JSON object of template details (rootDiskController...). */
  details: string | null;
  /** Active or Inactive. */
  state: string;
  created: number;
  removed: number | null;
}

/** One copy of a template on one image store, and how its download went. */
export interface TemplateStoreRefTable {
  id: Generated<number>;
  template_id: number;
  image_store_id: number;
  zone_id: number;
  /** NOT_DOWNLOADED, DOWNLOAD_IN_PROGRESS, DOWNLOADED or DOWNLOAD_ERROR. */
  download_state: string;
  download_pct: number;
  /** What listTemplates shows: "35% Downloaded", "Download Complete" or why it failed. */
  status: string;
  /** Relative to the image store's root. */
  install_path: string | null;
  /** Virtual size (what a root disk made from it needs). */
  size_bytes: number | null;
  physical_size_bytes: number | null;
  error: string | null;
  /** The management server running the download; another takes over if that one dies. */
  ms_id: number | null;
  destroyed: Flag;
  created: number;
  updated: number;
}

export interface TemplatePermissionTable {
  id: Generated<number>;
  template_id: number;
  account_id: number;
}

/** An extract link: /client/extract/<token>/<file> serves one store copy until `expires`. */
export interface VolumeExtractTable {
  id: Generated<number>;
  token: string;
  volume_id: number;
  image_store_id: number;
  install_path: string;
  account_id: number;
  created: number;
  expires: number;
}

/** An explicit dedication of a zone, pod, cluster or host (exactly one is set) to a domain or account. */
export interface DedicatedResourceTable {
  id: Generated<number>;
  uuid: string;
  zone_id: number | null;
  pod_id: number | null;
  cluster_id: number | null;
  host_id: number | null;
  domain_id: number;
  account_id: number | null;
  affinity_group_id: number | null;
  created: number;
}
export type DedicatedResourceRow = Selectable<DedicatedResourceTable>;

export interface TemplateExtractTable {
  id: Generated<number>;
  token: string;
  template_id: number;
  store_ref_id: number;
  account_id: number;
  created: number;
  expires: number;
}

export interface InstanceGroupTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  account_id: number;
  domain_id: number;
  created: number;
}

/** A volume snapshot: taken on the volume's pool, then backed up to the zone's image store. */
export interface SnapshotTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  account_id: number;
  domain_id: number;
  zone_id: number;
  /** Kept after the volume is deleted, as upstream does. */
  volume_id: number;
  policy_id: number | null;
  /** MANUAL or RECURRING. */
  snapshot_type: string;
  /** MANUAL, HOURLY, DAILY, WEEKLY or MONTHLY. */
  interval_type: string;
  /** Allocated, Creating, BackedUp, Error, Destroyed. */
  state: string;
  path: string | null;
  /** The pool the snapshot was taken on (its backup lives on image_store_id when there is one). */
  pool_id: number | null;
  image_store_id: number | null;
  /** The volume's virtual size when taken. */
  size_bytes: number;
  physical_size_bytes: number | null;
  created: number;
  removed: number | null;
}

export interface SnapshotPolicyTable {
  id: Generated<number>;
  uuid: string;
  volume_id: number;
  account_id: number;
  domain_id: number;
  interval_type: string;
  /** "MM", "MM:HH", "MM:HH:DD" (day of week 1-7 or day of month 1-28), as upstream. */
  schedule: string;
  timezone: string;
  max_snaps: number;
  for_display: Flag;
  /** When the scheduler next takes a snapshot (ms since the epoch). */
  next_run: number;
  created: number;
}

export interface VmSnapshotTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  display_name: string;
  description: string | null;
  vm_id: number;
  account_id: number;
  domain_id: number;
  zone_id: number;
  /** Disk (memory snapshots are not offered). */
  type: string;
  /** Allocated, Creating, Ready, Reverting, Expunging, Error. */
  state: string;
  parent_id: number | null;
  /** The snapshot the VM was last taken at or reverted to. */
  current: Flag;
  created: number;
  removed: number | null;
}

/** One volume's disk snapshot within a VM snapshot, kept on the volume's pool. */
export interface VmSnapshotDiskTable {
  id: Generated<number>;
  vm_snapshot_id: number;
  volume_id: number;
  pool_id: number;
  path: string;
  size_bytes: number;
}

export interface Database {
  management_servers: ManagementServerTable;
  cloud_key: CloudKeyTable;
  api_call_counts: ApiCallCountTable;
  gui_themes: GuiThemeTable;
  gui_theme_scopes: GuiThemeScopeTable;
  domains: DomainTable;
  roles: RoleTable;
  role_permissions: RolePermissionTable;
  accounts: AccountTable;
  users: UserTable;
  ldap_configurations: LdapConfigurationTable;
  ldap_links: LdapLinkTable;
  resource_icons: ResourceIconTable;
  ec2_launches: Ec2LaunchTable;
  sessions: SessionTable;
  async_jobs: AsyncJobTable;
  async_job_objects: AsyncJobObjectTable;
  cluster_locks: ClusterLockTable;
  events: EventTable;
  event_outbox: EventOutboxTable;
  state_events: StateEventTable;
  host_ha: HostHaTable;
  ha_work: HaWorkTable;
  webhooks: WebhookTable;
  webhook_deliveries: WebhookDeliveryTable;
  configuration: ConfigurationTable;
  scoped_configuration: ScopedConfigurationTable;
  resource_tags: ResourceTagTable;
  resource_limits: ResourceLimitTable;
  resource_counts: ResourceCountTable;
  ssh_keypairs: SshKeyPairTable;
  user_data: UserDataTable;
  vms: VmTable;
  volumes: VolumeTable;
  storage_pool_work: StoragePoolWorkTable;
  storage_pool_hosts: StoragePoolHostTable;
  instance_groups: InstanceGroupTable;
  network_offerings: NetworkOfferingTable;
  network_service_providers: NetworkServiceProviderTable;
  virtual_router_elements: VirtualRouterElementTable;
  networks: NetworkTable;
  vlan_ip_ranges: VlanIpRangeTable;
  guest_ip_allocations: GuestIpAllocationTable;
  nics: NicTable;
  routers: RouterTable;
  public_ips: PublicIpTable;
  ip_rules: IpRuleTable;
  lb_members: LbMemberTable;
  lb_policies: LbPolicyTable;
  security_groups: SecurityGroupTable;
  security_group_rules: SecurityGroupRuleTable;
  security_group_vm_map: SecurityGroupVmMapTable;
  zones: ZoneTable;
  pods: PodTable;
  clusters: ClusterTable;
  physical_networks: PhysicalNetworkTable;
  physical_network_traffic_types: TrafficTypeTable;
  storage_pools: StoragePoolTable;
  image_stores: ImageStoreTable;
  disk_offerings: DiskOfferingTable;
  service_offerings: ServiceOfferingTable;
  offering_scopes: OfferingScopeTable;
  os_categories: OsCategoryTable;
  os_types: OsTypeTable;
  alerts: AlertTable;
  hosts: HostTable;
  host_tags: HostTagTable;
  templates: TemplateTable;
  template_store_refs: TemplateStoreRefTable;
  template_permissions: TemplatePermissionTable;
  template_extracts: TemplateExtractTable;
  volume_extracts: VolumeExtractTable;
  dedicated_resources: DedicatedResourceTable;
  affinity_groups: AffinityGroupTable;
  affinity_group_vm_map: AffinityGroupVmMapTable;
  usage_records: UsageRecordTable;
  snapshots: SnapshotTable;
  snapshot_policies: SnapshotPolicyTable;
  vm_snapshots: VmSnapshotTable;
  vm_snapshot_disks: VmSnapshotDiskTable;
  console_tokens: ConsoleTokenTable;
  network_teardowns: NetworkTeardownTable;
  vpc_offerings: VpcOfferingTable;
  vpcs: VpcTable;
  remote_access_vpns: RemoteAccessVpnTable;
  vpn_users: VpnUserTable;
  vpn_gateways: VpnGatewayTable;
  vpn_customer_gateways: VpnCustomerGatewayTable;
  vpn_connections: VpnConnectionTable;
  network_acl_lists: NetworkAclListTable;
  network_acl_items: NetworkAclItemTable;
  vpc_private_gateways: VpcPrivateGatewayTable;
  vpc_static_routes: VpcStaticRouteTable;
  projects: ProjectTable;
  project_members: ProjectMemberTable;
  project_invitations: ProjectInvitationTable;
  project_roles: ProjectRoleTable;
  project_role_permissions: ProjectRolePermissionTable;
}

/** What VPCs are made from (migration 0023): services as "Service:Provider" pairs. */
export interface VpcOfferingTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  display_text: string;
  services: string;
  /** Enabled or Disabled. */
  state: string;
  is_default: Generated<Flag>;
  sort_key: Generated<number>;
  created: number;
  removed: number | null;
}

/** A VPC: an account's address space whose tiers share one router (migration 0023). */
export interface VpcTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  display_text: string;
  zone_id: number;
  vpc_offering_id: number;
  cidr: string;
  network_domain: string | null;
  account_id: number;
  domain_id: number;
  /** Enabled (its router serves it) or Inactive (no router: created with start=false). */
  state: string;
  for_display: Generated<Flag>;
  created: number;
  removed: number | null;
}

export type DomainRow = Selectable<DomainTable>;
export type RoleRow = Selectable<RoleTable>;
export type AccountRow = Selectable<AccountTable>;
export type UserRow = Selectable<UserTable>;
export type AsyncJobRow = Selectable<AsyncJobTable>;
export type EventRow = Selectable<EventTable>;
export type StateEventRow = Selectable<StateEventTable>;
export type WebhookRow = Selectable<WebhookTable>;
export type WebhookDeliveryRow = Selectable<WebhookDeliveryTable>;
export type NewEvent = Insertable<EventTable>;
export type ResourceTagRow = Selectable<ResourceTagTable>;
export type ZoneRow = Selectable<ZoneTable>;
export type PodRow = Selectable<PodTable>;
export type ClusterRow = Selectable<ClusterTable>;
export type PhysicalNetworkRow = Selectable<PhysicalNetworkTable>;
export type TrafficTypeRow = Selectable<TrafficTypeTable>;
export type StoragePoolRow = Selectable<StoragePoolTable>;
export type ImageStoreRow = Selectable<ImageStoreTable>;
export type DiskOfferingRow = Selectable<DiskOfferingTable>;
export type ServiceOfferingRow = Selectable<ServiceOfferingTable>;
export type OsCategoryRow = Selectable<OsCategoryTable>;
export type OsTypeRow = Selectable<OsTypeTable>;
export type AlertRow = Selectable<AlertTable>;
export type HostRow = Selectable<HostTable>;

export interface NetworkOfferingTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  display_text: string;
  /** Shared, Isolated or L2. */
  guest_ip_type: string;
  traffic_type: string;
  /** Comma-separated Service:Provider pairs, e.g. SecurityGroup:SecurityGroupProvider. */
  services: string;
  specify_vlan: Flag;
  specify_ip_ranges: Flag;
  is_default: Flag;
  /** Required or Optional. */
  availability: string;
  state: string;
  conserve_mode: Flag;
  egress_default_policy: Flag;
  created: number;
  removed: number | null;
  /** Usable only by VPC tiers (upstream's forvpc). */
  for_vpc: Generated<Flag>;
  is_persistent: Generated<Flag>;
  /** Backs the zones' system networks (System-Public-Network); never listed. */
  system_only: Generated<Flag>;
  keep_alive_enabled: Generated<Flag>;
  sort_key: Generated<number>;
  /** Comma-separated network tags (upstream's tags): which physical network the guests go on. */
  tags: Generated<string | null>;
  /** Mb/s; null means the default rate (network.throttling.rate). */
  network_rate: Generated<number | null>;
  service_offering_id: Generated<number | null>;
  max_connections: Generated<number | null>;
}

/**
 * A network service provider of a physical network (upstream's
 * physical_network_service_providers): VirtualRouter, VpcVirtualRouter, InternalLbVm,
 * SecurityGroupProvider. Made Disabled with the physical network; the zone wizard enables them.
 */
export interface NetworkServiceProviderTable {
  id: Generated<number>;
  uuid: string;
  physical_network_id: number;
  name: string;
  /** Enabled, Disabled or Shutdown. */
  state: string;
  destination_physical_network_id: number | null;
  /** Comma-separated services the provider offers here. */
  services: string;
  created: number;
}

/**
 * The element behind a VirtualRouter, VpcVirtualRouter or InternalLbVm provider (upstream's
 * virtual_router_providers): configured (enabled) before its provider can be enabled.
 */
export interface VirtualRouterElementTable {
  id: Generated<number>;
  uuid: string;
  nsp_id: number;
  /** VirtualRouter, VpcVirtualRouter or InternalLbVm. */
  type: string;
  enabled: Flag;
}

export interface NetworkTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  display_text: string;
  zone_id: number;
  network_offering_id: number;
  physical_network_id: number | null;
  traffic_type: string;
  /** Shared, Isolated or L2. */
  guest_type: string;
  /** Native, Vlan... */
  broadcast_domain_type: string;
  broadcast_uri: string | null;
  gateway: string | null;
  netmask: string | null;
  cidr: string | null;
  /** Allocated, Setup, Implemented... */
  state: string;
  /** Domain or Account. */
  acl_type: string;
  domain_id: number | null;
  account_id: number | null;
  /** Set to the zone id on a Basic zone's one shared guest network. */
  zone_default_for: number | null;
  created: number;
  removed: number | null;
  /** The VXLAN id an isolated network holds while implemented (unique); null otherwise. */
  vni: Generated<number | null>;
  network_domain: Generated<string | null>;
  /** The VPC a tier belongs to; null for every other network. */
  vpc_id: Generated<number | null>;
  /** A VPC tier's network ACL list (migration 0026); null: a tier without a list. */
  network_acl_id: Generated<number | null>;
  /** Whether end users are shown the network (displaynetwork); 1 unless a root admin hid it. */
  display_network: Generated<Flag>;
  /** Domain-wide networks: whether accounts of subdomains may use it too (subdomainaccess). */
  subdomain_access: Generated<Flag>;
}

/** A guest or public IP range (upstream's `vlan` table). */
export interface VlanIpRangeTable {
  id: Generated<number>;
  uuid: string;
  zone_id: number;
  pod_id: number | null;
  network_id: number;
  physical_network_id: number | null;
  /** untagged, or a VLAN id. */
  vlan: string;
  gateway: string;
  netmask: string;
  start_ip: string;
  end_ip: string;
  /** The range as 32-bit integers, for overlap checks and allocation. */
  start_num: number;
  end_num: number;
  for_virtual_network: Flag;
  created: number;
  /** A public range dedicated to one account (dedicatePublicIpRange), or to a domain. */
  account_id: Generated<number | null>;
  domain_id: Generated<number | null>;
}

/** One public address of a public range (upstream's user_ip_address); made with its range. */
export interface PublicIpTable {
  id: Generated<number>;
  uuid: string;
  zone_id: number;
  range_id: number;
  ip4: string;
  ip_num: number;
  /** Free, Allocating, Allocated or Releasing. */
  state: string;
  account_id: number | null;
  domain_id: number | null;
  /** The network the address is associated with (its router carries it). */
  network_id: number | null;
  source_nat: Generated<Flag>;
  static_nat_vm_id: number | null;
  static_nat_vm_ip: string | null;
  for_display: Generated<Flag>;
  allocated: number | null;
  /** The VPC the address is associated with (network_id is then the tier its rules go to, if any). */
  vpc_id: Generated<number | null>;
}

/**
 * A firewall, egress, port-forwarding or load-balancing rule (upstream's firewall_rules and its
 * port_forwarding_rules and load_balancing_rules parts).
 */
export interface IpRuleTable {
  id: Generated<number>;
  uuid: string;
  /** Firewall, PortForwarding or LoadBalancing. */
  purpose: string;
  /** Ingress, or Egress (firewall rules of guest traffic leaving the network). */
  traffic_type: string;
  /** The public address (null for egress rules). */
  ip_id: number | null;
  network_id: number;
  account_id: number;
  domain_id: number;
  /** tcp, udp, icmp or all. */
  protocol: string;
  start_port: number | null;
  end_port: number | null;
  icmp_type: number | null;
  icmp_code: number | null;
  /** Comma-separated CIDRs; null means any. */
  source_cidrs: string | null;
  dest_cidrs: string | null;
  /** Add (being applied), Active or Revoke (being removed). */
  state: string;
  /** A firewall rule made for a port-forwarding rule (openfirewall): the port-forwarding rule. */
  related_id: number | null;
  /** Port forwarding: the VM and the guest address the traffic goes to. */
  vm_id: number | null;
  vm_ip: string | null;
  private_start_port: number | null;
  private_end_port: number | null;
  /** Load balancing: name, description and algorithm (roundrobin, leastconn, source). */
  name: string | null;
  description: string | null;
  algorithm: string | null;
  for_display: Generated<Flag>;
  created: number;
}

export interface LbMemberTable {
  rule_id: number;
  vm_id: number;
  vm_ip: string;
  created: number;
}

/** A load balancer's stickiness or health-check policy. */
export interface LbPolicyTable {
  id: Generated<number>;
  uuid: string;
  rule_id: number;
  /** Stickiness or HealthCheck. */
  kind: string;
  name: string | null;
  description: string | null;
  /** Stickiness: LbCookie, AppCookie or SourceBased. */
  method: string | null;
  /** JSON object of the policy's parameters. */
  params: string;
  for_display: Generated<Flag>;
  created: number;
}

/** One guest address in use; the unique (network_id, ip4) key is what makes allocation safe. */
export interface GuestIpAllocationTable {
  id: Generated<number>;
  network_id: number;
  range_id: number;
  ip4: string;
  ip_num: number;
  vm_id: number;
  nic_id: number | null;
  account_id: number;
  allocated: number;
}

export interface NicTable {
  id: Generated<number>;
  uuid: string;
  vm_id: number;
  network_id: number;
  mac: string;
  ip4: string | null;
  gateway: string | null;
  netmask: string | null;
  broadcast_uri: string | null;
  isolation_uri: string | null;
  is_default: Flag;
  device_id: number;
  /** Reserved while the VM holds it, Deallocated once released (then `removed` is set). */
  state: string;
  created: number;
  removed: number | null;
  /** Set on a virtual router's guest NIC (whose vm_id is then 0). */
  router_id: Generated<number | null>;
}

/** A virtual router of a shared guest network (upstream's domain router). */
export interface RouterTable {
  id: Generated<number>;
  uuid: string;
  /** r-<id>-VM */
  name: string;
  network_id: number;
  /** The network while the router is not destroyed; unique, so a network has one live router. */
  live_network_id: number | null;
  zone_id: number;
  pod_id: number | null;
  host_id: number | null;
  last_host_id: number | null;
  nic_id: number | null;
  guest_ip: string;
  guest_mac: string;
  hypervisor: string | null;
  /** Starting, Running, Stopping, Stopped, Destroyed. */
  state: string;
  version: string;
  created: number;
  updated: number;
  removed: number | null;
  /** An isolated network's router: its MAC on the zone's public bridge. */
  public_mac: Generated<string | null>;
  /** A VPC's router (network_id is then the zone's Public network); live_vpc_id while not destroyed. */
  vpc_id: Generated<number | null>;
  live_vpc_id: Generated<number | null>;
}

export interface SecurityGroupTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  description: string | null;
  account_id: number;
  domain_id: number;
  created: number;
}

export interface SecurityGroupRuleTable {
  id: Generated<number>;
  uuid: string;
  group_id: number;
  /** ingress or egress. */
  type: string;
  /** tcp, udp, icmp, all, or an IP protocol number. */
  protocol: string;
  start_port: number | null;
  end_port: number | null;
  icmp_type: number | null;
  icmp_code: number | null;
  /** Either a CIDR or another group whose members the rule admits. */
  cidr: string | null;
  allowed_group_id: number | null;
  created: number;
}

export interface SecurityGroupVmMapTable {
  vm_id: number;
  group_id: number;
}

export type NetworkOfferingRow = Selectable<NetworkOfferingTable>;
export type NetworkServiceProviderRow = Selectable<NetworkServiceProviderTable>;
export type VirtualRouterElementRow = Selectable<VirtualRouterElementTable>;
export type NetworkRow = Selectable<NetworkTable>;
export type VlanIpRangeRow = Selectable<VlanIpRangeTable>;
export type NicRow = Selectable<NicTable>;
export type RouterRow = Selectable<RouterTable>;
export type VpcRow = Selectable<VpcTable>;
export type VpcOfferingRow = Selectable<VpcOfferingTable>;
export type PublicIpRow = Selectable<PublicIpTable>;
export type IpRuleRow = Selectable<IpRuleTable>;
export type LbPolicyRow = Selectable<LbPolicyTable>;
export type SecurityGroupRow = Selectable<SecurityGroupTable>;
export type SecurityGroupRuleRow = Selectable<SecurityGroupRuleTable>;
export type TemplateRow = Selectable<TemplateTable>;
export type TemplateStoreRefRow = Selectable<TemplateStoreRefTable>;
export type VmRow = Selectable<VmTable>;
export type VolumeRow = Selectable<VolumeTable>;
export type SnapshotRow = Selectable<SnapshotTable>;
export type SnapshotPolicyRow = Selectable<SnapshotPolicyTable>;
export type VmSnapshotRow = Selectable<VmSnapshotTable>;

/** A named placement rule over an account's VMs: "host affinity" or "host anti-affinity". */
export interface AffinityGroupTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  description: string | null;
  type: string;
  account_id: number;
  domain_id: number;
  created: number;
}

export interface AffinityGroupVmMapTable {
  group_id: number;
  vm_id: number;
}

/** One usage record: a resource's usage of one type over [start_date, end_date], in hours. */
export interface UsageRecordTable {
  id: Generated<number>;
  account_id: number;
  domain_id: number;
  zone_id: number | null;
  /** CloudStack's usage type number (1 running VM, 2 allocated VM, 6 volume, 7 template...). */
  usage_type: number;
  /** The uuid of the resource used. */
  usage_id: string;
  vm_uuid: string | null;
  name: string | null;
  offering_uuid: string | null;
  template_uuid: string | null;
  size_bytes: number | null;
  virtual_size_bytes: number | null;
  /** The hypervisor, for VM records. */
  type: string | null;
  cpu_number: number | null;
  cpu_speed: number | null;
  memory_mb: number | null;
  description: string;
  raw_usage: number;
  start_date: number;
  end_date: number;
}

export type AffinityGroupRow = Selectable<AffinityGroupTable>;
export type UsageRecordRow = Selectable<UsageRecordTable>;

/** A one-time console access token (createConsoleEndpoint); only its SHA-256 is stored. */
export interface ConsoleTokenTable {
  id: Generated<number>;
  token_hash: string;
  extra_hash: string | null;
  vm_id: number;
  /** Who asked for it: the console session is recorded (VNC.CONNECT) for this user. */
  user_id: number;
  account_id: number;
  domain_id: number;
  created: number;
  expires: number;
  /** When it was redeemed; a token is redeemed at most once. */
  used: number | null;
}
export type ConsoleTokenRow = Selectable<ConsoleTokenTable>;

/** A deleted network that a host still has to tear down (0017). */
export interface NetworkTeardownTable {
  network_id: number;
  host_id: number;
  created: number;
}
