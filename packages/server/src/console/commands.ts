/** The console API: createConsoleEndpoint. */
import { findVm } from '../compute/vms.ts';
import { defineCommand } from '../registry/command.ts';
import { p } from '../registry/params.ts';
import { createEndpoint } from './endpoint.ts';

export const createConsoleEndpoint = defineCommand({
  name: 'createConsoleEndpoint',
  params: {
    virtualmachineid: p.uuid({ required: true }),
    token: p.string({ length: 255 }),
  },
  async handler(ctx, params) {
    // findVm applies the owner and domain checks: another account's VM is a 531.
    const vm = await findVm(ctx, params.virtualmachineid);
    return createEndpoint(ctx, vm, params.token);
  },
});

export const consoleCommands = [createConsoleEndpoint];
