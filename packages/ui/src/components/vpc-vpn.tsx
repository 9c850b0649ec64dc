/**
 * A VPC's VPNs: remote access on its source-NAT address (on/off, with the pre-shared key clients
 * need), the VPN users of the VPC's account (users belong to the account, not to one VPN), the
 * VPC's site-to-site VPN gateway, the account's customer gateways (the far ends) and the
 * connections between them with the state the router reports for each tunnel.
 */
import { PlusOutlined } from '@ant-design/icons';
import { Alert, Card, Descriptions, Space, Switch, Tag, Typography } from 'antd';
import { useEffect, useState } from 'react';
import { errorText, listAll, type Params, type Row } from '../api.ts';
import { useList } from '../hooks.ts';
import { useActions } from '../jobs.tsx';
import { useSession } from '../session.tsx';
import { ActionButton, FormButton, StateTag } from './common.tsx';
import { ResourceTable } from './ResourceTable.tsx';

export function VpcVpn({ vpc }: { vpc: Row }) {
  const session = useSession();
  const [reload, setReload] = useState(0);
  const bump = () => setReload((n) => n + 1);
  // Users and customer gateways belong to the VPC's account: an admin looking at another
  // account's VPC names that account; for one's own, the commands' default is it.
  const own = vpc.account === session.info.account && vpc.domainid === session.info.domainid;
  const owner = own ? {} : { account: vpc.account, domainid: vpc.domainid };
  return (
    <Space direction="vertical" style={{ width: '100%' }} size="large">
      <RemoteAccess vpc={vpc} />
      <VpnUsers vpc={vpc} owner={owner} />
      <SiteToSite vpc={vpc} owner={owner} reload={reload} onChange={bump} />
    </Space>
  );
}

function RemoteAccess({ vpc }: { vpc: Row }) {
  const session = useSession();
  const { run } = useActions();
  const [tick, setTick] = useState(0);
  const [state, setState] = useState<{ ip?: Row; vpn?: Row }>();
  const [error, setError] = useState<string>();
  // biome-ignore lint/correctness/useExhaustiveDependencies: tick is a trigger
  useEffect(() => {
    let cancelled = false;
    (async () => {
      const [ip] = await listAll('listPublicIpAddresses', 'publicipaddress', {
        vpcid: vpc.id,
        issourcenat: true,
        listall: true,
      });
      const vpn = ip
        ? (await listAll('listRemoteAccessVpns', 'remoteaccessvpn', { publicipid: ip.id, listall: true }))[0]
        : undefined;
      return { ip, vpn };
    })()
      .then((s) => !cancelled && setState(s))
      .catch((e) => !cancelled && setError(errorText(e)));
    return () => {
      cancelled = true;
    };
  }, [vpc.id, tick]);

  const ip = state?.ip;
  const vpn = state?.vpn;
  const toggle = async (on: boolean) => {
    if (!ip) return;
    if (on)
      await run(`Enable remote access VPN on ${vpc.name}`, 'createRemoteAccessVpn', { publicipid: ip.id });
    else
      await run(`Disable remote access VPN on ${vpc.name}`, 'deleteRemoteAccessVpn', { publicipid: ip.id });
    setTick((n) => n + 1);
  };
  return (
    <Card
      size="small"
      title="Remote access VPN"
      extra={
        session.can('createRemoteAccessVpn') &&
        session.can('deleteRemoteAccessVpn') && (
          <Switch
            aria-label="Remote access VPN"
            checked={Boolean(vpn)}
            loading={state === undefined}
            disabled={!ip}
            onChange={toggle}
          />
        )
      }
    >
      {error && <Alert type="error" showIcon title={error} />}
      {state && !ip && <Alert type="info" showIcon title="The VPC has no source-NAT address yet." />}
      {ip && !vpn && (
        <Typography.Text type="secondary">
          Off. Turned on, clients connect to {ip.ipaddress} with IKEv2, the key shown here and a VPN user.
        </Typography.Text>
      )}
      {vpn && (
        <Descriptions
          size="small"
          column={1}
          items={[
            { key: 'ip', label: 'Public IP', children: vpn.publicip },
            { key: 'state', label: 'State', children: <StateTag state={vpn.state} /> },
            { key: 'range', label: 'Client addresses', children: vpn.iprange },
            {
              key: 'psk',
              label: 'Pre-shared key',
              children: (
                <Typography.Text code copyable data-testid="vpn-psk">
                  {vpn.presharedkey}
                </Typography.Text>
              ),
            },
          ]}
        />
      )}
    </Card>
  );
}

