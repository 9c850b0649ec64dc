/**
 * What an isolated network's router enforces, as the API names it: the network's public IPs
 * (acquired, released, static NAT), per IP its port forwarding, firewall and load balancing rules,
 * and the network's egress rules. Every picker of instances offers the network's own VMs only,
 * since a rule can only lead to a VM behind the same router.
 */
import { PlusOutlined } from '@ant-design/icons';
import { Button, Modal, Space, Tabs, Tag } from 'antd';
import { useState } from 'react';
import type { Row } from '../api.ts';
import { useList } from '../hooks.ts';
import { useActions } from '../jobs.tsx';
import { useSession } from '../session.tsx';
import { ActionButton, type Field, FormButton, StateTag } from './common.tsx';
import { type Column, ResourceTable } from './ResourceTable.tsx';

const ANY = '0.0.0.0/0';
const option = (v: string) => ({ value: v, label: v.toUpperCase() });
const isIcmp = (v: Row) => v.protocol === 'icmp';
const hasPorts = (v: Row) => v.protocol === 'tcp' || v.protocol === 'udp';

/** "80", "8000-8100", or empty for rules without ports (ICMP, all). */
function ports(start: unknown, end: unknown): string {
  if (start === undefined || start === null || start === '') return '';
  return end !== undefined && end !== null && end !== '' && String(end) !== String(start)
    ? `${start}-${end}`
    : String(start);
}

const vmName = (vm: Row) => String(vm.displayname || vm.name);

/** The network's instances as picker options, with their address on this network. */
function useNetworkVms(networkid: string): { value: string; label: string }[] {
  const vms = useList('listVirtualMachines', 'virtualmachine', { networkid, listall: true });
  return vms.map((vm) => {
    const nic = ((vm.nic as Row[] | undefined) ?? []).find((n) => n.networkid === networkid);
    return { value: String(vm.id), label: nic?.ipaddress ? `${vmName(vm)} (${nic.ipaddress})` : vmName(vm) };
  });
}

/** Protocol, then ports for TCP/UDP or type and code for ICMP, and a CIDR list. */
function trafficFields(protocols: string[], cidrName: string, cidrLabel: string): Field[] {
  return [
    {
      name: 'protocol',
      label: 'Protocol',
      type: 'select',
      required: true,
      initial: 'tcp',
      options: protocols.map(option),
    },
    { name: 'startport', label: 'Start port', type: 'number', required: true, visible: hasPorts },
    { name: 'endport', label: 'End port (optional)', type: 'number', visible: hasPorts },
    {
      name: 'icmptype',
      label: 'ICMP type',
      type: 'number',
      initial: -1,
      help: '-1 for any',
      visible: isIcmp,
    },
    {
      name: 'icmpcode',
      label: 'ICMP code',
      type: 'number',
      initial: -1,
      help: '-1 for any',
      visible: isIcmp,
    },
    { name: cidrName, label: cidrLabel, initial: ANY, help: 'Comma-separated' },
  ];
}

const trafficColumns: Column[] = [
  { key: 'protocol', title: 'Protocol', value: (r) => String(r.protocol ?? '').toUpperCase() },
  {
    key: 'ports',
    title: 'Ports or ICMP',
    value: (r) =>
      r.protocol === 'icmp'
        ? `type ${r.icmptype ?? -1}, code ${r.icmpcode ?? -1}`
        : ports(r.startport, r.endport),
  },
];

