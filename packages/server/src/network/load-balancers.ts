/**
 * Load balancing rules of isolated networks (upstream's public load balancers on the virtual
 * router): a public address and port spread over VMs of the network by the router's HAProxy.
 * A rule is an `ip_rules` row of purpose LoadBalancing; its VMs are `lb_members` rows and its
 * stickiness and health-check policies `lb_policies` rows (lb-policies.ts). Every change is
 * committed first and then applied by sending the network's whole rule set to its router
 * (router-rules.ts); when the router's host refuses or cannot be reached the change is undone
 * and the job fails with the reason, so no record claims what the router does not do.
 *
 * States follow upstream: Add while the router does not balance to any VM (a new rule, or one
 * whose last VM left), Active once it does, Revoke while being deleted.
 */

import type { CallContext } from '../context.ts';
import type { Tx } from '../db/connection.ts';
import type { IpRuleRow, PublicIpRow } from '../db/schema.ts';
import { invalidParameter } from '../errors.ts';
import { escapeLike, likeEscaped } from '../iam/access.ts';
import { resolveAccount } from '../iam/accounts.ts';
import { findOwned, listOwned, OWNED_VM } from '../iam/owned.ts';
import { likeOp } from '../infra/common.ts';
import { defineCommand, success } from '../registry/command.ts';
import { paginate } from '../registry/paging.ts';
import { listParams, p, scopeParams } from '../registry/params.ts';
import { withTags } from '../tags/tags.ts';
import {
  applyOrUndo,
  bindIpToTier,
  cidrText,
  customRuleId,
  deleteRules,
  LIVE_RULE_STATES,
  lockIp,
  networkForRule,
  networkOfIp,
  OWNED_IP,
  portsText,
  requireService,
} from './ip-rules.ts';
import {
  checkAlgorithm,
  checkNotRevoked,
  checkPortValue,
  checkProtocol,
  conflict,
  findLoadBalancer,
  presentLoadBalancers,
  settleState,
  TAG_TYPE,
} from './lb-common.ts';

const DNS_PORT = 53;

interface CreateParams {
  name: string;
  publicipid?: string;
  algorithm: string;
  privateport: number;
  publicport: number;
  protocol?: string;
  openfirewall?: boolean;
  cidrlist?: string[];
  networkid?: string;
  zoneid?: string;
  description?: string;
  fordisplay?: boolean;
  account?: string;
  domainid?: string;
}

/** Everything createLoadBalancerRule checks that does not depend on other rules. */
async function validateCreate(ctx: CallContext, params: CreateParams) {
  const { app } = ctx;
  const name = params.name.trim();
  if (name === '') throw invalidParameter('The load balancer rule name must not be empty');
  const algorithm = checkAlgorithm(params.algorithm);
  checkPortValue(params.privateport, 'privatePort');
  checkPortValue(params.publicport, 'publicPort');
  if (!params.publicipid)
    throw invalidParameter("Unable to create load balance rule; can't find/allocate source IP");
  const ip = await findOwned(ctx, 'public_ips', params.publicipid, OWNED_IP);
  if (ip.state !== 'Allocated')
    throw invalidParameter(`Unable to create load balancer rule, invalid IP address ID ${params.publicipid}`);
  if (ip.static_nat_vm_id !== null) throw conflict(`Can't do load balance on ip address: ${ip.ip4}`);
  if (ip.network_id === null && ip.vpc_id === null)
    throw invalidParameter(
      'Unable to create load balancer rule ; specified sourceip id is not associated with any network',
    );
  // A VPC's address serving no tier yet is bound to the tier networkid names (bindIpToTier below).
  const network =
    ip.network_id === null ? await networkForRule(ctx, ip, params.networkid) : await networkOfIp(ctx, ip);
  if (params.networkid && params.networkid !== network.uuid)
    throw invalidParameter(
      `IP address ${ip.ip4} is associated with network ${network.name}, not ${params.networkid}`,
    );
  if (params.zoneid) {
    const zone = await app.store.db
      .selectFrom('zones')
      .select('uuid')
      .where('id', '=', ip.zone_id)
      .executeTakeFirstOrThrow();
    if (zone.uuid !== params.zoneid)
      throw invalidParameter(`IP address ${ip.ip4} is not in zone ${params.zoneid}`);
  }
  if (params.account) {
    const { account } = await resolveAccount(ctx, { account: params.account, domainid: params.domainid });
    if (account.id !== ip.account_id)
      throw invalidParameter(`IP address ${ip.ip4} does not belong to account ${account.name}`);
  } else if (params.domainid) throw invalidParameter('domainid must be given together with account');
  const info = await requireService(app, network, 'Lb');
  const protocol = checkProtocol(params.protocol, network);
  if (params.publicport === DNS_PORT && ip.source_nat === 1 && info.services.has('Dns'))
    throw invalidParameter(
      'Error adding load balancer rule, cannot add port 53 with network service offering having DNS service and Source NAT.',
    );
  const cidrs = cidrText(params.cidrlist);
  // Upstream opens the firewall unless told not to (outside VPCs).
  const openFirewall = params.openfirewall ?? true;
  // The router enforces the source CIDRs with the rule's firewall rule; without one, nothing would.
  if (cidrs && !openFirewall)
    throw invalidParameter(
      "cidrlist needs openfirewall=true: the router admits the listed CIDRs through the rule's firewall rule; with openfirewall=false, restrict sources with createFirewallRule",
    );
  return { name, algorithm, protocol, ip, network, cidrs, openFirewall };
}

