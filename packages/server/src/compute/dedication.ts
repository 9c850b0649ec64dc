/**
 * Explicit dedication (CloudStack's dedicateZone/Pod/Cluster/Host): an administrator reserves a
 * zone, pod, cluster or host for one domain or one account. As upstream, each dedication to an
 * account is tied to the account's "ExplicitDedication" affinity group (created on first use);
 * the planner then keeps every other account's VMs off the dedicated hosts, runs VMs in the group
 * only on what the group's dedications cover, and places the owner's other VMs on their dedicated
 * hosts first (see DedicationRule in planner.ts).
 */
import type { CallContext } from '../context.ts';
import { insertId, type Tx } from '../db/connection.ts';
import type { DedicatedResourceRow, DomainRow, VmRow } from '../db/schema.ts';
import { invalidParameter } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { findDomainByUuid, pathPrefix } from '../iam/access.ts';
import { onAccountDelete, resolveAccount } from '../iam/accounts.ts';
import { findCluster, findPod, findZone } from '../infra/common.ts';
import { findHost } from '../infra/hosts.ts';
import { defineCommand, listResult, success } from '../registry/command.ts';
import { pageOf, paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import type { DedicationRule } from './planner.ts';

export const EXPLICIT_DEDICATION = 'ExplicitDedication';

type Kind = 'Zone' | 'Pod' | 'Cluster' | 'Host';
const column = { Zone: 'zone_id', Pod: 'pod_id', Cluster: 'cluster_id', Host: 'host_id' } as const;
const table = { Zone: 'zones', Pod: 'pods', Cluster: 'clusters', Host: 'hosts' } as const;

/** States in which a VM holds (or may soon hold again) its host. */
const ON_HOST = ['Starting', 'Running', 'Stopping', 'Migrating'];

interface Target {
  kind: Kind;
  id: number;
  uuid: string;
  name: string;
  zoneId: number;
  podId: number | null;
  clusterId: number | null;
}

async function findTarget(ctx: CallContext, kind: Kind, uuid: string): Promise<Target> {
  switch (kind) {
    case 'Zone': {
      const z = await findZone(ctx, uuid);
      return { kind, id: z.id, uuid: z.uuid, name: z.name, zoneId: z.id, podId: null, clusterId: null };
    }
    case 'Pod': {
      const x = await findPod(ctx, uuid);
      return { kind, id: x.id, uuid: x.uuid, name: x.name, zoneId: x.zone_id, podId: x.id, clusterId: null };
    }
    case 'Cluster': {
      const x = await findCluster(ctx, uuid);
      return {
        kind,
        id: x.id,
        uuid: x.uuid,
        name: x.name,
        zoneId: x.zone_id,
        podId: x.pod_id,
        clusterId: x.id,
      };
    }
    case 'Host': {
      const h = await findHost(ctx, uuid);
      if (h.type !== 'Routing') throw invalidParameter(`Invalid host type for host ${h.name}`);
      return {
        kind,
        id: h.id,
        uuid: h.uuid,
        name: h.name,
        zoneId: h.zone_id,
        podId: h.pod_id,
        clusterId: h.cluster_id,
      };
    }
  }
}

/** Ids of a domain and every domain below it. */
async function subtree(tx: Tx, domain: Pick<DomainRow, 'id' | 'path'>): Promise<number[]> {
  const rows = await tx.selectFrom('domains').select('id').where(pathPrefix('path', domain.path)).execute();
  return [domain.id, ...rows.map((r) => r.id).filter((id) => id !== domain.id)];
}

/**
 * Refuses a dedication that clashes with an existing one: the resource itself, a parent dedicated
 * to someone the new owner is not under, or a child dedicated elsewhere.
 */
async function checkFree(tx: Tx, t: Target, domainId: number, accountId: number | null): Promise<void> {
  const own = await tx
    .selectFrom('dedicated_resources')
    .select('id')
    .where(column[t.kind], '=', t.id)
    .executeTakeFirst();
  if (own) throw invalidParameter(`${t.kind} ${t.name} is already dedicated`);
  const parents: { kind: Kind; id: number | null; label: string }[] = [
    { kind: 'Cluster', id: t.kind === 'Host' ? t.clusterId : null, label: "Host's Cluster" },
    { kind: 'Pod', id: t.kind === 'Host' || t.kind === 'Cluster' ? t.podId : null, label: `${t.kind}'s Pod` },
    { kind: 'Zone', id: t.kind === 'Zone' ? null : t.zoneId, label: `${t.kind}'s Data Center` },
  ];
  for (const parent of parents) {
    if (parent.id === null) continue;
    const d = await tx
      .selectFrom('dedicated_resources')
      .selectAll()
      .where(column[parent.kind], '=', parent.id)
      .executeTakeFirst();
    if (!d) continue;
    const parentDomain = await tx
      .selectFrom('domains')
      .select(['id', 'path'])
      .where('id', '=', d.domain_id)
      .executeTakeFirstOrThrow();
    // A resource under a domain's dedication may be dedicated further to that domain's children or accounts.
    const below = (await subtree(tx, parentDomain)).includes(domainId);
    if (d.account_id !== null || !below || (accountId === null && domainId === d.domain_id)) {
      const row = await tx
        .selectFrom(table[parent.kind])
        .select('name')
        .where('id', '=', parent.id)
        .executeTakeFirstOrThrow();
      throw invalidParameter(`${parent.label} ${row.name} is already dedicated`);
    }
  }
  if (t.kind !== 'Host') {
    const child = await tx
      .selectFrom('dedicated_resources')
      .leftJoin('hosts', 'hosts.id', 'dedicated_resources.host_id')
      .leftJoin('clusters', 'clusters.id', 'dedicated_resources.cluster_id')
      .leftJoin('pods', 'pods.id', 'dedicated_resources.pod_id')
      .select(['dedicated_resources.domain_id', 'dedicated_resources.account_id'])
      .where((eb) =>
        eb.or([
          eb(`hosts.${column[t.kind]}` as 'hosts.zone_id', '=', t.id),
          ...(t.kind !== 'Cluster'
            ? [eb(`clusters.${column[t.kind]}` as 'clusters.zone_id', '=', t.id)]
            : []),
          ...(t.kind === 'Zone' ? [eb('pods.zone_id', '=', t.id)] : []),
        ]),
      )
      .execute();
    if (child.some((c) => c.domain_id !== domainId || c.account_id !== accountId))
      throw invalidParameter(
        `Cannot dedicate ${t.kind} ${t.name}: it contains resources dedicated to another domain or account`,
      );
  }
}

/** Upstream refuses to dedicate hosts that run VMs of anyone but the new owner. */
async function checkHostsRunOnlyOwner(tx: Tx, t: Target, domainIds: number[], accountId: number | null) {
  const vms = await tx
    .selectFrom('vms')
    .innerJoin('hosts', 'hosts.id', 'vms.host_id')
    .select(['hosts.uuid as host', 'vms.account_id', 'vms.domain_id'])
    .where(t.kind === 'Host' ? 'hosts.id' : (`hosts.${column[t.kind]}` as 'hosts.zone_id'), '=', t.id)
    .where('vms.removed', 'is', null)
    .where('vms.state', 'in', ON_HOST)
    .execute();
  for (const vm of vms) {
    if (accountId !== null && vm.account_id !== accountId)
      throw invalidParameter(
        `Host ${vm.host} found to be unsuitable for explicit dedication as it is running instances of another account`,
      );
    if (accountId === null && !domainIds.includes(vm.domain_id))
      throw invalidParameter(
        `Host ${vm.host} found to be unsuitable for explicit dedication as it is running instances of another domain`,
      );
  }
}

/** The account's ExplicitDedication affinity group, created on first dedication as upstream names it. */
async function dedicationGroup(ctx: CallContext, tx: Tx, kind: Kind, accountId: number): Promise<number> {
  const existing = await tx
    .selectFrom('affinity_groups')
    .select('id')
    .where('account_id', '=', accountId)
    .where('type', '=', EXPLICIT_DEDICATION)
    .executeTakeFirst();
  if (existing) return existing.id;
  const account = await tx
    .selectFrom('accounts')
    .selectAll()
    .where('id', '=', accountId)
    .executeTakeFirstOrThrow();
  return insertId(ctx.app.store, tx, 'affinity_groups', {
    uuid: ctx.app.ids.uuid(),
    name: `Dedicated${kind}Grp-${account.name}`,
    description: `Dedicated ${kind.toLowerCase()} group`,
    type: EXPLICIT_DEDICATION,
    account_id: account.id,
    domain_id: account.domain_id,
    created: ctx.app.clock.now(),
  });
}

async function present(ctx: CallContext, rows: DedicatedResourceRow[], kind: Kind): Promise<object[]> {
  const db = ctx.app.store.db;
  const out: object[] = [];
  for (const d of rows) {
    const targetId = d[column[kind]]!;
    const [target, domain, account, group] = await Promise.all([
      db.selectFrom(table[kind]).select(['uuid', 'name']).where('id', '=', targetId).executeTakeFirst(),
      db.selectFrom('domains').select('uuid').where('id', '=', d.domain_id).executeTakeFirst(),
      d.account_id === null
        ? undefined
        : db.selectFrom('accounts').select('uuid').where('id', '=', d.account_id).executeTakeFirst(),
      d.affinity_group_id === null
        ? undefined
        : db
            .selectFrom('affinity_groups')
            .select('uuid')
            .where('id', '=', d.affinity_group_id)
            .executeTakeFirst(),
    ]);
    const key = kind.toLowerCase();
    out.push({
      id: d.uuid,
      [`${key}id`]: target?.uuid,
      [`${key}name`]: target?.name,
      domainid: domain?.uuid,
      ...(account ? { accountid: account.uuid } : {}),
      ...(group ? { affinitygroupid: group.uuid } : {}),
    });
  }
  return out;
}

function dedicateCommand(kind: Kind) {
  const idParam = `${kind.toLowerCase()}id` as 'hostid';
  return defineCommand({
    name: `dedicate${kind}`,
    description: `Reserves a ${kind.toLowerCase()} for one domain or one account, so the planner keeps other owners' VMs off its hosts. Asynchronous; refused if already dedicated or running others' VMs.`,
    params: {
      [idParam]: p.uuid({ required: true, description: `UUID of the ${kind.toLowerCase()} to reserve.` }),
      domainid: p.uuid({
        required: true,
        description: 'UUID of the domain the resource is reserved for (and the domain of account, if given).',
      }),
      account: p.string({
        description:
          "Name of an account in that domain to reserve for; it then goes into the account's ExplicitDedication affinity group.",
      }),
    } as {
      hostid: ReturnType<typeof p.uuid>;
      domainid: ReturnType<typeof p.uuid>;
      account: ReturnType<typeof p.string>;
    },
    event: { type: 'DEDICATE.RESOURCE', description: () => `dedicating a ${kind.toLowerCase()}` },
    async target(ctx, params) {
      const t = await findTarget(ctx, kind, (params as Record<string, string>)[idParam]);
      return { type: kind, id: t.uuid };
    },
    async handler(ctx, params) {
      const t = await findTarget(ctx, kind, (params as Record<string, string>)[idParam]);
      const domain = await findDomainByUuid(ctx, params.domainid!);
      const account = params.account
        ? (await resolveAccount(ctx, { account: params.account, domainid: params.domainid })).account
        : undefined;
      const row = await ctx.app.store.db.transaction().execute(async (tx) => {
        await checkFree(tx, t, domain.id, account?.id ?? null);
        await checkHostsRunOnlyOwner(tx, t, await subtree(tx, domain), account?.id ?? null);
        const groupId = account ? await dedicationGroup(ctx, tx, kind, account.id) : null;
        const uuid = ctx.app.ids.uuid();
        await insertId(ctx.app.store, tx, 'dedicated_resources', {
          uuid,
          zone_id: kind === 'Zone' ? t.id : null,
          pod_id: kind === 'Pod' ? t.id : null,
          cluster_id: kind === 'Cluster' ? t.id : null,
          host_id: kind === 'Host' ? t.id : null,
          domain_id: domain.id,
          account_id: account?.id ?? null,
          affinity_group_id: groupId,
          created: ctx.app.clock.now(),
        });
        await logEvent(ctx, tx, {
          type: 'DEDICATE.RESOURCE',
          description: `dedicated ${kind.toLowerCase()} ${t.name} to ${account ? `account ${account.name}` : `domain ${domain.name}`}`,
          resourceType: kind,
          resourceId: t.uuid,
        });
        return tx
          .selectFrom('dedicated_resources')
          .selectAll()
          .where('uuid', '=', uuid)
          .executeTakeFirstOrThrow();
      });
      return (await present(ctx, [row], kind))[0];
    },
  });
}

function releaseCommand(kind: Kind) {
  const idParam = `${kind.toLowerCase()}id` as 'hostid';
  return defineCommand({
    name: `releaseDedicated${kind}`,
    description: `Ends the dedication of a ${kind.toLowerCase()}; an ExplicitDedication group left with no dedications is deleted. Asynchronous.`,
    params: {
      [idParam]: p.uuid({
        required: true,
        description: `UUID of the dedicated ${kind.toLowerCase()} to free.`,
      }),
    } as { hostid: ReturnType<typeof p.uuid> },
    event: {
      type: 'DEDICATE.RESOURCE.RELEASE',
      description: () => `releasing a dedicated ${kind.toLowerCase()}`,
    },
    async target(ctx, params) {
      const t = await findTarget(ctx, kind, (params as Record<string, string>)[idParam]);
      return { type: kind, id: t.uuid };
    },
    async handler(ctx, params) {
      const t = await findTarget(ctx, kind, (params as Record<string, string>)[idParam]);
      await ctx.app.store.db.transaction().execute(async (tx) => {
        const d = await tx
          .selectFrom('dedicated_resources')
          .selectAll()
          .where(column[kind], '=', t.id)
          .executeTakeFirst();
        if (!d) throw invalidParameter(`${kind} ${t.name} is not dedicated`);
        await tx.deleteFrom('dedicated_resources').where('id', '=', d.id).execute();
        // As upstream, the group goes with the last dedication it covers; its VMs stop being members.
        if (d.affinity_group_id !== null) {
          const left = await tx
            .selectFrom('dedicated_resources')
            .select('id')
            .where('affinity_group_id', '=', d.affinity_group_id)
            .executeTakeFirst();
          if (!left) {
            await tx
              .deleteFrom('affinity_group_vm_map')
              .where('group_id', '=', d.affinity_group_id)
              .execute();
            await tx.deleteFrom('affinity_groups').where('id', '=', d.affinity_group_id).execute();
          }
        }
        await logEvent(ctx, tx, {
          type: 'DEDICATE.RESOURCE.RELEASE',
          description: `released dedicated ${kind.toLowerCase()} ${t.name}`,
          resourceType: kind,
          resourceId: t.uuid,
        });
      });
      return success();
    },
  });
}

function listCommand(kind: Kind) {
  const idParam = `${kind.toLowerCase()}id` as 'hostid';
  return defineCommand({
    name: `listDedicated${kind}s`,
    description: `Shows which ${kind.toLowerCase()}s are reserved, and for which domain or account; dedications of removed resources are left out.`,
    params: {
      ...listParams,
      [idParam]: p.uuid({ description: `Only the dedication of this ${kind.toLowerCase()}.` }),
      domainid: p.uuid({
        description: 'Only dedications to this domain (or, with account, the domain of that account).',
      }),
      account: p.string({ description: 'Only dedications to this account; domainid must be given too.' }),
      affinitygroupid: p.uuid({
        description: 'Only dedications tied to this ExplicitDedication affinity group.',
      }),
    } as typeof listParams & {
      hostid: ReturnType<typeof p.uuid>;
      domainid: ReturnType<typeof p.uuid>;
      account: ReturnType<typeof p.string>;
      affinitygroupid: ReturnType<typeof p.uuid>;
    },
    async handler(ctx, params) {
      const db = ctx.app.store.db;
      // Dedications of deleted resources are not listed (nothing can be placed on them anyway).
      let q = db
        .selectFrom('dedicated_resources')
        .where(column[kind], 'in', db.selectFrom(table[kind]).select('id').where('removed', 'is', null));
      const id = (params as Record<string, string | undefined>)[idParam];
      if (id) q = q.where(column[kind], '=', (await findTarget(ctx, kind, id)).id);
      if (params.account) {
        if (!params.domainid)
          throw invalidParameter(`Please specify the domain id of the account: ${params.account}`);
        const { account } = await resolveAccount(ctx, { account: params.account, domainid: params.domainid });
        q = q.where('account_id', '=', account.id);
      } else if (params.domainid)
        q = q.where('domain_id', '=', (await findDomainByUuid(ctx, params.domainid)).id);
      if (params.affinitygroupid)
        q = q.where(
          'affinity_group_id',
          'in',
          db.selectFrom('affinity_groups').select('id').where('uuid', '=', params.affinitygroupid),
        );
      const { n } = await q.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
      const rows = await paginate(q.selectAll().orderBy('id'), pageOf(ctx.app, params)).execute();
      return listResult(await present(ctx, rows, kind), Number(n));
    },
  });
}

/**
 * The dedication rule of a VM's placement, or undefined when nothing is dedicated (the common
 * case, which then costs the planner nothing). A zone dedicated to another account or domain is
 * refused outright, as upstream does.
 */
export async function dedicationRule(
  ctx: Pick<CallContext, 'app'>,
  vm: VmRow,
): Promise<DedicationRule | undefined> {
  const db = ctx.app.store.db;
  const any = await db.selectFrom('dedicated_resources').select('id').limit(1).executeTakeFirst();
  if (!any) return undefined;
  const domain = await db
    .selectFrom('domains')
    .select(['id', 'path'])
    .where('id', '=', vm.domain_id)
    .executeTakeFirstOrThrow();
  // Dedications to the VM's domain or any domain above it are the owner's too.
  const ancestors = (await db.selectFrom('domains').select(['id', 'path']).execute())
    .filter((d) => domain.path.startsWith(d.path))
    .map((d) => d.id);
  const zoneDedication = await db
    .selectFrom('dedicated_resources')
    .selectAll()
    .where('zone_id', '=', vm.zone_id)
    .executeTakeFirst();
  if (zoneDedication) {
    const zone = await db
      .selectFrom('zones')
      .select('name')
      .where('id', '=', vm.zone_id)
      .executeTakeFirstOrThrow();
    if (zoneDedication.account_id !== null && zoneDedication.account_id !== vm.account_id)
      throw invalidParameter(
        `Failed to deploy VM, Zone ${zone.name} not available for the user account ${vm.account_id}`,
      );
    if (zoneDedication.account_id === null && !ancestors.includes(zoneDedication.domain_id))
      throw invalidParameter(
        `Failed to deploy VM, Zone ${zone.name} not available for the user domain ${vm.domain_id}`,
      );
  }
  const groups = await db
    .selectFrom('affinity_group_vm_map as m')
    .innerJoin('affinity_groups as g', 'g.id', 'm.group_id')
    .select('g.id')
    .where('m.vm_id', '=', vm.id)
    .where('g.type', '=', EXPLICIT_DEDICATION)
    .execute();
  return {
    ...(groups.length ? { only: groups.map((g) => g.id) } : {}),
    accountId: vm.account_id,
    domainIds: ancestors,
  };
}

// A deleted account's dedications go with it, as upstream releases them.
onAccountDelete(async (ctx, account) => {
  await ctx.app.store.db.deleteFrom('dedicated_resources').where('account_id', '=', account.id).execute();
});

const kinds: Kind[] = ['Zone', 'Pod', 'Cluster', 'Host'];
export const dedicationCommands = kinds.flatMap((k) => [
  dedicateCommand(k),
  releaseCommand(k),
  listCommand(k),
]);
