/** The Markdown table of a networks benchmark run (bench/networks.ts): each figure, its target and floor. */

type Results = Record<string, any>;

interface Line {
  label: string;
  key: string;
  unit: string;
  target?: { op: '<=' | '>=' | '<'; value: number };
  floorKey?: string;
}

const LIST_TARGET = { op: '<=', value: 50 } as const;
const APPLY_TARGET = { op: '<=', value: 100 } as const;

const LINES: Line[] = [
  {
    label: 'createPortForwardingRule: request to rule on the router, 1 client (p50)',
    key: 'pf_router_ms_p50',
    unit: 'ms',
    target: APPLY_TARGET,
  },
  { label: '… same (p95)', key: 'pf_router_ms_p95', unit: 'ms', target: APPLY_TARGET },
  {
    label: 'createPortForwardingRule: request to rule on the router, 8 clients on 8 networks (p50)',
    key: 'pf_router_loaded_ms_p50',
    unit: 'ms',
    target: APPLY_TARGET,
  },
  { label: '… same (p95)', key: 'pf_router_loaded_ms_p95', unit: 'ms', target: APPLY_TARGET },
  {
    label: 'createPortForwardingRule job seen Active by its client polling every 5 ms, 1 client (p50)',
    key: 'pf_create_ms_p50',
    unit: 'ms',
  },
  { label: '… same (p95)', key: 'pf_create_ms_p95', unit: 'ms' },
  {
    label: 'createPortForwardingRule job seen Active, 8 clients polling every 25 ms (p50)',
    key: 'pf_create_loaded_ms_p50',
    unit: 'ms',
  },
  { label: '… same (p95)', key: 'pf_create_loaded_ms_p95', unit: 'ms' },
  {
    label: 'createPortForwardingRule, 8 clients: rules applied per second',
    key: 'pf_create_loaded_rps',
    unit: 'rules/s',
  },
  {
    label: '… server CPU per rule with 8 clients (their polls included)',
    key: 'pf_loaded_server_cpu_ms_per_rule',
    unit: 'ms',
  },
  { label: 'commits one port forward costs the server', key: 'pf_commits_per_rule', unit: 'commits' },
  { label: 'floor: one single-row UPDATE committed on its own', key: 'floor_commit_ms', unit: 'ms' },
  {
    label: 'applyNetworkRules in the server, smallest growth network (p50)',
    key: 'apply_ms_p50_small',
    unit: 'ms',
    target: APPLY_TARGET,
  },
  {
    label: 'applyNetworkRules in the server, largest growth network (p50)',
    key: 'apply_ms_p50_large',
    unit: 'ms',
    target: APPLY_TARGET,
  },
  {
    label: 'applyNetworkRules: cost of each rule the network holds',
    key: 'apply_us_per_rule',
    unit: 'µs/rule',
  },
  { label: '… of which building the set from the records', key: 'build_us_per_rule', unit: 'µs/rule' },
  { label: "… of which the router's host (send, check, answer)", key: 'agent_us_per_rule', unit: 'µs/rule' },
  {
    label: 'request to rule on the router, smallest growth network (p50)',
    key: 'pf_router_ms_p50_small',
    unit: 'ms',
    target: APPLY_TARGET,
  },
  {
    label: 'request to rule on the router, largest growth network (p50)',
    key: 'pf_router_ms_p50_large',
    unit: 'ms',
    target: APPLY_TARGET,
  },
  {
    label: 'listPortForwardingRules page 1 of 500, root listall (p50)',
    key: 'list_pf_page_ms_p50',
    unit: 'ms',
    target: LIST_TARGET,
    floorKey: 'floor_pf_page_ms',
  },
  {
    label: 'listPortForwardingRules deep page, root listall (p50)',
    key: 'list_pf_deep_page_ms_p50',
    unit: 'ms',
    target: LIST_TARGET,
    floorKey: 'floor_pf_deep_page_ms',
  },
  {
    label: 'listPortForwardingRules page 1, one account (p50)',
    key: 'list_pf_account_page_ms_p50',
    unit: 'ms',
    target: LIST_TARGET,
    floorKey: 'floor_pf_account_page_ms',
  },
  {
    label: 'listPortForwardingRules deep page, one account (p50)',
    key: 'list_pf_account_deep_page_ms_p50',
    unit: 'ms',
    target: LIST_TARGET,
    floorKey: 'floor_pf_account_deep_page_ms',
  },
  {
    label: 'listPublicIpAddresses page 1 of 500, root listall (p50)',
    key: 'list_ip_page_ms_p50',
    unit: 'ms',
    target: LIST_TARGET,
    floorKey: 'floor_ip_page_ms',
  },
  {
    label: 'listPublicIpAddresses deep page, root listall (p50)',
    key: 'list_ip_deep_page_ms_p50',
    unit: 'ms',
    target: LIST_TARGET,
    floorKey: 'floor_ip_deep_page_ms',
  },
  {
    label: 'listPublicIpAddresses page 1, root listall allocatedonly=false (p50)',
    key: 'list_ip_all_page_ms_p50',
    unit: 'ms',
    target: LIST_TARGET,
    floorKey: 'floor_ip_all_page_ms',
  },
  {
    label: 'listPublicIpAddresses deep page, root listall allocatedonly=false (p50)',
    key: 'list_ip_all_deep_page_ms_p50',
    unit: 'ms',
    target: LIST_TARGET,
    floorKey: 'floor_ip_all_deep_page_ms',
  },
  {
    label: 'listPublicIpAddresses page 1, one account (p50)',
    key: 'list_ip_account_page_ms_p50',
    unit: 'ms',
    target: LIST_TARGET,
    floorKey: 'floor_ip_account_page_ms',
  },
  {
    label: 'server RSS after the measurements',
    key: 'ms_rss_mb',
    unit: 'MiB',
    target: { op: '<', value: 1024 },
  },
  { label: 'server peak RSS', key: 'ms_rss_mb_peak', unit: 'MiB', target: { op: '<', value: 1024 } },
];

