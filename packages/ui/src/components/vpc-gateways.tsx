/**
 * A VPC's private gateways (its router's address on an administrator's VLAN, with the ACL list
 * filtering it) and the static routes sent through them. Creating a gateway is for root
 * administrators (upstream's rule); anyone who owns the VPC adds routes through one.
 */
import { PlusOutlined } from '@ant-design/icons';
import { Space, Tag, Typography } from 'antd';
import { useState } from 'react';
import type { Row } from '../api.ts';
import { useList } from '../hooks.ts';
import { useActions } from '../jobs.tsx';
import { useSession } from '../session.tsx';
import { ActionButton, FormButton, options, StateTag } from './common.tsx';
import { ResourceTable } from './ResourceTable.tsx';
import { ReplaceAcl } from './vpc-acls.tsx';

export function VpcGateways({ vpc }: { vpc: Row }) {
  const session = useSession();
  const { run } = useActions();
  const [reload, setReload] = useState(0);
  const bump = () => setReload((n) => n + 1);
  const gateways = useList('listPrivateGateways', 'privategateway', { vpcid: vpc.id, listall: true }, reload);
  const acls = useList('listNetworkACLLists', 'networkacllist', { vpcid: vpc.id, listall: true });
  return (
    <Space direction="vertical" style={{ width: '100%' }} size="large">
      <ResourceTable
        title="Private gateways"
        command="listPrivateGateways"
        listKey="privategateway"
        exportName={`private-gateways-${vpc.name}`}
        params={{ vpcid: vpc.id, listall: true }}
        reload={reload}
        keyword={false}
        columns={[
          { key: 'ipaddress', title: 'IP address' },
          { key: 'gateway', title: 'Gateway' },
          { key: 'netmask', title: 'Netmask' },
          { key: 'vlan', title: 'VLAN' },
          { key: 'aclname', title: 'ACL list' },
          {
            key: 'sourcenatsupported',
            title: 'Source NAT',
            render: (g) => (g.sourcenatsupported ? <Tag color="blue">yes</Tag> : 'no'),
            value: (g) => (g.sourcenatsupported ? 'yes' : 'no'),
          },
          { key: 'state', title: 'State', render: (g) => <StateTag state={g.state} /> },
          { key: 'id', title: 'ID', hidden: true },
        ]}
        toolbar={
          session.can('createPrivateGateway') &&
          session.isRootAdmin && (
            <FormButton
              command="createPrivateGateway"
              label="Add private gateway"
              icon={<PlusOutlined />}
              fields={[
                { name: 'vlan', label: 'VLAN', required: true, help: 'Carried between hosts as VXLAN id N' },
                { name: 'ipaddress', label: 'IP address', required: true, help: "The router's address" },
                { name: 'gateway', label: 'Gateway', required: true, help: 'The next hop of static routes' },
                { name: 'netmask', label: 'Netmask', required: true, initial: '255.255.255.0' },
                {
                  name: 'aclid',
                  label: 'ACL list',
                  type: 'select',
                  options: options(acls),
                  help: 'Default: default_deny',
                },
                { name: 'sourcenatsupported', label: 'Source NAT', type: 'boolean', initial: false },
              ]}
              onSubmit={async (v) => {
                await run(`Add private gateway ${v.ipaddress} to ${vpc.name}`, 'createPrivateGateway', {
                  ...v,
                  vpcid: vpc.id,
                });
                bump();
              }}
            />
          )
        }
        actions={(g) => (
          <Space wrap>
            {session.can('replaceNetworkACLList') && (
              <ReplaceAcl
                vpc={vpc}
                target={{ gatewayid: g.id }}
                name={`private gateway ${g.ipaddress}`}
                current={g.aclid}
                onDone={bump}
              />
            )}
            {session.can('deletePrivateGateway') && (
              <ActionButton
                danger
                label="Delete"
                confirm={`Delete private gateway ${g.ipaddress}? Its static routes must be deleted first.`}
                onClick={async () => {
                  await run(`Delete private gateway ${g.ipaddress}`, 'deletePrivateGateway', { id: g.id });
                  bump();
                }}
              />
            )}
          </Space>
        )}
      />
      <div>
        <Typography.Title level={5}>Static routes</Typography.Title>
        <ResourceTable
          title="Static routes"
          command="listStaticRoutes"
          listKey="staticroute"
          exportName={`static-routes-${vpc.name}`}
          params={{ vpcid: vpc.id, listall: true }}
          reload={reload}
          keyword={false}
          columns={[
            { key: 'cidr', title: 'CIDR' },
            { key: 'nexthop', title: 'Next hop' },
            { key: 'vpcgatewayip', title: 'Private gateway' },
            { key: 'state', title: 'State', render: (r) => <StateTag state={r.state} /> },
            { key: 'id', title: 'ID', hidden: true },
          ]}
          toolbar={
            session.can('createStaticRoute') && (
              <FormButton
                command="createStaticRoute"
                label="Add static route"
                icon={<PlusOutlined />}
                disabled={gateways.length === 0}
                fields={[
                  { name: 'cidr', label: 'CIDR', required: true, help: 'A destination outside the VPC' },
                  {
                    name: 'gatewayid',
                    label: 'Private gateway',
                    type: 'select',
                    required: true,
                    options: gateways.map((g) => ({
                      value: String(g.id),
                      label: `${g.ipaddress} (next hop ${g.gateway})`,
                    })),
                  },
                ]}
                onSubmit={async (v) => {
                  await run(`Add static route ${v.cidr}`, 'createStaticRoute', v);
                  bump();
                }}
              />
            )
          }
          actions={(r) =>
            session.can('deleteStaticRoute') && (
              <ActionButton
                danger
                label="Delete"
                confirm={`Delete the static route ${r.cidr}?`}
                onClick={async () => {
                  await run(`Delete static route ${r.cidr}`, 'deleteStaticRoute', { id: r.id });
                  bump();
                }}
              />
            )
          }
        />
      </div>
    </Space>
  );
}
