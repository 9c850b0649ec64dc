/**
 * Volume snapshots, snapshot policies and VM snapshots: the lists and actions shared by the
 * Snapshots page, the volume actions of Storage and the instance detail page.
 */
import { CameraOutlined, DownOutlined, PlusOutlined } from '@ant-design/icons';
import { Button, Dropdown, Form, InputNumber, Modal, Select, Space, Tag } from 'antd';
import { useId, useState } from 'react';
import { listAll, type Params, type Row } from '../api.ts';
import { useList } from '../hooks.ts';
import { useActions } from '../jobs.tsx';
import { Link } from '../router.tsx';
import { useSession } from '../session.tsx';
import {
  ActionButton,
  bytes,
  date,
  type Field,
  FormButton,
  FormModal,
  options,
  StateTag,
} from './common.tsx';
import { type Column, ResourceTable } from './ResourceTable.tsx';

type Dialog = { title: string; command: string; fields: Field[]; submit(v: Params): Promise<unknown> };

// ---------------------------------------------------------------------------------------------
// Volume snapshots

/** The volume snapshots the caller sees, with revert, delete and "create from". */
export function SnapshotTable() {
  const session = useSession();
  const { run } = useActions();
  const [reload, setReload] = useState(0);
  const [dialog, setDialog] = useState<Dialog>();
  const zones = useList('listZones', 'zone');
  const volumes = useList('listVolumes', 'volume', { listall: true });
  const act = async (label: string, command: string, params: Params) => {
    const r = await run(label, command, params);
    setReload((n) => n + 1);
    return r;
  };
  const columns: Column[] = [
    { key: 'name', title: 'Name' },
    { key: 'state', title: 'State', render: (r) => <StateTag state={r.state} /> },
    { key: 'volumename', title: 'Volume' },
    { key: 'volumetype', title: 'Volume type', hidden: true },
    {
      key: 'snapshottype',
      title: 'Type',
      // A recurring snapshot says which policy took it; a manual one's interval is MANUAL again.
      value: (r) =>
        r.snapshottype === 'RECURRING' && r.intervaltype
          ? `RECURRING (${intervalName(r.intervaltype).toLowerCase()})`
          : r.snapshottype,
    },
    { key: 'physicalsize', title: 'Physical size', value: (r) => bytes(r.physicalsize) },
    { key: 'virtualsize', title: 'Virtual size', value: (r) => bytes(r.virtualsize), hidden: true },
    { key: 'zonename', title: 'Zone', hidden: true },
    { key: 'account', title: 'Account', hidden: !session.isAdmin },
    { key: 'created', title: 'Created', value: (r) => date(r.created) },
    { key: 'id', title: 'ID', hidden: true },
  ];
  const ready = (s: Row) => s.state === 'BackedUp';
  // What a snapshot can become, in one menu so that the row stays narrow at 1280 px.
  const creates = [
    {
      key: 'volume',
      label: 'Volume…',
      command: 'createVolume',
      open: (s: Row) =>
        setDialog({
          command: 'createVolume',
          title: `Create a volume from ${s.name}`,
          fields: [{ name: 'name', label: 'Volume name', required: true }],
          submit: (v) => act(`Create volume ${v.name}`, 'createVolume', { snapshotid: s.id, ...v }),
        }),
    },
    {
      key: 'template',
      label: 'Template…',
      command: 'createTemplate',
      open: (s: Row) =>
        listAll('listOsTypes', 'ostype')
          .catch(() => [])
          .then((os) =>
            setDialog({
              command: 'createTemplate',
              title: `Create a template from ${s.name}`,
              fields: [
                { name: 'name', label: 'Template name', required: true },
                { name: 'displaytext', label: 'Description' },
                {
                  name: 'ostypeid',
                  label: 'OS type',
                  type: 'select',
                  required: true,
                  options: options(os, 'description'),
                },
                { name: 'passwordenabled', label: 'Password enabled', type: 'boolean' },
                { name: 'ispublic', label: 'Public', type: 'boolean' },
              ],
              submit: (v) =>
                act(`Create template ${v.name}`, 'createTemplate', {
                  snapshotid: s.id,
                  ...v,
                  displaytext: v.displaytext || v.name,
                }),
            }),
          ),
    },
  ].filter((c) => session.can(c.command));
  const actions = (s: Row) => (
    <Space wrap>
      {session.can('revertSnapshot') && ready(s) && s.revertable !== false && (
        <ActionButton
          label="Revert"
          confirm={`Revert volume ${s.volumename} to ${s.name}? Its current content is lost.`}
          onClick={() => act(`Revert ${s.volumename} to ${s.name}`, 'revertSnapshot', { id: s.id })}
        />
      )}
      {ready(s) && creates.length > 0 && (
        <Dropdown
          trigger={['click']}
          menu={{
            items: creates.map((c) => ({ key: c.key, label: c.label })),
            onClick: (e) => creates.find((c) => c.key === e.key)?.open(s),
          }}
        >
          <Button size="small" aria-label={`Create from ${s.name}`}>
            Create from <DownOutlined />
          </Button>
        </Dropdown>
      )}
      {session.can('deleteSnapshot') && (
        <ActionButton
          danger
          label="Delete"
          confirm={`Delete snapshot ${s.name}?`}
          onClick={() => act(`Delete snapshot ${s.name}`, 'deleteSnapshot', { id: s.id })}
        />
      )}
    </Space>
  );
  return (
    <>
      <ResourceTable
        title="Snapshots"
        command="listSnapshots"
        listKey="snapshot"
        exportName="snapshots"
        params={{ listall: true }}
        columns={columns}
        reload={reload}
        filters={[
          {
            param: 'volumeid',
            label: 'Volume',
            options: volumes.map((v) => ({
              value: String(v.id),
              label: v.vmname ? `${v.name} (${v.vmdisplayname || v.vmname})` : String(v.name),
            })),
          },
          { param: 'zoneid', label: 'Zone', options: options(zones) },
          {
            param: 'snapshottype',
            label: 'Type',
            options: ['MANUAL', 'RECURRING'].map((t) => ({ value: t, label: t })),
          },
          {
            param: 'intervaltype',
            label: 'Interval',
            options: INTERVALS.map((t) => ({ value: t, label: t })),
          },
        ]}
        actions={actions}
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
    </>
  );
}

