/**
 * Resolves uuid parameters as upstream's ParamProcessWorker does: a uuid-typed parameter (and
 * each item of a uuid list) must name an entity of the parameter's `entityType`, else the request
 * fails with 431 before the command runs. List commands included: `listVirtualMachines id=<unknown>`
 * is an error, not an empty list. Upstream looks up with findByUuidIncludingRemoved, so a removed
 * entity whose row is still there resolves (the command then behaves as it would have).
 *
 * The entity type comes from the upstream catalog (`entityType` on the parameter, a response class
 * such as `UserVmResponse`); ENTITY_TABLES maps it to the tables holding such entities. Entity types
 * we keep no table for are not checked; neither are parameters we declare as uuids where upstream
 * types them otherwise. A projectid of -1 (every project, for lists) is no UUID and is left to the command.
 */
import type { CallContext } from '../context.ts';
import type { Database } from '../db/schema.ts';
import { invalidParameter } from '../errors.ts';
import type { Command, Entities } from '../registry/command.ts';
import { invalidUuidText } from '../registry/params.ts';

type UuidTable = {
  [T in keyof Database]: Database[T] extends { uuid: unknown } ? T : never;
}[keyof Database];

/**
 * Upstream response class → our tables. Where upstream's @EntityReference names several entity
 * classes, every one of them is listed: UserVmResponse, DomainRouterResponse and SystemVmResponse
 * reference VirtualMachine (vm_instance upstream holds user VMs and routers alike, here two tables).
 */
export const ENTITY_TABLES: Record<string, readonly UuidTable[]> = {
  AccountResponse: ['accounts'],
  AffinityGroupResponse: ['affinity_groups'],
  AlertResponse: ['alerts'],
  AsyncJobResponse: ['async_jobs'],
  ClusterResponse: ['clusters'],
  DiskOfferingResponse: ['disk_offerings'],
  DomainResponse: ['domains'],
  DomainRouterResponse: ['vms', 'routers'],
  EventResponse: ['events'],
  FirewallRuleResponse: ['ip_rules'],
  GuestOSCategoryResponse: ['os_categories'],
  GuestOSResponse: ['os_types'],
  GuiThemeResponse: ['gui_themes'],
  HostResponse: ['hosts'],
  IPAddressResponse: ['public_ips'],
  ImageStoreResponse: ['image_stores'],
  InstanceGroupResponse: ['instance_groups'],
  InternalLoadBalancerElementResponse: ['virtual_router_elements'],
  IsoVmResponse: ['templates'],
  LBHealthCheckResponse: ['lb_policies'],
  LdapConfigurationResponse: ['ldap_configurations'],
  LBStickinessResponse: ['lb_policies'],
  ManagementServerResponse: ['management_servers'],
  NetworkACLItemResponse: ['network_acl_items'],
  NetworkACLResponse: ['network_acl_lists'],
  NetworkOfferingResponse: ['network_offerings'],
  NetworkResponse: ['networks'],
  NicResponse: ['nics'],
  PhysicalNetworkResponse: ['physical_networks'],
  PodResponse: ['pods'],
  PrivateGatewayResponse: ['vpc_private_gateways'],
  ProjectInvitationResponse: ['project_invitations'],
  ProjectResponse: ['projects'],
  ProjectRolePermissionResponse: ['project_role_permissions'],
  ProjectRoleResponse: ['project_roles'],
  ProviderResponse: ['network_service_providers'],
  RemoteAccessVpnResponse: ['remote_access_vpns'],
  RolePermissionResponse: ['role_permissions'],
  RoleResponse: ['roles'],
  SSHKeyPairResponse: ['ssh_keypairs'],
  SecurityGroupResponse: ['security_groups'],
  SecurityGroupRuleResponse: ['security_group_rules'],
  ServiceOfferingResponse: ['service_offerings'],
  Site2SiteCustomerGatewayResponse: ['vpn_customer_gateways'],
  Site2SiteVpnConnectionResponse: ['vpn_connections'],
  Site2SiteVpnGatewayResponse: ['vpn_gateways'],
  SnapshotPolicyResponse: ['snapshot_policies'],
  SnapshotResponse: ['snapshots'],
  StaticRouteResponse: ['vpc_static_routes'],
  StoragePoolResponse: ['storage_pools'],
  SystemVmResponse: ['vms', 'routers'],
  TemplatePermissionsResponse: ['templates'],
  TemplateResponse: ['templates'],
  TrafficTypeResponse: ['physical_network_traffic_types'],
  UserDataResponse: ['user_data'],
  UserResponse: ['users'],
  UserVmResponse: ['vms', 'routers'],
  VMSnapshotResponse: ['vm_snapshots'],
  VirtualRouterProviderResponse: ['virtual_router_elements'],
  VlanIpRangeResponse: ['vlan_ip_ranges'],
  VolumeResponse: ['volumes'],
  VpcOfferingResponse: ['vpc_offerings'],
  VpcResponse: ['vpcs'],
  VpnUsersResponse: ['vpn_users'],
  WebhookDeliveryResponse: ['webhook_deliveries'],
  WebhookResponse: ['webhooks'],
  ZoneResponse: ['zones'],
};

