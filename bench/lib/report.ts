/** The Markdown table of a run: every headline figure with its target and its floor. */

type Results = Record<string, unknown>;

interface Line {
  label: string;
  key: string;
  unit: string;
  target?: { op: '<=' | '>=' | '<'; value: number };
  floorKey?: string;
  /** A target that is a share of the floor (0.8: at least 80% of it) rather than a value. */
  shareTarget?: number;
  /** Whether the ratio to the floor is measured/floor (times) or measured as a share of floor. */
  ratio?: 'times' | 'share';
}

const LINES: Line[] = [
  {
    label: 'listVirtualMachines page 1 of 500, root admin, 1 client (p50)',
    key: 'list_vms_page_ms_p50',
    unit: 'ms',
    target: { op: '<=', value: 50 },
    floorKey: 'floor_db_page_ms',
    ratio: 'times',
  },
  {
    label: 'listVirtualMachines deep page, root admin, 1 client (p50)',
    key: 'list_vms_deep_page_ms_p50',
    unit: 'ms',
    target: { op: '<=', value: 50 },
    floorKey: 'floor_db_deep_page_ms',
    ratio: 'times',
  },
  {
    label: 'listVirtualMachines page 1, details=min (p50)',
    key: 'list_vms_page_min_ms_p50',
    unit: 'ms',
    target: { op: '<=', value: 50 },
    floorKey: 'floor_db_page_ms',
    ratio: 'times',
  },
  {
    label: 'listVirtualMachines page 1 with 16 clients',
    key: 'list_vms_rps',
    unit: 'req/s',
    shareTarget: 0.8,
    floorKey: 'floor_http_page_rps',
    ratio: 'share',
  },
  {
    label: 'the same with api.list.cache.size=0 (every page computed)',
    key: 'list_vms_rps_uncached',
    unit: 'req/s',
    floorKey: 'floor_http_page_rps',
    ratio: 'share',
  },
  {
    label: 'one account, all pages of 500 (listall)',
    key: 'list_account_10k_ms',
    unit: 'ms',
    target: { op: '<=', value: 500 },
    floorKey: 'floor_db_account_10k_ms',
    ratio: 'times',
  },
  {
    label: 'one account, all pages, details=min',
    key: 'list_account_10k_min_ms',
    unit: 'ms',
    target: { op: '<=', value: 500 },
    floorKey: 'floor_db_account_10k_ms',
    ratio: 'times',
  },
  {
    label: 'the same, details=all, api.list.cache.size=0 (every page computed)',
    key: 'list_account_10k_uncached_ms',
    unit: 'ms',
    floorKey: 'floor_db_account_10k_ms',
    ratio: 'times',
  },
  {
    label: 'planner per decision, first size (p50)',
    key: 'planner_ms_p50',
    unit: 'ms',
    target: { op: '<=', value: 5 },
  },
  {
    label: 'planner per decision, second size (p50)',
    key: 'planner_ms_p50_large',
    unit: 'ms',
    target: { op: '<=', value: 50 },
  },
  {
    label: 'deployVirtualMachine to Running, 50 clients',
    key: 'deploys_per_min',
    unit: 'VMs/min',
    target: { op: '>=', value: 600 },
  },
  {
    label: "the network's first deploy since the server started (cold: its router is new)",
    key: 'deploy_cold_ms',
    unit: 'ms',
    target: { op: '<=', value: 1000 },
  },
  {
    label: 'the new router filled with every VM entry, in the background after that deploy',
    key: 'router_fill_ms',
    unit: 'ms',
  },
  { label: "the router's own boot (restartNetwork cleanup=true)", key: 'router_boot_ms', unit: 'ms' },
  {
    label: 'first deploy after a server restart, the router running on',
    key: 'deploy_cold_restart_ms',
    unit: 'ms',
    target: { op: '<=', value: 1000 },
  },
  {
    label: "the running router's entries checked by digest after the restart",
    key: 'router_check_ms',
    unit: 'ms',
  },
  {
    label: 'listZones with 16 clients',
    key: 'list_zones_rps',
    unit: 'req/s',
    target: { op: '>=', value: 2000 },
    floorKey: 'floor_http_rps',
    ratio: 'share',
  },
  {
    label: 'queryAsyncJobResult with 16 clients',
    key: 'query_job_rps',
    unit: 'req/s',
    target: { op: '>=', value: 2000 },
    floorKey: 'floor_http_rps',
    ratio: 'share',
  },
  {
    label: 'server CPU, all hosts pinging',
    key: 'agent_cpu_pct',
    unit: '% of a core',
    target: { op: '<', value: 25 },
  },
  {
    label: 'the same with the statistics rounds off (pings alone)',
    key: 'agent_cpu_pct_pings_only',
    unit: '% of a core',
  },
  {
    label: 'server CPU, --ping-hosts hosts pinging',
    key: 'agent_cpu_pct_more',
    unit: '% of a core',
    target: { op: '<', value: 25 },
  },
  { label: 'server RSS after the lists', key: 'ms_rss_mb', unit: 'MiB', target: { op: '<', value: 1024 } },
  { label: 'server peak RSS', key: 'ms_rss_mb_peak', unit: 'MiB', target: { op: '<', value: 1024 } },
  { label: 'floor: SQL of page 1 through the driver', key: 'floor_db_page_ms', unit: 'ms' },
  { label: 'floor: SQL of the deep page', key: 'floor_db_deep_page_ms', unit: 'ms' },
  { label: 'floor: SQL of one account, all pages', key: 'floor_db_account_10k_ms', unit: 'ms' },
  { label: 'floor: bare node:http, 16 clients', key: 'floor_http_rps', unit: 'req/s' },
  {
    label: 'floor: the same 500-VM page from bare node:http, 16 clients parsing it',
    key: 'floor_http_page_rps',
    unit: 'req/s',
  },
  { label: 'floor: one committed single-row UPDATE (planner)', key: 'floor_planner_write_ms', unit: 'ms' },
];

