/** Row types of the project tables (migration 0025); part of the one Database schema. */
import type { Generated, Selectable } from 'kysely';

/** A project (migration 0025): it owns its resources through its account of type 5. */
export interface ProjectTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  display_text: string;
  domain_id: number;
  project_account_id: number;
  /** Active, Suspended, or Disabled while it is being deleted. */
  state: string;
  created: number;
  removed: number | null;
}
export type ProjectRow = Selectable<ProjectTable>;

/** A member of a project: a whole account (user_id null) or one user of it. */
export interface ProjectMemberTable {
  id: Generated<number>;
  project_id: number;
  account_id: number;
  user_id: number | null;
  /** Admin or Regular. */
  role: string;
  project_role_id: number | null;
  created: number;
}
export type ProjectMemberRow = Selectable<ProjectMemberTable>;

/** An invitation to join a project (project.invite.required). */
export interface ProjectInvitationTable {
  id: Generated<number>;
  uuid: string;
  project_id: number;
  domain_id: number;
  account_id: number | null;
  user_id: number | null;
  email: string | null;
  token: string | null;
  role: string;
  project_role_id: number | null;
  /** Pending, Completed, Declined or Expired. */
  state: string;
  created: number;
}
export type ProjectInvitationRow = Selectable<ProjectInvitationTable>;

/** A role defined inside one project, for its members. */
export interface ProjectRoleTable {
  id: Generated<number>;
  uuid: string;
  project_id: number;
  name: string;
  description: string | null;
  created: number;
}
export type ProjectRoleRow = Selectable<ProjectRoleTable>;

/** One ordered rule of a project role: an API name or wildcard, allow or deny. */
export interface ProjectRolePermissionTable {
  id: Generated<number>;
  uuid: string;
  project_id: number;
  project_role_id: number;
  rule: string;
  permission: string;
  description: string | null;
  sort_order: number;
}
export type ProjectRolePermissionRow = Selectable<ProjectRolePermissionTable>;
