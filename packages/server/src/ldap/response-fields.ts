/** Response fields of the objects the LDAP capability presents, in our words. */
import type { FieldDescriptions, ResponseFields } from '../registry/response-fields.ts';

const configuration: FieldDescriptions = {
  id: 'UUID of the directory server configuration.',
  hostname: 'Host name or address of the directory server; shown to root administrators only.',
  port: 'TCP port of the directory server; shown to root administrators only.',
  domainid: 'UUID of the domain the server serves; left out for a global configuration.',
};

const ldapUser: FieldDescriptions = {
  username: "The directory user's login name (the ldap.username.attribute value).",
  firstname: "The directory user's first name (ldap.firstname.attribute).",
  lastname: "The directory user's last name (ldap.lastname.attribute).",
  email: "The directory user's e-mail address (ldap.email.attribute).",
  principal: 'Distinguished name of the directory entry: what the user binds as when signing in.',
  domain: 'The organisational units the entry sits in below ldap.basedn, innermost first.',
  conflictingusersource:
    "Where a Nimbostack user of the same name already signs in ('ldap' or 'native'); empty when there is none.",
};

const link: FieldDescriptions = {
  domainid: 'UUID of the domain the link is in.',
  ldapdomain: 'Distinguished name of the linked LDAP group or OU.',
  name: 'Distinguished name of the linked LDAP group or OU (the same as ldapdomain).',
  type: "Kind of the linked name: 'GROUP' or 'OU'.",
  accounttype: 'Type given to accounts made for members signing in: 0 user, 2 domain admin.',
  accountid: 'UUID of the linked account; left out when the whole domain is linked.',
};

/** ldapConfig's answer (deprecated upstream): the server and the global settings it set. */
const legacy: FieldDescriptions = {
  hostname: 'Host name or address of the directory server.',
  port: 'TCP port of the directory server, as text.',
  ssl: "'true' when servers are reached over LDAPS (ldap.truststore is set).",
  searchbase: 'ldap.basedn: where users are searched.',
  binddn: 'ldap.bind.principal: the DN searches bind as.',
  bindpass: 'Never returned: the bind password is not shown.',
  queryfilter: 'The query filter given, echoed; the filter used comes from the ldap.* settings.',
};

export const ldapResponseFields: ResponseFields = {
  ldapconfig: legacy,
  ldapremove: {
    ...legacy,
    hostname: 'Not returned: ldapRemove answers an empty object once the global servers are removed.',
    port: 'Not returned (see hostname).',
    ssl: 'Not returned (see hostname).',
    searchbase: 'Not returned (see hostname).',
    binddn: 'Not returned (see hostname).',
    queryfilter: 'Not returned (see hostname).',
  },
  LdapConfiguration: configuration,
  LdapAddConfiguration: configuration,
  LdapDeleteConfiguration: configuration,
  LdapUser: ldapUser,
  LinkDomainToLdap: link,
  linkAccountToLdap: link,
};
