/**
 * VPCs, shown on the Networks page under the networks: the list (tiers with their CIDRs), creating
 * a VPC, adding a tier (a network of the VPC with a VPC network offering, its subnet inside the
 * VPC's CIDR, optionally with an ACL list), restarting (optionally with a fresh router) and
 * deleting one. A VPC's own page (VpcDetail) draws its tiers and edits its ACLs, private gateways
 * and VPNs; the tiers themselves are networks: their addresses and rules are on the network's page.
 */
import { PlusOutlined } from '@ant-design/icons';
import { Space, Typography } from 'antd';
import { useState } from 'react';
import type { Row } from '../api.ts';
import { ActionButton, FormButton, FormModal, options, StateTag } from '../components/common.tsx';
import { type Column, ResourceTable } from '../components/ResourceTable.tsx';
import { useList } from '../hooks.ts';
import { useActions } from '../jobs.tsx';
import { Link } from '../router.tsx';
import { useSession } from '../session.tsx';

export function Vpcs({ zones, onChange }: { zones: Row[]; onChange(): void }) {
  const session = useSession();
  const [reload, setReload] = useState(0);
  // A tier made or a VPC deleted changes the networks list above too.
  const bump = () => {
    setReload((n) => n + 1);
    onChange();
  };
  const columns: Column[] = [
    { key: 'name', title: 'Name', render: (v) => <Link to={`/networks/vpcs/${v.id}`}>{v.name}</Link> },
    { key: 'state', title: 'State', render: (v) => <StateTag state={v.state} /> },
    { key: 'cidr', title: 'CIDR' },
    {
      key: 'network',
      title: 'Tiers',
      render: (v) => (
        <Space wrap>
          {((v.network as Row[] | undefined) ?? []).map((t) => (
            <Link key={String(t.id)} to={`/networks/${t.id}`}>
              {`${t.name} (${t.cidr})`}
            </Link>
          ))}
        </Space>
      ),
    },
    { key: 'account', title: 'Account', hidden: !session.isAdmin },
    { key: 'zonename', title: 'Zone' },
    { key: 'networkdomain', title: 'Network domain', hidden: true },
    { key: 'vpcofferingname', title: 'Offering', hidden: true },
    { key: 'id', title: 'ID', hidden: true },
  ];
  return (
    <div>
      <Typography.Title level={4}>VPCs</Typography.Title>
      <ResourceTable
        title="VPCs"
        command="listVPCs"
        listKey="vpc"
        exportName="vpcs"
        params={{ listall: true }}
        columns={columns}
        reload={reload}
        filters={[
          { param: 'zoneid', label: 'Zone', options: zones.map((z) => ({ value: z.id, label: z.name })) },
        ]}
        toolbar={session.can('createVPC') && <CreateVpc zones={zones} onDone={bump} />}
        actions={(v) => <VpcActions vpc={v} onDone={bump} />}
      />
    </div>
  );
}

function CreateVpc({ zones, onDone }: { zones: Row[]; onDone(): void }) {
  const { run } = useActions();
  const offerings = useList('listVPCOfferings', 'vpcoffering', { state: 'Enabled' });
  return (
    <FormButton
      command="createVPC"
      label="Create VPC"
      icon={<PlusOutlined />}
      fields={[
        {
          name: 'zoneid',
          label: 'Zone',
          type: 'select',
          required: true,
          options: zones
            .filter((z) => z.networktype === 'Advanced')
            .map((z) => ({ value: z.id, label: z.name })),
        },
        {
          name: 'vpcofferingid',
          label: 'VPC offering',
          type: 'select',
          required: true,
          options: offerings.map((o) => ({ value: o.id, label: o.name })),
        },
        { name: 'name', label: 'Name', required: true },
        { name: 'displaytext', label: 'Description' },
        { name: 'cidr', label: 'CIDR', required: true, help: 'A private range, e.g. 10.10.0.0/16' },
        { name: 'networkdomain', label: 'Network domain (optional)' },
      ]}
      onSubmit={async (v) => {
        await run(`Create VPC ${v.name}`, 'createVPC', v);
        onDone();
      }}
    />
  );
}

