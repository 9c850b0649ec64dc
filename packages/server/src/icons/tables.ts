/** The resource icons' table (migration 0029), kept beside the capability; db/schema.ts lists it. */
import type { Generated, Selectable } from 'kysely';

/** The icon of one resource (uploadResourceIcon): one per resource type and uuid. */
export interface ResourceIconTable {
  id: Generated<number>;
  uuid: string;
  /** Canonical resource type, as tags spell it: UserVm, Template, Zone, Domain … */
  resource_type: string;
  resource_uuid: string;
  /** The image as uploaded: base64 of a PNG, JPEG, GIF, WebP or SVG file. */
  icon: string;
  created: number;
  updated: number;
}

export type ResourceIconRow = Selectable<ResourceIconTable>;