/** "Take snapshot" and "Snapshot policies" for one volume, as buttons of its row. */
export function VolumeSnapshotActions({ volume, onDone }: { volume: Row; onDone(): void }) {
  const session = useSession();
  const { run } = useActions();
  const [policies, setPolicies] = useState(false);
  // A volume without a disk yet (never attached to a started VM) cannot be snapshotted.
  const hasDisk = volume.state === 'Ready';
  if (!hasDisk) return null;
  return (
    <Space wrap>
      {session.can('createSnapshot') && (
        <FormButton
          command="createSnapshot"
          label="Take snapshot"
          size="small"
          title={`Take a snapshot of ${volume.name}`}
          fields={[{ name: 'name', label: 'Snapshot name', help: 'Leave empty for a generated name' }]}
          onSubmit={async (v) => {
            await run(`Snapshot ${volume.name}`, 'createSnapshot', { volumeid: volume.id, name: v.name });
            onDone();
          }}
        />
      )}
      {session.can('listSnapshotPolicies') && (
        <ActionButton label="Snapshot policies" onClick={() => setPolicies(true)} />
      )}
      {policies && (
        <Modal
          open
          title={`Snapshot policies of ${volume.name}`}
          footer={null}
          width={960}
          onCancel={() => setPolicies(false)}
          destroyOnHidden
        >
          <SnapshotPolicyTable volume={volume} />
        </Modal>
      )}
    </Space>
  );
}

// ---------------------------------------------------------------------------------------------
// Snapshot policies

const INTERVALS = ['HOURLY', 'DAILY', 'WEEKLY', 'MONTHLY'] as const;
const WEEKDAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

