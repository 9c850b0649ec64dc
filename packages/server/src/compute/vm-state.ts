/**
 * The VM state machine: every change of a VM's state goes through `transition`, which checks the
 * move against the table, applies it with a compare-and-set on the current state (so two servers
 * or two jobs cannot both move the same VM), and records an event and the ResourceStateEvent
 * messages of the move for the event bus.
 */
import type { CallContext } from '../context.ts';
import type { Tx } from '../db/connection.ts';
import type { VmRow } from '../db/schema.ts';
import { ApiError, CsErrorCode, ErrorCode, invalidParameter } from '../errors.ts';
import { recordEvent } from '../events/events.ts';
import { recordStateChange } from '../events/state-events.ts';

export type VmState =
  | 'Stopped'
  | 'Starting'
  | 'Running'
  | 'Stopping'
  | 'Migrating'
  | 'Destroyed'
  | 'Expunging'
  | 'Error'
  | 'Restoring';

export type VmEvent =
  | 'start'
  | 'started'
  | 'startFailed'
  | 'stop'
  | 'stopped'
  | 'stopFailed'
  | 'poweredOff'
  | 'poweredOn'
  | 'migrate'
  | 'migrated'
  | 'migrateFailed'
  | 'destroy'
  | 'recover'
  | 'expunge'
  | 'expungeFailed'
  | 'restore'
  | 'restored'
  | 'error';

/** Allowed moves, as CloudStack's VirtualMachine.State transitions. */
const TRANSITIONS: Record<VmState, Partial<Record<VmEvent, VmState>>> = {
  Stopped: {
    start: 'Starting',
    destroy: 'Destroyed',
    expunge: 'Expunging',
    migrate: 'Migrating',
    restore: 'Restoring',
    error: 'Error',
    poweredOn: 'Running',
  },
  Starting: {
    started: 'Running',
    startFailed: 'Stopped',
    poweredOff: 'Stopped',
    poweredOn: 'Running',
    error: 'Error',
  },
  Running: {
    stop: 'Stopping',
    migrate: 'Migrating',
    poweredOff: 'Stopped',
    stopped: 'Stopped',
    restore: 'Restoring',
  },
  Stopping: { stopped: 'Stopped', stopFailed: 'Running', poweredOff: 'Stopped' },
  Migrating: { migrated: 'Running', migrateFailed: 'Running', poweredOff: 'Stopped', stopped: 'Stopped' },
  Destroyed: { recover: 'Stopped', expunge: 'Expunging' },
  Expunging: { expunge: 'Expunging', expungeFailed: 'Destroyed' },
  Error: { expunge: 'Expunging', destroy: 'Destroyed' },
  Restoring: { restored: 'Stopped', error: 'Error' },
};

const EVENT_TYPES: Partial<Record<VmEvent, string>> = {
  start: 'VM.START',
  started: 'VM.START',
  startFailed: 'VM.START',
  stop: 'VM.STOP',
  stopped: 'VM.STOP',
  stopFailed: 'VM.STOP',
  poweredOff: 'VM.STOP',
  poweredOn: 'VM.START',
  migrate: 'VM.MIGRATE',
  migrated: 'VM.MIGRATE',
  migrateFailed: 'VM.MIGRATE',
  destroy: 'VM.DESTROY',
  recover: 'VM.RECOVER',
  expunge: 'VM.EXPUNGE',
  expungeFailed: 'VM.EXPUNGE',
  restore: 'VM.RESTORE',
  restored: 'VM.RESTORE',
  error: 'VM.START',
};

/** Upstream's VirtualMachine.Event name of each move, the type of its ResourceStateEvent. */
const UPSTREAM_EVENTS: Record<VmEvent, string> = {
  start: 'StartRequested',
  started: 'OperationSucceeded',
  startFailed: 'OperationFailed',
  stop: 'StopRequested',
  stopped: 'OperationSucceeded',
  stopFailed: 'OperationFailed',
  poweredOff: 'FollowAgentPowerOffReport',
  poweredOn: 'FollowAgentPowerOnReport',
  migrate: 'MigrationRequested',
  migrated: 'OperationSucceeded',
  migrateFailed: 'OperationFailed',
  destroy: 'DestroyRequested',
  recover: 'RecoveryRequested',
  expunge: 'ExpungeOperation',
  expungeFailed: 'OperationFailed',
  restore: 'RestoringRequested',
  restored: 'RestoringSuccess',
  error: 'OperationFailedToError',
};

export function nextState(state: string, event: VmEvent): VmState | undefined {
  return TRANSITIONS[state as VmState]?.[event];
}

/** What users see when they ask for something the VM's state does not allow. */
export function wrongState(vm: Pick<VmRow, 'name' | 'state'>, action: string): ApiError {
  return invalidParameter(`Unable to ${action} VM ${vm.name}: it is ${vm.state}`);
}

/**
 * Moves a VM to the state `event` leads to, with optional column changes, inside `tx`.
 * Throws 431 when the move is not allowed and 530 (concurrent operation) when the VM changed
 * underneath us. Returns the updated row.
 */
export async function transition(
  ctx: Pick<CallContext, 'app'>,
  tx: Tx,
  vm: VmRow,
  event: VmEvent,
  changes: Partial<VmRow> = {},
  why?: string,
): Promise<VmRow> {
  const next = nextState(vm.state, event);
  if (!next) throw wrongState(vm, event);
  const now = ctx.app.clock.now();
  const r = await tx
    .updateTable('vms')
    .set({ ...changes, state: next, updated: now })
    .where('id', '=', vm.id)
    .where('state', '=', vm.state)
    .executeTakeFirst();
  if (Number(r.numUpdatedRows) === 0) {
    throw new ApiError(
      ErrorCode.INTERNAL_ERROR,
      CsErrorCode.CONCURRENT_OPERATION,
      `VM ${vm.name} changed state while it was being ${event === 'start' ? 'started' : `moved to ${next}`}; try again`,
    );
  }
  await recordStateChange(ctx, tx, {
    resource: 'VirtualMachine',
    uuid: vm.uuid,
    event: UPSTREAM_EVENTS[event],
    oldState: vm.state,
    newState: next,
  });
  const type = EVENT_TYPES[event];
  if (type && next !== vm.state) {
    await recordEvent(
      ctx,
      tx,
      { userId: vm.user_id, accountId: vm.account_id, domainId: vm.domain_id },
      {
        type,
        level: event.endsWith('Failed') || event === 'error' ? 'ERROR' : 'INFO',
        description: `VM ${vm.name} ${vm.state} -> ${next}${why ? `: ${why}` : ''}`,
        resourceType: 'VirtualMachine',
        resourceId: vm.uuid,
      },
    );
  }
  return { ...vm, ...changes, state: next, updated: now };
}