function VpnUsers({ vpc, owner }: { vpc: Row; owner: Params }) {
  const session = useSession();
  const { run } = useActions();
  const [reload, setReload] = useState(0);
  return (
    <div>
      <Typography.Title level={5}>VPN users of {vpc.account}</Typography.Title>
      <ResourceTable
        title="VPN users"
        command="listVpnUsers"
        listKey="vpnuser"
        exportName={`vpn-users-${vpc.account}`}
        params={owner}
        reload={reload}
        columns={[
          { key: 'username', title: 'Username' },
          { key: 'state', title: 'State', render: (u) => <StateTag state={u.state} /> },
          { key: 'id', title: 'ID', hidden: true },
        ]}
        toolbar={
          session.can('addVpnUser') && (
            <FormButton
              command="addVpnUser"
              label="Add VPN user"
              icon={<PlusOutlined />}
              fields={[
                { name: 'username', label: 'Username', required: true },
                { name: 'password', label: 'Password', type: 'password', required: true },
              ]}
              onSubmit={async (v) => {
                await run(`Add VPN user ${v.username}`, 'addVpnUser', { ...v, ...owner });
                setReload((n) => n + 1);
              }}
            />
          )
        }
        actions={(u) =>
          session.can('removeVpnUser') && (
            <ActionButton
              danger
              label="Remove"
              confirm={`Remove VPN user ${u.username}? Every remote-access VPN of ${vpc.account} forgets it.`}
              onClick={async () => {
                await run(`Remove VPN user ${u.username}`, 'removeVpnUser', {
                  username: u.username,
                  ...owner,
                });
                setReload((n) => n + 1);
              }}
            />
          )
        }
      />
    </div>
  );
}

