/**
 * The actions on one instance, offered by its state and by what listApis allows: start, stop,
 * reboot, destroy, recover, expunge, scale, reset password or SSH key, migrate (admins), and
 * attach or detach an ISO.
 */
import { DownOutlined } from '@ant-design/icons';
import { Button, Dropdown, Modal } from 'antd';
import { useState } from 'react';
import type { Params, Row } from '../api.ts';
import { useList } from '../hooks.ts';
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
  form?: Field[];
}

export function useVmActionList(): Action[] {
  const session = useSession();
  const offerings = useList('listServiceOfferings', 'serviceoffering');
  const keys = useList('listSSHKeyPairs', 'sshkeypair');
  const isos = useList('listIsos', 'iso', { isofilter: 'executable', isready: true });
  const hosts = useList(session.isRootAdmin ? 'listHosts' : '', 'host', { type: 'Routing', state: 'Up' });
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
      form: [
        {
          name: 'serviceofferingid',
          label: 'Service offering',
          type: 'select',
          required: true,
          options: options(offerings),
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
      form: [
        {
          name: 'keypair',
          label: 'SSH key pair',
          type: 'select',
          required: true,
          options: keys.map((k) => ({ value: k.name, label: k.name })),
        },
      ],
    },
    {
      key: 'attachiso',
      label: 'Attach ISO',
      command: 'attachIso',
      when: (v) => !v.isoid && (v.state === 'Running' || v.state === 'Stopped'),
      form: [{ name: 'id', label: 'ISO', type: 'select', required: true, options: options(isos) }],
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
      form: [
        {
          name: 'hostid',
          label: 'Destination host',
          type: 'select',
          required: true,
          options: options(hosts),
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
  const [dialog, setDialog] = useState<Action>();
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
    if (a.form) setDialog(a);
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
          title={`${dialog.label} ${name}`}
          fields={dialog.form ?? []}
          onClose={() => setDialog(undefined)}
          onSubmit={(values) => perform(dialog, values)}
        />
      )}
    </>
  );
}
