import { PlusOutlined } from '@ant-design/icons';
import { Alert, Card, Col, Row as GridRow, Modal, Select, Space, Table, Tabs, Tree, Typography } from 'antd';
import { useEffect, useMemo, useState } from 'react';
import { api, type Params, type Row } from '../api.ts';
import { ActionButton, type Field, FormButton, FormModal, StateTag } from '../components/common.tsx';
import { type Column, ResourceTable } from '../components/ResourceTable.tsx';
import { useList } from '../hooks.ts';
import { useActions } from '../jobs.tsx';
import { useSession } from '../session.tsx';

const ACCOUNT_TYPES = [
  { value: '0', label: 'User' },
  { value: '2', label: 'Domain admin' },
  { value: '1', label: 'Root admin' },
];
const LIMIT_NAMES: Record<string, string> = {
  0: 'Instances',
  1: 'Public IPs',
  2: 'Volumes',
  3: 'Snapshots',
  4: 'Templates',
  6: 'Networks',
  7: 'VPCs',
  8: 'CPUs',
  9: 'Memory (MiB)',
  10: 'Primary storage (GiB)',
  11: 'Secondary storage (GiB)',
};

function showSecret(title: string, rows: [string, unknown][]) {
  Modal.info({
    title,
    width: 640,
    content: (
      <div>
        <Alert type="warning" title="Copy this now: it is not shown again." style={{ marginBottom: 8 }} />
        {rows.map(([k, v]) => (
          <div key={k} style={{ marginBottom: 8 }}>
            <strong>{k}</strong>
            <pre style={{ whiteSpace: 'pre-wrap', wordBreak: 'break-all', margin: 0 }}>{String(v ?? '')}</pre>
          </div>
        ))}
      </div>
    ),
  });
}

