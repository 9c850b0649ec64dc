/**
 * The first screen: capacity per zone, VM counts, recent events and alerts, and a health panel
 * that names what is wrong (hosts not Up, failed template downloads, storage near full).
 */
import {
  Alert,
  Button,
  Card,
  Col,
  Empty,
  Row as GridRow,
  List,
  Progress,
  Select,
  Statistic,
  Typography,
} from 'antd';
import { useEffect, useState } from 'react';
import { api, type Row } from '../api.ts';
import { bytes, date } from '../components/common.tsx';
import { useList } from '../hooks.ts';
import { Link, navigate } from '../router.tsx';
import { useSession } from '../session.tsx';

const STORAGE_WARN = 85;

interface Problem {
  text: string;
  link: string;
}

function useCount(command: string, params: Record<string, string>): number | undefined {
  const { can } = useSession();
  const [n, setN] = useState<number>();
  const key = JSON.stringify(params);
  useEffect(() => {
    if (!can(command)) return;
    api(command, { ...JSON.parse(key), page: 1, pagesize: 1, listall: true })
      .then((r) => setN(Number(r.count ?? 0)))
      .catch(() => setN(undefined));
  }, [can, command, key]);
  return n;
}

/** "STORAGE_ALLOCATED" → "Storage allocated". */
function capacityName(c: Row): string {
  const s = String(c.name ?? `Capacity ${c.type}`)
    .replace(/_/g, ' ')
    .toLowerCase();
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function capacityLabel(c: Row): string {
  const n = Number(c.capacitytotal);
  const used = Number(c.capacityused);
  if ([0, 2, 3, 6, 9].includes(Number(c.type))) return `${bytes(used)} of ${bytes(n)}`;
  return `${used} of ${n}`;
}

export function Dashboard() {
  const session = useSession();
  const zones = useList('listZones', 'zone');
  const [zoneid, setZoneid] = useState<string>();
  const [capacity, setCapacity] = useState<Row[]>([]);
  const running = useCount('listVirtualMachines', { state: 'Running' });
  const stopped = useCount('listVirtualMachines', { state: 'Stopped' });
  const total = useCount('listVirtualMachines', {});
  const events = useList('listEvents', 'event', { page: 1, pagesize: 8, listall: true });
  const alerts = useList('listAlerts', 'alert', { page: 1, pagesize: 8 });
  const hosts = useList('listHosts', 'host', { type: 'Routing' });
  const pools = useList('listStoragePools', 'storagepool');
  const templates = useList('listTemplates', 'template', { templatefilter: 'all', listall: true });

  useEffect(() => {
    if (!session.can('listCapacity')) return;
    api('listCapacity', { zoneid, fetchlatest: true })
      .then((r) => setCapacity((r.capacity as Row[]) ?? []))
      .catch(() => setCapacity([]));
  }, [session, zoneid]);

  const problems: Problem[] = [];
  for (const h of hosts)
    if (h.state !== 'Up')
      problems.push({
        text: `Host ${h.name} is ${h.state}${h.resourcestate && h.resourcestate !== 'Enabled' ? ` (${h.resourcestate})` : ''}`,
        link: '/infrastructure?tab=hosts',
      });
  for (const p of pools) {
    const pct =
      Number(p.disksizetotal) > 0 ? (100 * Number(p.disksizeused ?? 0)) / Number(p.disksizetotal) : 0;
    if (pct >= STORAGE_WARN)
      problems.push({
        text: `Primary storage ${p.name} is ${pct.toFixed(0)}% full`,
        link: '/infrastructure?tab=primary',
      });
    if (p.state && p.state !== 'Up')
      problems.push({ text: `Primary storage ${p.name} is ${p.state}`, link: '/infrastructure?tab=primary' });
  }
  for (const t of templates)
    if (/fail|error/i.test(String(t.status ?? '')))
      problems.push({ text: `Template ${t.name}: ${t.status}`, link: '/storage?tab=templates' });
  for (const c of capacity)
    if (Number(c.percentused) >= STORAGE_WARN)
      problems.push({
        text: `${capacityName(c)} in ${c.zonename ?? 'a zone'} is ${c.percentused}% used`,
        link: '/infrastructure',
      });

  if (session.isRootAdmin && zones.length === 0 && session.can('createZone')) {
    return (
      <Card>
        <Empty description="There is no zone yet. Create one to start deploying instances.">
          <Button type="primary" onClick={() => navigate('/infrastructure/zone-wizard')}>
            Create a zone
          </Button>
        </Empty>
      </Card>
    );
  }

  return (
    <div>
      <Typography.Title level={3}>Dashboard</Typography.Title>
      <GridRow gutter={[16, 16]}>
        <Col xs={24} md={8}>
          <Card>
            <Statistic title="Running instances" value={running ?? '–'} valueStyle={{ color: '#3f8600' }} />
          </Card>
        </Col>
        <Col xs={12} md={8}>
          <Card>
            <Statistic title="Stopped instances" value={stopped ?? '–'} />
          </Card>
        </Col>
        <Col xs={12} md={8}>
          <Card>
            <Statistic title="All instances" value={total ?? '–'} />
          </Card>
        </Col>
        {(session.isRootAdmin || problems.length > 0) && (
          <Col xs={24}>
            <Card title="System health">
              {problems.length === 0 ? (
                <Alert
                  type="success"
                  showIcon
                  title="All hosts are Up, storage has room, and no template download failed."
                />
              ) : (
                <List
                  size="small"
                  dataSource={problems}
                  renderItem={(p) => (
                    <List.Item>
                      <Alert
                        type="warning"
                        showIcon
                        style={{ width: '100%' }}
                        title={<Link to={p.link}>{p.text}</Link>}
                      />
                    </List.Item>
                  )}
                />
              )}
            </Card>
          </Col>
        )}
        {session.can('listCapacity') && (
          <Col xs={24}>
            <Card
              title="Capacity"
              extra={
                <Select
                  aria-label="Zone"
                  placeholder="All zones"
                  allowClear
                  style={{ width: 180 }}
                  value={zoneid}
                  onChange={setZoneid}
                  options={zones.map((z) => ({ value: z.id, label: z.name }))}
                />
              }
            >
              <GridRow gutter={[16, 16]}>
                {capacity.length === 0 && <Empty description="No capacity reported yet" />}
                {capacity.map((c) => (
                  <Col
                    key={`${c.zoneid}-${c.type}`}
                    xs={12}
                    sm={8}
                    lg={6}
                    xl={4}
                    style={{ textAlign: 'center' }}
                  >
                    <Progress
                      type="dashboard"
                      percent={Number(Number(c.percentused ?? 0).toFixed(1))}
                      status={Number(c.percentused) >= STORAGE_WARN ? 'exception' : 'normal'}
                      aria-label={`${capacityName(c)} ${c.percentused}% used`}
                    />
                    <div>
                      <strong>{capacityName(c)}</strong>
                    </div>
                    <div style={{ fontSize: 12 }}>{capacityLabel(c)}</div>
                    {!zoneid && <div style={{ fontSize: 12, opacity: 0.7 }}>{c.zonename}</div>}
                  </Col>
                ))}
              </GridRow>
            </Card>
          </Col>
        )}
        <Col xs={24} lg={12}>
          <Card title="Recent events" extra={<Link to="/events">All events</Link>}>
            <List
              size="small"
              dataSource={events}
              locale={{ emptyText: 'No events' }}
              renderItem={(e) => (
                <List.Item>
                  <List.Item.Meta
                    title={`${e.type} · ${e.level}`}
                    description={`${e.description ?? ''} — ${date(e.created)}`}
                  />
                </List.Item>
              )}
            />
          </Card>
        </Col>
        {session.can('listAlerts') && (
          <Col xs={24} lg={12}>
            <Card title="Recent alerts" extra={<Link to="/events?tab=alerts">All alerts</Link>}>
              <List
                size="small"
                dataSource={alerts}
                locale={{ emptyText: 'No alerts' }}
                renderItem={(a) => (
                  <List.Item>
                    <List.Item.Meta
                      title={a.name ?? a.type}
                      description={`${a.description ?? ''} — ${date(a.sent)}`}
                    />
                  </List.Item>
                )}
              />
            </Card>
          </Col>
        )}
      </GridRow>
    </div>
  );
}
