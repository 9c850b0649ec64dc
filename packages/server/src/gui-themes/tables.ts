/** The GUI theme tables (migration 0028), kept beside the capability; db/schema.ts lists them. */
import type { Generated, Selectable } from 'kysely';

export interface GuiThemeTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  description: string | null;
  /** Style sheet the UI adds to its pages (sanitised when applied, docs/ui.md). */
  css: string | null;
  /** The JSON configuration, as stored after validation: only upstream's known keys. */
  json_configuration: string | null;
  is_public: number;
  recursive_domains: number;
  created: number;
  removed: number | null;
}
export type GuiThemeRow = Selectable<GuiThemeTable>;

/** Whom a theme is for: one common name, domain UUID or account UUID per row. */
export interface GuiThemeScopeTable {
  id: Generated<number>;
  theme_id: number;
  type: 'commonName' | 'domain' | 'account';
  value: string;
}
