/** Response fields of GUI themes, in our words. */
import type { ResponseFields } from '../registry/response-fields.ts';

const theme = {
  id: 'UUID of the theme.',
  name: 'Name of the theme.',
  description: 'Free text about the theme; left out when none.',
  css: 'The style sheet the UI adds where the theme applies; left out when none.',
  jsonconfiguration:
    'The theme’s UI settings as a JSON object (title, logos, colours...), with only the keys upstream’s UI knows.',
  commonnames: 'Comma-separated host names (* as wildcard) the theme applies to; left out when none.',
  domainids: 'Comma-separated UUIDs of the domains the theme applies to; left out when none.',
  accountids: 'Comma-separated UUIDs of the accounts the theme applies to; left out when none.',
  ispublic: 'true when the theme is shown before sign-in to browsers reaching one of its common names.',
  recursivedomains: 'true when the theme also applies to the subdomains of its domains.',
  created: 'When the theme was created (ISO 8601 with offset).',
  removed: 'When the theme was removed; only on removed themes (showremoved).',
  jobid: 'Not returned: theme commands run synchronously.',
  jobstatus: 'Not returned: theme commands run synchronously.',
};

export const guiThemeResponseFields: ResponseFields = {
  guiThemes: theme,
  // removeGuiTheme's catalog entry lists the theme's fields under this name, though it answers success.
  guitheme: theme,
};
