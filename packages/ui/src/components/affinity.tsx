/**
 * Affinity groups: their table (with the group's instances) and the affinity tab of an instance,
 * which changes its groups while it is stopped (updateVMAffinityGroup).
 */
import { PlusOutlined } from '@ant-design/icons';
import { Alert, Modal, Space, Table, Tag } from 'antd';
import { useState } from 'react';
import type { Row } from '../api.ts';
import { useList } from '../hooks.ts';
import { useActions } from '../jobs.tsx';
import { Link } from '../router.tsx';
import { useSession } from '../session.tsx';
import { ActionButton, FormButton, StateTag } from './common.tsx';
import { type Column, ResourceTable } from './ResourceTable.tsx';

/** Plain words for the two types CloudStack names "host anti-affinity" and "host affinity". */
export function affinityTypeLabel(type: unknown): string {
  const t = String(type ?? '');
  if (t === 'host anti-affinity') return 'Host anti-affinity (spread over hosts)';
  if (t === 'host affinity') return 'Host affinity (same host)';
  return t;
}

const vmIdsOf = (g: Row): string[] => (g.virtualmachineIds as string[] | undefined) ?? [];

export function AffinityGroupTable() {
  const session = useSession();
  const { run } = useActions();
  const [reload, setReload] = useState(0);
  const [members, setMembers] = useState<Row>();
  const types = useList('listAffinityGroupTypes', 'affinitygrouptype');
  const bump = () => setReload((n) => n + 1);
  const columns: Column[] = [
    { key: 'name', title: 'Name' },
    { key: 'type', title: 'Type', value: (g) => affinityTypeLabel(g.type) },
    { key: 'description', title: 'Description' },
    {
      key: 'virtualmachineIds',
      title: 'Instances',
      value: (g) => vmIdsOf(g).length,
    },
    { key: 'account', title: 'Account', hidden: !session.isAdmin },
    { key: 'domain', title: 'Domain', hidden: true },
    { key: 'id', title: 'ID', hidden: true },
  ];
  return (
    <>
      <ResourceTable
        title="Affinity groups"
        command="listAffinityGroups"
        listKey="affinitygroup"
        exportName="affinity-groups"
        params={{ listall: true }}
        columns={columns}
        reload={reload}
        filters={[
          {
            param: 'type',
            label: 'Type',
            options: types.map((t) => ({ value: String(t.type), label: affinityTypeLabel(t.type) })),
          },
        ]}
        toolbar={
          session.can('createAffinityGroup') && (
            <FormButton
              command="createAffinityGroup"
              label="Add affinity group"
              icon={<PlusOutlined />}
              fields={[
                { name: 'name', label: 'Name', required: true },
                { name: 'description', label: 'Description' },
                {
                  name: 'type',
                  label: 'Type',
                  type: 'select',
                  required: true,
                  initial: types.some((t) => t.type === 'host anti-affinity')
                    ? 'host anti-affinity'
                    : undefined,
                  options: types.map((t) => ({ value: String(t.type), label: affinityTypeLabel(t.type) })),
                },
              ]}
              onSubmit={async (v) => {
                await run(`Create affinity group ${v.name}`, 'createAffinityGroup', v);
                bump();
              }}
            />
          )
        }
        actions={(g) => (
          <Space wrap>
            <ActionButton label={`Instances (${vmIdsOf(g).length})`} onClick={() => setMembers(g)} />
            {session.can('deleteAffinityGroup') && (
              <ActionButton
                danger
                label="Delete"
                confirm={
                  vmIdsOf(g).length
                    ? `Delete ${g.name}? Its ${vmIdsOf(g).length} instance(s) leave the group.`
                    : `Delete ${g.name}?`
                }
                onClick={async () => {
                  await run(`Delete affinity group ${g.name}`, 'deleteAffinityGroup', { id: g.id });
                  bump();
                }}
              />
            )}
          </Space>
        )}
      />
      {members && (
        <Modal
          open
          title={`Instances in ${members.name}`}
          footer={null}
          width={880}
          onCancel={() => setMembers(undefined)}
          destroyOnHidden
        >
          {vmIdsOf(members).length === 0 ? (
            <Alert type="info" showIcon title="No instance is in this group yet." />
          ) : (
            <ResourceTable
              title="Instances"
              command="listVirtualMachines"
              listKey="virtualmachine"
              exportName={`affinity-${members.name}`}
              params={{ listall: true, ids: vmIdsOf(members).join(',') }}
              keyword={false}
              columns={[
                {
                  key: 'name',
                  title: 'Name',
                  value: (r) => r.displayname || r.name,
                  render: (r) => <Link to={`/instances/${r.id}`}>{r.displayname || r.name}</Link>,
                },
                { key: 'state', title: 'State', render: (r) => <StateTag state={r.state} /> },
                { key: 'hostname', title: 'Host', hidden: !session.isAdmin },
                { key: 'zonename', title: 'Zone' },
              ]}
            />
          )}
        </Modal>
      )}
    </>
  );
}

/** The instance's groups, and changing them while it is stopped. */
export function InstanceAffinity({ vm, onDone }: { vm: Row; onDone(): void }) {
  const session = useSession();
  const { run } = useActions();
  const groups = (vm.affinitygroup as Row[] | undefined) ?? [];
  // The VM's owner's groups are the ones it may join.
  const available = useList('listAffinityGroups', 'affinitygroup', {
    account: vm.account,
    domainid: vm.domainid,
  });
  const name = vm.displayname || vm.name;
  return (
    <Space direction="vertical" style={{ width: '100%' }}>
      <Table<Row>
        size="small"
        rowKey="id"
        pagination={false}
        dataSource={groups}
        locale={{ emptyText: 'In no affinity group' }}
        columns={[
          { key: 'name', title: 'Name', dataIndex: 'name' },
          { key: 'type', title: 'Type', render: (_, g) => affinityTypeLabel(g.type) },
          { key: 'description', title: 'Description', dataIndex: 'description' },
        ]}
      />
      {session.can('updateVMAffinityGroup') && (
        <Space wrap>
          <FormButton
            command="updateVMAffinityGroup"
            label="Change affinity groups"
            disabled={vm.state !== 'Stopped'}
            title={`Affinity groups of ${name}`}
            fields={[
              {
                name: 'affinitygroupids',
                label: 'Affinity groups',
                type: 'multiselect',
                required: true,
                initial: groups.map((g) => g.id),
                options: available.map((g) => ({
                  value: String(g.id),
                  label: `${g.name} (${affinityTypeLabel(g.type)})`,
                })),
              },
            ]}
            onSubmit={async (v) => {
              const ids = (v.affinitygroupids as unknown as string[] | undefined) ?? [];
              await run(`Change affinity groups of ${name}`, 'updateVMAffinityGroup', {
                id: vm.id,
                affinitygroupids: ids.join(','),
              });
              onDone();
            }}
          />
          {vm.state !== 'Stopped' && <Tag>Stop the instance to change its groups</Tag>}
        </Space>
      )}
    </Space>
  );
}
