/**
 * createConsoleEndpoint and the older `/client/console?cmd=access&vm=` URL: both hand a browser a
 * one-time token for the console of a running VM the caller may reach, and the page that uses it.
 */
import type { CallContext } from '../context.ts';
import type { VmRow } from '../db/schema.ts';
import { issueConsoleToken } from './tokens.ts';

/** Where browsers open the console WebSocket, below the HTTP port of the API and the UI. */
export const WEBSOCKET_PATH = 'client/websockify';

/** VM states upstream refuses a console for; a Starting or Migrating VM has a display to show. */
const NO_CONSOLE_STATES = new Set(['Stopped', 'Error', 'Destroyed', 'Expunging']);

export interface ConsoleEndpoint {
  success: boolean;
  details?: string;
  url?: string;
  websocket?: { token: string; host: string; port: string; path: string; extra?: string };
}

/** Why a VM has no console now, in upstream's words; undefined when it has one. */
export function consoleUnavailable(vm: VmRow): string | undefined {
  if (NO_CONSOLE_STATES.has(vm.state) || vm.host_id === null)
    return `VM ${vm.uuid} must be running to connect console (it is ${vm.state})`;
  return undefined;
}

/**
 * The console page of the UI for a VM, with a token that opens it without a login. A container
 * (LXC) has a terminal, not a display: `terminal=1` tells the page to show one instead of noVNC.
 */
export function consolePageUrl(
  origin: string,
  vm: Pick<VmRow, 'uuid' | 'hypervisor'>,
  token: string,
): string {
  const terminal = vm.hypervisor === 'LXC' ? '&terminal=1' : '';
  return `${origin}/client/console/${vm.uuid}?token=${encodeURIComponent(token)}${terminal}`;
}

/**
 * The endpoint for a VM the caller already passed the access checks for. A VM that is not running
 * gets `success: false` with the reason, as upstream answers, not an API error.
 */
export async function createEndpoint(ctx: CallContext, vm: VmRow, extra?: string): Promise<ConsoleEndpoint> {
  const why = consoleUnavailable(vm);
  if (why) return { success: false, details: why };
  const { token } = await issueConsoleToken(ctx, vm, extra);
  const origin = ctx.origin ?? `http://127.0.0.1:${ctx.app.config.port}`;
  const url = new URL(origin);
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  return {
    success: true,
    url: consolePageUrl(origin, vm, token),
    websocket: {
      token,
      host: url.hostname,
      port,
      path: WEBSOCKET_PATH,
      ...(extra ? { extra } : {}),
    },
  };
}
