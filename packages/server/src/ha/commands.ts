/**
 * Upstream's host-HA commands over Nimbostack's VM HA (monitor.ts): a host's HA is enabled unless
 * an admin disabled it, and its provider is its hypervisor's (kvmhaprovider, simulatorhaprovider).
 * Disabling it means the host is never fenced by Nimbostack, so its VMs wait for the operator.
 */
import type { CallContext } from '../context.ts';
import type { HostRow } from '../db/schema.ts';
import { invalidParameter } from '../errors.ts';
import { findHost } from '../infra/hosts.ts';
import { defineCommand, listResult } from '../registry/command.ts';
import { p } from '../registry/params.ts';
import { HA_PROVIDERS, hostHaRows, presentHostHa, updateHostHa } from './host-ha-records.ts';

const hostTarget = (_ctx: CallContext, params: { hostid: string }) => ({ type: 'Host', id: params.hostid });

async function presentOne(ctx: CallContext, host: HostRow) {
  const row = (await hostHaRows(ctx.app, [host.id])).get(host.id);
  return { ...presentHostHa(host, row), status: true };
}

export const configureHAForHost = defineCommand({
  name: 'configureHAForHost',
  description:
    "Names the host-HA provider of a host; it must be its hypervisor's (listHostHAProviders). Asynchronous.",
  params: {
    hostid: p.uuid({ required: true, description: 'The host to configure.' }),
    provider: p.string({
      required: true,
      description: 'The provider: kvmhaprovider for KVM hosts, simulatorhaprovider for simulator hosts.',
    }),
  },
  target: hostTarget,
  event: {
    type: 'HA.RESOURCE.CONFIGURE',
    description: (params) => `configuring HA of host ${params.hostid}`,
  },
  async handler(ctx, params) {
    const host = await findHost(ctx, params.hostid);
    const provider = HA_PROVIDERS[host.hypervisor ?? ''];
    if (!provider || provider !== params.provider.toLowerCase())
      throw invalidParameter(
        `HA provider ${params.provider} does not apply to ${host.hypervisor ?? 'this'} host ${host.name}${provider ? `; use ${provider}` : ''}`,
      );
    await updateHostHa(ctx.app, host, { provider });
    return presentOne(ctx, host);
  },
});

export const enableHAForHost = defineCommand({
  name: 'enableHAForHost',
  description:
    'Lets Nimbostack investigate and fence the host when its agent is gone, so its HA VMs restart elsewhere (the default). Asynchronous.',
  params: { hostid: p.uuid({ required: true, description: 'The host whose HA is turned on.' }) },
  target: hostTarget,
  event: { type: 'HA.RESOURCE.ENABLE', description: (params) => `enabling HA of host ${params.hostid}` },
  async handler(ctx, params) {
    const host = await findHost(ctx, params.hostid);
    await updateHostHa(ctx.app, host, { enabled: 1, state: host.state === 'Up' ? 'Available' : 'Suspect' });
    return presentOne(ctx, host);
  },
});

export const disableHAForHost = defineCommand({
  name: 'disableHAForHost',
  description:
    'Stops Nimbostack from fencing the host by itself: when its agent is gone its VMs are left as they are for the operator. Asynchronous.',
  params: { hostid: p.uuid({ required: true, description: 'The host whose HA is turned off.' }) },
  target: hostTarget,
  event: { type: 'HA.RESOURCE.DISABLE', description: (params) => `disabling HA of host ${params.hostid}` },
  async handler(ctx, params) {
    const host = await findHost(ctx, params.hostid);
    await updateHostHa(ctx.app, host, { enabled: 0, state: 'Disabled' });
    return presentOne(ctx, host);
  },
});

export const listHostHAResources = defineCommand({
  name: 'listHostHAResources',
  description:
    'Lists the HA state of hosts: enabled or not, provider, and what the last investigation concluded.',
  params: { hostid: p.uuid({ description: 'Only this host.' }) },
  async handler(ctx, params) {
    let q = ctx.app.store.db.selectFrom('hosts').selectAll().where('removed', 'is', null);
    if (params.hostid) q = q.where('id', '=', (await findHost(ctx, params.hostid)).id);
    const hosts = await q.orderBy('id').execute();
    const rows = await hostHaRows(
      ctx.app,
      hosts.map((h) => h.id),
    );
    return listResult(
      hosts.map((h) => presentHostHa(h, rows.get(h.id))),
      hosts.length,
    );
  },
});

export const listHostHAProviders = defineCommand({
  name: 'listHostHAProviders',
  description:
    'Lists the host-HA providers of a hypervisor: kvmhaprovider for KVM, simulatorhaprovider for Simulator.',
  params: {
    hypervisor: p.string({ required: true, description: 'KVM, Simulator or LXC (LXC has none).' }),
  },
  async handler(_ctx, params) {
    const key = Object.keys(HA_PROVIDERS).find((k) => k.toLowerCase() === params.hypervisor.toLowerCase());
    const items = key ? [{ haprovider: HA_PROVIDERS[key] }] : [];
    return listResult(items, items.length);
  },
});

export const haCommands = [
  configureHAForHost,
  enableHAForHost,
  disableHAForHost,
  listHostHAResources,
  listHostHAProviders,
];