export function PublicIps({ network }: { network: Row }) {
  const session = useSession();
  const { run } = useActions();
  const [reload, setReload] = useState(0);
  const [rulesOf, setRulesOf] = useState<Row>();
  const vms = useNetworkVms(network.id);
  const bump = () => setReload((n) => n + 1);
  return (
    <>
      <ResourceTable
        title="Public IP addresses"
        command="listPublicIpAddresses"
        listKey="publicipaddress"
        exportName={`public-ips-${network.name}`}
        params={{ associatednetworkid: network.id, listall: true }}
        reload={reload}
        columns={[
          {
            key: 'ipaddress',
            title: 'IP address',
            render: (ip) => (
              <Space>
                {ip.ipaddress}
                {ip.issourcenat && <Tag color="blue">source NAT</Tag>}
              </Space>
            ),
          },
          { key: 'state', title: 'State', render: (ip) => <StateTag state={ip.state} /> },
          {
            key: 'virtualmachinename',
            title: 'Static NAT to',
            value: (ip) => (ip.isstaticnat ? (ip.virtualmachinedisplayname ?? ip.virtualmachinename) : ''),
          },
          {
            key: 'issourcenat',
            title: 'Source NAT',
            hidden: true,
            value: (ip) => (ip.issourcenat ? 'yes' : ''),
          },
          { key: 'account', title: 'Account', hidden: !session.isAdmin },
          { key: 'id', title: 'ID', hidden: true },
        ]}
        toolbar={
          session.can('associateIpAddress') && (
            <Button
              icon={<PlusOutlined />}
              onClick={async () => {
                await run(`Acquire an IP address for ${network.name}`, 'associateIpAddress', {
                  networkid: network.id,
                });
                bump();
              }}
            >
              Acquire IP address
            </Button>
          )
        }
        actions={(ip) => (
          <Space wrap>
            <ActionButton label="Rules" onClick={() => setRulesOf(ip)} />
            {!ip.issourcenat && !ip.isstaticnat && session.can('enableStaticNat') && (
              <FormButton
                command="enableStaticNat"
                label="Enable static NAT"
                size="small"
                title={`Static NAT of ${ip.ipaddress}`}
                fields={[
                  {
                    name: 'virtualmachineid',
                    label: 'Instance',
                    type: 'select',
                    required: true,
                    options: vms,
                  },
                ]}
                onSubmit={async (v) => {
                  await run(`Static NAT ${ip.ipaddress}`, 'enableStaticNat', {
                    ipaddressid: ip.id,
                    virtualmachineid: v.virtualmachineid,
                  });
                  bump();
                }}
              />
            )}
            {ip.isstaticnat && session.can('disableStaticNat') && (
              <ActionButton
                label="Disable static NAT"
                confirm={`Stop forwarding ${ip.ipaddress} to ${ip.virtualmachinename}?`}
                onClick={async () => {
                  await run(`Disable static NAT ${ip.ipaddress}`, 'disableStaticNat', { ipaddressid: ip.id });
                  bump();
                }}
              />
            )}
            {!ip.issourcenat && session.can('disassociateIpAddress') && (
              <ActionButton
                danger
                label="Release"
                confirm={`Release ${ip.ipaddress}? Its rules are deleted.`}
                onClick={async () => {
                  await run(`Release ${ip.ipaddress}`, 'disassociateIpAddress', { id: ip.id });
                  bump();
                }}
              />
            )}
          </Space>
        )}
      />
      {rulesOf && (
        <Modal
          open
          title={`Rules of ${rulesOf.ipaddress}`}
          footer={null}
          width={960}
          onCancel={() => setRulesOf(undefined)}
          destroyOnHidden
        >
          <IpRules ip={rulesOf} network={network} vms={vms} />
        </Modal>
      )}
    </>
  );
}

function IpRules({ ip, network, vms }: { ip: Row; network: Row; vms: { value: string; label: string }[] }) {
  const session = useSession();
  const tabs = [
    {
      key: 'pf',
      label: 'Port forwarding',
      command: 'listPortForwardingRules',
      children: <PortForwarding ip={ip} vms={vms} />,
    },
    { key: 'firewall', label: 'Firewall', command: 'listFirewallRules', children: <Firewall ip={ip} /> },
    {
      key: 'lb',
      label: 'Load balancing',
      command: 'listLoadBalancerRules',
      children: <LoadBalancing ip={ip} network={network} vms={vms} />,
    },
  ].filter((t) => session.can(t.command));
  return <Tabs items={tabs.map(({ command: _, ...t }) => t)} destroyOnHidden />;
}

/** One way to delete a rule: every rule kind has its own delete command and job. */
function DeleteRule({
  label,
  command,
  id,
  onDone,
}: {
  label: string;
  command: string;
  id: string;
  onDone(): void;
}) {
  const session = useSession();
  const { run } = useActions();
  if (!session.can(command)) return null;
  return (
    <ActionButton
      danger
      label="Delete"
      confirm={`Delete the ${label}?`}
      onClick={async () => {
        await run(`Delete ${label}`, command, { id });
        onDone();
      }}
    />
  );
}

