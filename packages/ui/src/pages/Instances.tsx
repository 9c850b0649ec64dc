import { PlusOutlined } from '@ant-design/icons';
import { Button, Modal, Space, Typography } from 'antd';
import { useState } from 'react';
import type { Row } from '../api.ts';
import { ConsoleButton } from '../components/ConsoleButton.tsx';
import { date, options, StateTag } from '../components/common.tsx';
import { type BulkAction, type Column, ResourceTable } from '../components/ResourceTable.tsx';
import { VmActions } from '../components/VmActions.tsx';
import { useList } from '../hooks.ts';
import { useActions } from '../jobs.tsx';
import { Link, navigate } from '../router.tsx';
import { useSession } from '../session.tsx';

const STATES = ['Running', 'Stopped', 'Starting', 'Stopping', 'Error', 'Destroyed', 'Migrating'];

export const ipOf = (vm: Row) =>
  ((vm.nic as Row[] | undefined) ?? [])
    .map((n) => n.ipaddress)
    .filter(Boolean)
    .join(', ');

export function Instances() {
  const session = useSession();
  const { run } = useActions();
  const [reload, setReload] = useState(0);
  const zones = useList('listZones', 'zone');
  const accounts = useList(session.isAdmin ? 'listAccounts' : '', 'account', { listall: true });

  const columns: Column[] = [
    {
      key: 'name',
      title: 'Name',
      value: (r) => r.displayname || r.name,
      render: (r) => <Link to={`/instances/${r.id}`}>{r.displayname || r.name}</Link>,
    },
    { key: 'state', title: 'State', render: (r) => <StateTag state={r.state} /> },
    { key: 'ipaddress', title: 'IP address', value: ipOf },
    { key: 'zonename', title: 'Zone' },
    { key: 'templatename', title: 'Template', hidden: true },
    { key: 'serviceofferingname', title: 'Offering' },
    { key: 'cpunumber', title: 'CPUs', hidden: true },
    { key: 'memory', title: 'Memory (MiB)', hidden: true },
    { key: 'account', title: 'Account', hidden: !session.isAdmin },
    { key: 'hostname', title: 'Host', hidden: true },
    { key: 'created', title: 'Created', value: (r) => date(r.created), hidden: true },
    { key: 'id', title: 'ID', hidden: true },
  ];
  const bulk = (label: string, command: string, state: (r: Row) => boolean, danger = false): BulkAction => ({
    label,
    danger,
    enabled: state,
    run: (rows) =>
      new Promise<void>((resolve) => {
        Modal.confirm({
          title: `${label} ${rows.length} instance(s)?`,
          okButtonProps: { danger },
          onOk: async () => {
            await Promise.all(
              rows.map((r) => run(`${label} ${r.displayname || r.name}`, command, { id: r.id })),
            );
            setReload((n) => n + 1);
            resolve();
          },
          onCancel: () => resolve(),
        });
      }),
  });
  const bulkActions = [
    bulk('Start', 'startVirtualMachine', (r) => r.state === 'Stopped'),
    bulk('Stop', 'stopVirtualMachine', (r) => r.state === 'Running'),
    bulk('Reboot', 'rebootVirtualMachine', (r) => r.state === 'Running'),
    bulk('Destroy', 'destroyVirtualMachine', (r) => r.state !== 'Destroyed', true),
  ].filter((_, i) =>
    session.can(
      ['startVirtualMachine', 'stopVirtualMachine', 'rebootVirtualMachine', 'destroyVirtualMachine'][i],
    ),
  );

  return (
    <div>
      <Typography.Title level={3}>Instances</Typography.Title>
      <ResourceTable
        title="Instances"
        command="listVirtualMachines"
        listKey="virtualmachine"
        exportName="instances"
        params={{ listall: true }}
        columns={columns}
        reload={reload}
        filters={[
          { param: 'state', label: 'State', options: STATES.map((s) => ({ value: s, label: s })) },
          { param: 'zoneid', label: 'Zone', options: options(zones) },
          ...(session.isAdmin
            ? [
                {
                  param: 'account',
                  label: 'Account',
                  options: accounts.map((a) => ({ value: a.id, label: `${a.name} (${a.domain})` })),
                  toParams: (id: string) => {
                    const a = accounts.find((x) => x.id === id);
                    return { account: a?.name, domainid: a?.domainid };
                  },
                },
              ]
            : []),
        ]}
        bulk={bulkActions}
        toolbar={
          session.can('deployVirtualMachine') && (
            <Button type="primary" icon={<PlusOutlined />} onClick={() => navigate('/instances/deploy')}>
              Add instance
            </Button>
          )
        }
        actions={(r) => (
          <Space size={4}>
            <ConsoleButton vm={r} size="small" />
            <VmActions vm={r} onDone={() => setReload((n) => n + 1)} />
          </Space>
        )}
      />
    </div>
  );
}
