/** Response fields of the simulator's configureSimulator answer, in our words. */
import type { ResponseFields } from '../registry/response-fields.ts';

export const agentResponseFields: ResponseFields = {
  mock: {
    id: 'UUID of this simulator setting (fresh for each call; it is not stored).',
    name: 'Agent command kind the setting applies to, as given.',
    count: 'How many of the next such commands it affects; left out when it affects all that follow.',
    hostid: 'UUID of the only simulator host affected; left out when not limited to one.',
    clusterid: 'UUID of the cluster the affected hosts are in; left out when not limited to one.',
    podid: 'UUID of the pod the affected hosts are in; left out when not limited to one.',
    zoneid: 'UUID of the zone the affected hosts are in; left out when not limited to one.',
  },
};
