/**
 * Resource state-change events as upstream publishes them on its event bus (the *StateListener
 * classes): category `ResourceStateEvent`, type the state machine's event name (StartRequested,
 * OperationSucceeded …), routing key management-server.ResourceStateEvent.<event>.<resource>.<uuid>,
 * and a JSON body {resource, id, old-state, new-state, status, eventDateTime}. As upstream, each
 * transition gives two messages, status `preStateTransitionEvent` and `postStateTransitionEvent`.
 *
 * They go to the message bus only: upstream's webhooks deliver ActionEvents alone. The message is
 * written to the outbox in the transaction of the state change, so it exists exactly when the
 * change commits and waits in the database while the broker is unreachable; the API call never
 * waits for the broker.
 */
import type { CallContext } from '../context.ts';
import { insertId, type Tx } from '../db/connection.ts';
import { defineSetting } from '../settings/settings.ts';
import { busRoutingKey, eventDateTime } from './message.ts';

export const STATE_EVENT_CATEGORY = 'ResourceStateEvent';

export const PUBLISH_RESOURCE_STATE_EVENTS = defineSetting({
  name: 'publish.resource.state.events',
  category: 'Advanced',
  type: 'Boolean',
  defaultValue: true,
  description:
    'Whether resource state changes (a VM going from Stopped to Starting, …) are published on the event bus as ResourceStateEvent messages, when an event bus is configured.',
});

export interface StateChange {
  /** Upstream's entity name: VirtualMachine, Volume, Snapshot, Host … */
  resource: string;
  uuid: string;
  /** Upstream's state machine event name, e.g. StartRequested. */
  event: string;
  oldState: string;
  newState: string;
}

/** Writes the pre- and post-transition messages of one state change inside `tx`. */
export async function recordStateChange(
  ctx: Pick<CallContext, 'app'>,
  tx: Tx,
  c: StateChange,
): Promise<void> {
  const { app } = ctx;
  if (!app.config.eventBusUrl || !app.settings.get(PUBLISH_RESOURCE_STATE_EVENTS)) return;
  const now = app.clock.now();
  const routingKey = busRoutingKey(STATE_EVENT_CATEGORY, c.event, c.resource, c.uuid);
  for (const status of ['preStateTransitionEvent', 'postStateTransitionEvent']) {
    const body = JSON.stringify({
      resource: c.resource,
      id: c.uuid,
      'old-state': c.oldState,
      'new-state': c.newState,
      status,
      eventDateTime: eventDateTime(now),
    });
    const id = await insertId(app.store, tx, 'state_events', {
      uuid: app.ids.uuid(),
      routing_key: routingKey,
      body,
      created: now,
    });
    await tx
      .insertInto('event_outbox')
      .values({ event_id: id, target: 'state', next_attempt: now })
      .execute();
  }
}

/**
 * Upstream's VirtualMachine.Event name for a move known by its two states only (system VMs such as
 * routers, whose moves are not named events of ours).
 */
export function vmEventOf(oldState: string, newState: string): string {
  if (newState === 'Starting') return 'StartRequested';
  if (newState === 'Stopping') return 'StopRequested';
  if (newState === 'Destroyed') return 'DestroyRequested';
  if (newState === 'Error') return 'OperationFailedToError';
  if (oldState === 'Starting') return newState === 'Running' ? 'OperationSucceeded' : 'OperationFailed';
  if (oldState === 'Stopping') return newState === 'Stopped' ? 'OperationSucceeded' : 'OperationFailed';
  return newState === 'Running' ? 'FollowAgentPowerOnReport' : 'FollowAgentPowerOffReport';
}

/**
 * Publishes a system VM's move (a virtual router's) given its row before and the new state: as
 * upstream, where system VMs move through the VirtualMachine state machine, as `VirtualMachine`.
 */
export async function systemVmMoved(
  ctx: Pick<CallContext, 'app'>,
  tx: Tx,
  vm: { uuid: string; state: string },
  next: string,
): Promise<void> {
  if (next === vm.state) return;
  await recordStateChange(ctx, tx, {
    resource: 'VirtualMachine',
    uuid: vm.uuid,
    event: vmEventOf(vm.state, next),
    oldState: vm.state,
    newState: next,
  });
}

/** Publishes a volume's move (resource `Volume`, upstream's Volume.Event names). */
export function volumeMoved(
  ctx: Pick<CallContext, 'app'>,
  tx: Tx,
  volume: { uuid: string; state: string },
  next: string,
  event: string,
): Promise<void> {
  return recordStateChange(ctx, tx, {
    resource: 'Volume',
    uuid: volume.uuid,
    event,
    oldState: volume.state,
    newState: next,
  });
}
