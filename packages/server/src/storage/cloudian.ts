/**
 * The Cloudian HyperStore connector of upstream (object storage sign-in from the UI). Nimbostack
 * has no Cloudian connector; the upstream UI asks after every login whether it is enabled, and
 * the truthful answer is that it is not.
 */
import { defineCommand } from '../registry/command.ts';

export const cloudianIsEnabled = defineCommand({
  name: 'cloudianIsEnabled',
  description:
    'Says whether the Cloudian object storage connector is enabled; Nimbostack has none, so it is not.',
  // Upstream names the object after the command (its catalog entry says cloudianenabled).
  objectName: 'cloudianisenabled',
  params: {},
  async handler() {
    return { enabled: false };
  },
});
