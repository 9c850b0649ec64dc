import { Tabs, Tag, Typography } from 'antd';
import { useState } from 'react';
import { ActionButton, date } from '../components/common.tsx';
import { ResourceTable } from '../components/ResourceTable.tsx';
import { useActions } from '../jobs.tsx';
import { usePath } from '../router.tsx';
import { useSession } from '../session.tsx';

const LEVEL_COLOR: Record<string, string> = { INFO: 'blue', WARN: 'orange', ERROR: 'red' };

export function Events() {
  const session = useSession();
  const { query } = usePath();
  const { run } = useActions();
  const [reload, setReload] = useState(0);
  const [tab, setTab] = useState(query.get('tab') ?? 'events');
  return (
    <div>
      <Typography.Title level={3}>Events & alerts</Typography.Title>
      <Tabs
        activeKey={tab}
        onChange={setTab}
        items={[
          {
            key: 'events',
            label: 'Events',
            children: (
              <ResourceTable
                title="Events"
                command="listEvents"
                listKey="event"
                params={{ listall: true }}
                reload={reload}
                filters={[
                  {
                    param: 'level',
                    label: 'Level',
                    options: ['INFO', 'WARN', 'ERROR'].map((l) => ({ value: l, label: l })),
                  },
                  {
                    param: 'duration',
                    label: 'Within',
                    options: [
                      { value: '60', label: 'last hour' },
                      { value: '1440', label: 'last day' },
                    ],
                  },
                ]}
                columns={[
                  { key: 'created', title: 'Time', value: (r) => date(r.created) },
                  {
                    key: 'level',
                    title: 'Level',
                    render: (r) => <Tag color={LEVEL_COLOR[r.level]}>{r.level}</Tag>,
                  },
                  { key: 'type', title: 'Type' },
                  { key: 'state', title: 'State' },
                  { key: 'description', title: 'Description' },
                  { key: 'username', title: 'User' },
                  { key: 'account', title: 'Account', hidden: !session.isAdmin },
                  { key: 'domain', title: 'Domain', hidden: true },
                ]}
              />
            ),
          },
          ...(session.can('listAlerts')
            ? [
                {
                  key: 'alerts',
                  label: 'Alerts',
                  children: (
                    <ResourceTable
                      title="Alerts"
                      command="listAlerts"
                      listKey="alert"
                      reload={reload}
                      columns={[
                        { key: 'sent', title: 'Time', value: (r) => date(r.sent) },
                        { key: 'name', title: 'Alert' },
                        { key: 'type', title: 'Type', hidden: true },
                        { key: 'description', title: 'Description' },
                      ]}
                      actions={(a) =>
                        session.can('archiveAlerts') && (
                          <ActionButton
                            label="Archive"
                            onClick={async () => {
                              await run('Archive alert', 'archiveAlerts', { ids: a.id });
                              setReload((n) => n + 1);
                            }}
                          />
                        )
                      }
                    />
                  ),
                },
              ]
            : []),
        ]}
      />
    </div>
  );
}
