import { PlusOutlined } from '@ant-design/icons';
import { Progress, Space, Tabs, Typography } from 'antd';
import { useEffect, useState } from 'react';
import type { Params, Row } from '../api.ts';
import {
  ActionButton,
  bytes,
  date,
  type Field,
  FormButton,
  FormModal,
  options,
  StateTag,
} from '../components/common.tsx';
import { type Column, ResourceTable } from '../components/ResourceTable.tsx';
import { VolumeSnapshotActions } from '../components/snapshots.tsx';
import { useList } from '../hooks.ts';
import { useActions } from '../jobs.tsx';
import { usePath } from '../router.tsx';
import { useSession } from '../session.tsx';

/** "42% Downloaded" → 42; a ready image is 100. */
function downloadPercent(t: Row): number | undefined {
  if (t.isready) return 100;
  const m = /(\d+(?:\.\d+)?)\s*%/.exec(String(t.status ?? ''));
  return m ? Number(m[1]) : undefined;
}

function ImageStatus({ image }: { image: Row }) {
  const failed = /fail|error|abandon/i.test(String(image.status ?? ''));
  const pct = downloadPercent(image);
  if (image.isready) return <StateTag state="Ready" />;
  return (
    <div style={{ minWidth: 160 }}>
      {pct !== undefined && !failed && (
        <Progress percent={Math.round(pct)} size="small" aria-label="Download progress" />
      )}
      <span style={{ color: failed ? '#cf1322' : undefined }}>
        {String(image.status ?? 'Waiting to download')}
      </span>
    </div>
  );
}

