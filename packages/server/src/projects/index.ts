/** The projects capability's commands (projects, members and invitations, project roles). */
import { memberCommands } from './members.ts';
import {
  activateProject,
  createProject,
  deleteProject,
  listProjects,
  suspendProject,
  updateProject,
} from './projects.ts';
import { projectRoleCommands } from './roles.ts';

export const projectCommands = [
  createProject,
  updateProject,
  deleteProject,
  activateProject,
  suspendProject,
  listProjects,
  ...memberCommands,
  ...projectRoleCommands,
];
