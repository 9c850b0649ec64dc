/**
 * The GUI theme commands of CloudStack 4.19+ (createGuiTheme, listGuiThemes, updateGuiTheme,
 * removeGuiTheme); the rules are in themes.ts. Answers use upstream's object name `guiThemes`,
 * which its UI reads (`listguithemesresponse.guiThemes`).
 */
import { defineCommand, success } from '../registry/command.ts';
import { pageOf } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import { createTheme, listThemes, presentTheme, removeTheme, updateTheme } from './themes.ts';

const OBJECT = 'guiThemes';

/** What createGuiTheme and updateGuiTheme share; upstream's lengths. */
const themeFields = {
  description: p.string({
    length: 4096,
    description: 'Free text about the theme; blank clears it on update.',
  }),
  css: p.string({
    length: 65535,
    description:
      'Style sheet the UI adds to its pages where the theme applies (inserted as text, never as HTML; see docs/ui.md).',
  }),
  jsonconfiguration: p.string({
    length: 65535,
    description:
      'JSON object with upstream’s UI settings: appTitle, footer, loginFooter, logo, minilogo, banner, favicon, docBase, apidocs, error, theme (colour variables such as @primary-color), plugins, userCard. Other keys are dropped; addresses must be http(s), paths on this server or data:image URIs.',
  }),
  commonnames: p.string({
    length: 65535,
    description:
      'Comma-separated host names the portal is reached by for which the theme applies; * is a wildcard (*.acme.com).',
  }),
  domainids: p.string({
    length: 65535,
    description: 'Comma-separated UUIDs of the domains whose users get the theme; makes the theme private.',
  }),
  accountids: p.string({
    length: 65535,
    description: 'Comma-separated UUIDs of the accounts whose users get the theme; makes the theme private.',
  }),
  ispublic: p.boolean({
    description:
      'Whether the theme is shown before sign-in to browsers reaching a matching common name (default true); always false with domainids or accountids.',
  }),
  recursivedomains: p.boolean({
    description: 'Whether the theme also applies to the subdomains of domainids (default false).',
  }),
};

export const createGuiTheme = defineCommand({
  name: 'createGuiTheme',
  description:
    'Creates a GUI theme (title, logos, colours, CSS) for common names, domains or accounts; with none of them it is the one default theme.',
  objectName: OBJECT,
  params: {
    name: p.string({ required: true, length: 2048, description: 'Name of the theme.' }),
    ...themeFields,
  },
  async handler(ctx, params) {
    return presentTheme(ctx.app, await createTheme(ctx, params));
  },
});

export const updateGuiTheme = defineCommand({
  name: 'updateGuiTheme',
  description:
    'Changes a GUI theme; a common name, domain or account list given replaces the stored one (an empty value clears it).',
  objectName: OBJECT,
  params: {
    id: p.uuid({ required: true, description: 'UUID of the theme.' }),
    name: p.string({ length: 2048, description: 'New name (not blank).' }),
    ...themeFields,
  },
  async handler(ctx, params) {
    await updateTheme(ctx, params.id, params);
    return presentTheme(ctx.app, params.id);
  },
});

export const removeGuiTheme = defineCommand({
  name: 'removeGuiTheme',
  description: 'Removes a GUI theme: it no longer applies; listGuiThemes showremoved=true still shows it.',
  // Upstream answers a SuccessResponse, whatever its annotation says.
  responseShape: 'inline',
  params: { id: p.uuid({ required: true, description: 'UUID of the theme.' }) },
  async handler(ctx, params) {
    await removeTheme(ctx, params.id);
    return success();
  },
});

export const listGuiThemes = defineCommand({
  name: 'listGuiThemes',
  description:
    'Lists GUI themes, newest first. Answered before sign-in too: then only commonname (public themes) and listonlydefaulttheme count.',
  objectName: OBJECT,
  anonymous: true,
  params: {
    ...listParams,
    id: p.uuid({ description: 'Only the theme with this UUID.' }),
    name: p.string({ description: 'Only themes with exactly this name.' }),
    commonname: p.string({
      description: 'Only themes for this host name (their common names, wildcards included, match it).',
    }),
    domainid: p.uuid({
      description: 'Only themes for this domain: named for it, or for an ancestor with recursivedomains.',
    }),
    accountid: p.uuid({ description: 'Only themes for this account.' }),
    listall: p.boolean({
      description: 'Every theme the caller may see, removed ones and showpublic ignored.',
    }),
    showremoved: p.boolean({ description: 'Also list removed themes (not with listall).' }),
    showpublic: p.boolean({ description: 'true: only public themes; false: only private ones.' }),
    listonlydefaulttheme: p.boolean({
      description: 'Only the default theme (the one with no common name, domain or account).',
    }),
  },
  async handler(ctx, params) {
    return listThemes(ctx, params, pageOf(ctx.app, params));
  },
});

export const guiThemeCommands = [createGuiTheme, updateGuiTheme, removeGuiTheme, listGuiThemes];
