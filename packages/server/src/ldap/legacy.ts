/**
 * ldapConfig and ldapRemove: CloudStack 3's one-call LDAP setup, deprecated upstream in favour of
 * addLdapConfiguration and the ldap.* settings but still in its API, and still what some old
 * scripts call. They work on the global configuration only, as upstream's do.
 */
import { randomUUID } from 'node:crypto';
import type { CallContext } from '../context.ts';
import { insertId } from '../db/connection.ts';
import { invalidParameter } from '../errors.ts';
import { defineCommand, listResult } from '../registry/command.ts';
import { p } from '../registry/params.ts';
import { DirectoryError, ldapSettings, withServiceBind } from './directory.ts';
import {
  LDAP_BASEDN,
  LDAP_BIND_PASSWORD,
  LDAP_BIND_PRINCIPAL,
  LDAP_TRUSTSTORE,
  LDAP_TRUSTSTORE_PASSWORD,
} from './settings.ts';

function presentLegacy(c: {
  hostname: string;
  port: number;
  ssl: boolean;
  searchbase?: string;
  binddn?: string;
  queryfilter?: string;
}): object {
  return {
    hostname: c.hostname,
    port: String(c.port),
    ssl: String(c.ssl),
    searchbase: c.searchbase || undefined,
    binddn: c.binddn || undefined,
    queryfilter: c.queryfilter,
  };
}

async function globalConfigurations(ctx: CallContext) {
  return ctx.app.store.db
    .selectFrom('ldap_configurations')
    .selectAll()
    .where('domain_id', 'is', null)
    .orderBy('id')
    .execute();
}

export const ldapConfig = defineCommand({
  name: 'ldapConfig',
  description:
    'Deprecated one-call LDAP setup: adds a global directory server and sets ldap.basedn, ldap.bind.principal, ldap.bind.password and the truststore settings from its parameters (an omitted one is reset, as upstream does); with listall=true, lists the global servers instead.',
  params: {
    listall: p.boolean({
      description: 'Only list the global directory servers with the search base and bind DN in force.',
    }),
    hostname: p.string({
      description: 'Host name or address of the directory server; required unless listall.',
    }),
    port: p.integer({ description: 'TCP port of the directory server; 0 or less means 389.' }),
    binddn: p.string({ description: 'Sets ldap.bind.principal: the DN searches bind as.' }),
    bindpass: p.string({ description: 'Sets ldap.bind.password (stored encrypted).' }),
    searchbase: p.string({ description: 'Sets ldap.basedn: where users are searched.' }),
    queryfilter: p.string({
      description:
        'Accepted and echoed; as upstream, the filter comes from ldap.user.object and ldap.search.group.principle.',
    }),
    ssl: p.boolean({ description: 'Accepted; LDAPS is used when truststore is set, as upstream decides.' }),
    truststore: p.string({
      description: 'Sets ldap.truststore: path of a PEM file of trusted CAs; LDAPS when set.',
    }),
    truststorepass: p.string({
      description: 'Sets ldap.truststore.password (unused with PEM; stored encrypted).',
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    if (params.listall) {
      const s = ldapSettings(app, null);
      const rows = await globalConfigurations(ctx);
      const items = rows.map((r) =>
        presentLegacy({
          hostname: r.hostname,
          port: r.port,
          ssl: s.trustStore !== '',
          searchbase: s.baseDn,
          binddn: s.bindPrincipal,
        }),
      );
      return listResult(items, items.length);
    }
    const hostname = params.hostname?.trim();
    if (!hostname || params.port === undefined)
      throw invalidParameter('You need to provide hostname, port to configure your LDAP server');
    const port = params.port <= 0 ? 389 : params.port;
    const duplicate = await app.store.db
      .selectFrom('ldap_configurations')
      .select('id')
      .where('hostname', '=', hostname)
      .where('port', '=', port)
      .where('domain_id', 'is', null)
      .executeTakeFirst();
    if (duplicate) throw invalidParameter('Duplicate configuration');
    // Checked with the credentials given, before anything is stored: all or nothing.
    const s = {
      ...ldapSettings(app, null),
      bindPrincipal: params.binddn?.trim() ?? '',
      bindPassword: params.bindpass ?? '',
      trustStore: params.truststore?.trim() ?? '',
    };
    try {
      await withServiceBind(s, [{ hostname, port }], async () => undefined);
    } catch (e) {
      if (e instanceof DirectoryError && e.message.startsWith('cannot read ldap.truststore'))
        throw invalidParameter('Invalid truststore or truststore password');
      throw invalidParameter('Unable to bind to the given LDAP server');
    }
    const now = app.clock.now();
    const values: [typeof LDAP_BASEDN, string | undefined][] = [
      [LDAP_BASEDN, params.searchbase?.trim()],
      [LDAP_BIND_PRINCIPAL, params.binddn?.trim()],
      [LDAP_BIND_PASSWORD, params.bindpass],
      [LDAP_TRUSTSTORE, params.truststore?.trim()],
      [LDAP_TRUSTSTORE_PASSWORD, params.truststorepass],
    ];
    for (const [def, value] of values) {
      const stored = value ? (def.secret ? app.secrets.encrypt(value) : value) : null;
      await app.settings.set(def.name, stored, now);
    }
    await app.store.db.transaction().execute((tx) =>
      insertId(app.store, tx, 'ldap_configurations', {
        uuid: randomUUID(),
        hostname,
        port,
        domain_id: null,
        created: now,
      }),
    );
    // Upstream answers the list form for listall and one object, under its name, otherwise.
    return {
      ldapconfig: presentLegacy({
        hostname,
        port,
        ssl: s.trustStore !== '',
        searchbase: params.searchbase,
        binddn: params.binddn,
        queryfilter: params.queryfilter,
      }),
    };
  },
});

export const ldapRemove = defineCommand({
  name: 'ldapRemove',
  description:
    'Deprecated: removes every global directory server (per-domain ones stay); the ldap.* settings are kept.',
  params: {},
  objectName: 'ldapremove',
  async handler(ctx) {
    await ctx.app.store.db.deleteFrom('ldap_configurations').where('domain_id', 'is', null).execute();
    return {};
  },
});

export const legacyCommands = [ldapConfig, ldapRemove];