export function Accounts() {
  const session = useSession();
  const { run } = useActions();
  const [reload, setReload] = useState(0);
  const [dialog, setDialog] = useState<Dialog>();
  const domains = useList('listDomains', 'domain', { listall: true }, reload);
  const accounts = useList('listAccounts', 'account', { listall: true }, reload);
  const roles = useList('listRoles', 'role', {}, reload);
  const bump = () => setReload((n) => n + 1);
  const act = async (label: string, command: string, params: Params) => {
    const r = await run(label, command, params);
    bump();
    return r;
  };
  const domainOptions = domains.map((d) => ({ value: d.id, label: d.path ?? d.name }));

  const accountColumns: Column[] = [
    { key: 'name', title: 'Name' },
    { key: 'domain', title: 'Domain', value: (r) => r.domainpath ?? r.domain },
    { key: 'rolename', title: 'Role' },
    { key: 'state', title: 'State', render: (r) => <StateTag state={r.state} /> },
    { key: 'vmtotal', title: 'Instances', hidden: true },
    { key: 'id', title: 'ID', hidden: true },
  ];
  const userColumns: Column[] = [
    { key: 'username', title: 'Username' },
    { key: 'account', title: 'Account' },
    { key: 'domain', title: 'Domain' },
    { key: 'email', title: 'Email', hidden: true },
    { key: 'firstname', title: 'First name', hidden: true },
    { key: 'lastname', title: 'Last name', hidden: true },
    { key: 'state', title: 'State', render: (r) => <StateTag state={r.state} /> },
    { key: 'apikey', title: 'API key', hidden: true },
  ];

  const tabs = [
    session.can('listDomains') && {
      key: 'domains',
      label: 'Domains',
      children: <DomainTree domains={domains} act={act} />,
    },
    session.can('listAccounts') && {
      key: 'accounts',
      label: 'Accounts',
      children: (
        <ResourceTable
          title="Accounts"
          command="listAccounts"
          listKey="account"
          params={{ listall: true }}
          columns={accountColumns}
          reload={reload}
          filters={session.isAdmin ? [{ param: 'domainid', label: 'Domain', options: domainOptions }] : []}
          toolbar={
            session.can('createAccount') && (
              <FormButton
                command="createAccount"
                label="Add account"
                icon={<PlusOutlined />}
                fields={[
                  { name: 'username', label: 'Username', required: true },
                  { name: 'password', label: 'Password', type: 'password', required: true },
                  { name: 'email', label: 'Email', required: true },
                  { name: 'firstname', label: 'First name', required: true },
                  { name: 'lastname', label: 'Last name', required: true },
                  { name: 'account', label: 'Account name (default: username)' },
                  {
                    name: 'accounttype',
                    label: 'Type',
                    type: 'select',
                    options: ACCOUNT_TYPES,
                    initial: '0',
                  },
                  { name: 'domainid', label: 'Domain', type: 'select', options: domainOptions },
                ]}
                onSubmit={(v) => act(`Create account ${v.account || v.username}`, 'createAccount', v)}
              />
            )
          }
          actions={(a) => (
            <Space wrap>
              {a.state === 'disabled' || a.state === 'locked'
                ? session.can('enableAccount') && (
                    <ActionButton
                      label="Enable"
                      onClick={() => act(`Enable ${a.name}`, 'enableAccount', { id: a.id })}
                    />
                  )
                : session.can('disableAccount') && (
                    <ActionButton
                      label="Disable"
                      confirm={`Disable ${a.name}? Its instances are stopped.`}
                      onClick={() => act(`Disable ${a.name}`, 'disableAccount', { id: a.id, lock: false })}
                    />
                  )}
              {session.can('deleteAccount') && (
                <ActionButton
                  danger
                  label="Delete"
                  confirm={`Delete account ${a.name} and everything it owns?`}
                  onClick={() => act(`Delete ${a.name}`, 'deleteAccount', { id: a.id })}
                />
              )}
            </Space>
          )}
        />
      ),
    },
    session.can('listUsers') && {
      key: 'users',
      label: 'Users',
      children: (
        <ResourceTable
          title="Users"
          command="listUsers"
          listKey="user"
          params={{ listall: true }}
          columns={userColumns}
          reload={reload}
          toolbar={
            session.can('createUser') && (
              <FormButton
                command="createUser"
                label="Add user"
                icon={<PlusOutlined />}
                fields={[
                  {
                    name: 'accountid',
                    label: 'Account',
                    type: 'select',
                    required: true,
                    options: accounts.map((a) => ({ value: a.id, label: `${a.name} (${a.domain})` })),
                  },
                  { name: 'username', label: 'Username', required: true },
                  { name: 'password', label: 'Password', type: 'password', required: true },
                  { name: 'email', label: 'Email', required: true },
                  { name: 'firstname', label: 'First name', required: true },
                  { name: 'lastname', label: 'Last name', required: true },
                ]}
                onSubmit={({ accountid, ...v }) => {
                  const a = accounts.find((x) => x.id === accountid);
                  return act(`Create user ${v.username}`, 'createUser', {
                    ...v,
                    account: a?.name,
                    domainid: a?.domainid,
                  });
                }}
              />
            )
          }
          actions={(u) => (
            <Space wrap>
              {session.can('registerUserKeys') && (
                <ActionButton
                  label="API keys"
                  confirm={`Generate new API keys for ${u.username}? Old keys stop working.`}
                  onClick={async () => {
                    const r = await act(`API keys for ${u.username}`, 'registerUserKeys', { id: u.id });
                    const keys = r?.userkeys as Row | undefined;
                    if (keys)
                      showSecret(`API keys of ${u.username}`, [
                        ['API key', keys.apikey],
                        ['Secret key', keys.secretkey],
                      ]);
                  }}
                />
              )}
              {u.state === 'disabled'
                ? session.can('enableUser') && (
                    <ActionButton
                      label="Enable"
                      onClick={() => act(`Enable ${u.username}`, 'enableUser', { id: u.id })}
                    />
                  )
                : session.can('disableUser') &&
                  u.id !== session.info.userid && (
                    <ActionButton
                      label="Disable"
                      confirm={`Disable ${u.username}?`}
                      onClick={() => act(`Disable ${u.username}`, 'disableUser', { id: u.id })}
                    />
                  )}
              {session.can('deleteUser') && u.id !== session.info.userid && (
                <ActionButton
                  danger
                  label="Delete"
                  confirm={`Delete ${u.username}?`}
                  onClick={() => act(`Delete ${u.username}`, 'deleteUser', { id: u.id })}
                />
              )}
            </Space>
          )}
        />
      ),
    },
    session.can('listRoles') && {
      key: 'roles',
      label: 'Roles',
      children: <Roles roles={roles} act={act} />,
    },
    session.can('listResourceLimits') && {
      key: 'limits',
      label: 'Limits',
      children: <Limits accounts={accounts} reload={reload} setDialog={setDialog} act={act} />,
    },
    session.can('listSSHKeyPairs') && {
      key: 'sshkeys',
      label: 'SSH keys',
      children: (
        <ResourceTable
          title="SSH key pairs"
          command="listSSHKeyPairs"
          listKey="sshkeypair"
          rowKey="fingerprint"
          params={{ listall: true }}
          reload={reload}
          columns={[
            { key: 'name', title: 'Name' },
            { key: 'fingerprint', title: 'Fingerprint' },
            { key: 'account', title: 'Account' },
          ]}
          toolbar={
            <Space>
              {session.can('createSSHKeyPair') && (
                <FormButton
                  command="createSSHKeyPair"
                  label="Create key pair"
                  icon={<PlusOutlined />}
                  fields={[{ name: 'name', label: 'Name', required: true }]}
                  onSubmit={async (v) => {
                    const r = await act(`Create key pair ${v.name}`, 'createSSHKeyPair', v);
                    const k = r?.keypair as Row | undefined;
                    if (k?.privatekey)
                      showSecret(`Private key of ${v.name}`, [['Private key', k.privatekey]]);
                  }}
                />
              )}
              {session.can('registerSSHKeyPair') && (
                <FormButton
                  command="registerSSHKeyPair"
                  label="Register public key"
                  fields={[
                    { name: 'name', label: 'Name', required: true },
                    { name: 'publickey', label: 'Public key', type: 'textarea', required: true },
                  ]}
                  onSubmit={(v) => act(`Register key ${v.name}`, 'registerSSHKeyPair', v)}
                />
              )}
            </Space>
          }
          actions={(k) =>
            session.can('deleteSSHKeyPair') && (
              <ActionButton
                danger
                label="Delete"
                confirm={`Delete key pair ${k.name}?`}
                onClick={() =>
                  act(`Delete key pair ${k.name}`, 'deleteSSHKeyPair', {
                    name: k.name,
                    account: k.account,
                    domainid: k.domainid,
                  })
                }
              />
            )
          }
        />
      ),
    },
    session.can('listSecurityGroups') && {
      key: 'securitygroups',
      label: 'Security groups',
      children: <SecurityGroups reload={reload} act={act} setDialog={setDialog} />,
    },
  ].filter(Boolean) as { key: string; label: string; children: React.ReactNode }[];

  return (
    <div>
      <Typography.Title level={3}>Accounts</Typography.Title>
      <Tabs items={tabs} defaultActiveKey={session.isAdmin ? 'domains' : 'sshkeys'} />
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

type Act = (label: string, command: string, params: Params) => Promise<Row | undefined>;
/** A form in a modal; `command` is what it submits (its fields' tooltips come from listApis). */
type Dialog = { title: string; command: string; fields: Field[]; submit(v: Params): Promise<unknown> };
type SetDialog = (d: Dialog) => void;

function DomainTree({ domains, act }: { domains: Row[]; act: Act }) {
  const session = useSession();
  const [selected, setSelected] = useState<string>();
  const tree = useMemo(() => {
    type Node = { key: string; title: string; children: Node[] };
    const nodes = new Map<string, Node>(
      domains.map((d) => [d.id, { key: d.id, title: d.name, children: [] }]),
    );
    const roots: Node[] = [];
    for (const d of domains) {
      const n = nodes.get(d.id)!;
      const parent = d.parentdomainid ? nodes.get(d.parentdomainid) : undefined;
      if (parent) parent.children.push(n);
      else roots.push(n);
    }
    return roots;
  }, [domains]);
  const domain = domains.find((d) => d.id === selected);
  return (
    <GridRow gutter={16}>
      <Col xs={24} md={10}>
        <Card size="small" title="Domain tree">
          <Tree
            treeData={tree}
            defaultExpandAll
            selectedKeys={selected ? [selected] : []}
            onSelect={(k) => setSelected(k[0] as string)}
          />
        </Card>
      </Col>
      <Col xs={24} md={14}>
        <Card size="small" title={domain ? (domain.path ?? domain.name) : 'Select a domain'}>
          {domain && (
            <Space wrap>
              {session.can('createDomain') && (
                <FormButton
                  command="createDomain"
                  label="Add subdomain"
                  icon={<PlusOutlined />}
                  fields={[{ name: 'name', label: 'Name', required: true }]}
                  onSubmit={(v) =>
                    act(`Create domain ${v.name}`, 'createDomain', { ...v, parentdomainid: domain.id })
                  }
                />
              )}
              {session.can('deleteDomain') && domain.level > 0 && (
                <ActionButton
                  danger
                  label="Delete"
                  confirm={`Delete domain ${domain.name}?`}
                  onClick={() => act(`Delete domain ${domain.name}`, 'deleteDomain', { id: domain.id })}
                />
              )}
            </Space>
          )}
        </Card>
      </Col>
    </GridRow>
  );
}

function Roles({ roles, act }: { roles: Row[]; act: Act }) {
  const session = useSession();
  const [roleid, setRoleid] = useState<string>();
  const [permissions, setPermissions] = useState<Row[]>([]);
  const [tick, setTick] = useState(0);
  // biome-ignore lint/correctness/useExhaustiveDependencies: tick is a trigger
  useEffect(() => {
    if (!roleid || !session.can('listRolePermissions')) return;
    api('listRolePermissions', { roleid })
      .then((r) => setPermissions((r.rolepermission as Row[]) ?? []))
      .catch(() => setPermissions([]));
  }, [roleid, session, tick]);
  return (
    <GridRow gutter={16}>
      <Col xs={24} lg={10}>
        <Table<Row>
          size="small"
          rowKey="id"
          dataSource={roles}
          pagination={false}
          rowSelection={{
            type: 'radio',
            selectedRowKeys: roleid ? [roleid] : [],
            onChange: (k) => setRoleid(k[0] as string),
          }}
          onRow={(r) => ({ onClick: () => setRoleid(r.id) })}
          columns={[
            { key: 'name', title: 'Role', dataIndex: 'name' },
            { key: 'type', title: 'Type', dataIndex: 'type' },
          ]}
        />
        {session.can('createRole') && (
          <div style={{ marginTop: 8 }}>
            <FormButton
              command="createRole"
              label="Add role"
              icon={<PlusOutlined />}
              fields={[
                { name: 'name', label: 'Name', required: true },
                {
                  name: 'type',
                  label: 'Type',
                  type: 'select',
                  required: true,
                  options: ['Admin', 'DomainAdmin', 'User'].map((t) => ({ value: t, label: t })),
                },
                { name: 'description', label: 'Description' },
              ]}
              onSubmit={(v) => act(`Create role ${v.name}`, 'createRole', v)}
            />
          </div>
        )}
      </Col>
      <Col xs={24} lg={14}>
        {roleid ? (
          <>
            {session.can('createRolePermission') && (
              <FormButton
                command="createRolePermission"
                label="Add permission"
                fields={[
                  { name: 'rule', label: 'Rule (API name, * wildcards)', required: true },
                  {
                    name: 'permission',
                    label: 'Permission',
                    type: 'select',
                    required: true,
                    initial: 'allow',
                    options: ['allow', 'deny'].map((p) => ({ value: p, label: p })),
                  },
                ]}
                onSubmit={async (v) => {
                  await act(`Add rule ${v.rule}`, 'createRolePermission', { ...v, roleid });
                  setTick((n) => n + 1);
                }}
              />
            )}
            <Table<Row>
              size="small"
              rowKey="id"
              dataSource={permissions}
              pagination={{ pageSize: 20 }}
              columns={[
                { key: 'rule', title: 'Rule', dataIndex: 'rule' },
                { key: 'permission', title: 'Permission', dataIndex: 'permission' },
                {
                  key: 'actions',
                  title: 'Actions',
                  render: (_, p) =>
                    session.can('deleteRolePermission') && (
                      <ActionButton
                        danger
                        label="Delete"
                        onClick={async () => {
                          await act(`Delete rule ${p.rule}`, 'deleteRolePermission', { id: p.id });
                          setTick((n) => n + 1);
                        }}
                      />
                    ),
                },
              ]}
            />
          </>
        ) : (
          <Alert type="info" title="Select a role to see its permissions" />
        )}
      </Col>
    </GridRow>
  );
}

function Limits({
  accounts,
  reload,
  setDialog,
  act,
}: {
  accounts: Row[];
  reload: number;
  setDialog: SetDialog;
  act: Act;
}) {
  const session = useSession();
  const [accountId, setAccountId] = useState<string>();
  const account = accounts.find((a) => a.id === accountId) ?? (session.isAdmin ? undefined : accounts[0]);
  return (
    <Space direction="vertical" style={{ width: '100%' }}>
      {session.isAdmin && (
        <Select
          aria-label="Account"
          placeholder="Account"
          style={{ width: 280 }}
          value={accountId}
          onChange={setAccountId}
          showSearch={{ optionFilterProp: 'label' }}
          options={accounts.map((a) => ({ value: a.id, label: `${a.name} (${a.domain})` }))}
        />
      )}
      {account ? (
        <ResourceTable
          title="Resource limits"
          command="listResourceLimits"
          listKey="resourcelimit"
          rowKey="resourcetype"
          keyword={false}
          params={{ account: account.name, domainid: account.domainid }}
          reload={reload}
          columns={[
            {
              key: 'resourcetype',
              title: 'Resource',
              value: (r) => LIMIT_NAMES[String(r.resourcetype)] ?? r.resourcetypename ?? r.resourcetype,
            },
            { key: 'max', title: 'Limit', value: (r) => (Number(r.max) < 0 ? 'Unlimited' : r.max) },
          ]}
          actions={(r) =>
            session.can('updateResourceLimit') && (
              <ActionButton
                label="Change"
                onClick={() =>
                  setDialog({
                    command: 'updateResourceLimit',
                    title: `Limit of ${LIMIT_NAMES[String(r.resourcetype)] ?? r.resourcetype} for ${account.name}`,
                    fields: [
                      {
                        name: 'max',
                        label: 'Maximum (-1 for unlimited)',
                        type: 'number',
                        required: true,
                        initial: Number(r.max),
                      },
                    ],
                    submit: (v) =>
                      act('Update limit', 'updateResourceLimit', {
                        ...v,
                        resourcetype: r.resourcetype,
                        account: account.name,
                        domainid: account.domainid,
                      }),
                  })
                }
              />
            )
          }
        />
      ) : (
        <Alert type="info" title="Choose an account to see its limits" />
      )}
    </Space>
  );
}

function SecurityGroups({ reload, act, setDialog }: { reload: number; act: Act; setDialog: SetDialog }) {
  const session = useSession();
  const ruleText = (r: Row) =>
    `${r.protocol ?? 'all'} ${r.startport ?? r.icmptype ?? ''}${r.endport && r.endport !== r.startport ? `-${r.endport}` : ''} from ${r.cidr ?? r.securitygroupname ?? ''}`;
  return (
    <ResourceTable
      title="Security groups"
      command="listSecurityGroups"
      listKey="securitygroup"
      params={{ listall: true }}
      reload={reload}
      columns={[
        { key: 'name', title: 'Name' },
        { key: 'description', title: 'Description' },
        { key: 'account', title: 'Account' },
        {
          key: 'ingressrule',
          title: 'Ingress rules',
          value: (g) => ((g.ingressrule as Row[]) ?? []).map(ruleText).join('; '),
          render: (g) => (
            <div>
              {((g.ingressrule as Row[]) ?? []).map((r) => (
                <div key={r.ruleid}>
                  {ruleText(r)}{' '}
                  {session.can('revokeSecurityGroupIngress') && (
                    <ActionButton
                      danger
                      label="Revoke"
                      onClick={() => act('Revoke rule', 'revokeSecurityGroupIngress', { id: r.ruleid })}
                    />
                  )}
                </div>
              ))}
            </div>
          ),
        },
      ]}
      toolbar={
        session.can('createSecurityGroup') && (
          <FormButton
            command="createSecurityGroup"
            label="Add security group"
            icon={<PlusOutlined />}
            fields={[
              { name: 'name', label: 'Name', required: true },
              { name: 'description', label: 'Description' },
            ]}
            onSubmit={(v) => act(`Create security group ${v.name}`, 'createSecurityGroup', v)}
          />
        )
      }
      actions={(g) => (
        <Space wrap>
          {session.can('authorizeSecurityGroupIngress') && (
            <ActionButton
              label="Add ingress rule"
              onClick={() =>
                setDialog({
                  command: 'authorizeSecurityGroupIngress',
                  title: `Ingress rule for ${g.name}`,
                  fields: [
                    {
                      name: 'protocol',
                      label: 'Protocol',
                      type: 'select',
                      required: true,
                      initial: 'tcp',
                      options: ['tcp', 'udp', 'icmp', 'all'].map((p) => ({ value: p, label: p })),
                    },
                    { name: 'startport', label: 'Start port (ICMP type)', type: 'number' },
                    { name: 'endport', label: 'End port (ICMP code)', type: 'number' },
                    { name: 'cidrlist', label: 'CIDR', initial: '0.0.0.0/0' },
                  ],
                  submit: ({ startport, endport, ...v }) =>
                    act(`Authorize ingress on ${g.name}`, 'authorizeSecurityGroupIngress', {
                      ...v,
                      ...(v.protocol === 'icmp'
                        ? { icmptype: startport, icmpcode: endport }
                        : { startport, endport }),
                      securitygroupid: g.id,
                    }),
                })
              }
            />
          )}
          {session.can('deleteSecurityGroup') && g.name !== 'default' && (
            <ActionButton
              danger
              label="Delete"
              confirm={`Delete ${g.name}?`}
              onClick={() => act(`Delete ${g.name}`, 'deleteSecurityGroup', { id: g.id })}
            />
          )}
        </Space>
      )}
    />
  );
}