/** A parameter of a command that is resolved, and where. */
interface EntityParam {
  name: string;
  tables: readonly UuidTable[];
  /** Its row is read whole and handed to the command (ParamSpec.handedToCommand). */
  handed: boolean;
}

const plans = new WeakMap<Command, EntityParam[]>();
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function upstreamEntityType(param: { entityType?: unknown }): string | undefined {
  const t = param.entityType;
  if (typeof t === 'string') return t;
  // Upstream resolves with the first entity type only (ParamProcessWorker.translateUuidToInternalId).
  if (Array.isArray(t) && typeof t[0] === 'string') return t[0];
  return undefined;
}

/** The command's parameters that name entities: declared uuid (or uuid list) here and upstream. */
export function entityParams(command: Command): EntityParam[] {
  let plan = plans.get(command);
  if (plan) return plan;
  plan = [];
  const upstream = new Map(command.catalog.params.map((p) => [p.name.toLowerCase(), p]));
  for (const [name, spec] of Object.entries(command.params)) {
    const ours = spec.type === 'uuid' || (spec.type === 'list' && spec.collectionType === 'uuid');
    const param = upstream.get(name) as
      | { type: string; collectionType?: string; entityType?: unknown }
      | undefined;
    if (!ours || !param || spec.checkedByHandler) continue;
    const theirs = param.type === 'uuid' || (param.type === 'list' && param.collectionType === 'uuid');
    const entity = upstreamEntityType(param);
    const tables = entity ? ENTITY_TABLES[entity] : undefined;
    if (theirs && tables) plan.push({ name, tables, handed: spec.handedToCommand === true });
  }
  plans.set(command, plan);
  return plan;
}

/**
 * Fails with upstream's 431 when a parsed uuid parameter names no entity (removed ones count as
 * existing). One query per table and parameter, with every uuid of a list at once. Returns the
 * rows of the parameters handed to the command.
 */
export async function resolveEntities(
  ctx: CallContext,
  command: Command,
  params: Record<string, unknown>,
): Promise<Entities> {
  const entities: Record<string, Record<string, unknown>> = {};
  for (const { name, tables, handed } of entityParams(command)) {
    const value = params[name];
    const given: string[] = typeof value === 'string' ? [value] : Array.isArray(value) ? value : [];
    // Only UUIDs are looked up: a declaration that accepts other values on purpose ("-1", upstream's
    // special value for all zones in registerTemplate; "all" for offerings' zones) keeps them, as
    // upstream leaves non-UUID values of such parameters to the command.
    const wanted = new Set(given.filter((v) => UUID_RE.test(v)));
    for (const table of tables) {
      // In chunks: a long list must not exceed the databases' limits on bound parameters.
      const ids = [...wanted];
      for (let i = 0; i < ids.length; i += 500) {
        const query = ctx.app.store.db
          .selectFrom(table as 'zones')
          .where('uuid', 'in', ids.slice(i, i + 500));
        const found = handed ? await query.selectAll().execute() : await query.select('uuid').execute();
        for (const row of found) {
          wanted.delete(row.uuid);
          if (handed) entities[name] = row;
        }
      }
      if (wanted.size === 0) break;
    }
    const missing = wanted.values().next();
    if (!missing.done) throw invalidParameter(invalidUuidText(name, missing.value));
  }
  return entities;
}
