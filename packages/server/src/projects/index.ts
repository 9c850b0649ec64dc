/** The projects capability's commands (projects, members and invitations, project roles). */

import { listProjects } from './list.ts';
import { memberCommands } from './members.ts';
import { activateProject, createProject, deleteProject, suspendProject, updateProject } from './projects.ts';
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
