/** Response fields of webhooks and webhook deliveries, in our words. */
import type { ResponseFields } from '../registry/response-fields.ts';

const webhook = {
  id: 'UUID of the webhook.',
  name: 'Name given to the webhook.',
  description: 'Free text about the webhook; left out when none was given.',
  account: 'Name of the account that owns the webhook (its Local scope is this account’s events).',
  domainid: 'UUID of the webhook’s domain: the owner’s, or for a Domain-scoped one the domain it covers.',
  domain: 'Name of the webhook’s domain.',
  domainpath: 'Path of the webhook’s domain from ROOT, e.g. ROOT/sales/emea.',
  state: "'Enabled' (events are sent) or 'Disabled' (kept but silent).",
  payloadurl: 'The address events are POSTed to.',
  secretkey: 'The key the X-CS-Signature HMAC is made with; left out when deliveries are unsigned.',
  sslverification: 'true when the receiver’s TLS certificate and host name are checked.',
  scope:
    "Whose events are sent: 'Local' (the owner account’s), 'Domain' (the domain subtree’s) or 'Global' (all).",
  created: 'When the webhook was registered (ISO 8601 with offset).',
  project: 'Name of the project that owns the webhook, when one does (account is then left out).',
  projectid: 'UUID of the project that owns the webhook, when one does.',
};

export const webhookResponseFields: ResponseFields = {
  webhook,
  // listWebhookDeliveries is declared upstream with the webhook's fields; its items are deliveries.
  webhookdelivery: {
    ...webhook,
    id: 'UUID of the delivery try.',
    eventid: 'UUID of the event that was sent; left out for test deliveries.',
    eventtype: 'Type of the event sent, e.g. VM.CREATE; TEST.WEBHOOK for a test delivery.',
    webhookid: 'UUID of the webhook the try went to.',
    webhookname: 'Name of the webhook the try went to.',
    managementserverid: 'UUID of the management server that made the try.',
    managementservername: 'Name of the management server that made the try.',
    headers: 'The request headers sent, one "Name: value" per line (X-CS-Signature included).',
    payload: 'The request body sent: the event as JSON.',
    success: 'true when the receiver answered with a 2xx status.',
    response: 'The start of the receiver’s answer (HTTP status and body on failure), or why no answer came.',
    startdate: 'When the try began (ISO 8601 with offset).',
    enddate: 'When the try ended; minus startdate, the time it took.',
  },
};
