/**
 * configureSimulator: makes simulated hosts fail or slow down the next N commands of a kind, as
 * CloudStack's simulator does, so tests can drive error paths through the real server.
 * `name` is an agent command kind (startVm) or its CloudStack class name (StartCommand); `value`
 * holds `result:fail`, `message:<text>` and `wait:<ms>` separated by semicolons.
 */
import { COMMAND_KINDS, type CommandKind } from '@nimbostack/protocol';
import { invalidParameter } from '../errors.ts';
import { findCluster, findPod, findZone } from '../infra/common.ts';
import { findHost } from '../infra/hosts.ts';
import { defineCommand } from '../registry/command.ts';
import { p } from '../registry/params.ts';

const CLOUDSTACK_NAMES: Record<string, CommandKind> = {
  StartCommand: 'startVm',
  StopCommand: 'stopVm',
  RebootCommand: 'rebootVm',
  MigrateCommand: 'migrateVm',
  PrepareForMigrationCommand: 'prepareMigration',
  AttachCommand: 'attachVolume',
  DettachCommand: 'detachVolume',
  PlugNicCommand: 'plugNic',
  UnPlugNicCommand: 'unplugNic',
  CreateCommand: 'createVolume',
  CopyCommand: 'createVolumeFromTemplate',
  DestroyCommand: 'deleteVolume',
  DeleteCommand: 'deleteVolume',
  ResizeVolumeCommand: 'resizeVolume',
  CreateObjectCommand: 'createSnapshot',
  RevertSnapshotCommand: 'revertSnapshot',
  CheckHealthCommand: 'checkHealth',
  GetHostStatsCommand: 'getHostStats',
  GetVmStatsCommand: 'getVmStats',
};

/** Kinds the simulator can be told to fail; the session commands themselves stay reliable. */
const CONFIGURABLE: CommandKind[] = COMMAND_KINDS.filter(
  (k) => k !== 'ready' && k !== 'reconnect' && k !== 'configureSimulator',
);

function kindOf(name: string): CommandKind {
  const kind = CLOUDSTACK_NAMES[name] ?? CONFIGURABLE.find((k) => k.toLowerCase() === name.toLowerCase());
  if (!kind || !CONFIGURABLE.includes(kind))
    throw invalidParameter(
      `Unknown simulator command ${name}; use one of ${CONFIGURABLE.join(', ')} or ${Object.keys(CLOUDSTACK_NAMES).join(', ')}`,
    );
  return kind;
}

function parseValue(value: string): { fail: boolean; message?: string; latencyMs?: number } {
  const out: { fail: boolean; message?: string; latencyMs?: number } = { fail: false };
  for (const part of value
    .split(';')
    .map((s) => s.trim())
    .filter((s) => s !== '')) {
    const at = part.indexOf(':');
    const key = (at < 0 ? part : part.slice(0, at)).trim().toLowerCase();
    const v = at < 0 ? '' : part.slice(at + 1).trim();
    if (key === 'result') {
      if (!/^(fail|failure|success)$/i.test(v))
        throw invalidParameter(`Invalid result ${v}: use fail or success`);
      out.fail = /^fail/i.test(v);
    } else if (key === 'message') out.message = v;
    else if (key === 'wait') {
      if (!/^\d+$/.test(v)) throw invalidParameter(`Invalid wait ${v}: a number of milliseconds`);
      out.latencyMs = Number(v);
    } else throw invalidParameter(`Unknown simulator option ${key}: use result, message and wait`);
  }
  return out;
}

export const configureSimulator = defineCommand({
  name: 'configureSimulator',
  description:
    'Makes simulator hosts fail or slow down the next commands of one kind, to exercise error paths; only connected Simulator hosts in the given range are affected.',
  params: {
    name: p.string({
      required: true,
      description:
        'Agent command kind (such as startVm) or its CloudStack class name (such as StartCommand).',
    }),
    value: p.string({
      required: true,
      description:
        'Semicolon-separated options: result:fail or result:success, message:<text>, wait:<milliseconds>.',
    }),
    count: p.integer({
      min: 1,
      description: 'How many of the next such commands are affected; every following one when omitted.',
    }),
    hostid: p.uuid({ description: 'Only this simulator host.' }),
    clusterid: p.uuid({ description: 'Only simulator hosts of this cluster.' }),
    podid: p.uuid({ description: 'Only simulator hosts of this pod.' }),
    zoneid: p.uuid({ description: 'Only simulator hosts of this zone.' }),
    jsonresponse: p.string({ description: 'Refused: put result, message and wait in value instead.' }),
  },
  async handler(ctx, params) {
    if (params.jsonresponse !== undefined)
      throw invalidParameter('jsonresponse is not supported: configure result, message and wait in value');
    const kind = kindOf(params.name.trim());
    const options = parseValue(params.value);
    let q = ctx.app.store.db
      .selectFrom('hosts')
      .select('id')
      .where('removed', 'is', null)
      .where('hypervisor', '=', 'Simulator');
    if (params.hostid) q = q.where('id', '=', (await findHost(ctx, params.hostid)).id);
    if (params.clusterid) q = q.where('cluster_id', '=', (await findCluster(ctx, params.clusterid)).id);
    if (params.podid) q = q.where('pod_id', '=', (await findPod(ctx, params.podid)).id);
    if (params.zoneid) q = q.where('zone_id', '=', (await findZone(ctx, params.zoneid)).id);
    const hosts = ctx.app.agents.connectedHosts((await q.execute()).map((h) => h.id));
    if (hosts.length === 0) throw invalidParameter('No connected simulator host is in the given range');
    await Promise.all(
      hosts.map((id) =>
        ctx.app.agents.call(id, 'configureSimulator', { kind, count: params.count, ...options }, 30_000),
      ),
    );
    return {
      id: ctx.app.ids.uuid(),
      name: params.name,
      count: params.count,
      hostid: params.hostid,
      clusterid: params.clusterid,
      podid: params.podid,
      zoneid: params.zoneid,
    };
  },
});

export const simulatorCommands = [configureSimulator];
