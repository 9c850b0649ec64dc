/** Response fields of the objects the identity and access capability presents, in our words. */
import type { FieldDescriptions, ResponseFields } from '../registry/response-fields.ts';

const limitKinds = [
  'vm',
  'ip',
  'volume',
  'snapshot',
  'template',
  'network',
  'cpu',
  'memory',
  'primarystorage',
  'secondarystorage',
  'project',
  'vpc',
  'backup',
  'backupstorage',
  'bucket',
  'objectstorage',
  'gpu',
] as const;

/** The per-resource limit, total and available figures upstream puts on accounts and domains. */
function limitFigures(owner: string): FieldDescriptions {
  const out: FieldDescriptions = {};
  const text = `Not returned by Nimbostack on ${owner}s: ask listResourceLimits and updateResourceCount.`;
  for (const kind of limitKinds)
    for (const suffix of ['limit', 'total', 'available']) out[`${kind}${suffix}`] = text;
  return out;
}

const roleType = "Kind of role: 'Admin', 'ResourceAdmin', 'DomainAdmin' or 'User'.";
const accountType = 'Account type as a number: 0 user, 1 root admin, 2 domain admin, 3 resource admin.';

const ownerOfLimit: FieldDescriptions = {
  account: 'Name of the account the entry is for; left out for a domain’s entry.',
  domainid: 'UUID of the domain the entry is for (the account’s domain for an account).',
  domain: 'Name of the domain the entry is for.',
  domainpath: 'Path of the domain the entry is for, from ROOT.',
  resourcetype:
    'Resource type number as a string: 0 instances, 1 public IPs, 2 volumes, 3 snapshots, 4 templates, 5 projects, 6 networks, 7 VPCs, 8 CPU cores, 9 memory, 10 primary storage, 11 secondary storage.',
  resourcetypename: 'Resource type name, e.g. user_vm, public_ip, cpu, memory, primary_storage.',
  tag: 'Not returned by Nimbostack: limits are not split by host or storage tag.',
};

