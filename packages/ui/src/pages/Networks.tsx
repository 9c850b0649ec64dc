/**
 * Guest networks: the list (server-side paging like every list), creating an isolated network,
 * restarting (optionally rebuilding its router) and deleting one. A network's public IPs and rules
 * are on its own page (NetworkDetail). VPCs and their tiers are listed below (Vpcs.tsx).
 */
import { PlusOutlined } from '@ant-design/icons';
import { Space, Typography } from 'antd';
import { useState } from 'react';
import type { Params, Row } from '../api.ts';
import { ActionButton, FormButton, FormModal, StateTag } from '../components/common.tsx';
import { type Column, ResourceTable } from '../components/ResourceTable.tsx';
import { useList } from '../hooks.ts';
import { useActions } from '../jobs.tsx';
import { Link } from '../router.tsx';
import { useSession } from '../session.tsx';
import { Vpcs } from './Vpcs.tsx';

export function Networks() {
  const session = useSession();
  const [reload, setReload] = useState(0);
  const bump = () => setReload((n) => n + 1);
  const zones = useList('listZones', 'zone');
  const columns: Column[] = [
    {
      key: 'name',
      title: 'Name',
      render: (n) => <Link to={`/networks/${n.id}`}>{n.name}</Link>,
    },
    { key: 'type', title: 'Type' },
    { key: 'state', title: 'State', render: (n) => <StateTag state={n.state} /> },
    { key: 'cidr', title: 'CIDR' },
    { key: 'vpcname', title: 'VPC' },
    { key: 'account', title: 'Account', hidden: !session.isAdmin },
    { key: 'zonename', title: 'Zone' },
    { key: 'networkofferingname', title: 'Offering', hidden: true },
    { key: 'gateway', title: 'Gateway', hidden: true },
    { key: 'id', title: 'ID', hidden: true },
  ];
  return (
    <div>
      <Typography.Title level={3}>Networks</Typography.Title>
      <ResourceTable
        title="Networks"
        command="listNetworks"
        listKey="network"
        exportName="networks"
        params={{ listall: true }}
        columns={columns}
        reload={reload}
        filters={[
          { param: 'zoneid', label: 'Zone', options: zones.map((z) => ({ value: z.id, label: z.name })) },
          {
            param: 'type',
            label: 'Type',
            options: ['Isolated', 'Shared', 'L2'].map((t) => ({ value: t, label: t })),
          },
        ]}
        toolbar={session.can('createNetwork') && <CreateNetwork zones={zones} onDone={bump} />}
        actions={(n) => <NetworkActions network={n} onDone={bump} />}
      />
      <Vpcs zones={zones} onChange={bump} />
    </div>
  );
}

/** Isolated networks only: the offering list follows the zone chosen in the dialog. */
function CreateNetwork({ zones, onDone }: { zones: Row[]; onDone(): void }) {
  const session = useSession();
  const { run } = useActions();
  const [zoneid, setZoneid] = useState<string>();
  const offerings = useList('listNetworkOfferings', 'networkoffering', {
    zoneid,
    state: 'Enabled',
    guestiptype: 'Isolated',
  });
  const accounts = useList('listAccounts', 'account', { listall: true });
  return (
    <FormButton
      command="createNetwork"
      label="Create network"
      icon={<PlusOutlined />}
      primary
      onValuesChange={(v) => setZoneid(v.zoneid)}
      fields={[
        {
          name: 'zoneid',
          label: 'Zone',
          type: 'select',
          required: true,
          // Isolated networks need an Advanced zone.
          options: zones
            .filter((z) => z.networktype === 'Advanced')
            .map((z) => ({ value: z.id, label: z.name })),
        },
        {
          name: 'networkofferingid',
          label: 'Network offering',
          type: 'select',
          required: true,
          visible: (v) => Boolean(v.zoneid),
          options: offerings.map((o) => ({ value: o.id, label: o.displaytext || o.name })),
        },
        { name: 'name', label: 'Name', required: true },
        { name: 'displaytext', label: 'Description' },
        {
          name: 'gateway',
          label: 'Gateway (optional)',
          help: 'With a netmask; the zone guest CIDR by default',
        },
        { name: 'netmask', label: 'Netmask (optional)' },
        ...(session.isAdmin && session.can('listAccounts')
          ? [
              {
                name: 'accountid',
                label: 'Account (optional)',
                type: 'select' as const,
                help: 'Yours by default',
                options: accounts.map((a) => ({ value: a.id, label: `${a.name} (${a.domain})` })),
              },
            ]
          : []),
      ]}
      onSubmit={async ({ accountid, ...v }) => {
        const owner = accounts.find((a) => a.id === accountid);
        const params: Params = owner ? { ...v, account: owner.name, domainid: owner.domainid } : v;
        await run(`Create network ${v.name}`, 'createNetwork', params);
        onDone();
      }}
    />
  );
}

/** Restart and delete, on the list's rows and the network's page (which is left once deleted). */
export function NetworkActions(props: { network: Row; onDone(): void; onDeleted?(): void }) {
  const { network, onDone } = props;
  const session = useSession();
  const { run } = useActions();
  const [restarting, setRestarting] = useState(false);
  return (
    <Space wrap>
      {session.can('restartNetwork') && (
        <>
          <ActionButton label="Restart" onClick={() => setRestarting(true)} />
          <FormModal
            command="restartNetwork"
            open={restarting}
            title={`Restart ${network.name}`}
            fields={[
              {
                name: 'cleanup',
                label: 'Clean up (rebuild the router instead of re-applying its rules)',
                type: 'boolean',
                initial: false,
              },
            ]}
            onClose={() => setRestarting(false)}
            onSubmit={async (v) => {
              await run(`Restart network ${network.name}`, 'restartNetwork', {
                id: network.id,
                cleanup: Boolean(v.cleanup),
              });
              onDone();
            }}
          />
        </>
      )}
      {session.can('deleteNetwork') && (
        <ActionButton
          danger
          label="Delete"
          confirm={`Delete network ${network.name}? Its public IPs and rules are released.`}
          onClick={async () => {
            const deleted = await run(`Delete network ${network.name}`, 'deleteNetwork', { id: network.id });
            if (deleted) (props.onDeleted ?? onDone)();
          }}
        />
      )}
    </Space>
  );
}
