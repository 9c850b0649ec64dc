/** The projects settings (listCapabilities shows two of them). */
import { defineSetting } from '../settings/settings.ts';

export const ALLOW_USER_CREATE_PROJECTS = defineSetting({
  name: 'allow.user.create.projects',
  category: 'Project Defaults',
  type: 'Boolean',
  defaultValue: true,
  description: 'Whether accounts of the User type may create projects (admins always may).',
});

export const PROJECT_INVITE_REQUIRED = defineSetting({
  name: 'project.invite.required',
  category: 'Project Defaults',
  type: 'Boolean',
  defaultValue: false,
  description:
    'When true, addAccountToProject and addUserToProject invite instead of adding; the account or user joins on accepting.',
});

export const PROJECT_INVITE_TIMEOUT = defineSetting({
  name: 'project.invite.timeout',
  category: 'Project Defaults',
  type: 'Long',
  defaultValue: 86400,
  min: 1,
  description:
    'Seconds a project invitation may stay pending before it expires and can no longer be accepted.',
});
