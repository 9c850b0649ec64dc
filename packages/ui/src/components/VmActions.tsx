/**
 * The actions on one instance, offered by its state and by what listApis allows: start, stop,
 * reboot, destroy, recover, expunge, scale, reset password or SSH key, migrate (admins), and
 * attach or detach an ISO.
 */
import { DownOutlined } from '@ant-design/icons';
import { Button, Dropdown, Modal } from 'antd';
import { useState } from 'react';
import { errorText, listAll, type Params, type Row } from '../api.ts';
import { useActions } from '../jobs.tsx';
import { useSession } from '../session.tsx';
import { type Field, FormModal, options } from './common.tsx';

interface Action {
  key: string;
  label: string;
  command: string;
  when: (vm: Row) => boolean;
  confirm?: boolean;
  danger?: boolean;
  params?: (vm: Row) => Params;
  /** The form's fields, loaded when the action is chosen (not for every row of a list). */
  form?: () => Promise<Field[]>;
}

export function useVmActionList(): Action[] {
  const session = useSession();
  const all: Action[] = [
    { key: 'start', label: 'Start', command: 'startVirtualMachine', when: (v) => v.state === 'Stopped' },
    {
      key: 'stop',
      label: 'Stop',
      command: 'stopVirtualMachine',
      when: (v) => v.state === 'Running',
      confirm: true,
    },
    {
      key: 'reboot',
      label: 'Reboot',
      command: 'rebootVirtualMachine',
      when: (v) => v.state === 'Running',
      confirm: true,
    },
    {
      key: 'scale',
      label: 'Scale',
      command: 'scaleVirtualMachine',
      when: (v) => v.state === 'Stopped' || v.state === 'Running',
      form: async () => [
        {
          name: 'serviceofferingid',
          label: 'Service offering',
          type: 'select',
          required: true,
          options: options(await listAll('listServiceOfferings', 'serviceoffering')),
        },
      ],
    },
    {
      key: 'resetpw',
      label: 'Reset password',
      command: 'resetPasswordForVirtualMachine',
      when: (v) => v.state === 'Stopped' && v.passwordenabled !== false,
      confirm: true,
    },
    {
      key: 'resetkey',
      label: 'Reset SSH key',
      command: 'resetSSHKeyForVirtualMachine',
      when: (v) => v.state === 'Stopped',
      form: async () => [
        {
          name: 'keypair',
          label: 'SSH key pair',
          type: 'select',
          required: true,
          options: (await listAll('listSSHKeyPairs', 'sshkeypair')).map((k) => ({
            value: k.name,
            label: k.name,
          })),
        },
      ],
    },
    {
      key: 'attachiso',
      label: 'Attach ISO',
      command: 'attachIso',
      when: (v) => !v.isoid && (v.state === 'Running' || v.state === 'Stopped'),
      form: async () => [
        {
          name: 'id',
          label: 'ISO',
          type: 'select',
          required: true,
          options: options(await listAll('listIsos', 'iso', { isofilter: 'executable', isready: true })),
        },
      ],
      params: (v) => ({ virtualmachineid: v.id }),
    },
    {
      key: 'detachiso',
      label: 'Detach ISO',
      command: 'detachIso',
      when: (v) => Boolean(v.isoid),
      params: (v) => ({ virtualmachineid: v.id }),
    },
    {
      key: 'migrate',
      label: 'Migrate',
      command: 'migrateVirtualMachine',
      when: (v) => v.state === 'Running' && session.isAdmin,
      form: async () => [
        {
          name: 'hostid',
          label: 'Destination host',
          type: 'select',
          required: true,
          options: options(await listAll('listHosts', 'host', { type: 'Routing', state: 'Up' })),
        },
      ],
      params: (v) => ({ virtualmachineid: v.id }),
    },
    {
      key: 'destroy',
      label: 'Destroy',
      command: 'destroyVirtualMachine',
      when: (v) => v.state !== 'Destroyed' && v.state !== 'Expunging',
      confirm: true,
      danger: true,
    },
    {
      key: 'recover',
      label: 'Recover',
      command: 'recoverVirtualMachine',
      when: (v) => v.state === 'Destroyed',
    },
    {
      key: 'expunge',
      label: 'Expunge',
      command: 'expungeVirtualMachine',
      when: (v) => v.state === 'Destroyed',
      confirm: true,
      danger: true,
    },
  ];
  return all.filter((a) => session.can(a.command));
}

export function VmActions({ vm, onDone, buttons }: { vm: Row; onDone(): void; buttons?: boolean }) {
  const { run } = useActions();
  const actions = useVmActionList().filter((a) => a.when(vm));
  const [dialog, setDialog] = useState<{ action: Action; fields: Field[] }>();
  const name = vm.displayname || vm.name;

  const perform = async (a: Action, values: Params = {}) => {
    const params = { id: vm.id, ...(a.params?.(vm) ?? {}), ...values };
    if (a.params && 'virtualmachineid' in (a.params(vm) ?? {}) && a.key !== 'attachiso') delete params.id;
    const r = await run(`${a.label} ${name}`, a.command, params);
    const vmResult = r?.virtualmachine as Row | undefined;
    if (a.key === 'resetpw' && vmResult?.password) {
      Modal.info({ title: `New password for ${name}`, content: <code>{String(vmResult.password)}</code> });
    }
    onDone();
  };
  const choose = (a: Action) => {
    if (a.form)
      a.form()
        .then((fields) => setDialog({ action: a, fields }))
        .catch((e) => Modal.error({ title: a.label, content: errorText(e) }));
    else if (a.confirm)
      Modal.confirm({
        title: `${a.label} ${name}?`,
        okButtonProps: { danger: a.danger },
        onOk: () => perform(a),
      });
    else void perform(a);
  };

  if (actions.length === 0) return null;
  return (
    <>
      {buttons ? (
        <span style={{ display: 'inline-flex', gap: 8, flexWrap: 'wrap' }}>
          {actions.map((a) => (
            <Button key={a.key} danger={a.danger} onClick={() => choose(a)}>
              {a.label}
            </Button>
          ))}
        </span>
      ) : (
        <Dropdown
          trigger={['click']}
          menu={{
            items: actions.map((a) => ({ key: a.key, label: a.label, danger: a.danger })),
            onClick: (e) => choose(actions.find((a) => a.key === e.key)!),
          }}
        >
          <Button size="small" aria-label={`Actions for ${name}`}>
            Actions <DownOutlined />
          </Button>
        </Dropdown>
      )}
      {dialog && (
        <FormModal
          open
          title={`${dialog.action.label} ${name}`}
          command={dialog.action.command}
          fields={dialog.fields}
          onClose={() => setDialog(undefined)}
          onSubmit={(values) => perform(dialog.action, values)}
        />
      )}
    </>
  );
}