/** listSnapshotPolicies answers the interval as its ordinal (0 hourly … 3 monthly), as upstream does. */
export function intervalName(value: unknown): string {
  const n = typeof value === 'number' || /^\d+$/.test(String(value)) ? INTERVALS[Number(value)] : undefined;
  return n ?? String(value ?? '').toUpperCase();
}

/** CloudStack's schedule strings: MM (hourly), MM:HH (daily), MM:HH:DD (weekly 1-7 from Sunday, monthly 1-28). */
export function scheduleOf(interval: string, minute: number, hour: number, day: number): string {
  const two = (n: number) => String(n).padStart(2, '0');
  if (interval === 'HOURLY') return two(minute);
  if (interval === 'DAILY') return `${two(minute)}:${two(hour)}`;
  return `${two(minute)}:${two(hour)}:${two(day)}`;
}

/** "05:14:02" of a WEEKLY policy → "Mondays at 14:05". */
export function describeSchedule(p: Row): string {
  const [mm = '0', hh = '0', dd = '1'] = String(p.schedule ?? '').split(':');
  const at = `${hh.padStart(2, '0')}:${mm.padStart(2, '0')}`;
  switch (intervalName(p.intervaltype)) {
    case 'HOURLY':
      return `every hour at minute ${Number(mm)}`;
    case 'DAILY':
      return `every day at ${at}`;
    case 'WEEKLY':
      return `${WEEKDAYS[Number(dd) - 1] ?? `day ${dd}`}s at ${at}`;
    case 'MONTHLY':
      return `day ${Number(dd)} of every month at ${at}`;
    default:
      return String(p.schedule ?? '');
  }
}

function timezones(): string[] {
  try {
    return Intl.supportedValuesOf('timeZone');
  } catch {
    return ['UTC'];
  }
}

/** The policies of one volume (with "Add policy"), or of every volume the caller sees. */
export function SnapshotPolicyTable({ volume }: { volume?: Row }) {
  const session = useSession();
  const { run } = useActions();
  const [reload, setReload] = useState(0);
  const [adding, setAdding] = useState(false);
  const columns: Column[] = [
    { key: 'volumename', title: 'Volume', hidden: Boolean(volume) },
    { key: 'intervaltype', title: 'Interval', value: (p) => intervalName(p.intervaltype) },
    { key: 'schedule', title: 'Schedule', value: describeSchedule },
    { key: 'timezone', title: 'Time zone' },
    { key: 'maxsnaps', title: 'Keeps' },
    { key: 'id', title: 'ID', hidden: true },
  ];
  return (
    <>
      <ResourceTable
        title="Snapshot policies"
        command="listSnapshotPolicies"
        listKey="snapshotpolicy"
        exportName="snapshot-policies"
        params={{ listall: true, volumeid: volume?.id }}
        keyword={false}
        columns={columns}
        reload={reload}
        toolbar={
          volume &&
          session.can('createSnapshotPolicy') && (
            <Button icon={<PlusOutlined />} onClick={() => setAdding(true)}>
              Add policy
            </Button>
          )
        }
        actions={(p) =>
          session.can('deleteSnapshotPolicies') && (
            <ActionButton
              danger
              label="Delete"
              confirm={`Delete the ${intervalName(p.intervaltype).toLowerCase()} policy of ${p.volumename ?? 'this volume'}?`}
              onClick={async () => {
                await run(
                  `Delete ${intervalName(p.intervaltype)} snapshot policy`,
                  'deleteSnapshotPolicies',
                  {
                    id: p.id,
                  },
                );
                setReload((n) => n + 1);
              }}
            />
          )
        }
      />
      {volume && adding && (
        <PolicyForm
          volume={volume}
          onClose={() => setAdding(false)}
          onSubmit={async (params) => {
            await run(
              `${params.intervaltype} snapshot policy for ${volume.name}`,
              'createSnapshotPolicy',
              params,
            );
            setReload((n) => n + 1);
          }}
        />
      )}
    </>
  );
}

