/**
 * A VPC drawn as what it is: its router on top (state, source-NAT and other public addresses,
 * private gateways), a bus below it, and each tier hanging off the bus as a box with its CIDR,
 * instance count, ACL list and the public addresses used for it. Plain flex layout with borders
 * for the wires: the picture is a tree one level deep, which needs no graph-drawing library.
 */
import { PlusOutlined } from '@ant-design/icons';
import { Alert, Button, Card, Empty, Space, Spin, Tag, Typography, theme } from 'antd';
import { type CSSProperties, useEffect, useState } from 'react';
import { api, errorText, listAll, type Row } from '../api.ts';
import { AddTier } from '../pages/Vpcs.tsx';
import { Link } from '../router.tsx';
import { useSession } from '../session.tsx';
import { StateTag } from './common.tsx';
import { ReplaceAcl } from './vpc-acls.tsx';

interface Picture {
  tiers: Row[];
  /** Instances per tier id. */
  vms: Map<string, number>;
  routers: Row[];
  ips: Row[];
  gateways: Row[];
}

async function loadPicture(vpcid: string, can: (c: string) => boolean): Promise<Picture> {
  const listed = (command: string, key: string) =>
    can(command) ? listAll(command, key, { vpcid, listall: true }) : Promise.resolve([]);
  const [tiers, routers, ips, gateways] = await Promise.all([
    listed('listNetworks', 'network'),
    listed('listRouters', 'router'),
    listed('listPublicIpAddresses', 'publicipaddress'),
    listed('listPrivateGateways', 'privategateway'),
  ]);
  // The count of one-item pages: the number without fetching every instance.
  const counts = await Promise.all(
    tiers.map(async (t) =>
      can('listVirtualMachines')
        ? Number(
            (await api('listVirtualMachines', { networkid: t.id, listall: true, page: 1, pagesize: 1 }))
              .count ?? 0,
          )
        : 0,
    ),
  );
  return { tiers, vms: new Map(tiers.map((t, i) => [String(t.id), counts[i] ?? 0])), routers, ips, gateways };
}

