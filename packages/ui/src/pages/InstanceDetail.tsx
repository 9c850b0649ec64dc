import { Alert, Button, Card, Descriptions, Space, Spin, Table, Tabs, Tag, Typography } from 'antd';
import { useCallback, useEffect, useState } from 'react';
import { api, errorText, type Row } from '../api.ts';
import { InstanceAffinity } from '../components/affinity.tsx';
import { ConsoleButton } from '../components/ConsoleButton.tsx';
import { bytes, date, FormButton, StateTag } from '../components/common.tsx';
import { ResourceTable } from '../components/ResourceTable.tsx';
import { VmSnapshotTable } from '../components/snapshots.tsx';
import { VmActions } from '../components/VmActions.tsx';
import { useActions } from '../jobs.tsx';
import { navigate } from '../router.tsx';
import { useSession } from '../session.tsx';

const TRANSITIONAL = new Set(['Starting', 'Stopping', 'Migrating', 'Expunging']);

export function InstanceDetail({ id }: { id: string }) {
  const session = useSession();
  const { run } = useActions();
  const [vm, setVm] = useState<Row | null>();
  const [error, setError] = useState<string>();
  const [reload, setReload] = useState(0);

  const load = useCallback(() => {
    api('listVirtualMachines', { id, listall: true })
      .then((r) => setVm(((r.virtualmachine as Row[]) ?? [])[0] ?? null))
      .catch((e) => setError(errorText(e)));
  }, [id]);
  // biome-ignore lint/correctness/useExhaustiveDependencies: reload is a trigger
  useEffect(load, [load, reload]);
  // A VM in a transitional state is polled until it settles.
  useEffect(() => {
    if (!vm || !TRANSITIONAL.has(String(vm.state))) return;
    const t = setTimeout(load, 2000);
    return () => clearTimeout(t);
  }, [vm, load]);

  if (error) return <Alert type="error" showIcon title={error} />;
  if (vm === undefined) return <Spin />;
  if (vm === null)
    return (
      <Alert
        type="warning"
        showIcon
        title="This instance does not exist or you may not see it."
        action={<Button onClick={() => navigate('/instances')}>Instances</Button>}
      />
    );

  const refresh = () => setReload((n) => n + 1);
  const tags = (vm.tags as Row[] | undefined) ?? [];
  return (
    <div>
      <Space align="center" wrap style={{ marginBottom: 8 }}>
        <Typography.Title level={3} style={{ margin: 0 }}>
          {vm.displayname || vm.name}
        </Typography.Title>
        <StateTag state={vm.state} />
      </Space>
      <Space wrap style={{ marginBottom: 16 }}>
        <ConsoleButton vm={vm} />
        <VmActions vm={vm} onDone={refresh} buttons />
      </Space>
      <Card>
        <Descriptions
          size="small"
          column={{ xs: 1, sm: 2, lg: 3 }}
          items={[
            ['Name', vm.name],
            ['ID', vm.id],
            ['Zone', vm.zonename],
            ['Template', vm.templatename],
            ['Service offering', vm.serviceofferingname],
            ['CPUs', vm.cpunumber],
            ['Memory', vm.memory ? bytes(Number(vm.memory) * 1024 * 1024) : ''],
            ['Account', vm.account],
            ['Domain', vm.domain],
            ['Host', vm.hostname],
            ['ISO', vm.isoname],
            ['SSH key', vm.keypairs ?? vm.keypair],
            ['Created', date(vm.created)],
          ]
            .filter(([, v]) => v !== undefined && v !== null && v !== '')
            .map(([label, v]) => ({ key: String(label), label: String(label), children: String(v) }))}
        />
      </Card>
      <Tabs
        style={{ marginTop: 16 }}
        items={[
          {
            key: 'nics',
            label: 'NICs',
            children: (
              <Table<Row>
                size="small"
                rowKey={(n) => String(n.id ?? n.macaddress)}
                dataSource={(vm.nic as Row[]) ?? []}
                pagination={false}
                columns={[
                  { key: 'networkname', title: 'Network', dataIndex: 'networkname' },
                  { key: 'ipaddress', title: 'IP address', dataIndex: 'ipaddress' },
                  { key: 'macaddress', title: 'MAC address', dataIndex: 'macaddress' },
                  { key: 'gateway', title: 'Gateway', dataIndex: 'gateway' },
                  { key: 'isdefault', title: 'Default', render: (_, n) => (n.isdefault ? 'yes' : '') },
                ]}
              />
            ),
          },
          {
            key: 'volumes',
            label: 'Volumes',
            children: (
              <ResourceTable
                title="Volumes"
                command="listVolumes"
                listKey="volume"
                params={{ virtualmachineid: vm.id, listall: true }}
                keyword={false}
                reload={reload}
                columns={[
                  { key: 'name', title: 'Name' },
                  { key: 'type', title: 'Type' },
                  { key: 'state', title: 'State', render: (r) => <StateTag state={r.state} /> },
                  { key: 'size', title: 'Size', value: (r) => bytes(r.size) },
                  { key: 'storage', title: 'Storage' },
                ]}
              />
            ),
          },
          ...(session.can('listVMSnapshot')
            ? [
                {
                  key: 'snapshots',
                  label: 'Snapshots',
                  children: <VmSnapshotTable vm={vm} onDone={refresh} />,
                },
              ]
            : []),
          ...(session.can('listAffinityGroups')
            ? [
                {
                  key: 'affinity',
                  label: 'Affinity',
                  children: <InstanceAffinity vm={vm} onDone={refresh} />,
                },
              ]
            : []),
          {
            key: 'events',
            label: 'Events',
            children: (
              <ResourceTable
                title="Events"
                command="listEvents"
                listKey="event"
                params={{ resourceid: vm.id, resourcetype: 'VirtualMachine', listall: true }}
                keyword={false}
                reload={reload}
                columns={[
                  { key: 'created', title: 'Time', value: (r) => date(r.created) },
                  { key: 'type', title: 'Type' },
                  { key: 'level', title: 'Level' },
                  { key: 'state', title: 'State' },
                  { key: 'description', title: 'Description' },
                ]}
              />
            ),
          },
          {
            key: 'tags',
            label: 'Tags',
            children: (
              <Space wrap>
                {tags.map((t) => (
                  <Tag
                    key={t.key}
                    closable={session.can('deleteTags')}
                    onClose={async (e) => {
                      e.preventDefault();
                      await run(`Remove tag ${t.key}`, 'deleteTags', {
                        resourceids: vm.id,
                        resourcetype: 'UserVm',
                        'tags[0].key': t.key,
                        'tags[0].value': t.value,
                      });
                      refresh();
                    }}
                  >
                    {t.key}={t.value}
                  </Tag>
                ))}
                {tags.length === 0 && <span>No tags</span>}
                {session.can('createTags') && (
                  <FormButton
                    command="createTags"
                    label="Add tag"
                    size="small"
                    fields={[
                      { name: 'key', label: 'Key', required: true },
                      { name: 'value', label: 'Value', required: true },
                    ]}
                    onSubmit={async (v) => {
                      await run(`Add tag ${v.key}`, 'createTags', {
                        resourceids: vm.id,
                        resourcetype: 'UserVm',
                        'tags[0].key': v.key,
                        'tags[0].value': v.value,
                      });
                      refresh();
                    }}
                  />
                )}
              </Space>
            ),
          },
        ]}
      />
    </div>
  );
}
