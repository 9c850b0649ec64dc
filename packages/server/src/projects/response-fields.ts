/** Response fields of the objects the projects capability presents, in our words. */
import type { FieldDescriptions, ResponseFields } from '../registry/response-fields.ts';

/** limit/total/available per resource type, as upstream names them on a project. */
const KINDS: [string, string][] = [
  ['vm', 'VMs'],
  ['ip', 'public IP addresses'],
  ['volume', 'volumes'],
  ['snapshot', 'volume snapshots'],
  ['template', 'templates'],
  ['network', 'guest networks'],
  ['vpc', 'VPCs'],
  ['cpu', 'CPU cores'],
  ['memory', 'memory (MiB)'],
  ['primarystorage', 'primary storage (GiB)'],
  ['secondarystorage', 'secondary storage (GiB)'],
];

/** Kinds Nimbostack does not limit; upstream's fields for them are left out. */
const UNLIMITED_KINDS = ['backup', 'backupstorage', 'bucket', 'objectstorage', 'gpu'];

function figures(): FieldDescriptions {
  const out: FieldDescriptions = {};
  for (const [kind, what] of KINDS) {
    out[`${kind}limit`] =
      `How many ${what} the project may hold (its limit, max.project.* by default), as a string; 'Unlimited' for -1.`;
    out[`${kind}total`] = `How many ${what} the project holds now (its account's resource count).`;
    out[`${kind}available`] =
      `How many more ${what} the project may add, as a string; 'Unlimited' without a limit.`;
  }
  for (const kind of UNLIMITED_KINDS)
    for (const suffix of ['limit', 'total', 'available'])
      out[`${kind}${suffix}`] = `Left out: Nimbostack has no ${kind} resources to limit.`;
  return out;
}

const project: FieldDescriptions = {
  ...figures(),
  id: "The project's UUID: what commands take as projectid.",
  name: "The project's name, unique among the projects of its domain.",
  displaytext: "The project's free-text description.",
  domainid: 'UUID of the domain the project (and its account) belongs to.',
  domain: 'Name of the domain the project belongs to.',
  owner:
    "The project's Admin members: each with account and accountid, and user and userid for a user member.",
  projectaccountname: "Name of the account that owns the project's resources (PrjAcct-<name>-<domain id>).",
  state:
    'Active (resources may be added), Suspended (its VMs stopped, nothing may be added) or Disabled (being deleted).',
  vmrunning: 'How many of its VMs are Running.',
  vmstopped: 'How many of its VMs are Stopped.',
  taggedresources: 'Left out: Nimbostack does not count tagged resources per project.',
  created: 'When the project was created (ISO 8601 with offset).',
};

export const projectResponseFields: ResponseFields = {
  project,
  // Upstream declares listProjectAccounts with the project's fields but answers with the member:
  // we answer with the member too, and describe the declared fields as what they would mean.
  projectaccount: {
    ...project,
    id: 'Left out: a membership has no id of its own; see accountid and userid.',
    name: 'Left out: see account (the member account) and project.',
    displaytext: 'Left out for a membership.',
    domainid: "UUID of the member account's domain.",
    domain: "Name of the member account's domain.",
    owner: 'Left out for a membership; role says whether the member is an Admin.',
    projectaccountname: 'Left out for a membership.',
    state: 'Left out for a membership.',
    created: 'Left out for a membership.',
  },
  projectinvitation: {
    id: "The invitation's UUID (deleteProjectInvitation takes it).",
    projectid: 'UUID of the project the invitation is to.',
    project: 'Name of the project the invitation is to.',
    account: 'Name of the invited account.',
    userid: 'UUID of the invited user, for an invitation of one user.',
    domainid: "UUID of the project's domain.",
    domain: "Name of the project's domain.",
    domainpath: "Path of the project's domain from ROOT.",
    email: 'Left out: invitations by e-mail are not made (no mail server).',
    state:
      'Pending, Completed (accepted), Declined, or Expired (left pending longer than project.invite.timeout).',
  },
  projectrole: {
    id: "The project role's UUID (projectroleid elsewhere).",
    name: 'Name of the role, unique within its project.',
    description: 'Free text kept with the role.',
    projectid: 'UUID of the project the role belongs to.',
    ispublic: 'Always true: a project role is visible to every member of its project.',
  },
  projectrolepermission: {
    id: "The rule's UUID.",
    projectid: 'UUID of the project.',
    projectroleid: 'UUID of the project role the rule belongs to.',
    projectrolename: 'Name of that project role.',
    rule: 'API command name or * pattern the rule matches.',
    permission: "'allow' or 'deny': what the first matching rule decides.",
    description: 'Free text kept with the rule (empty when none).',
  },
};
