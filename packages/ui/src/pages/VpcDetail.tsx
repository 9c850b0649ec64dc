/**
 * One VPC: what it is, its tiers drawn around its router (VpcDiagram), its network ACL lists and
 * their rules (VpcAcls), private gateways with static routes (VpcGateways) and VPNs (VpcVpn).
 * Reached from the VPC list; it lives under /networks so the Networks menu entry stays selected.
 */
import { Alert, Button, Card, Descriptions, Space, Spin, Tabs, Typography } from 'antd';
import { useCallback, useEffect, useState } from 'react';
import { api, errorText, type Row } from '../api.ts';
import { StateTag } from '../components/common.tsx';
import { VpcAcls } from '../components/vpc-acls.tsx';
import { VpcDiagram } from '../components/vpc-diagram.tsx';
import { VpcGateways } from '../components/vpc-gateways.tsx';
import { VpcVpn } from '../components/vpc-vpn.tsx';
import { navigate } from '../router.tsx';
import { useSession } from '../session.tsx';
import { VpcActions } from './Vpcs.tsx';

export function VpcDetail({ id }: { id: string }) {
  const session = useSession();
  const [vpc, setVpc] = useState<Row | null>();
  const [error, setError] = useState<string>();
  const [reload, setReload] = useState(0);
  const bump = () => setReload((n) => n + 1);

  const load = useCallback(() => {
    api('listVPCs', { id, listall: true })
      .then((r) => setVpc(((r.vpc as Row[]) ?? [])[0] ?? null))
      .catch((e) => setError(errorText(e)));
  }, [id]);
  // biome-ignore lint/correctness/useExhaustiveDependencies: reload is a trigger
  useEffect(load, [load, reload]);

  if (error) return <Alert type="error" showIcon title={error} />;
  if (vpc === undefined) return <Spin />;
  if (vpc === null)
    return (
      <Alert
        type="warning"
        showIcon
        title="This VPC does not exist or you may not see it."
        action={<Button onClick={() => navigate('/networks')}>Networks</Button>}
      />
    );

  const tabs = [
    {
      key: 'tiers',
      label: 'Tiers',
      command: 'listNetworks',
      children: <VpcDiagram vpc={vpc} reload={reload} onChange={bump} />,
    },
    {
      key: 'acls',
      label: 'ACL lists',
      command: 'listNetworkACLLists',
      children: <VpcAcls vpc={vpc} onChange={bump} />,
    },
    {
      key: 'gateways',
      label: 'Private gateways',
      command: 'listPrivateGateways',
      children: <VpcGateways vpc={vpc} />,
    },
    { key: 'vpn', label: 'VPN', command: 'listVpnGateways', children: <VpcVpn vpc={vpc} /> },
  ].filter((t) => session.can(t.command));
  return (
    <div>
      <Space align="center" wrap style={{ marginBottom: 8 }}>
        <Typography.Title level={3} style={{ margin: 0 }}>
          {vpc.name}
        </Typography.Title>
        <StateTag state={vpc.state} />
      </Space>
      <div style={{ marginBottom: 16 }}>
        <VpcActions vpc={vpc} addTier={false} onDone={bump} onDeleted={() => navigate('/networks')} />
      </div>
      <Card>
        <Descriptions
          size="small"
          column={{ xs: 1, sm: 2, lg: 3 }}
          items={[
            ['CIDR', vpc.cidr],
            ['Zone', vpc.zonename],
            ['Offering', vpc.vpcofferingname],
            ['Network domain', vpc.networkdomain],
            ['Description', vpc.displaytext],
            ['Account', vpc.account],
            ['Domain', vpc.domain],
            ['ID', vpc.id],
          ]
            .filter(([, v]) => v !== undefined && v !== null && v !== '')
            .map(([label, v]) => ({ key: String(label), label: String(label), children: String(v) }))}
        />
      </Card>
      <Tabs style={{ marginTop: 16 }} items={tabs.map(({ command: _, ...t }) => t)} destroyOnHidden />
    </div>
  );
}