export const iamResponseFields: ResponseFields = {
  providers: {
    name: "Name of a two-factor authentication provider: 'totp' (authenticator app) or 'staticpin'.",
    description: 'What the provider asks the user for, in a few words.',
  },
  setup2fa: {
    id: 'UUID of the user whose two-factor authentication was set up or removed.',
    username: 'Login name of that user.',
    accountid: 'UUID of the account of that user.',
    secretcode:
      'Secret to enter in the authenticator app (or the static PIN); shown only in this answer, and left out when removing.',
  },
  account: {
    ...limitFigures('account'),
    id: 'UUID of the account.',
    name: 'Name of the account, unique within its domain.',
    accounttype: accountType,
    roleid: 'UUID of the role that decides which commands the account’s users may call.',
    rolename: 'Name of the account’s role.',
    roletype: roleType,
    domainid: 'UUID of the account’s domain.',
    domain: 'Name of the account’s domain.',
    domainpath: 'Path of the account’s domain, from ROOT.',
    state:
      "'enabled', 'disabled' or 'locked'; in the last two its users can neither sign in nor call the API, while its instances keep running.",
    networkdomain: 'DNS domain given to the account’s new networks; left out when not set.',
    isdefault: 'true for the built-in admin account of the root domain, which cannot be deleted.',
    iscleanuprequired: 'Always false: deleting an account finishes its clean-up at once.',
    created: 'When the account was created (ISO 8601 with offset).',
    groups: 'Always an empty list: accounts are not put in groups.',
    user: 'The users of the account, each a user object.',
    accountdetails: 'Not returned by Nimbostack: account details are not kept.',
    apikeyaccess: 'Not returned by Nimbostack on accounts: see each user’s apikey.',
    defaultzoneid: 'Not returned by Nimbostack: accounts have no default zone.',
    receivedbytes: 'Not returned by Nimbostack: traffic is not metered per account.',
    sentbytes: 'Not returned by Nimbostack: traffic is not metered per account.',
    taggedresources: 'Not returned by Nimbostack: limits are not split by tag.',
    vmrunning: 'Not returned by Nimbostack: list the account’s instances by state.',
    vmstopped: 'Not returned by Nimbostack: list the account’s instances by state.',
  },
  domain: {
    ...limitFigures('domain'),
    id: 'UUID of the domain.',
    name: 'Name of the domain, unique among its siblings (the top one is ROOT).',
    level: 'Depth of the domain in the tree: 0 for ROOT, 1 for its children and so on.',
    parentdomainid: 'UUID of the parent domain; left out for ROOT.',
    parentdomainname: 'Name of the parent domain; left out for ROOT.',
    haschild: 'true when the domain has subdomains.',
    path: 'Full path of the domain, e.g. ROOT/sales/emea.',
    state: "State of the domain: 'Active'.",
    networkdomain: 'DNS domain given to new networks in the domain; left out when not set.',
    created: 'When the domain was created (ISO 8601 with offset).',
    domaindetails: 'Not returned by Nimbostack: domain details are not kept.',
    taggedresources: 'Not returned by Nimbostack: limits are not split by tag.',
  },
  user: {
    id: 'UUID of the user.',
    username: 'Login name of the user, unique in its domain.',
    firstname: 'First name of the user.',
    lastname: 'Last name of the user.',
    email: 'E-mail address of the user; left out when none.',
    created: 'When the user was created (ISO 8601 with offset).',
    state:
      "'enabled', 'disabled' (by an admin, or after too many failed sign-ins in a row) or 'locked' (by an admin).",
    account: 'Name of the account the user belongs to.',
    accountid: 'UUID of the account the user belongs to.',
    accounttype: accountType,
    usersource:
      "Where the user's password is checked: 'native' (by Nimbostack) or 'ldap' (by binding to the directory as the user).",
    roleid: 'UUID of the account’s role, which the user acts with.',
    rolename: 'Name of the account’s role.',
    roletype: roleType,
    domainid: 'UUID of the domain of the user’s account.',
    domain: 'Name of the domain of the user’s account.',
    timezone: 'Time zone the user chose (e.g. Europe/Paris); left out when none.',
    apikey: 'The user’s API key, used to sign requests; left out when none has been issued.',
    secretkey:
      'Not returned by Nimbostack on users: getUserKeys and registerUserKeys hand out the secret key.',
    iscallerchilddomain: 'true when the user is in a subdomain of the caller’s domain (not in it).',
    isdefault: 'true for the built-in admin user, which cannot be deleted.',
    is2faenabled: 'true when the user has set up two-factor authentication.',
    is2famandated: 'true when the user’s domain requires two-factor authentication.',
    apikeyaccess: 'Not returned by Nimbostack on users: API key access is not restricted per user.',
  },
  userkeys: {
    apikey: 'The user’s API key: it names the user in signed requests.',
    secretkey: 'The user’s secret key, used to sign requests; keep it private.',
    apikeyaccess: 'Not returned by Nimbostack: API key access is not restricted per user.',
  },
  role: {
    id: 'UUID of the role.',
    name: 'Name of the role.',
    type: roleType,
    description: 'Free-form description of the role; left out when none.',
    isdefault: 'true for the built-in roles, which cannot be changed or deleted.',
    ispublic:
      'true when callers other than root admins may see the role (and give it to accounts); false when only root admins may.',
    state: "Always 'ENABLED': roles cannot be disabled.",
  },
  rolepermission: {
    id: 'UUID of the permission rule.',
    roleid: 'UUID of the role the rule belongs to.',
    rolename: 'Name of the role the rule belongs to.',
    rule: 'Command name the rule matches; * is a wildcard, e.g. list* or *.',
    permission: "'allow' or 'deny'; the first rule that matches a command decides.",
    description: 'Free-form description of the rule; left out when none.',
  },
  resourcelimit: {
    ...ownerOfLimit,
    max: 'Most of this resource the account or domain may hold; -1 means unlimited. CPU in cores, memory in MiB, storage in GiB.',
  },
  resourcecount: {
    ...ownerOfLimit,
    resourcecount:
      'How much of this resource the account or domain now holds, recounted: CPU in cores, memory in MiB, storage in GiB, else a number of items.',
  },
  oauthprovider: {
    clientid: 'Client id the provider issued (no provider is ever listed: Nimbostack has no OAuth sign-in).',
    enabled: 'Whether sign-in through the provider is on (no provider is ever listed).',
    redirecturi: 'Where the provider sends the browser back after sign-in (no provider is ever listed).',
    secretkey: 'Client secret of the provider (no provider is ever listed).',
  },
};