/**
 * Refuses a public port another rule of the address already uses (537, upstream's text): a load
 * balancer or port forward on an overlapping port, or for the opened firewall a firewall rule of
 * the same protocol on overlapping ports from an overlapping source.
 */
async function checkConflicts(
  tx: Tx,
  ip: PublicIpRow,
  port: number,
  firewallCidrs: string | null | undefined,
): Promise<void> {
  const rules = await tx
    .selectFrom('ip_rules')
    .selectAll()
    .where('ip_id', '=', ip.id)
    .where('state', 'in', LIVE_RULE_STATES)
    .execute();
  const overlaps = (r: IpRuleRow) =>
    r.start_port === null || (r.start_port <= port && (r.end_port ?? r.start_port) >= port);
  for (const r of rules) {
    if ((r.purpose === 'LoadBalancing' || r.purpose === 'PortForwarding') && overlaps(r))
      throw conflict(
        `The range specified, ${port}-${port}, conflicts with rule ${r.uuid} which has ${portsText(r)}`,
      );
    if (firewallCidrs !== undefined && r.purpose === 'Firewall' && r.protocol === 'tcp' && overlaps(r)) {
      const mine = (firewallCidrs ?? '0.0.0.0/0').split(',');
      const theirs = (r.source_cidrs ?? '0.0.0.0/0').split(',');
      if (mine.some((c) => theirs.includes(c)))
        throw conflict(
          `The range specified, ${port}-${port}, conflicts with rule ${r.uuid} which has ${portsText(r)}`,
        );
    }
  }
}

