import { Input, Space, Tag, Typography } from 'antd';
import { useState } from 'react';
import type { Row } from '../api.ts';
import { ResourceTable } from '../components/ResourceTable.tsx';
import { useActions } from '../jobs.tsx';
import { useSession } from '../session.tsx';

/** The global configuration editor: every setting is edited in place and saved on Enter. */
export function Settings() {
  const session = useSession();
  const { run } = useActions();
  const [reload, setReload] = useState(0);
  const [editing, setEditing] = useState<Record<string, string>>({});

  const save = async (c: Row) => {
    const value = editing[c.name];
    if (value === undefined || value === String(c.value ?? '')) return;
    if (await run(`Set ${c.name}`, 'updateConfiguration', { name: c.name, value })) {
      setEditing(({ [c.name]: _, ...rest }) => rest);
      setReload((n) => n + 1);
    }
  };

  return (
    <div>
      <Typography.Title level={3}>Global settings</Typography.Title>
      <ResourceTable
        title="Settings"
        command="listConfigurations"
        listKey="configuration"
        rowKey="name"
        exportName="settings"
        pageSize={50}
        reload={reload}
        columns={[
          { key: 'name', title: 'Name' },
          { key: 'category', title: 'Category' },
          {
            key: 'value',
            title: 'Value',
            render: (c) =>
              session.can('updateConfiguration') ? (
                <Space.Compact>
                  <Input
                    aria-label={`Value of ${c.name}`}
                    style={{ width: 240 }}
                    value={editing[c.name] ?? String(c.value ?? '')}
                    onChange={(e) => setEditing((all) => ({ ...all, [c.name]: e.target.value }))}
                    onPressEnter={() => save(c)}
                    onBlur={() => save(c)}
                  />
                </Space.Compact>
              ) : (
                String(c.value ?? '')
              ),
          },
          { key: 'scope', title: 'Scope', hidden: true },
          {
            key: 'isdynamic',
            title: 'Applies',
            render: (c) => (c.isdynamic ? <Tag color="green">at once</Tag> : <Tag>after restart</Tag>),
          },
          { key: 'description', title: 'Description' },
        ]}
      />
    </div>
  );
}
