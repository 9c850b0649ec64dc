import { Tabs, Typography } from 'antd';
import { useState } from 'react';
import { SnapshotPolicyTable, SnapshotTable, VmSnapshotTable } from '../components/snapshots.tsx';
import { usePath } from '../router.tsx';
import { useSession } from '../session.tsx';

/** Volume snapshots, VM snapshots and snapshot policies; each tab only when listApis offers it. */
export function Snapshots() {
  const session = useSession();
  const { query } = usePath();
  const tabs = [
    { key: 'volume', label: 'Volume snapshots', command: 'listSnapshots', children: <SnapshotTable /> },
    { key: 'vm', label: 'VM snapshots', command: 'listVMSnapshot', children: <VmSnapshotTable /> },
    {
      key: 'policies',
      label: 'Snapshot policies',
      command: 'listSnapshotPolicies',
      children: <SnapshotPolicyTable />,
    },
  ].filter((t) => session.can(t.command));
  const [tab, setTab] = useState(query.get('tab') ?? tabs[0]?.key ?? 'volume');
  return (
    <div>
      <Typography.Title level={3}>Snapshots</Typography.Title>
      {tabs.length === 0 ? (
        <SnapshotTable />
      ) : (
        <Tabs
          activeKey={tab}
          onChange={setTab}
          items={tabs.map(({ command: _, ...t }) => t)}
          destroyOnHidden
        />
      )}
    </div>
  );
}