export const createLoadBalancerRule = defineCommand({
  name: 'createLoadBalancerRule',
  description:
    "Balances TCP connections to a public IP address's port across VMs of its network (added with assignToLoadBalancerRule); by default also opens the port. Asynchronous.",
  params: {
    name: p.string({ required: true, description: 'Name of the rule; must not be blank.' }),
    publicipid: p.uuid({
      description:
        'Public IP address (acquired, associated with an isolated network, not static NAT) that receives the traffic; required in Nimbostack.',
    }),
    algorithm: p.string({
      required: true,
      description:
        "How connections are spread: roundrobin, leastconn or source (the client's address picks the VM).",
    }),
    privateport: p.integer({ required: true, description: 'Port of the VMs the traffic goes to, 1-65535.' }),
    publicport: p.integer({
      required: true,
      description:
        'Port of the public address that is balanced, 1-65535; no other balancer or port forward of the address may use it.',
    }),
    protocol: p.string({
      description: 'Protocol balanced; only tcp (the default) is supported by the virtual router.',
    }),
    openfirewall: p.boolean({
      description:
        'Also create the firewall rule that admits the traffic (default true). Needed for cidrlist.',
    }),
    cidrlist: p.list({
      description:
        "Comma-separated source CIDRs admitted through the rule's firewall rule; defaults to any. Requires openfirewall.",
    }),
    networkid: p.uuid({
      description: 'Guest network of the rule; must be the one the address is associated with.',
    }),
    zoneid: p.uuid({ description: "Zone of the rule; must be the address's zone." }),
    description: p.string({
      length: 4096,
      description: 'Free-text description of the rule, up to 4096 characters.',
    }),
    // Upstream lets only root administrators set these; others' values are ignored, as there.
    fordisplay: p.boolean({
      adminOnly: true,
      description: 'Whether end users see the rule. Defaults to true.',
    }),
    account: p.string({ description: 'Account that must own the address (with domainid); a check only.' }),
    domainid: p.uuid({ description: 'Domain of account; only with account.' }),
  },
  event: {
    type: 'LB.CREATE',
    description: (params) => `creating load balancer: ${params.name} account: ${params.account ?? ''}`,
  },
  // The rule is recorded (state Add) before the job, so its id comes back with the job id.
  async create(ctx, params) {
    const { app } = ctx;
    const v = await validateCreate(ctx, params);
    const uuid = app.ids.uuid();
    await app.store.db.transaction().execute(async (tx) => {
      await lockIp(tx, v.ip.id);
      await bindIpToTier(tx, v.ip, v.network);
      await checkConflicts(tx, v.ip, params.publicport, v.openFirewall ? v.cidrs : undefined);
      const now = app.clock.now();
      const common = {
        traffic_type: 'Ingress',
        ip_id: v.ip.id,
        network_id: v.network.id,
        account_id: v.ip.account_id as number,
        domain_id: v.ip.domain_id as number,
        protocol: v.protocol,
        start_port: params.publicport,
        end_port: params.publicport,
        state: 'Add',
        created: now,
      };
      await tx
        .insertInto('ip_rules')
        .values({
          ...common,
          uuid,
          purpose: 'LoadBalancing',
          source_cidrs: v.cidrs,
          private_start_port: params.privateport,
          private_end_port: params.privateport,
          name: v.name,
          description: params.description ?? null,
          algorithm: v.algorithm,
          for_display: params.fordisplay === false ? 0 : 1,
        })
        .execute();
      if (v.openFirewall) {
        const rule = await tx
          .selectFrom('ip_rules')
          .select('id')
          .where('uuid', '=', uuid)
          .executeTakeFirstOrThrow();
        await tx
          .insertInto('ip_rules')
          .values({
            ...common,
            uuid: app.ids.uuid(),
            purpose: 'Firewall',
            source_cidrs: v.cidrs ?? '0.0.0.0/0',
            related_id: rule.id,
          })
          .execute();
      }
    });
    return { type: 'FirewallRule', id: uuid };
  },
  async handler(ctx, _params, created) {
    const { app } = ctx;
    const rule = await findLoadBalancer(ctx, created!.id);
    await applyOrUndo(app, rule.network_id, `create load balancer rule ${rule.name}`, async () => {
      await app.store.db.transaction().execute(async (tx) => {
        const fw = await tx.selectFrom('ip_rules').select('id').where('related_id', '=', rule.id).execute();
        await deleteRules(tx, [...fw.map((r) => r.id), rule.id]);
      });
    });
    await settleState(app, rule.id);
    return (await presentLoadBalancers(ctx, [await findLoadBalancer(ctx, rule.uuid)]))[0] as object;
  },
});

export const updateLoadBalancerRule = defineCommand({
  name: 'updateLoadBalancerRule',
  description:
    "Changes a load balancer rule's name, description, algorithm, protocol or source CIDRs, and reloads the router's balancer; asynchronous, undone if the router refuses.",
  params: {
    id: p.uuid({ required: true, description: 'ID of the rule to update.' }),
    name: p.string({ description: 'New name; must not be blank.' }),
    description: p.string({ length: 4096, description: 'New description, up to 4096 characters.' }),
    algorithm: p.string({ description: 'New algorithm: roundrobin, leastconn or source.' }),
    protocol: p.string({ description: 'New protocol; only tcp is supported by the virtual router.' }),
    cidrlist: p.list({
      description:
        "New comma-separated source CIDRs of the rule's firewall rule; empty admits any. Refused for rules made with openfirewall=false.",
    }),
    fordisplay: p.boolean({ adminOnly: true, description: 'Whether end users see the rule.' }),
    customid: p.string({
      adminOnly: true,
      description: 'New ID for the rule: a UUID not used by another rule; its tags follow.',
    }),
  },
  event: { type: 'LB.UPDATE', description: (params) => `updating load balancer rule ${params.id}` },
  async target(ctx, params) {
    const rule = await findLoadBalancer(ctx, params.id);
    checkNotRevoked(rule);
    await updateOf(ctx, rule, params);
    return { type: 'FirewallRule', id: rule.uuid };
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const before = await findLoadBalancer(ctx, params.id);
    checkNotRevoked(before);
    const { changes, cidrs } = await updateOf(ctx, before, params);
    const related = await app.store.db
      .selectFrom('ip_rules')
      .selectAll()
      .where('related_id', '=', before.id)
      .where('purpose', '=', 'Firewall')
      .execute();
    await app.store.db.transaction().execute(async (tx) => {
      await tx.updateTable('ip_rules').set(changes).where('id', '=', before.id).execute();
      // Tags name their resource by uuid too.
      if (changes.uuid)
        await tx
          .updateTable('resource_tags')
          .set({ resource_uuid: changes.uuid })
          .where('resource_type', '=', TAG_TYPE)
          .where('resource_id', '=', before.id)
          .execute();
      if (cidrs !== undefined)
        await tx
          .updateTable('ip_rules')
          .set({ source_cidrs: cidrs ?? '0.0.0.0/0' })
          .where('related_id', '=', before.id)
          .where('purpose', '=', 'Firewall')
          .execute();
    });
    // Only what the router holds needs a round trip: the algorithm and CIDRs (as upstream), and
    // the id, which names the router's HAProxy frontend and backend.
    if ((changes.algorithm && changes.algorithm !== before.algorithm) || cidrs !== undefined || changes.uuid)
      await applyOrUndo(app, before.network_id, `update load balancer rule ${before.name}`, async () => {
        await app.store.db.transaction().execute(async (tx) => {
          const { id: _id, ...back } = before;
          await tx.updateTable('ip_rules').set(back).where('id', '=', before.id).execute();
          if (changes.uuid)
            await tx
              .updateTable('resource_tags')
              .set({ resource_uuid: before.uuid })
              .where('resource_type', '=', TAG_TYPE)
              .where('resource_id', '=', before.id)
              .execute();
          for (const r of related)
            await tx
              .updateTable('ip_rules')
              .set({ source_cidrs: r.source_cidrs })
              .where('id', '=', r.id)
              .execute();
        });
      });
    const after = await findLoadBalancer(ctx, changes.uuid ?? before.uuid);
    return (await presentLoadBalancers(ctx, [after]))[0] as object;
  },
});