function PortForwarding({ ip, vms }: { ip: Row; vms: { value: string; label: string }[] }) {
  const session = useSession();
  const { run } = useActions();
  const [reload, setReload] = useState(0);
  const bump = () => setReload((n) => n + 1);
  return (
    <ResourceTable
      title="Port forwarding rules"
      command="listPortForwardingRules"
      listKey="portforwardingrule"
      exportName={`port-forwarding-${ip.ipaddress}`}
      params={{ ipaddressid: ip.id, listall: true }}
      keyword={false}
      reload={reload}
      columns={[
        { key: 'protocol', title: 'Protocol', value: (r) => String(r.protocol ?? '').toUpperCase() },
        { key: 'publicport', title: 'Public ports', value: (r) => ports(r.publicport, r.publicendport) },
        { key: 'privateport', title: 'Private ports', value: (r) => ports(r.privateport, r.privateendport) },
        {
          key: 'virtualmachinename',
          title: 'Instance',
          value: (r) => r.virtualmachinedisplayname ?? r.virtualmachinename,
        },
        { key: 'vmguestip', title: 'Instance IP' },
        { key: 'state', title: 'State', render: (r) => <StateTag state={r.state} /> },
      ]}
      toolbar={
        session.can('createPortForwardingRule') && (
          <FormButton
            command="createPortForwardingRule"
            label="Add port forwarding rule"
            icon={<PlusOutlined />}
            title={`Forward ports of ${ip.ipaddress}`}
            fields={[
              {
                name: 'protocol',
                label: 'Protocol',
                type: 'select',
                required: true,
                initial: 'tcp',
                options: ['tcp', 'udp'].map(option),
              },
              { name: 'publicport', label: 'Public port', type: 'number', required: true },
              { name: 'publicendport', label: 'Public end port (optional)', type: 'number' },
              { name: 'privateport', label: 'Private port', type: 'number', required: true },
              { name: 'privateendport', label: 'Private end port (optional)', type: 'number' },
              { name: 'virtualmachineid', label: 'Instance', type: 'select', required: true, options: vms },
            ]}
            onSubmit={async (v) => {
              await run(
                `Forward ${ip.ipaddress}:${ports(v.publicport, v.publicendport)}`,
                'createPortForwardingRule',
                // openfirewall=false: the Firewall tab is where the public side is opened.
                { ...v, ipaddressid: ip.id, openfirewall: false },
              );
              bump();
            }}
          />
        )
      }
      actions={(r) => (
        <DeleteRule
          label={`port forwarding rule ${ports(r.publicport, r.publicendport)}`}
          command="deletePortForwardingRule"
          id={r.id}
          onDone={bump}
        />
      )}
    />
  );
}

function Firewall({ ip }: { ip: Row }) {
  const session = useSession();
  const { run } = useActions();
  const [reload, setReload] = useState(0);
  const bump = () => setReload((n) => n + 1);
  return (
    <ResourceTable
      title="Firewall rules"
      command="listFirewallRules"
      listKey="firewallrule"
      exportName={`firewall-${ip.ipaddress}`}
      params={{ ipaddressid: ip.id, listall: true }}
      keyword={false}
      reload={reload}
      columns={[
        ...trafficColumns,
        { key: 'cidrlist', title: 'Source CIDRs' },
        { key: 'state', title: 'State', render: (r) => <StateTag state={r.state} /> },
      ]}
      toolbar={
        session.can('createFirewallRule') && (
          <FormButton
            command="createFirewallRule"
            label="Add firewall rule"
            icon={<PlusOutlined />}
            title={`Allow traffic to ${ip.ipaddress}`}
            fields={trafficFields(['tcp', 'udp', 'icmp'], 'cidrlist', 'Source CIDRs')}
            onSubmit={async (v) => {
              await run(
                `Firewall rule ${String(v.protocol).toUpperCase()} ${ports(v.startport, v.endport)}`.trim(),
                'createFirewallRule',
                {
                  ...v,
                  ipaddressid: ip.id,
                },
              );
              bump();
            }}
          />
        )
      }
      actions={(r) => (
        <DeleteRule
          label={`firewall rule ${String(r.protocol).toUpperCase()} ${ports(r.startport, r.endport)}`.trim()}
          command="deleteFirewallRule"
          id={r.id}
          onDone={bump}
        />
      )}
    />
  );
}

