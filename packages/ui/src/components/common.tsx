import { Button, Form, Input, InputNumber, Modal, Popconfirm, Select, Switch, Tag } from 'antd';
import { type ReactNode, useContext, useId, useState } from 'react';
import type { Params, Row } from '../api.ts';
import { SessionContext } from '../session.tsx';

const GOOD = new Set([
  'Up',
  'Running',
  'Enabled',
  'Ready',
  'Allocated',
  'BackedUp',
  'Download Complete',
  'enabled',
  'Implemented',
  'Active',
]);
const BAD = new Set([
  'Down',
  'Disconnected',
  'Alert',
  'Error',
  'Destroyed',
  'Expunging',
  'Disabled',
  'disabled',
]);

export function StateTag({ state }: { state?: string }) {
  if (!state) return null;
  const color = GOOD.has(state)
    ? 'green'
    : BAD.has(state)
      ? 'red'
      : state === 'Stopped'
        ? 'default'
        : 'orange';
  return <Tag color={color}>{state}</Tag>;
}

export function bytes(n: unknown): string {
  const v = Number(n);
  if (!Number.isFinite(v)) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let x = v;
  while (x >= 1024 && i < units.length - 1) {
    x /= 1024;
    i++;
  }
  return `${x.toFixed(x >= 10 || i === 0 ? 0 : 1)} ${units[i]}`;
}

export function date(s: unknown): string {
  if (!s) return '';
  const d = new Date(String(s));
  return Number.isNaN(d.getTime()) ? String(s) : d.toLocaleString();
}

export interface Field {
  name: string;
  label: string;
  type?: 'text' | 'password' | 'number' | 'select' | 'multiselect' | 'boolean' | 'textarea';
  required?: boolean;
  options?: { value: string; label: string }[];
  initial?: unknown;
  help?: string;
  /** Shown only while this holds for the form's current values (e.g. ports for TCP, not ICMP). */
  visible?(values: Row): boolean;
}

/** A button that opens a form for one command's parameters and submits them. */
export function FormButton(props: {
  label: string;
  title?: string;
  /** The command the form submits: its fields' tooltips are the server's parameter descriptions. */
  command?: string;
  fields: Field[];
  onSubmit(values: Params): Promise<unknown>;
  primary?: boolean;
  icon?: ReactNode;
  size?: 'small' | 'middle';
  disabled?: boolean;
  onValuesChange?(values: Row): void;
}) {
  const [open, setOpen] = useState(false);
  return (
    <>
      <Button
        type={props.primary ? 'primary' : 'default'}
        icon={props.icon}
        size={props.size}
        disabled={props.disabled}
        onClick={() => setOpen(true)}
      >
        {props.label}
      </Button>
      <FormModal
        open={open}
        title={props.title ?? props.label}
        command={props.command}
        fields={props.fields}
        onClose={() => setOpen(false)}
        onSubmit={props.onSubmit}
        onValuesChange={props.onValuesChange}
      />
    </>
  );
}

export function FormModal(props: {
  open: boolean;
  title: string;
  /** The command the form submits: its fields' tooltips are the server's parameter descriptions. */
  command?: string;
  fields: Field[];
  onClose(): void;
  onSubmit(values: Params): Promise<unknown>;
  /** Lets the opener follow a choice that other fields depend on (a zone's offerings). */
  onValuesChange?(values: Row): void;
}) {
  const [busy, setBusy] = useState(false);
  const session = useContext(SessionContext);
  const [form] = Form.useForm();
  const values = (Form.useWatch([], { form, preserve: true }) as Row | undefined) ?? {};
  // A page holds several of these forms; a distinct name keeps their field ids (and so the
  // label-to-input links) unique.
  const name = useId().replace(/:/g, '');
  return (
    <Modal
      title={props.title}
      open={props.open}
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
        onValuesChange={(_, all) => props.onValuesChange?.(all)}
        onFinish={async (values: Params) => {
          setBusy(true);
          try {
            await props.onSubmit(values);
            props.onClose();
          } finally {
            setBusy(false);
          }
        }}
      >
        {props.fields
          .filter((f) => !f.visible || f.visible(values))
          .map((f) => (
            <Form.Item
              key={f.name}
              name={f.name}
              label={f.label}
              tooltip={props.command ? session?.describe(props.command, f.name) : undefined}
              help={f.help}
              initialValue={f.initial}
              valuePropName={f.type === 'boolean' ? 'checked' : 'value'}
              rules={f.required ? [{ required: true, message: `${f.label} is required` }] : []}
            >
              {f.type === 'password' ? (
                <Input.Password />
              ) : f.type === 'number' ? (
                <InputNumber style={{ width: '100%' }} />
              ) : f.type === 'select' || f.type === 'multiselect' ? (
                <Select
                  mode={f.type === 'multiselect' ? 'multiple' : undefined}
                  options={f.options}
                  allowClear
                  showSearch={{ optionFilterProp: 'label' }}
                />
              ) : f.type === 'boolean' ? (
                <Switch />
              ) : f.type === 'textarea' ? (
                <Input.TextArea rows={4} />
              ) : (
                <Input />
              )}
            </Form.Item>
          ))}
      </Form>
    </Modal>
  );
}

/** A small action button, with a confirmation for destructive ones. */
export function ActionButton(props: {
  label: string;
  onClick(): unknown;
  danger?: boolean;
  confirm?: string;
  disabled?: boolean;
}) {
  const button = (
    <Button
      size="small"
      danger={props.danger}
      disabled={props.disabled}
      onClick={props.confirm ? undefined : () => props.onClick()}
    >
      {props.label}
    </Button>
  );
  if (!props.confirm) return button;
  return (
    <Popconfirm title={props.confirm} onConfirm={() => props.onClick()} okText="Yes" cancelText="No">
      {button}
    </Popconfirm>
  );
}

export function options(rows: Row[], label = 'name'): { value: string; label: string }[] {
  return rows.map((r) => ({ value: String(r.id), label: String(r[label] ?? r.id) }));
}