/**
 * Add tier, restart and delete: on the list's rows and the VPC's page (which is left once deleted
 * and offers a tier in its diagram instead: `addTier` false).
 */
export function VpcActions({
  vpc,
  onDone,
  onDeleted,
  addTier = true,
}: {
  vpc: Row;
  onDone(): void;
  onDeleted?(): void;
  addTier?: boolean;
}) {
  const session = useSession();
  const { run } = useActions();
  const [adding, setAdding] = useState(false);
  const [restarting, setRestarting] = useState(false);
  return (
    <Space wrap>
      {addTier && session.can('createNetwork') && (
        <>
          <ActionButton label="Add tier" onClick={() => setAdding(true)} />
          {/* Mounted while open only: its pickers load when wanted, not once per listed VPC. */}
          {adding && <AddTier vpc={vpc} onClose={() => setAdding(false)} onDone={onDone} />}
        </>
      )}
      {session.can('restartVPC') && (
        <>
          <ActionButton label="Restart" onClick={() => setRestarting(true)} />
          <FormModal
            command="restartVPC"
            open={restarting}
            title={`Restart ${vpc.name}`}
            fields={[
              {
                name: 'cleanup',
                label: 'Clean up (a fresh router with every tier and rule)',
                type: 'boolean',
                initial: false,
              },
            ]}
            onClose={() => setRestarting(false)}
            onSubmit={async (v) => {
              await run(`Restart VPC ${vpc.name}`, 'restartVPC', { id: vpc.id, cleanup: Boolean(v.cleanup) });
              onDone();
            }}
          />
        </>
      )}
      {session.can('deleteVPC') && (
        <ActionButton
          danger
          label="Delete"
          confirm={`Delete VPC ${vpc.name}? Its tiers (which must have no VMs), router and public IPs go with it.`}
          onClick={async () => {
            const deleted = await run(`Delete VPC ${vpc.name}`, 'deleteVPC', { id: vpc.id });
            if (deleted) (onDeleted ?? onDone)();
          }}
        />
      )}
    </Space>
  );
}

/** A tier: its subnet inside the VPC's CIDR, and the ACL list it starts with (none: nothing comes in). */
export function AddTier({ vpc, onClose, onDone }: { vpc: Row; onClose(): void; onDone(): void }) {
  const { run } = useActions();
  const offerings = useList('listNetworkOfferings', 'networkoffering', {
    forvpc: true,
    state: 'Enabled',
    zoneid: vpc.zoneid,
  });
  const acls = useList('listNetworkACLLists', 'networkacllist', { vpcid: vpc.id });
  return (
    <FormModal
      command="createNetwork"
      open
      title={`Add a tier to ${vpc.name} (${vpc.cidr})`}
      fields={[
        { name: 'name', label: 'Name', required: true },
        {
          name: 'networkofferingid',
          label: 'Network offering',
          type: 'select',
          required: true,
          options: offerings.map((o) => ({ value: o.id, label: o.name })),
        },
        { name: 'gateway', label: 'Gateway', required: true, help: `Inside ${vpc.cidr}` },
        { name: 'netmask', label: 'Netmask', required: true, initial: '255.255.255.0' },
        {
          name: 'aclid',
          label: 'ACL list (optional)',
          type: 'select',
          options: options(acls),
          help: 'Without one, nothing comes into the tier and everything may leave it',
        },
      ]}
      onClose={onClose}
      onSubmit={async (v) => {
        await run(`Add tier ${v.name} to ${vpc.name}`, 'createNetwork', {
          ...v,
          zoneid: vpc.zoneid,
          vpcid: vpc.id,
        });
        onDone();
      }}
    />
  );
}
