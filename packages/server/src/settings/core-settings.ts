/** Settings of the API layer itself (paging, throttling, sessions, version exposure). */
import { defineSetting } from './settings.ts';

export const DEFAULT_PAGE_SIZE = defineSetting({
  name: 'default.page.size',
  category: 'Advanced',
  type: 'Integer',
  defaultValue: 500,
  min: 1,
  description: 'Page size of list commands when none is given; also the largest page a caller may ask for.',
});

export const API_THROTTLING_ENABLED = defineSetting({
  name: 'api.throttling.enabled',
  category: 'Advanced',
  type: 'Boolean',
  defaultValue: false,
  description: 'Limit the number of API calls each account may make per interval.',
});

export const API_THROTTLING_INTERVAL = defineSetting({
  name: 'api.throttling.interval',
  category: 'Advanced',
  type: 'Integer',
  defaultValue: 1,
  min: 1,
  description: 'Length of the throttling interval, in seconds.',
});

export const API_THROTTLING_MAX = defineSetting({
  name: 'api.throttling.max',
  category: 'Advanced',
  type: 'Integer',
  defaultValue: 25,
  min: 1,
  description: 'Number of API calls an account may make in one throttling interval.',
});

export const API_THROTTLING_CACHESIZE = defineSetting({
  name: 'api.throttling.cachesize',
  category: 'Advanced',
  type: 'Integer',
  defaultValue: 50000,
  min: 1,
  description:
    'Number of accounts whose call counts a SQLite server keeps at once; with PostgreSQL or MariaDB the database counts every account for the whole cloud.',
});

export const SESSION_TIMEOUT = defineSetting({
  name: 'session.timeout',
  category: 'Advanced',
  type: 'Integer',
  defaultValue: 1800,
  min: 60,
  description: 'Seconds of inactivity after which a login session ends.',
});

export const ENFORCE_POST = defineSetting({
  name: 'enforce.post.requests.and.timestamps',
  category: 'Advanced',
  type: 'Boolean',
  defaultValue: false,
  description: 'Require POST for state-changing calls and signature version 3 with expires on signed calls.',
});

export const EXPOSE_VERSION_CAPABILITIES = defineSetting({
  name: 'expose.cloudstack.version.api.list.capabilities',
  category: 'Advanced',
  type: 'Boolean',
  defaultValue: true,
  description: 'Report the API version in listCapabilities.',
});

export const EXPOSE_VERSION_XML = defineSetting({
  name: 'expose.cloudstack.version.api.xml.response',
  category: 'Advanced',
  type: 'Boolean',
  defaultValue: true,
  description: 'Add the API version as an attribute of XML responses to authenticated callers.',
});

export const API_LIST_CACHE_SIZE = defineSetting({
  name: 'api.list.cache.size',
  category: 'Advanced',
  type: 'Integer',
  defaultValue: 64,
  min: 0,
  description:
    'MiB of rendered listVirtualMachines answers a management server keeps, each served again only while nothing in the database or the settings has changed since it was computed; 0 keeps none. MySQL/MariaDB keep none.',
});

export const ALLOW_USER_VIEW_DESTROYED_VM = defineSetting({
  name: 'allow.user.view.destroyed.vm',
  category: 'Advanced',
  type: 'Boolean',
  defaultValue: false,
  scopes: ['account'],
  description: 'Let users see their destroyed instances.',
});

export const ALLOW_USER_EXPUNGE_RECOVER_VM = defineSetting({
  name: 'allow.user.expunge.recover.vm',
  category: 'Advanced',
  type: 'Boolean',
  defaultValue: false,
  scopes: ['account'],
  description: 'Let users expunge and recover their destroyed instances.',
});