/** The schedule form: its fields follow the interval (no hour for hourly, a weekday or a day of month). */
function PolicyForm(props: { volume: Row; onClose(): void; onSubmit(p: Params): Promise<void> }) {
  const [form] = Form.useForm();
  const [busy, setBusy] = useState(false);
  const name = useId().replace(/:/g, '');
  const interval = (Form.useWatch('intervaltype', form) as string | undefined) ?? 'DAILY';
  const zones = timezones();
  const local = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  return (
    <Modal
      open
      title={`Add a snapshot policy to ${props.volume.name}`}
      okText="OK"
      confirmLoading={busy}
      onCancel={props.onClose}
      onOk={() => form.submit()}
      destroyOnHidden
    >
      <Form
        form={form}
        name={name}
        layout="vertical"
        initialValues={{ intervaltype: 'DAILY', minute: 0, hour: 0, day: 1, timezone: local, maxsnaps: 8 }}
        onFinish={async (v) => {
          setBusy(true);
          try {
            await props.onSubmit({
              volumeid: props.volume.id,
              intervaltype: v.intervaltype,
              schedule: scheduleOf(v.intervaltype, v.minute, v.hour, v.day),
              timezone: v.timezone,
              maxsnaps: v.maxsnaps,
            });
            props.onClose();
          } finally {
            setBusy(false);
          }
        }}
      >
        <Form.Item name="intervaltype" label="Interval" rules={[{ required: true }]}>
          <Select options={INTERVALS.map((i) => ({ value: i, label: i.toLowerCase() }))} />
        </Form.Item>
        <Space wrap>
          <Form.Item name="minute" label="Minute" rules={[{ required: true, message: 'Minute is required' }]}>
            <InputNumber min={0} max={59} />
          </Form.Item>
          {interval !== 'HOURLY' && (
            <Form.Item name="hour" label="Hour" rules={[{ required: true, message: 'Hour is required' }]}>
              <InputNumber min={0} max={23} />
            </Form.Item>
          )}
          {interval === 'WEEKLY' && (
            <Form.Item name="day" label="Day of the week" rules={[{ required: true }]}>
              <Select style={{ width: 140 }} options={WEEKDAYS.map((d, i) => ({ value: i + 1, label: d }))} />
            </Form.Item>
          )}
          {interval === 'MONTHLY' && (
            <Form.Item
              name="day"
              label="Day of the month"
              rules={[{ required: true, message: 'Day is required' }]}
              help="1–28, so that every month has it"
            >
              <InputNumber min={1} max={28} />
            </Form.Item>
          )}
        </Space>
        <Form.Item name="timezone" label="Time zone" rules={[{ required: true }]}>
          <Select
            showSearch={{ optionFilterProp: 'label' }}
            options={zones.map((z) => ({ value: z, label: z }))}
          />
        </Form.Item>
        <Form.Item
          name="maxsnaps"
          label="Snapshots to keep"
          rules={[{ required: true, message: 'Snapshots to keep is required' }]}
          help="The oldest scheduled snapshot is deleted beyond this number"
        >
          <InputNumber min={1} />
        </Form.Item>
      </Form>
    </Modal>
  );
}

// ---------------------------------------------------------------------------------------------
// VM snapshots

