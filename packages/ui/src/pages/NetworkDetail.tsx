import { Alert, Button, Card, Descriptions, Space, Spin, Tabs, Typography } from 'antd';
import { useCallback, useEffect, useState } from 'react';
import { api, errorText, type Row } from '../api.ts';
import { StateTag } from '../components/common.tsx';
import { EgressRules, PublicIps } from '../components/network-rules.tsx';
import { navigate } from '../router.tsx';
import { useSession } from '../session.tsx';
import { NetworkActions } from './Networks.tsx';

/** One network: what it is, its public IPs (and their rules) and its egress rules. */
export function NetworkDetail({ id }: { id: string }) {
  const session = useSession();
  const [network, setNetwork] = useState<Row | null>();
  const [error, setError] = useState<string>();
  const [reload, setReload] = useState(0);

  const load = useCallback(() => {
    api('listNetworks', { id, listall: true })
      .then((r) => setNetwork(((r.network as Row[]) ?? [])[0] ?? null))
      .catch((e) => setError(errorText(e)));
  }, [id]);
  // biome-ignore lint/correctness/useExhaustiveDependencies: reload is a trigger
  useEffect(load, [load, reload]);

  if (error) return <Alert type="error" showIcon title={error} />;
  if (network === undefined) return <Spin />;
  if (network === null)
    return (
      <Alert
        type="warning"
        showIcon
        title="This network does not exist or you may not see it."
        action={<Button onClick={() => navigate('/networks')}>Networks</Button>}
      />
    );

  const tabs = [
    {
      key: 'ips',
      label: 'Public IPs',
      command: 'listPublicIpAddresses',
      children: <PublicIps network={network} />,
    },
    {
      key: 'egress',
      label: 'Egress rules',
      command: 'listEgressFirewallRules',
      children: <EgressRules network={network} />,
    },
  ].filter((t) => session.can(t.command));
  return (
    <div>
      <Space align="center" wrap style={{ marginBottom: 8 }}>
        <Typography.Title level={3} style={{ margin: 0 }}>
          {network.name}
        </Typography.Title>
        <StateTag state={network.state} />
      </Space>
      <Space wrap style={{ marginBottom: 16 }}>
        <NetworkActions
          network={network}
          onDone={() => setReload((n) => n + 1)}
          onDeleted={() => navigate('/networks')}
        />
      </Space>
      <Card>
        <Descriptions
          size="small"
          column={{ xs: 1, sm: 2, lg: 3 }}
          items={[
            ['Type', network.type],
            ['CIDR', network.cidr],
            ['Gateway', network.gateway],
            ['Netmask', network.netmask],
            ['Zone', network.zonename],
            ['Offering', network.networkofferingdisplaytext ?? network.networkofferingname],
            ['Network domain', network.networkdomain],
            ['VNI', network.vlan],
            ['Account', network.account],
            ['Domain', network.domain],
            ['ID', network.id],
          ]
            .filter(([, v]) => v !== undefined && v !== null && v !== '')
            .map(([label, v]) => ({ key: String(label), label: String(label), children: String(v) }))}
        />
      </Card>
      <Tabs style={{ marginTop: 16 }} items={tabs.map(({ command: _, ...t }) => t)} destroyOnHidden />
    </div>
  );
}