/** The column changes an update asks for, validated (431 before any job is queued). */
async function updateOf(
  ctx: CallContext,
  rule: IpRuleRow,
  params: {
    name?: string;
    description?: string;
    algorithm?: string;
    protocol?: string;
    cidrlist?: string[];
    fordisplay?: boolean;
    customid?: string;
  },
): Promise<{ changes: Partial<IpRuleRow>; cidrs: string | null | undefined }> {
  const changes: Partial<IpRuleRow> = {};
  if (params.name !== undefined) {
    if (params.name.trim() === '') throw invalidParameter('The load balancer rule name must not be empty');
    changes.name = params.name.trim();
  }
  if (params.description !== undefined) changes.description = params.description;
  if (params.algorithm !== undefined) changes.algorithm = checkAlgorithm(params.algorithm);
  if (params.fordisplay !== undefined) changes.for_display = params.fordisplay ? 1 : 0;
  // The same check as firewall and port-forwarding rules: a UUID no other rule has.
  const custom = await customRuleId(ctx, rule.id, params.customid);
  if (custom !== undefined && custom !== rule.uuid) changes.uuid = custom;
  if (params.protocol !== undefined && params.protocol.trim() !== '') {
    const network = await ctx.app.store.db
      .selectFrom('networks')
      .selectAll()
      .where('id', '=', rule.network_id)
      .executeTakeFirstOrThrow();
    changes.protocol = checkProtocol(params.protocol, network);
  }
  let cidrs: string | null | undefined;
  if (params.cidrlist !== undefined) {
    cidrs = cidrText(params.cidrlist);
    const fw = await ctx.app.store.db
      .selectFrom('ip_rules')
      .select('id')
      .where('related_id', '=', rule.id)
      .where('purpose', '=', 'Firewall')
      .executeTakeFirst();
    if (cidrs && !fw)
      throw invalidParameter(
        `Load balancer rule ${rule.name} was created with openfirewall=false: restrict its sources with createFirewallRule`,
      );
    changes.source_cidrs = cidrs;
  }
  return { changes, cidrs };
}

