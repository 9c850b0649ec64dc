/**
 * Zones → pods → clusters → hosts, and primary and secondary storage: each tab filters by the
 * level above it, shows state and capacity, and offers the actions the caller may run.
 */
import { PlusOutlined } from '@ant-design/icons';
import { Button, Progress, Space, Tabs, Typography } from 'antd';
import { useState } from 'react';
import type { Params, Row } from '../api.ts';
import { ActionButton, bytes, FormButton, options, StateTag } from '../components/common.tsx';
import { type Column, ResourceTable } from '../components/ResourceTable.tsx';
import { useList } from '../hooks.ts';
import { useActions } from '../jobs.tsx';
import { navigate, usePath } from '../router.tsx';
import { useSession } from '../session.tsx';

function percent(used: unknown, total: unknown): number {
  const t = Number(total);
  return t > 0 ? Math.min(100, Math.round((100 * Number(used ?? 0)) / t)) : 0;
}

export function Bar({ used, total, label }: { used: unknown; total: unknown; label?: string }) {
  const p = percent(used, total);
  return (
    <div style={{ minWidth: 140 }} title={label}>
      <Progress
        percent={p}
        size="small"
        status={p >= 85 ? 'exception' : 'normal'}
        aria-label={label ?? `${p}% used`}
      />
    </div>
  );
}