export function Storage() {
  const session = useSession();
  const { query } = usePath();
  const { run } = useActions();
  const [tab, setTab] = useState(query.get('tab') ?? (session.can('listVolumes') ? 'volumes' : 'templates'));
  const [reload, setReload] = useState(0);
  const [dialog, setDialog] = useState<{
    title: string;
    command: string;
    fields: Field[];
    submit(v: Params): Promise<unknown>;
  }>();
  const zones = useList('listZones', 'zone');
  const diskOfferings = useList('listDiskOfferings', 'diskoffering');
  const osTypes = useList('listOsTypes', 'ostype');
  const vms = useList('listVirtualMachines', 'virtualmachine', { listall: true }, reload);
  const bump = () => setReload((n) => n + 1);
  const act = async (label: string, command: string, params: Params) => {
    await run(label, command, params);
    bump();
  };

  // Downloads progress on the server; the image lists refresh while they are shown.
  useEffect(() => {
    if (tab !== 'templates' && tab !== 'isos') return;
    const t = setInterval(() => setReload((n) => n + 1), 5000);
    return () => clearInterval(t);
  }, [tab]);

  const volumeColumns: Column[] = [
    { key: 'name', title: 'Name' },
    { key: 'state', title: 'State', render: (r) => <StateTag state={r.state} /> },
    { key: 'type', title: 'Type' },
    { key: 'size', title: 'Size', value: (r) => bytes(r.size) },
    { key: 'vmname', title: 'Instance', value: (r) => r.vmdisplayname || r.vmname },
    { key: 'zonename', title: 'Zone' },
    { key: 'diskofferingname', title: 'Disk offering', hidden: true },
    { key: 'storage', title: 'Storage', hidden: !session.isAdmin },
    { key: 'account', title: 'Account', hidden: !session.isAdmin },
    { key: 'created', title: 'Created', value: (r) => date(r.created), hidden: true },
  ];
  const imageColumns: Column[] = [
    { key: 'name', title: 'Name' },
    {
      key: 'status',
      title: 'Status',
      value: (r) => (r.isready ? 'Ready' : r.status),
      render: (r) => <ImageStatus image={r} />,
    },
    { key: 'ostypename', title: 'OS type' },
    { key: 'zonename', title: 'Zone' },
    { key: 'format', title: 'Format', hidden: true },
    { key: 'size', title: 'Size', value: (r) => bytes(r.size), hidden: true },
    { key: 'ispublic', title: 'Public', value: (r) => (r.ispublic ? 'yes' : 'no') },
    { key: 'account', title: 'Account', hidden: !session.isAdmin },
    { key: 'created', title: 'Created', value: (r) => date(r.created), hidden: true },
  ];
  const osOptions = options(osTypes, 'description');
  const zoneOptions = options(zones);

  const volumeActions = (v: Row) => (
    <Space wrap>
      {v.type === 'DATADISK' && !v.virtualmachineid && session.can('attachVolume') && (
        <ActionButton
          label="Attach"
          onClick={() =>
            setDialog({
              command: 'attachVolume',
              title: `Attach ${v.name}`,
              fields: [
                {
                  name: 'virtualmachineid',
                  label: 'Instance',
                  type: 'select',
                  required: true,
                  options: vms
                    .filter((m) => m.zoneid === v.zoneid && ['Running', 'Stopped'].includes(m.state))
                    .map((m) => ({ value: m.id, label: m.displayname || m.name })),
                },
              ],
              submit: (p) => act(`Attach ${v.name}`, 'attachVolume', { id: v.id, ...p }),
            })
          }
        />
      )}
      {v.type === 'DATADISK' && v.virtualmachineid && session.can('detachVolume') && (
        <ActionButton
          label="Detach"
          confirm={`Detach ${v.name} from ${v.vmname}?`}
          onClick={() => act(`Detach ${v.name}`, 'detachVolume', { id: v.id })}
        />
      )}
      {session.can('resizeVolume') && (
        <ActionButton
          label="Resize"
          onClick={() =>
            setDialog({
              command: 'resizeVolume',
              title: `Resize ${v.name}`,
              fields: [{ name: 'size', label: 'New size (GiB)', type: 'number', required: true }],
              submit: (p) => act(`Resize ${v.name}`, 'resizeVolume', { id: v.id, ...p }),
            })
          }
        />
      )}
      <VolumeSnapshotActions volume={v} onDone={bump} />
      {v.type === 'DATADISK' && !v.virtualmachineid && session.can('deleteVolume') && (
        <ActionButton
          danger
          label="Delete"
          confirm={`Delete ${v.name}?`}
          onClick={() => act(`Delete ${v.name}`, 'deleteVolume', { id: v.id })}
        />
      )}
    </Space>
  );

  return (
    <div>
      <Typography.Title level={3}>Storage & images</Typography.Title>
      <Tabs
        activeKey={tab}
        onChange={setTab}
        items={[
          {
            key: 'volumes',
            label: 'Volumes',
            children: (
              <ResourceTable
                title="Volumes"
                command="listVolumes"
                listKey="volume"
                params={{ listall: true }}
                columns={volumeColumns}
                reload={reload}
                filters={[
                  { param: 'zoneid', label: 'Zone', options: zoneOptions },
                  {
                    param: 'type',
                    label: 'Type',
                    options: ['ROOT', 'DATADISK'].map((t) => ({ value: t, label: t })),
                  },
                ]}
                toolbar={
                  session.can('createVolume') && (
                    <FormButton
                      command="createVolume"
                      label="Add volume"
                      icon={<PlusOutlined />}
                      fields={[
                        { name: 'name', label: 'Name', required: true },
                        {
                          name: 'zoneid',
                          label: 'Zone',
                          type: 'select',
                          required: true,
                          options: zoneOptions,
                        },
                        {
                          name: 'diskofferingid',
                          label: 'Disk offering',
                          type: 'select',
                          required: true,
                          options: diskOfferings.map((o) => ({
                            value: o.id,
                            label: o.iscustomized
                              ? `${o.name} (custom size)`
                              : `${o.name} (${o.disksize} GiB)`,
                          })),
                        },
                        { name: 'size', label: 'Size in GiB (custom offerings)', type: 'number' },
                      ]}
                      onSubmit={(v) => act(`Create volume ${v.name}`, 'createVolume', v)}
                    />
                  )
                }
                actions={volumeActions}
              />
            ),
          },
          {
            key: 'templates',
            label: 'Templates',
            children: (
              <ResourceTable
                title="Templates"
                command="listTemplates"
                listKey="template"
                params={{ templatefilter: session.isRootAdmin ? 'all' : 'executable', listall: true }}
                columns={imageColumns}
                reload={reload}
                filters={[{ param: 'zoneid', label: 'Zone', options: zoneOptions }]}
                toolbar={
                  session.can('registerTemplate') && (
                    <FormButton
                      command="registerTemplate"
                      label="Register template"
                      icon={<PlusOutlined />}
                      fields={[
                        { name: 'name', label: 'Name', required: true },
                        { name: 'displaytext', label: 'Description' },
                        { name: 'url', label: 'URL', required: true },
                        {
                          name: 'zoneid',
                          label: 'Zone',
                          type: 'select',
                          required: true,
                          options: zoneOptions,
                        },
                        {
                          name: 'hypervisor',
                          label: 'Hypervisor',
                          type: 'select',
                          required: true,
                          initial: 'Simulator',
                          options: ['KVM', 'Simulator'].map((h) => ({ value: h, label: h })),
                        },
                        {
                          name: 'format',
                          label: 'Format',
                          type: 'select',
                          required: true,
                          initial: 'QCOW2',
                          options: ['QCOW2', 'RAW', 'VHD'].map((h) => ({ value: h, label: h })),
                        },
                        {
                          name: 'ostypeid',
                          label: 'OS type',
                          type: 'select',
                          required: true,
                          options: osOptions,
                        },
                        { name: 'ispublic', label: 'Public', type: 'boolean' },
                        { name: 'passwordenabled', label: 'Password enabled', type: 'boolean' },
                      ]}
                      onSubmit={(v) =>
                        act(`Register template ${v.name}`, 'registerTemplate', { displaytext: v.name, ...v })
                      }
                    />
                  )
                }
                actions={(t) =>
                  session.can('deleteTemplate') && (
                    <ActionButton
                      danger
                      label="Delete"
                      confirm={`Delete template ${t.name}?`}
                      onClick={() =>
                        act(`Delete template ${t.name}`, 'deleteTemplate', { id: t.id, zoneid: t.zoneid })
                      }
                    />
                  )
                }
              />
            ),
          },
          {
            key: 'isos',
            label: 'ISOs',
            children: (
              <ResourceTable
                title="ISOs"
                command="listIsos"
                listKey="iso"
                params={{ isofilter: session.isRootAdmin ? 'all' : 'executable', listall: true }}
                columns={imageColumns}
                reload={reload}
                filters={[{ param: 'zoneid', label: 'Zone', options: zoneOptions }]}
                toolbar={
                  session.can('registerIso') && (
                    <FormButton
                      command="registerIso"
                      label="Register ISO"
                      icon={<PlusOutlined />}
                      fields={[
                        { name: 'name', label: 'Name', required: true },
                        { name: 'url', label: 'URL', required: true },
                        {
                          name: 'zoneid',
                          label: 'Zone',
                          type: 'select',
                          required: true,
                          options: zoneOptions,
                        },
                        { name: 'ostypeid', label: 'OS type', type: 'select', options: osOptions },
                        { name: 'bootable', label: 'Bootable', type: 'boolean', initial: true },
                        { name: 'ispublic', label: 'Public', type: 'boolean' },
                      ]}
                      onSubmit={(v) =>
                        act(`Register ISO ${v.name}`, 'registerIso', { displaytext: v.name, ...v })
                      }
                    />
                  )
                }
                actions={(t) =>
                  session.can('deleteIso') && (
                    <ActionButton
                      danger
                      label="Delete"
                      confirm={`Delete ISO ${t.name}?`}
                      onClick={() => act(`Delete ISO ${t.name}`, 'deleteIso', { id: t.id, zoneid: t.zoneid })}
                    />
                  )
                }
              />
            ),
          },
        ]}
      />
      {dialog && (
        <FormModal
          open
          title={dialog.title}
          command={dialog.command}
          fields={dialog.fields}
          onClose={() => setDialog(undefined)}
          onSubmit={dialog.submit}
        />
      )}
    </div>
  );
}