function LoadBalancing({
  ip,
  network,
  vms,
}: {
  ip: Row;
  network: Row;
  vms: { value: string; label: string }[];
}) {
  const session = useSession();
  const { run } = useActions();
  const [reload, setReload] = useState(0);
  const [membersOf, setMembersOf] = useState<Row>();
  const bump = () => setReload((n) => n + 1);
  return (
    <>
      <ResourceTable
        title="Load balancing rules"
        command="listLoadBalancerRules"
        listKey="loadbalancerrule"
        exportName={`load-balancers-${ip.ipaddress}`}
        params={{ publicipid: ip.id, listall: true }}
        keyword={false}
        reload={reload}
        columns={[
          { key: 'name', title: 'Name' },
          { key: 'publicport', title: 'Public port' },
          { key: 'privateport', title: 'Private port' },
          { key: 'algorithm', title: 'Algorithm' },
          { key: 'state', title: 'State', render: (r) => <StateTag state={r.state} /> },
        ]}
        toolbar={
          session.can('createLoadBalancerRule') && (
            <FormButton
              command="createLoadBalancerRule"
              label="Add load balancer"
              icon={<PlusOutlined />}
              title={`Balance a port of ${ip.ipaddress}`}
              fields={[
                { name: 'name', label: 'Name', required: true },
                { name: 'publicport', label: 'Public port', type: 'number', required: true },
                { name: 'privateport', label: 'Private port', type: 'number', required: true },
                {
                  name: 'algorithm',
                  label: 'Algorithm',
                  type: 'select',
                  required: true,
                  initial: 'roundrobin',
                  options: [
                    { value: 'roundrobin', label: 'Round robin' },
                    { value: 'leastconn', label: 'Least connections' },
                    { value: 'source', label: 'Source IP (sticky)' },
                  ],
                },
              ]}
              onSubmit={async (v) => {
                await run(`Load balancer ${v.name}`, 'createLoadBalancerRule', {
                  ...v,
                  publicipid: ip.id,
                  networkid: network.id,
                });
                bump();
              }}
            />
          )
        }
        actions={(r) => (
          <Space wrap>
            {session.can('listLoadBalancerRuleInstances') && (
              <ActionButton label="Members" onClick={() => setMembersOf(r)} />
            )}
            <DeleteRule
              label={`load balancer ${r.name}`}
              command="deleteLoadBalancerRule"
              id={r.id}
              onDone={bump}
            />
          </Space>
        )}
      />
      {membersOf && (
        <Modal
          open
          title={`Members of ${membersOf.name}`}
          footer={null}
          width={800}
          onCancel={() => setMembersOf(undefined)}
          destroyOnHidden
        >
          <LbMembers rule={membersOf} vms={vms} />
        </Modal>
      )}
    </>
  );
}

function LbMembers({ rule, vms }: { rule: Row; vms: { value: string; label: string }[] }) {
  const session = useSession();
  const { run } = useActions();
  const [reload, setReload] = useState(0);
  const bump = () => setReload((n) => n + 1);
  const change = async (command: string, verb: string, ids: string[]) => {
    await run(`${verb} ${rule.name}`, command, { id: rule.id, virtualmachineids: ids.join(',') });
    bump();
  };
  return (
    <ResourceTable
      title="Members"
      command="listLoadBalancerRuleInstances"
      listKey="loadbalancerruleinstance"
      exportName={`members-${rule.name}`}
      params={{ id: rule.id }}
      keyword={false}
      reload={reload}
      columns={[
        { key: 'name', title: 'Instance', value: vmName },
        { key: 'state', title: 'State', render: (vm) => <StateTag state={vm.state} /> },
      ]}
      toolbar={
        session.can('assignToLoadBalancerRule') && (
          <FormButton
            command="assignToLoadBalancerRule"
            label="Assign instances"
            icon={<PlusOutlined />}
            title={`Add instances to ${rule.name}`}
            fields={[{ name: 'ids', label: 'Instances', type: 'multiselect', required: true, options: vms }]}
            onSubmit={(v) => change('assignToLoadBalancerRule', 'Assign to', v.ids as unknown as string[])}
          />
        )
      }
      actions={(vm) =>
        session.can('removeFromLoadBalancerRule') && (
          <ActionButton
            label="Remove"
            confirm={`Take ${vmName(vm)} out of ${rule.name}?`}
            onClick={() => change('removeFromLoadBalancerRule', 'Remove from', [vm.id])}
          />
        )
      }
    />
  );
}

export function EgressRules({ network }: { network: Row }) {
  const session = useSession();
  const { run } = useActions();
  const [reload, setReload] = useState(0);
  const bump = () => setReload((n) => n + 1);
  return (
    <ResourceTable
      title="Egress rules"
      command="listEgressFirewallRules"
      listKey="firewallrule"
      exportName={`egress-${network.name}`}
      params={{ networkid: network.id, listall: true }}
      keyword={false}
      reload={reload}
      columns={[
        ...trafficColumns,
        { key: 'destcidrlist', title: 'Destination CIDRs' },
        { key: 'state', title: 'State', render: (r) => <StateTag state={r.state} /> },
      ]}
      toolbar={
        session.can('createEgressFirewallRule') && (
          <FormButton
            command="createEgressFirewallRule"
            label="Add egress rule"
            icon={<PlusOutlined />}
            title={`Egress of ${network.name}`}
            fields={trafficFields(['tcp', 'udp', 'icmp', 'all'], 'destcidrlist', 'Destination CIDRs')}
            onSubmit={async (v) => {
              await run(
                `Egress rule ${String(v.protocol).toUpperCase()} ${ports(v.startport, v.endport)}`.trim(),
                'createEgressFirewallRule',
                { ...v, networkid: network.id },
              );
              bump();
            }}
          />
        )
      }
      actions={(r) => (
        <DeleteRule
          label={`egress rule ${String(r.protocol).toUpperCase()} ${ports(r.startport, r.endport)}`.trim()}
          command="deleteEgressFirewallRule"
          id={r.id}
          onDone={bump}
        />
      )}
    />
  );
}