function SiteToSite(props: { vpc: Row; owner: Params; reload: number; onChange(): void }) {
  const { vpc, owner, reload, onChange } = props;
  const session = useSession();
  const { run } = useActions();
  const [gateway] = useList('listVpnGateways', 'vpngateway', { vpcid: vpc.id, listall: true }, reload);
  const customers = useList('listVpnCustomerGateways', 'vpncustomergateway', owner, reload);
  const customerName = (id: unknown) => customers.find((c) => c.id === id)?.name ?? id;
  return (
    <Space direction="vertical" style={{ width: '100%' }} size="large">
      <Card
        size="small"
        title="Site-to-site VPN gateway"
        extra={
          gateway
            ? session.can('deleteVpnGateway') && (
                <ActionButton
                  danger
                  label="Delete VPN gateway"
                  confirm="Delete the VPN gateway? Its connections must be deleted first."
                  onClick={async () => {
                    await run(`Delete VPN gateway of ${vpc.name}`, 'deleteVpnGateway', { id: gateway.id });
                    onChange();
                  }}
                />
              )
            : session.can('createVpnGateway') && (
                <ActionButton
                  label="Create VPN gateway"
                  onClick={async () => {
                    await run(`Create VPN gateway for ${vpc.name}`, 'createVpnGateway', { vpcid: vpc.id });
                    onChange();
                  }}
                />
              )
        }
      >
        {gateway ? (
          <Typography.Text>
            IPsec endpoint <Tag>{gateway.publicip}</Tag>
          </Typography.Text>
        ) : (
          <Typography.Text type="secondary">
            None: site-to-site connections need the VPC's VPN gateway first.
          </Typography.Text>
        )}
      </Card>
      <div>
        <Typography.Title level={5}>Customer gateways of {vpc.account}</Typography.Title>
        <ResourceTable
          title="VPN customer gateways"
          command="listVpnCustomerGateways"
          listKey="vpncustomergateway"
          exportName={`vpn-customer-gateways-${vpc.account}`}
          params={owner}
          reload={reload}
          columns={[
            { key: 'name', title: 'Name' },
            { key: 'gateway', title: 'Gateway' },
            { key: 'cidrlist', title: 'Networks' },
            { key: 'ikepolicy', title: 'IKE policy' },
            { key: 'esppolicy', title: 'ESP policy' },
            { key: 'ikeversion', title: 'IKE version' },
            { key: 'dpd', title: 'DPD', value: (c) => (c.dpd ? 'yes' : 'no'), hidden: true },
            { key: 'id', title: 'ID', hidden: true },
          ]}
          toolbar={
            session.can('createVpnCustomerGateway') && (
              <FormButton
                command="createVpnCustomerGateway"
                label="Add customer gateway"
                icon={<PlusOutlined />}
                fields={[
                  { name: 'name', label: 'Name' },
                  { name: 'gateway', label: 'Gateway address', required: true },
                  {
                    name: 'cidrlist',
                    label: 'Networks behind it',
                    required: true,
                    help: 'Comma-separated CIDRs',
                  },
                  { name: 'ipsecpsk', label: 'IPsec pre-shared key', type: 'password', required: true },
                  { name: 'ikepolicy', label: 'IKE policy', required: true, initial: 'aes128-sha1;modp1536' },
                  { name: 'esppolicy', label: 'ESP policy', required: true, initial: 'aes128-sha1' },
                  { name: 'ikelifetime', label: 'IKE lifetime (s)', type: 'number', initial: 86400 },
                  { name: 'esplifetime', label: 'ESP lifetime (s)', type: 'number', initial: 3600 },
                  {
                    name: 'ikeversion',
                    label: 'IKE version',
                    type: 'select',
                    initial: 'ike',
                    options: ['ike', 'ikev1', 'ikev2'].map((v) => ({ value: v, label: v })),
                  },
                  { name: 'dpd', label: 'Dead peer detection', type: 'boolean', initial: false },
                  { name: 'forceencap', label: 'Force UDP encapsulation', type: 'boolean', initial: false },
                ]}
                onSubmit={async (v) => {
                  await run(`Add customer gateway ${v.name ?? v.gateway}`, 'createVpnCustomerGateway', {
                    ...v,
                    ...owner,
                  });
                  onChange();
                }}
              />
            )
          }
          actions={(c) =>
            session.can('deleteVpnCustomerGateway') && (
              <ActionButton
                danger
                label="Delete"
                confirm={`Delete customer gateway ${c.name}?`}
                onClick={async () => {
                  await run(`Delete customer gateway ${c.name}`, 'deleteVpnCustomerGateway', { id: c.id });
                  onChange();
                }}
              />
            )
          }
        />
      </div>
      <div>
        <Typography.Title level={5}>Site-to-site connections</Typography.Title>
        <ResourceTable
          title="VPN connections"
          command="listVpnConnections"
          listKey="vpnconnection"
          exportName={`vpn-connections-${vpc.name}`}
          params={{ vpcid: vpc.id, listall: true }}
          reload={reload}
          columns={[
            {
              key: 's2scustomergatewayid',
              title: 'Customer gateway',
              value: (c) => customerName(c.s2scustomergatewayid),
            },
            { key: 'gateway', title: 'Peer address' },
            { key: 'cidrlist', title: 'Peer networks' },
            { key: 'passive', title: 'Passive', value: (c) => (c.passive ? 'yes' : 'no') },
            { key: 'state', title: 'State', render: (c) => <StateTag state={c.state} /> },
            { key: 'id', title: 'ID', hidden: true },
          ]}
          toolbar={
            session.can('createVpnConnection') && (
              <FormButton
                command="createVpnConnection"
                label="Add connection"
                icon={<PlusOutlined />}
                disabled={!gateway || customers.length === 0}
                fields={[
                  {
                    name: 's2scustomergatewayid',
                    label: 'Customer gateway',
                    type: 'select',
                    required: true,
                    options: customers.map((c) => ({
                      value: String(c.id),
                      label: `${c.name} (${c.gateway})`,
                    })),
                  },
                  {
                    name: 'passive',
                    label: 'Passive (only answer the peer)',
                    type: 'boolean',
                    initial: false,
                  },
                ]}
                onSubmit={async (v) => {
                  await run(
                    `Connect ${vpc.name} to ${customerName(v.s2scustomergatewayid)}`,
                    'createVpnConnection',
                    {
                      ...v,
                      s2svpngatewayid: gateway?.id,
                    },
                  );
                  onChange();
                }}
              />
            )
          }
          actions={(c) => (
            <Space wrap>
              {session.can('resetVpnConnection') && (
                <ActionButton
                  label="Reset"
                  onClick={async () => {
                    await run(
                      `Reset connection to ${customerName(c.s2scustomergatewayid)}`,
                      'resetVpnConnection',
                      {
                        id: c.id,
                      },
                    );
                    onChange();
                  }}
                />
              )}
              {session.can('deleteVpnConnection') && (
                <ActionButton
                  danger
                  label="Delete"
                  confirm="Delete this connection? Its tunnel goes down."
                  onClick={async () => {
                    await run(
                      `Delete connection to ${customerName(c.s2scustomergatewayid)}`,
                      'deleteVpnConnection',
                      {
                        id: c.id,
                      },
                    );
                    onChange();
                  }}
                />
              )}
            </Space>
          )}
        />
      </div>
    </Space>
  );
}
