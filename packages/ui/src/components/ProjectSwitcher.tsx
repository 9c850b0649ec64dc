/**
 * The project switcher in the header, as CloudStack's UI has it: "Default view" is the caller's
 * own account; choosing a project makes every call of the pages carry its projectid (api.ts), so
 * lists show the project's resources and what is created belongs to the project.
 */
import { ProjectOutlined } from '@ant-design/icons';
import { Select } from 'antd';
import { useList } from '../hooks.ts';
import { useSession } from '../session.tsx';

export function ProjectSwitcher(props: { value?: string; onChange(id: string | undefined): void }) {
  const session = useSession();
  // Admins choose among every project they administer, others among those they are members of.
  const projects = useList('listProjects', 'project', session.isAdmin ? { listall: true } : {});
  if (!session.can('listProjects')) return null;
  return (
    <Select
      aria-label="Project"
      data-testid="project-switcher"
      suffixIcon={<ProjectOutlined />}
      style={{ minWidth: 180 }}
      value={props.value ?? ''}
      onChange={(v: string) => props.onChange(v || undefined)}
      options={[
        { value: '', label: 'Default view' },
        ...projects
          .filter((p) => p.state !== 'Disabled')
          .map((p) => ({
            value: String(p.id),
            label: `${p.name}${p.state === 'Suspended' ? ' (suspended)' : ''}`,
          })),
      ]}
    />
  );
}