export const deleteLoadBalancerRule = defineCommand({
  name: 'deleteLoadBalancerRule',
  description:
    'Deletes a load balancer rule with its firewall rule and members, and removes it from the router; asynchronous.',
  params: { id: p.uuid({ required: true, description: 'ID of the rule to delete.' }) },
  event: { type: 'LB.DELETE', description: (params) => `deleting load balancer rule ${params.id}` },
  async target(ctx, params) {
    const rule = await findLoadBalancer(ctx, params.id);
    return { type: 'FirewallRule', id: rule.uuid };
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const rule = await findLoadBalancer(ctx, params.id);
    const related = await app.store.db
      .selectFrom('ip_rules')
      .selectAll()
      .where('related_id', '=', rule.id)
      .where('purpose', '=', 'Firewall')
      .execute();
    const all = [rule, ...related];
    // Revoked rules are left out of what the router gets; deleted once it no longer has them.
    await app.store.db
      .updateTable('ip_rules')
      .set({ state: 'Revoke' })
      .where(
        'id',
        'in',
        all.map((r) => r.id),
      )
      .execute();
    await applyOrUndo(app, rule.network_id, `delete load balancer rule ${rule.name}`, async () => {
      await app.store.db.transaction().execute(async (tx) => {
        for (const r of all)
          await tx
            .updateTable('ip_rules')
            .set({ state: r.state === 'Revoke' ? 'Active' : r.state })
            .where('id', '=', r.id)
            .execute();
      });
    });
    await app.store.db.transaction().execute((tx) =>
      deleteRules(
        tx,
        all.map((r) => r.id),
      ),
    );
    return success();
  },
});

export const listLoadBalancerRules = defineCommand({
  name: 'listLoadBalancerRules',
  description: 'Lists the load balancer rules the caller may see; keyword matches their name or description.',
  params: {
    ...listParams,
    ...scopeParams,
    id: p.uuid({ description: 'Only the rule with this ID.' }),
    name: p.string({ description: 'Only rules with exactly this name.' }),
    publicipid: p.uuid({ description: 'Only rules on this public IP address.' }),
    virtualmachineid: p.uuid({ description: 'Only rules that balance to this VM.' }),
    zoneid: p.uuid({ description: 'Only rules on public addresses of this zone.' }),
    networkid: p.uuid({ description: 'Only rules of this guest network.' }),
    fordisplay: p.boolean({ description: 'Only rules shown (true) or hidden (false) from end users.' }),
    tags: p.map({
      description: 'Only rules carrying all these resource tags (tags[0].key, tags[0].value, ...).',
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const db = app.store.db;
    let q = db.selectFrom('ip_rules').where('ip_rules.purpose', '=', 'LoadBalancing');
    if (params.id) q = q.where('ip_rules.uuid', '=', params.id);
    if (params.name) q = q.where('ip_rules.name', '=', params.name);
    if (params.keyword) {
      const like = `%${escapeLike(params.keyword)}%`;
      q = q.where((eb) =>
        eb.or([
          likeEscaped('ip_rules.name', like, likeOp(ctx)),
          likeEscaped('ip_rules.description', like, likeOp(ctx)),
        ]),
      );
    }
    if (params.publicipid) {
      const ip = db.selectFrom('public_ips').select('id').where('uuid', '=', params.publicipid);
      q = q.where('ip_rules.ip_id', 'in', ip);
    }
    if (params.networkid) {
      const net = db.selectFrom('networks').select('id').where('uuid', '=', params.networkid);
      q = q.where('ip_rules.network_id', 'in', net);
    }
    if (params.zoneid) {
      const ips = db
        .selectFrom('public_ips')
        .innerJoin('zones', 'zones.id', 'public_ips.zone_id')
        .select('public_ips.id')
        .where('zones.uuid', '=', params.zoneid);
      q = q.where('ip_rules.ip_id', 'in', ips);
    }
    if (params.virtualmachineid) {
      const vm = db.selectFrom('vms').select('id').where('uuid', '=', params.virtualmachineid);
      q = q.where(
        'ip_rules.id',
        'in',
        db.selectFrom('lb_members').select('rule_id').where('vm_id', 'in', vm),
      );
    }
    if (params.fordisplay !== undefined) q = q.where('ip_rules.for_display', '=', params.fordisplay ? 1 : 0);
    q = withTags(q, TAG_TYPE, 'ip_rules.id', params.tags);
    return listOwned(ctx, params, q, {
      owner: { account: 'ip_rules.account_id', domain: 'ip_rules.domain_id' },
      // The address and VM named must be ones the caller may act on (431 / 531).
      checks: async () => {
        if (params.publicipid) await findOwned(ctx, 'public_ips', params.publicipid, OWNED_IP);
        if (params.virtualmachineid) await findOwned(ctx, 'vms', params.virtualmachineid, OWNED_VM);
      },
      rows: (scoped, page) => paginate(scoped.selectAll('ip_rules').orderBy('ip_rules.id'), page).execute(),
      present: (rows) => presentLoadBalancers(ctx, rows),
    });
  },
});
export const loadBalancerRuleCommands = [
  createLoadBalancerRule,
  updateLoadBalancerRule,
  deleteLoadBalancerRule,
  listLoadBalancerRules,
];
