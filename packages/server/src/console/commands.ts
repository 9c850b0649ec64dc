/** The console API: createConsoleEndpoint. */
import { findVm } from '../compute/vms.ts';
import { defineCommand } from '../registry/command.ts';
import { p } from '../registry/params.ts';
import { createEndpoint } from './endpoint.ts';

export const createConsoleEndpoint = defineCommand({
  name: 'createConsoleEndpoint',
  description:
    "Returns a one-time URL opening a Running VM's console in the browser, valid for console.token.validity seconds; a VM not running gets success=false with the reason.",
  params: {
    virtualmachineid: p.uuid({ required: true, description: 'UUID of the Running VM.' }),
    token: p.string({
      length: 255,
      description:
        'Optional extra secret; the console then opens only when the same value is presented with the URL.',
    }),
  },
  async handler(ctx, params) {
    // findVm applies the owner and domain checks: another account's VM is a 531.
    const vm = await findVm(ctx, params.virtualmachineid);
    return createEndpoint(ctx, vm, params.token);
  },
});

export const consoleCommands = [createConsoleEndpoint];