function met(value: number, t: NonNullable<Line['target']>): boolean {
  if (t.op === '<=') return value <= t.value;
  if (t.op === '>=') return value >= t.value;
  return value < t.value;
}

export function renderMarkdown(r: Results): string {
  const shape = r.shape as Record<string, number>;
  const rows = r.rows as Record<string, number> | undefined;
  const head = [
    `### ${r.db} — ${r.hosts} hosts, ${r.vms} VMs (${r.started})`,
    '',
    `${rows?.volumes ?? shape.volumes} volumes, ${rows?.nics ?? 0} NICs, ${shape.accounts} accounts in ${shape.domains} domains; ` +
      `one account of ${r.account_vms} VMs (${r.account_pages} pages); ${r.cpus} CPUs, Node ${r.node}; ` +
      `${(r.planner_hosts as number[]).length ? `planner at ${(r.planner_hosts as number[]).join(' and ')} hosts; ` : ''}` +
      `${r.ping_interval_s ? `pings every ${r.ping_interval_s} s` : 'agent load not measured'}` +
      `${r.agent_more_hosts ? `; ${r.agent_more_hosts} pinging hosts in the last phase` : ''}; run took ${r.total_s} s.`,
    '',
    '| measurement | value | target | × floor | met |',
    '|---|---:|---:|---:|:---:|',
  ];
  const body: string[] = [];
  for (const l of LINES) {
    if (!(l.key in r)) continue;
    const v = r[l.key];
    const floor = l.floorKey ? r[l.floorKey] : undefined;
    const value = typeof v === 'number' ? `${v} ${l.unit}` : 'n/a';
    const target = l.target
      ? `${l.target.op} ${l.target.value} ${l.unit}`
      : l.shareTarget
        ? `>= ${l.shareTarget * 100}% of floor`
        : '';
    let ratio = '';
    if (typeof v === 'number' && typeof floor === 'number' && floor > 0)
      ratio =
        l.ratio === 'share' ? `${Math.round((v / floor) * 100)}% of floor` : `${(v / floor).toFixed(1)}×`;
    let ok = l.target && typeof v === 'number' ? (met(v, l.target) ? 'yes' : '**no**') : '';
    if (l.shareTarget && typeof v === 'number' && typeof floor === 'number' && floor > 0)
      ok = v / floor >= l.shareTarget ? 'yes' : '**no**';
    body.push(`| ${l.label} | ${value} | ${target} | ${ratio} | ${ok} |`);
  }
  const vms = r.list_vms as Record<string, Record<string, any>> | undefined;
  const detail: string[] = [];
  if (vms?.root?.page_all) {
    detail.push(
      '',
      '| listVirtualMachines | visible | page | details | 1 client p50 ms | 16 clients p50 / p95 / p99 ms | req/s | server CPU ms/req | SQL floor ms |',
      '|---|---:|---:|---|---:|---:|---:|---:|---:|',
    );
    for (const [who, e] of Object.entries(vms)) {
      for (const [label, page] of [
        ['page', 1],
        ['deep_page', e.deep_page],
      ]) {
        for (const d of ['all', 'min']) {
          const c = e[`${label}_${d}`];
          if (!c) continue;
          detail.push(
            `| ${who} | ${e.visible} | ${page} | ${d} | ${c.single.p50} | ${c.loaded.p50} / ${c.loaded.p95} / ${c.loaded.p99} | ${c.loaded.rps} | ${c.server_cpu_ms_per_req} | ${e[`floor_db_${label}_ms`]} |`,
          );
        }
      }
    }
  }
  const others = r.other_lists as Record<string, any> | undefined;
  if (others) {
    detail.push(
      '',
      '| other lists, root admin, page 1 of 500 | 1 client p50 ms | 16 clients p50 / p95 / p99 ms | req/s | server CPU ms/req |',
      '|---|---:|---:|---:|---:|',
    );
    for (const [name, c] of Object.entries(others)) {
      if (c)
        detail.push(
          `| ${name} | ${c.single.p50} | ${c.loaded.p50} / ${c.loaded.p95} / ${c.loaded.p99} | ${c.loaded.rps} | ${c.server_cpu_ms_per_req} |`,
        );
      else detail.push(`| ${name} | n/a | n/a | n/a | n/a |`);
    }
  }
  const cheap = r.cheap as Record<string, any> | undefined;
  if (cheap) {
    detail.push(
      '',
      '| cheap calls, root admin | 1 client p50 ms | 16 clients p50 / p95 / p99 ms | req/s | CPU ms/req: server / database / clients | machine busy | CPU ceiling req/s |',
      '|---|---:|---:|---:|---:|---:|---:|',
    );
    for (const [name, c] of Object.entries(cheap))
      detail.push(
        `| ${name} | ${c.single.p50} | ${c.loaded.p50} / ${c.loaded.p95} / ${c.loaded.p99} | ${c.loaded.rps} | ${cpuCells(c.cpu)} |`,
      );
  }
  const deployCpu = r.deploy_cpu as Record<string, number> | undefined;
  if (deployCpu)
    detail.push(
      '',
      '| deploys, 50 clients | VMs/min | CPU ms per VM: server / database / clients | agent | machine busy | CPU ceiling VMs/min |',
      '|---|---:|---:|---:|---:|---:|',
      `| to Running | ${r.deploys_per_min ?? 'n/a'} | ${deployCpu.server_ms} / ${deployCpu.db_ms} / ${deployCpu.clients_ms} | ${deployCpu.agent_ms} | ${deployCpu.machine_busy_pct}% | ${Math.round(deployCpu.ceiling_per_s * 60)} |`,
    );
  const notes = (r.notes as string[] | undefined) ?? [];
  return [...head, ...body, ...detail, ...(notes.length ? ['', ...notes.map((n) => `- ${n}`)] : []), ''].join(
    '\n',
  );
}

/** Where a case's CPU went (bench/run.ts cpuAccount), as table cells; older results have none. */
function cpuCells(cpu: Record<string, number> | undefined): string {
  if (!cpu) return 'n/a | n/a | n/a';
  return `${cpu.server_ms} / ${cpu.db_ms} / ${cpu.clients_ms} | ${cpu.machine_busy_pct}% | ${cpu.ceiling_per_s}`;
}