function met(value: number, t: NonNullable<Line['target']>): boolean {
  if (t.op === '<=') return value <= t.value;
  if (t.op === '>=') return value >= t.value;
  return value < t.value;
}

export function renderNetworksMarkdown(r: Results): string {
  const rows = r.rows ?? {};
  const out = [
    `### Advanced networking, ${r.db} — ${rows.networks} isolated networks, ${rows.rules} rules (${r.started})`,
    '',
    `${rows.routers} running routers, ${rows.vms} VMs on ${r.hosts} simulated hosts, ${r.accounts} accounts; ` +
      `${rows.public_ips_allocated} of ${rows.public_ips} public addresses allocated; rules: ${rows.port_forwarding_rules} port forwarding, ` +
      `${rows.firewall_rules} firewall, ${rows.egress_rules} egress, ${rows.load_balancers} load balancers. ` +
      `${r.api?.networks} networks through the API (${r.api?.rules} rules), the rest copied by the bulk path in ${r.build_bulk_s} s; ` +
      `${r.cpus} CPUs, Node ${r.node}${r.quick ? '; --quick (indicative only)' : ''}.`,
    '',
    '| figure | measured | target | floor | within target |',
    '|---|---|---|---|---|',
  ];
  for (const l of LINES) {
    const v = r[l.key];
    if (v === undefined) continue;
    const value = typeof v === 'number' ? `${v} ${l.unit}` : 'not measured';
    const target = l.target ? `${l.target.op} ${l.target.value} ${l.unit}` : '';
    const f = l.floorKey ? r[l.floorKey] : undefined;
    const floor = typeof f === 'number' ? `${f} ms (SQL)` : '';
    const ok = l.target && typeof v === 'number' ? (met(v, l.target) ? 'yes' : '**no**') : '';
    out.push(`| ${l.label} | ${value} | ${target} | ${floor} | ${ok} |`);
  }
  const growth = (r.apply_growth ?? []) as any[];
  if (growth.length) {
    out.push(
      '',
      '| rules in the network | sent to the router | applyNetworkRules p50 | building the set | router host | a new port forward on the router p50 |',
      '|---|---|---|---|---|---|',
    );
    for (const g of growth)
      out.push(
        `| ${g.rules} | ${g.payload_kb} KB | ${g.apply_ms.p50} ms | ${g.build_ms.p50} ms | ${g.agent_ms.p50} ms | ${g.pf_router_ms.p50} ms |`,
      );
  }
  const sqlTable = (title: string, top: any[] | undefined, total: number | undefined) => {
    if (!top?.length) return;
    out.push(
      '',
      `${title}: ${total} ms in SQLite per rule`,
      '',
      '| statement | per rule | ms per rule |',
      '|---|---|---|',
    );
    for (const t of top)
      out.push(`| \`${String(t.sql).replace(/\|/g, '\\|')}\` | ${t.per_rule} | ${t.ms_per_rule} |`);
  };
  sqlTable(
    'SQL of a port forward on a 10-rule network (1 client, its polls included)',
    r.pf_db_per_rule?.top_sql,
    r.pf_db_per_rule?.sql_ms,
  );
  const largest = growth[growth.length - 1];
  if (largest)
    sqlTable(
      `SQL of a port forward on the ${largest.rules}-rule network`,
      largest.pf_top_sql,
      largest.pf_sql_ms,
    );
  if ((r.notes ?? []).length) out.push('', ...r.notes.map((n: string) => `- ${n}`));
  return `${out.join('\n')}\n`;
}
