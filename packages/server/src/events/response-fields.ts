/** Response fields of event objects, in our words. */
import type { ResponseFields } from '../registry/response-fields.ts';

export const eventResponseFields: ResponseFields = {
  event: {
    id: 'UUID of the event.',
    type: 'Event type, e.g. VM.CREATE, VOLUME.ATTACH, USER.LOGIN (see listEventTypes).',
    level: "Severity: 'INFO', 'WARN' or 'ERROR'.",
    state:
      "Stage of the action: 'Scheduled' (an async job was queued), 'Started' or 'Completed' (also used for one-step actions).",
    description: 'What happened, in one line.',
    account: 'Name of the account the action was done for.',
    username: 'Login name of the user who did the action.',
    domainid: 'UUID of the domain of the account.',
    domain: 'Name of the domain of the account.',
    resourcetype: 'Kind of object acted on, e.g. VirtualMachine, Volume; left out when none.',
    resourceid: 'UUID of the object acted on; left out when none.',
    resourcename: 'Not returned by Nimbostack: look the object up by resourceid.',
    parentid: 'UUID of the Started event of the same job, for its Completed event; left out otherwise.',
    created: 'When the event was recorded (ISO 8601 with offset).',
    archived: 'true once the event has been archived (hidden from default lists).',
  },
};