/** VM snapshots of one instance (with "Take VM snapshot") or of every instance the caller sees. */
export function VmSnapshotTable(props: { vm?: Row; onDone?(): void }) {
  const session = useSession();
  const { run } = useActions();
  const [reload, setReload] = useState(0);
  const vms = useList(props.vm ? '' : 'listVirtualMachines', 'virtualmachine', { listall: true }, reload);
  const done = () => {
    setReload((n) => n + 1);
    props.onDone?.();
  };
  const columns: Column[] = [
    { key: 'displayname', title: 'Name', value: (r) => r.displayname || r.name },
    { key: 'state', title: 'State', render: (r) => <StateTag state={r.state} /> },
    {
      key: 'current',
      title: 'Current',
      value: (r) => (r.current ? 'yes' : ''),
      render: (r) => (r.current ? <Tag color="blue">current</Tag> : null),
    },
    {
      key: 'virtualmachinename',
      title: 'Instance',
      hidden: Boolean(props.vm),
      render: (r) => <Link to={`/instances/${r.virtualmachineid}`}>{r.virtualmachinename}</Link>,
    },
    { key: 'type', title: 'Type' },
    { key: 'description', title: 'Description' },
    { key: 'parentName', title: 'Parent', hidden: true },
    { key: 'zonename', title: 'Zone', hidden: true },
    { key: 'account', title: 'Account', hidden: !session.isAdmin || Boolean(props.vm) },
    { key: 'created', title: 'Created', value: (r) => date(r.created) },
    { key: 'id', title: 'ID', hidden: true },
  ];
  const label = (s: Row) => s.displayname || s.name;
  const takeFields: Field[] = [
    ...(props.vm
      ? []
      : [
          {
            name: 'virtualmachineid',
            label: 'Instance',
            type: 'select' as const,
            required: true,
            options: vms
              .filter((m) => m.state === 'Running' || m.state === 'Stopped')
              .map((m) => ({ value: String(m.id), label: String(m.displayname || m.name) })),
          },
        ]),
    { name: 'name', label: 'Name', help: 'Leave empty for a generated name' },
    { name: 'description', label: 'Description' },
  ];
  return (
    <ResourceTable
      title="VM snapshots"
      command="listVMSnapshot"
      listKey="vmsnapshot"
      exportName="vm-snapshots"
      params={{ listall: true, virtualmachineid: props.vm?.id }}
      columns={columns}
      reload={reload}
      filters={[
        ...(props.vm
          ? []
          : [
              {
                param: 'virtualmachineid',
                label: 'Instance',
                options: vms.map((m) => ({ value: String(m.id), label: String(m.displayname || m.name) })),
              },
            ]),
        {
          param: 'state',
          label: 'State',
          options: ['Ready', 'Creating', 'Allocated', 'Error', 'Reverting', 'Expunging'].map((s) => ({
            value: s,
            label: s,
          })),
        },
      ]}
      toolbar={
        session.can('createVMSnapshot') &&
        (!props.vm || props.vm.state === 'Running' || props.vm.state === 'Stopped') && (
          <FormButton
            command="createVMSnapshot"
            label="Take VM snapshot"
            icon={<CameraOutlined />}
            title={
              props.vm
                ? `Take a VM snapshot of ${props.vm.displayname || props.vm.name}`
                : 'Take a VM snapshot'
            }
            // Disk-only: the server refuses memory snapshots (snapshotmemory=true) with a 431.
            fields={takeFields}
            onSubmit={async (v) => {
              const target = props.vm ?? vms.find((m) => m.id === v.virtualmachineid);
              await run(`VM snapshot of ${target?.displayname || target?.name}`, 'createVMSnapshot', {
                virtualmachineid: props.vm?.id,
                ...v,
                snapshotmemory: false,
              });
              done();
            }}
          />
        )
      }
      actions={(s) => (
        <Space wrap>
          {session.can('revertToVMSnapshot') && s.state === 'Ready' && (
            <ActionButton
              label="Revert"
              confirm={`Revert ${s.virtualmachinename} to ${label(s)}? The instance must be stopped; its disks lose what changed since.`}
              onClick={async () => {
                await run(`Revert ${s.virtualmachinename} to ${label(s)}`, 'revertToVMSnapshot', {
                  vmsnapshotid: s.id,
                });
                done();
              }}
            />
          )}
          {session.can('deleteVMSnapshot') && (
            <ActionButton
              danger
              label="Delete"
              confirm={`Delete VM snapshot ${label(s)}?`}
              onClick={async () => {
                await run(`Delete VM snapshot ${label(s)}`, 'deleteVMSnapshot', { vmsnapshotid: s.id });
                done();
              }}
            />
          )}
        </Space>
      )}
    />
  );
}
