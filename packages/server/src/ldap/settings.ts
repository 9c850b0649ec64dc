/**
 * The `ldap.*` settings, with upstream's names, defaults and domain scope, so that an operator's
 * CloudStack configuration and scripts carry over. A domain's value falls back to the global one.
 * Empty strings stand for upstream's unset (null) defaults.
 */
import type { App } from '../context.ts';
import { defineSetting, type SettingDef } from '../settings/settings.ts';

const ldap = { category: 'Advanced', scopes: ['domain' as const] };
const secure = { category: 'Secure', scopes: ['domain' as const], secret: true };

export const LDAP_READ_TIMEOUT = defineSetting({
  ...ldap,
  name: 'ldap.read.timeout',
  type: 'Long',
  defaultValue: 1000,
  min: 1,
  description:
    'Milliseconds to wait for the directory server to connect and to answer each request before giving up.',
});

export const LDAP_PAGE_SIZE = defineSetting({
  ...ldap,
  name: 'ldap.request.page.size',
  type: 'Integer',
  defaultValue: 1000,
  min: 1,
  description: 'Entries the directory server is asked for per page when users are listed (paged results).',
});

export const LDAP_PROVIDER = defineSetting<string>({
  ...ldap,
  name: 'ldap.provider',
  type: 'String',
  defaultValue: 'openldap',
  options: ['openldap', 'microsoftad'],
  description:
    'Kind of directory server: openldap, or microsoftad (Active Directory: disabled accounts are recognised and group membership may be nested).',
});

export const LDAP_NESTED_GROUPS = defineSetting({
  ...ldap,
  name: 'ldap.nested.groups.enable',
  type: 'Boolean',
  defaultValue: true,
  description:
    'With ldap.provider microsoftad: members of groups inside a linked group count as its members too.',
});

export const LDAP_MEMBEROF_ATTRIBUTE = defineSetting<string>({
  ...ldap,
  name: 'ldap.user.memberof.attribute',
  type: 'String',
  defaultValue: 'memberof',
  description:
    "Attribute of a user entry that lists the groups it belongs to (OpenLDAP's memberof overlay provides it).",
});

export const LDAP_BASEDN = defineSetting<string>({
  ...ldap,
  name: 'ldap.basedn',
  type: 'String',
  defaultValue: '',
  description:
    'Distinguished name under which users are searched, such as dc=example,dc=org; required before users can be listed, imported or sign in.',
});

export const LDAP_BIND_PRINCIPAL = defineSetting<string>({
  ...secure,
  name: 'ldap.bind.principal',
  type: 'String',
  defaultValue: '',
  description:
    'Distinguished name Nimbostack binds as to search the directory; empty binds anonymously. Stored encrypted.',
});

export const LDAP_BIND_PASSWORD = defineSetting<string>({
  ...secure,
  name: 'ldap.bind.password',
  type: 'String',
  defaultValue: '',
  description: 'Password of ldap.bind.principal. Stored encrypted and never shown.',
});

export const LDAP_EMAIL_ATTRIBUTE = defineSetting<string>({
  ...ldap,
  name: 'ldap.email.attribute',
  type: 'String',
  defaultValue: 'mail',
  description: "Attribute holding a user's e-mail address.",
});

export const LDAP_FIRSTNAME_ATTRIBUTE = defineSetting<string>({
  ...ldap,
  name: 'ldap.firstname.attribute',
  type: 'String',
  defaultValue: 'givenname',
  description: "Attribute holding a user's first name.",
});

export const LDAP_LASTNAME_ATTRIBUTE = defineSetting<string>({
  ...ldap,
  name: 'ldap.lastname.attribute',
  type: 'String',
  defaultValue: 'sn',
  description: "Attribute holding a user's last name.",
});

export const LDAP_USERNAME_ATTRIBUTE = defineSetting<string>({
  ...ldap,
  name: 'ldap.username.attribute',
  type: 'String',
  defaultValue: 'uid',
  description:
    'Attribute matched against the login name (uid on OpenLDAP, sAMAccountName or userPrincipalName on Active Directory).',
});

export const LDAP_USER_OBJECT = defineSetting<string>({
  ...ldap,
  name: 'ldap.user.object',
  type: 'String',
  defaultValue: 'inetOrgPerson',
  description: 'Object class of user entries (user on Active Directory).',
});

export const LDAP_SEARCH_GROUP_PRINCIPLE = defineSetting<string>({
  ...ldap,
  name: 'ldap.search.group.principle',
  type: 'String',
  defaultValue: '',
  description:
    'Distinguished name of a group users must belong to, to be listed, imported or to sign in; empty admits every user.',
});

export const LDAP_GROUP_OBJECT = defineSetting<string>({
  ...ldap,
  name: 'ldap.group.object',
  type: 'String',
  defaultValue: 'groupOfUniqueNames',
  description: 'Object class of group entries, used when users are imported from a named group.',
});

export const LDAP_GROUP_MEMBER_ATTRIBUTE = defineSetting<string>({
  ...ldap,
  name: 'ldap.group.user.uniquemember',
  type: 'String',
  defaultValue: 'uniquemember',
  description: 'Attribute of a group entry listing the distinguished names of its members.',
});

export const LDAP_TRUSTSTORE = defineSetting<string>({
  ...ldap,
  name: 'ldap.truststore',
  type: 'String',
  defaultValue: '',
  description:
    'Path on the management server of a PEM file of the certificate authorities to trust; when set, directory servers are reached over LDAPS (TLS) and their certificate is verified.',
});

export const LDAP_TRUSTSTORE_PASSWORD = defineSetting<string>({
  ...secure,
  name: 'ldap.truststore.password',
  type: 'String',
  defaultValue: '',
  description:
    'Accepted for compatibility (upstream protects its Java truststore with it); a PEM file has no password. Stored encrypted.',
});

/** A setting's value as it applies to a domain (null: global), secrets opened. */
export function ldapSetting<T extends string | number | boolean>(
  app: App,
  def: SettingDef<T>,
  domainId: number | null,
): T {
  const value = domainId === null ? app.settings.get(def) : app.settings.at(def, 'domain', domainId);
  if (def.secret && typeof value === 'string' && value !== '') return app.secrets.decrypt(value) as T;
  return value;
}