export function VpcDiagram({ vpc, reload, onChange }: { vpc: Row; reload: number; onChange(): void }) {
  const session = useSession();
  const { token } = theme.useToken();
  const [picture, setPicture] = useState<Picture>();
  const [error, setError] = useState<string>();
  const [adding, setAdding] = useState(false);

  // biome-ignore lint/correctness/useExhaustiveDependencies: reload is a trigger (the page's, bumped by onChange)
  useEffect(() => {
    let cancelled = false;
    loadPicture(vpc.id, session.can)
      .then((p) => {
        if (cancelled) return;
        setPicture(p);
        setError(undefined);
      })
      .catch((e) => !cancelled && setError(errorText(e)));
    return () => {
      cancelled = true;
    };
  }, [vpc.id, session.can, reload]);

  if (error) return <Alert type="error" showIcon title={error} />;
  if (!picture) return <Spin />;
  const wire: CSSProperties = { background: token.colorBorder, width: 2, height: 24, margin: '0 auto' };
  const onTier = (tier: Row) => picture.ips.filter((ip) => ip.associatednetworkid === tier.id);
  const onRouter = picture.ips.filter((ip) => !ip.associatednetworkid);
  const boxes = picture.tiers.length + (session.can('createNetwork') ? 1 : 0);
  return (
    <figure aria-label={`Diagram of VPC ${vpc.name}`} style={{ margin: 0 }}>
      <div style={{ display: 'flex', justifyContent: 'center' }}>
        <Card
          size="small"
          role="group"
          aria-label="VPC router"
          title={`Router of ${vpc.name}`}
          extra={picture.routers.map((r) => <StateTag key={String(r.id)} state={r.state} />)}
          style={{ minWidth: 280, borderColor: token.colorPrimary }}
        >
          <Space direction="vertical" size={4}>
            <Typography.Text type="secondary">{vpc.cidr}</Typography.Text>
            {picture.routers.map((r) => (
              <Typography.Text key={String(r.id)}>
                {r.name}
                {r.hostname ? ` on ${r.hostname}` : ''}
              </Typography.Text>
            ))}
            <Space wrap size={4}>
              {onRouter.map((ip) => (
                <Tag key={String(ip.id)} color={ip.issourcenat ? 'blue' : undefined}>
                  {ip.ipaddress}
                  {ip.issourcenat ? ' (source NAT)' : ''}
                </Tag>
              ))}
            </Space>
            {picture.gateways.map((g) => (
              <Typography.Text key={String(g.id)}>
                Private gateway {g.ipaddress}/{maskBits(g.netmask)} on {g.vlan} via {g.gateway}{' '}
                <StateTag state={g.state} />
              </Typography.Text>
            ))}
          </Space>
        </Card>
      </div>
      <div style={wire} />
      <div style={{ display: 'flex', flexWrap: 'wrap', justifyContent: 'center' }}>
        {picture.tiers.map((tier, i) => (
          <div key={String(tier.id)} style={{ padding: '0 8px' }}>
            <Drop first={i === 0} last={i === boxes - 1} color={token.colorBorder} />
            <Card
              size="small"
              role="group"
              aria-label={`Tier ${tier.name}`}
              title={<Link to={`/networks/${tier.id}`}>{tier.name}</Link>}
              extra={<StateTag state={tier.state} />}
              style={{ width: 250 }}
            >
              <Space direction="vertical" size={4} style={{ width: '100%' }}>
                <Typography.Text code>{tier.cidr}</Typography.Text>
                <Typography.Text>{plural(picture.vms.get(String(tier.id)) ?? 0, 'instance')}</Typography.Text>
                <Space size={4} wrap>
                  ACL:
                  {tier.aclname ? (
                    <Tag color="purple">{tier.aclname}</Tag>
                  ) : (
                    <Tag>none: nothing comes in</Tag>
                  )}
                </Space>
                {onTier(tier).length > 0 && (
                  <Space wrap size={4}>
                    {onTier(tier).map((ip) => (
                      <Tag key={String(ip.id)}>
                        {ip.ipaddress}
                        {ip.isstaticnat ? ' (static NAT)' : ''}
                      </Tag>
                    ))}
                  </Space>
                )}
                {session.can('replaceNetworkACLList') && (
                  <ReplaceAcl
                    vpc={vpc}
                    target={{ networkid: tier.id }}
                    name={`tier ${tier.name}`}
                    current={tier.aclid}
                    onDone={onChange}
                  />
                )}
              </Space>
            </Card>
          </div>
        ))}
        {session.can('createNetwork') && (
          <div style={{ padding: '0 8px' }}>
            <Drop first={picture.tiers.length === 0} last color={token.colorBorder} />
            <Card size="small" style={{ width: 250, borderStyle: 'dashed', textAlign: 'center' }}>
              {picture.tiers.length === 0 && <Empty description="No tiers yet" />}
              <Button icon={<PlusOutlined />} onClick={() => setAdding(true)}>
                Add tier
              </Button>
            </Card>
          </div>
        )}
      </div>
      {adding && <AddTier vpc={vpc} onClose={() => setAdding(false)} onDone={onChange} />}
    </figure>
  );
}

/**
 * The wire from the bus down to one box: the bus is drawn in halves by the boxes themselves, so
 * it runs from the first box's middle to the last one's and no further.
 */
function Drop({ first, last, color }: { first: boolean; last: boolean; color: string }) {
  const half = (left: string, on: boolean): CSSProperties => ({
    position: 'absolute',
    top: 0,
    left,
    width: '50%',
    borderTop: on ? `2px solid ${color}` : undefined,
  });
  return (
    // Out over the column's padding, so that neighbouring halves meet.
    <div style={{ position: 'relative', height: 24, margin: '0 -8px' }}>
      <div style={half('0', !first)} />
      <div style={half('50%', !last)} />
      <div
        style={{
          position: 'absolute',
          left: 'calc(50% - 1px)',
          top: 0,
          width: 2,
          height: 24,
          background: color,
        }}
      />
    </div>
  );
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** 255.255.255.0 → 24. */
function maskBits(netmask: unknown): number {
  return String(netmask ?? '')
    .split('.')
    .reduce((bits, part) => bits + (Number(part) >>> 0).toString(2).replace(/0/g, '').length, 0);
}
