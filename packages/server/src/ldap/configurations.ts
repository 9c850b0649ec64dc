/**
 * The directory servers (addLdapConfiguration, deleteLdapConfiguration, listLdapConfigurations).
 * A configuration is global (no domain) or serves one domain. The upstream UI calls
 * listLdapConfigurations right after every login to decide whether to offer LDAP screens.
 */
import { randomUUID } from 'node:crypto';
import type { App, CallContext } from '../context.ts';
import { isRootAdmin } from '../context.ts';
import { insertId, type Tx } from '../db/connection.ts';
import { invalidParameter } from '../errors.ts';
import { defineCommand, listResult } from '../registry/command.ts';
import { pageOf, paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import { DirectoryError, ldapSettings, withServiceBind } from './directory.ts';
import type { LdapConfigurationRow } from './tables.ts';

/** The integer key of a domain named by a (resolved) uuid parameter. */
export async function domainKey(app: App, uuid: string | undefined): Promise<number | null> {
  if (uuid === undefined) return null;
  const row = await app.store.db
    .selectFrom('domains')
    .select('id')
    .where('uuid', '=', uuid)
    .executeTakeFirst();
  if (!row) throw invalidParameter(`Unable to find domain by id ${uuid}`);
  return row.id;
}

/** Only root administrators are shown where the servers are, as upstream does. */
async function presentConfigurations(ctx: CallContext, rows: LdapConfigurationRow[]): Promise<object[]> {
  const domainIds = [...new Set(rows.map((r) => r.domain_id).filter((d): d is number => d !== null))];
  const domains =
    domainIds.length === 0
      ? []
      : await ctx.app.store.db
          .selectFrom('domains')
          .select(['id', 'uuid'])
          .where('id', 'in', domainIds)
          .execute();
  const uuidOf = new Map(domains.map((d) => [d.id, d.uuid]));
  const root = isRootAdmin(ctx.caller);
  return rows.map((r) => ({
    id: r.uuid,
    domainid: r.domain_id === null ? undefined : uuidOf.get(r.domain_id),
    ...(root ? { hostname: r.hostname, port: r.port } : {}),
  }));
}

const hostPortDomain = {
  hostname: p.string({ description: 'Host name or IP address of the directory server.' }),
  port: p.integer({
    description: 'TCP port of the directory server (389 for LDAP; 636 is usual for LDAPS).',
  }),
  domainid: p.uuid({
    description:
      'The domain the server serves; without it, the global configuration used by every domain without one of its own.',
  }),
};

/** Configurations matching host, port (0: any) and domain (null: the global ones). */
function configurationsAt(db: Tx, hostname: string, port: number, domainId: number | null) {
  let q = db.selectFrom('ldap_configurations').selectAll().where('hostname', '=', hostname);
  if (port > 0) q = q.where('port', '=', port);
  return domainId === null ? q.where('domain_id', 'is', null) : q.where('domain_id', '=', domainId);
}

export const addLdapConfiguration = defineCommand({
  name: 'addLdapConfiguration',
  description:
    'Adds a directory server for LDAP sign-in and the LDAP commands, globally or for one domain. The server must accept a bind with the ldap.bind.principal and ldap.bind.password that apply to the domain.',
  params: {
    hostname: p.string({ required: true, description: 'Host name or IP address of the directory server.' }),
    port: p.integer({
      required: true,
      description:
        'TCP port of the directory server; 0 or less means 389. With ldap.truststore set it is spoken to over LDAPS.',
    }),
    domainid: hostPortDomain.domainid,
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const hostname = params.hostname.trim();
    if (hostname === '') throw invalidParameter('Unable to bind to the given LDAP server');
    const port = params.port <= 0 ? 389 : params.port;
    const domainId = await domainKey(app, params.domainid);
    if (await configurationsAt(app.store.db, hostname, port, domainId).executeTakeFirst())
      throw invalidParameter('Duplicate configuration');
    // As upstream: a server that does not take the service bind is refused, and nothing is stored.
    const settings = ldapSettings(app, domainId);
    try {
      await withServiceBind(settings, [{ hostname, port }], async () => undefined);
    } catch (e) {
      if (e instanceof DirectoryError && e.message.startsWith('cannot read ldap.truststore'))
        throw invalidParameter('Invalid truststore or truststore password');
      throw invalidParameter('Unable to bind to the given LDAP server');
    }
    const row = await app.store.db.transaction().execute(async (tx) => {
      // Checked again inside the transaction: the bind took time, another request may have added it.
      const again = await configurationsAt(tx, hostname, port, domainId).executeTakeFirst();
      if (again) throw invalidParameter('Duplicate configuration');
      const inserted = {
        uuid: randomUUID(),
        hostname,
        port,
        domain_id: domainId,
        created: app.clock.now(),
      };
      // Upstream records no event for LDAP configuration changes (it has no such event type).
      const id = await insertId(app.store, tx, 'ldap_configurations', inserted);
      return { ...inserted, id };
    });
    return (await presentConfigurations(ctx, [row]))[0];
  },
});

export const deleteLdapConfiguration = defineCommand({
  name: 'deleteLdapConfiguration',
  description:
    'Removes a directory server, named by its id, or by host name (with port and domain where several match). Users signing in through LDAP then use the remaining servers.',
  params: {
    id: p.uuid({ description: 'The configuration to remove; when given, the other parameters are ignored.' }),
    ...hostPortDomain,
  },
  async handler(ctx, params) {
    const { app } = ctx;
    if (params.id === undefined && !params.hostname)
      throw invalidParameter('Either id or hostname must be specified');
    let row: LdapConfigurationRow | undefined;
    if (params.id !== undefined) {
      row = await app.store.db
        .selectFrom('ldap_configurations')
        .selectAll()
        .where('uuid', '=', params.id)
        .executeTakeFirst();
      if (!row) throw invalidParameter(`Cannot find configuration with id ${params.id}`);
    } else {
      const domainId = await domainKey(app, params.domainid);
      row = await configurationsAt(app.store.db, params.hostname!.trim(), params.port ?? 0, domainId)
        .orderBy('id')
        .executeTakeFirst();
      if (!row) throw invalidParameter(`Cannot find configuration with hostname ${params.hostname}`);
    }
    await app.store.db.deleteFrom('ldap_configurations').where('id', '=', row.id).execute();
    return (await presentConfigurations(ctx, [row]))[0];
  },
});

export const listLdapConfigurations = defineCommand({
  name: 'listLdapConfigurations',
  // Upstream names the items LdapConfiguration on the wire (the catalog's lower-case name is the Go SDK's).
  objectName: 'LdapConfiguration',
  description:
    'Lists the directory servers: the global ones, those of one domain, or all. Anyone signed in may ask (the upstream UI does after login to learn whether LDAP is on); only root administrators see host names and ports.',
  params: {
    ...listParams,
    id: p.uuid({ description: 'Only this configuration; the other filters are then ignored.' }),
    ...hostPortDomain,
    listall: p.boolean({
      description:
        'Without domainid: list every configuration, global and per domain, instead of the global ones.',
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    let q = app.store.db.selectFrom('ldap_configurations');
    if (params.id !== undefined) {
      q = q.where('uuid', '=', params.id);
    } else {
      const domainId = await domainKey(app, params.domainid);
      if (domainId !== null) q = q.where('domain_id', '=', domainId);
      else if (!params.listall) q = q.where('domain_id', 'is', null);
      if (params.hostname) q = q.where('hostname', '=', params.hostname);
      if (params.port !== undefined && params.port > 0) q = q.where('port', '=', params.port);
    }
    const { count } = await q.select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow();
    const rows = await paginate(q.selectAll().orderBy('id'), pageOf(app, params)).execute();
    return listResult(await presentConfigurations(ctx, rows), Number(count));
  },
});

export const configurationCommands = [addLdapConfiguration, deleteLdapConfiguration, listLdapConfigurations];