export function Infrastructure() {
  const { query } = usePath();
  const session = useSession();
  const { run } = useActions();
  const [reload, setReload] = useState(0);
  const zones = useList('listZones', 'zone', {}, reload);
  const pods = useList('listPods', 'pod', {}, reload);
  const clusters = useList('listClusters', 'cluster', {}, reload);
  const [tab, setTab] = useState(query.get('tab') ?? 'zones');

  const act = async (label: string, command: string, params: Params) => {
    if (await run(label, command, params)) setReload((r) => r + 1);
  };
  const zoneFilter = { param: 'zoneid', label: 'Zone', options: options(zones) };
  const podFilter = { param: 'podid', label: 'Pod', options: options(pods) };
  const clusterFilter = { param: 'clusterid', label: 'Cluster', options: options(clusters) };
  const enableDisable = (row: Row, command: string, label: string, state = row.allocationstate) =>
    session.can(command) && (
      <ActionButton
        label={state === 'Disabled' ? 'Enable' : 'Disable'}
        onClick={() =>
          act(`${state === 'Disabled' ? 'Enable' : 'Disable'} ${label} ${row.name}`, command, {
            id: row.id,
            allocationstate: state === 'Disabled' ? 'Enabled' : 'Disabled',
          })
        }
      />
    );
  const remove = (row: Row, command: string, label: string) =>
    session.can(command) && (
      <ActionButton
        danger
        label="Delete"
        confirm={`Delete ${label} ${row.name}?`}
        onClick={() => act(`Delete ${label} ${row.name}`, command, { id: row.id })}
      />
    );

  const zoneColumns: Column[] = [
    { key: 'name', title: 'Name' },
    { key: 'allocationstate', title: 'State', render: (r) => <StateTag state={r.allocationstate} /> },
    { key: 'networktype', title: 'Network type' },
    { key: 'dns1', title: 'DNS', hidden: true },
    { key: 'localstorageenabled', title: 'Local storage', value: (r) => String(r.localstorageenabled ?? '') },
    { key: 'id', title: 'ID', hidden: true },
  ];
  const podColumns: Column[] = [
    { key: 'name', title: 'Name' },
    { key: 'zonename', title: 'Zone' },
    { key: 'allocationstate', title: 'State', render: (r) => <StateTag state={r.allocationstate} /> },
    { key: 'gateway', title: 'Gateway' },
    { key: 'netmask', title: 'Netmask', hidden: true },
  ];
  const clusterColumns: Column[] = [
    { key: 'name', title: 'Name' },
    { key: 'zonename', title: 'Zone' },
    { key: 'podname', title: 'Pod' },
    { key: 'hypervisortype', title: 'Hypervisor' },
    { key: 'allocationstate', title: 'State', render: (r) => <StateTag state={r.allocationstate} /> },
  ];
  const hostColumns: Column[] = [
    { key: 'name', title: 'Name' },
    { key: 'state', title: 'State', render: (r) => <StateTag state={r.state} /> },
    { key: 'resourcestate', title: 'Resource state', render: (r) => <StateTag state={r.resourcestate} /> },
    { key: 'zonename', title: 'Zone' },
    { key: 'podname', title: 'Pod', hidden: true },
    { key: 'clustername', title: 'Cluster' },
    { key: 'hypervisor', title: 'Hypervisor', hidden: true },
    { key: 'ipaddress', title: 'IP address', hidden: true },
    {
      key: 'cpuallocated',
      title: 'CPU allocated',
      render: (r) => (
        <Bar used={Number.parseFloat(String(r.cpuallocated ?? '0'))} total={100} label="CPU allocated" />
      ),
    },
    {
      key: 'memoryallocated',
      title: 'Memory allocated',
      value: (r) => `${bytes(r.memoryallocated)} / ${bytes(r.memorytotal)}`,
      render: (r) => <Bar used={r.memoryallocated} total={r.memorytotal} label="Memory allocated" />,
    },
  ];
  const poolColumns: Column[] = [
    { key: 'name', title: 'Name' },
    { key: 'state', title: 'State', render: (r) => <StateTag state={r.state} /> },
    { key: 'scope', title: 'Scope' },
    { key: 'zonename', title: 'Zone' },
    { key: 'clustername', title: 'Cluster', hidden: true },
    { key: 'type', title: 'Type', hidden: true },
    {
      key: 'disksizeused',
      title: 'Used',
      value: (r) => `${bytes(r.disksizeused)} / ${bytes(r.disksizetotal)}`,
      render: (r) => <Bar used={r.disksizeused} total={r.disksizetotal} label="Disk used" />,
    },
  ];
  const storeColumns: Column[] = [
    { key: 'name', title: 'Name' },
    { key: 'zonename', title: 'Zone' },
    { key: 'protocol', title: 'Protocol' },
    { key: 'url', title: 'URL' },
    { key: 'readonly', title: 'Read-only', value: (r) => String(r.readonly ?? false), hidden: true },
  ];

  return (
    <div>
      <Typography.Title level={3}>Infrastructure</Typography.Title>
      <Tabs
        activeKey={tab}
        onChange={setTab}
        items={[
          {
            key: 'zones',
            label: 'Zones',
            children: (
              <ResourceTable
                title="Zones"
                command="listZones"
                listKey="zone"
                columns={zoneColumns}
                reload={reload}
                toolbar={
                  session.can('createZone') && (
                    <Button
                      type="primary"
                      icon={<PlusOutlined />}
                      onClick={() => navigate('/infrastructure/zone-wizard')}
                    >
                      Add zone
                    </Button>
                  )
                }
                actions={(r) => (
                  <Space>
                    {enableDisable(r, 'updateZone', 'zone')}
                    {remove(r, 'deleteZone', 'zone')}
                  </Space>
                )}
              />
            ),
          },
          {
            key: 'pods',
            label: 'Pods',
            children: (
              <ResourceTable
                title="Pods"
                command="listPods"
                listKey="pod"
                columns={podColumns}
                filters={[zoneFilter]}
                reload={reload}
                toolbar={
                  session.can('createPod') && (
                    <FormButton
                      command="createPod"
                      label="Add pod"
                      icon={<PlusOutlined />}
                      fields={[
                        {
                          name: 'zoneid',
                          label: 'Zone',
                          type: 'select',
                          required: true,
                          options: options(zones),
                        },
                        { name: 'name', label: 'Name', required: true },
                        { name: 'gateway', label: 'Gateway' },
                        { name: 'netmask', label: 'Netmask' },
                        { name: 'startip', label: 'Start IP' },
                        { name: 'endip', label: 'End IP' },
                      ]}
                      onSubmit={(v) => act(`Add pod ${v.name}`, 'createPod', v)}
                    />
                  )
                }
                actions={(r) => (
                  <Space>
                    {enableDisable(r, 'updatePod', 'pod')}
                    {remove(r, 'deletePod', 'pod')}
                  </Space>
                )}
              />
            ),
          },
          {
            key: 'clusters',
            label: 'Clusters',
            children: (
              <ResourceTable
                title="Clusters"
                command="listClusters"
                listKey="cluster"
                columns={clusterColumns}
                filters={[zoneFilter, podFilter]}
                reload={reload}
                toolbar={
                  session.can('addCluster') && (
                    <FormButton
                      command="addCluster"
                      label="Add cluster"
                      icon={<PlusOutlined />}
                      fields={[
                        {
                          name: 'podid',
                          label: 'Pod',
                          type: 'select',
                          required: true,
                          options: options(pods),
                        },
                        { name: 'clustername', label: 'Name', required: true },
                        {
                          name: 'hypervisor',
                          label: 'Hypervisor',
                          type: 'select',
                          required: true,
                          initial: 'Simulator',
                          options: ['KVM', 'Simulator'].map((h) => ({ value: h, label: h })),
                        },
                      ]}
                      onSubmit={(v) => {
                        const pod = pods.find((p) => p.id === v.podid);
                        return act(`Add cluster ${v.clustername}`, 'addCluster', {
                          ...v,
                          zoneid: pod?.zoneid,
                          clustertype: 'CloudManaged',
                        });
                      }}
                    />
                  )
                }
                actions={(r) => (
                  <Space>
                    {enableDisable(r, 'updateCluster', 'cluster')}
                    {remove(r, 'deleteCluster', 'cluster')}
                  </Space>
                )}
              />
            ),
          },
          {
            key: 'hosts',
            label: 'Hosts',
            children: (
              <ResourceTable
                title="Hosts"
                command="listHosts"
                listKey="host"
                columns={hostColumns}
                params={{ type: 'Routing' }}
                filters={[
                  zoneFilter,
                  podFilter,
                  clusterFilter,
                  {
                    param: 'state',
                    label: 'State',
                    options: ['Up', 'Down', 'Disconnected', 'Alert', 'Connecting'].map((s) => ({
                      value: s,
                      label: s,
                    })),
                  },
                ]}
                reload={reload}
                toolbar={
                  session.can('addHost') && (
                    <FormButton
                      command="addHost"
                      label="Add host"
                      icon={<PlusOutlined />}
                      fields={[
                        {
                          name: 'clusterid',
                          label: 'Cluster',
                          type: 'select',
                          required: true,
                          options: options(clusters),
                        },
                        {
                          name: 'url',
                          label: 'URL',
                          required: true,
                          help: 'agent://<agent name> for a Nimbostack agent',
                        },
                        { name: 'username', label: 'Username', initial: 'root' },
                        {
                          name: 'password',
                          label: 'Password or agent token',
                          type: 'password',
                          required: true,
                        },
                      ]}
                      onSubmit={(v) => {
                        const c = clusters.find((x) => x.id === v.clusterid);
                        return act('Add host', 'addHost', {
                          ...v,
                          zoneid: c?.zoneid,
                          podid: c?.podid,
                          hypervisor: c?.hypervisortype,
                        });
                      }}
                    />
                  )
                }
                actions={(r) => (
                  <Space wrap>
                    {session.can('updateHost') &&
                      enableDisable(
                        r,
                        'updateHost',
                        'host',
                        r.resourcestate === 'Disabled' ? 'Disabled' : 'Enabled',
                      )}
                    {r.resourcestate === 'Maintenance' || r.resourcestate === 'PrepareForMaintenance'
                      ? session.can('cancelHostMaintenance') && (
                          <ActionButton
                            label="Cancel maintenance"
                            onClick={() =>
                              act(`Cancel maintenance of ${r.name}`, 'cancelHostMaintenance', { id: r.id })
                            }
                          />
                        )
                      : session.can('prepareHostForMaintenance') && (
                          <ActionButton
                            label="Maintenance"
                            confirm={`Put ${r.name} into maintenance?`}
                            onClick={() =>
                              act(`Maintenance of ${r.name}`, 'prepareHostForMaintenance', { id: r.id })
                            }
                          />
                        )}
                    {remove(r, 'deleteHost', 'host')}
                  </Space>
                )}
              />
            ),
          },
          {
            key: 'primary',
            label: 'Primary storage',
            children: (
              <ResourceTable
                title="Primary storage"
                command="listStoragePools"
                listKey="storagepool"
                columns={poolColumns}
                filters={[zoneFilter, clusterFilter]}
                reload={reload}
                toolbar={
                  session.can('createStoragePool') && (
                    <FormButton
                      command="createStoragePool"
                      label="Add primary storage"
                      icon={<PlusOutlined />}
                      fields={[
                        {
                          name: 'clusterid',
                          label: 'Cluster',
                          type: 'select',
                          required: true,
                          options: options(clusters),
                        },
                        { name: 'name', label: 'Name', required: true },
                        { name: 'url', label: 'URL or path', required: true },
                      ]}
                      onSubmit={(v) => {
                        const c = clusters.find((x) => x.id === v.clusterid);
                        return act(`Add primary storage ${v.name}`, 'createStoragePool', {
                          ...v,
                          zoneid: c?.zoneid,
                          podid: c?.podid,
                          scope: 'cluster',
                        });
                      }}
                    />
                  )
                }
                actions={(r) => (
                  <Space>
                    {r.state === 'Maintenance'
                      ? session.can('cancelStorageMaintenance') && (
                          <ActionButton
                            label="Cancel maintenance"
                            onClick={() =>
                              act(`Cancel maintenance of ${r.name}`, 'cancelStorageMaintenance', { id: r.id })
                            }
                          />
                        )
                      : session.can('enableStorageMaintenance') && (
                          <ActionButton
                            label="Maintenance"
                            confirm={`Put ${r.name} into maintenance?`}
                            onClick={() =>
                              act(`Maintenance of ${r.name}`, 'enableStorageMaintenance', { id: r.id })
                            }
                          />
                        )}
                    {remove(r, 'deleteStoragePool', 'primary storage')}
                  </Space>
                )}
              />
            ),
          },
          {
            key: 'secondary',
            label: 'Secondary storage',
            children: (
              <ResourceTable
                title="Secondary storage"
                command="listImageStores"
                listKey="imagestore"
                columns={storeColumns}
                filters={[zoneFilter]}
                reload={reload}
                toolbar={
                  session.can('addImageStore') && (
                    <FormButton
                      command="addImageStore"
                      label="Add secondary storage"
                      icon={<PlusOutlined />}
                      fields={[
                        {
                          name: 'zoneid',
                          label: 'Zone',
                          type: 'select',
                          required: true,
                          options: options(zones),
                        },
                        { name: 'name', label: 'Name', required: true },
                        { name: 'url', label: 'URL or path', required: true },
                      ]}
                      onSubmit={(v) =>
                        act(`Add secondary storage ${v.name}`, 'addImageStore', { ...v, provider: 'NFS' })
                      }
                    />
                  )
                }
                actions={(r) => remove(r, 'deleteImageStore', 'secondary storage')}
              />
            ),
          },
        ]}
      />
    </div>
  );
}
