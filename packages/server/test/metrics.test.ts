/**
 * The Prometheus exporter: enabled as an operator would (updateConfiguration, then a restart),
 * scraped over HTTP, the text parsed by an independent parser (parse-prometheus-text-format) and
 * checked line by line against the exposition format's grammar; its figures must equal what the
 * API reports, the allow-list must refuse other addresses, and API latency histograms must count
 * the calls made.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import parsePrometheusTextFormat, { type PrometheusFamily } from 'parse-prometheus-text-format';
import { seededLocalZone } from './agents.ts';
import { startServer, type TestServer } from './harness.ts';

type ParsedFamily = PrometheusFamily;

let server: TestServer;
let metricsUrl: string;
let zoneName: string;

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\["\\\\n])*"';
// prom-client writes NaN as "Nan" (an event-loop lag with no samples yet); Prometheus parses
// values with Go's ParseFloat, which takes NaN and Inf in any case.
const VALUE = '(?:[+-]?(?:\\d+\\.?\\d*(?:[eE][+-]?\\d+)?|\\.\\d+(?:[eE][+-]?\\d+)?)|[+-]Inf|[Nn][Aa][Nn])';
const SAMPLE = new RegExp(`^(${NAME})(?:\\{((?:${LABEL})(?:,${LABEL})*)?\\})? (${VALUE})$`);

/**
 * The text format's rules that a lenient parser lets pass: every line a HELP, TYPE or sample line;
 * each family's TYPE before its samples and only once; sample names of a family are the family's
 * (with _bucket/_sum/_count for histograms); no series twice; histogram buckets cumulative with
 * +Inf equal to _count.
 */
interface LineSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function checkExposition(text: string): LineSample[] {
  const out: LineSample[] = [];
  assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
  const types = new Map<string, string>();
  const seen = new Set<string>();
  const buckets = new Map<string, number[]>();
  const counts = new Map<string, number>();
  for (const line of text.slice(0, -1).split('\n')) {
    if (line.startsWith('# HELP ')) {
      assert.match(line, new RegExp(`^# HELP ${NAME} .*$`), line);
      continue;
    }
    if (line.startsWith('# TYPE ')) {
      const m = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`).exec(line);
      assert.ok(m, `malformed TYPE line: ${line}`);
      assert.ok(!types.has(m[1]), `TYPE of ${m[1]} given twice`);
      types.set(m[1], m[2]);
      continue;
    }
    if (line === '') continue; // the format ignores empty lines
    assert.ok(!line.startsWith('#') || line.startsWith('# '), `malformed comment: ${line}`);
    if (line.startsWith('# ')) continue;
    const m = SAMPLE.exec(line);
    assert.ok(m, `malformed sample line: ${JSON.stringify(line)}`);
    const [, name, labels = ''] = m;
    const labelMap: Record<string, string> = {};
    for (const [, k, v] of labels.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)"/g))
      labelMap[k] = v.replace(/\\(["\\n])/g, (_, c) => (c === 'n' ? '\n' : c));
    out.push({ name, labels: labelMap, value: Number(m[3]) });
    const family = types.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '');
    const type = types.get(family);
    assert.ok(type, `sample ${name} has no TYPE before it`);
    if (family !== name) assert.equal(type, 'histogram', `${name}: suffixed samples belong to histograms`);
    const series = `${name}{${labels
      .split(/,(?=[a-zA-Z_][a-zA-Z0-9_]*=")/)
      .sort()
      .join(',')}}`;
    assert.ok(!seen.has(series), `series given twice: ${series}`);
    seen.add(series);
    if (type === 'histogram') {
      const key = `${family}{${labels.replace(/(^|,)le="[^"]*"/, '').replace(/^,/, '')}}`;
      if (name.endsWith('_bucket')) buckets.set(key, [...(buckets.get(key) ?? []), Number(m[3])]);
      if (name.endsWith('_count')) counts.set(key, Number(m[3]));
    }
  }
  for (const [key, list] of buckets) {
    for (let i = 1; i < list.length; i++) assert.ok(list[i] >= list[i - 1], `${key}: buckets are cumulative`);
    assert.equal(list.at(-1), counts.get(key), `${key}: the +Inf bucket equals _count`);
  }
  return out;
}

interface Scrape {
  families: Map<string, ParsedFamily>;
  lines: LineSample[];
}

async function scrape(): Promise<Scrape> {
  const res = await fetch(metricsUrl);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  if (process.env.NIMBOSTACK_METRICS_DUMP) writeFileSync(process.env.NIMBOSTACK_METRICS_DUMP, text);
  const lines = checkExposition(text);
  const families = parsePrometheusTextFormat(text);
  return { families: new Map(families.map((f) => [f.name, f])), lines };
}

const matches = (have: Record<string, string> | undefined, want: Record<string, string>) =>
  Object.entries(want).every(([k, v]) => have?.[k] === v);

/**
 * The value of the one sample of `name` whose labels include `labels` (undefined when none); for
 * a histogram, its _count. Gauges and counters come from the parser, and must agree with the
 * grammar check's reading of the same line; histograms come from the grammar check alone, as the
 * parser keeps only the buckets of labelled histograms and drops their labels.
 */
function value(scraped: Scrape, name: string, labels: Record<string, string>) {
  const family = scraped.families.get(name);
  assert.ok(family, `${name} is exported`);
  const lineName = family.type === 'HISTOGRAM' ? `${name}_count` : name;
  const lines = scraped.lines.filter((l) => l.name === lineName && matches(l.labels, labels));
  assert.ok(lines.length <= 1, `${name} ${JSON.stringify(labels)} matches one sample`);
  if (family.type === 'HISTOGRAM') return lines[0]?.value;
  const hits = family.metrics.filter((m) => matches(m.labels, labels));
  assert.equal(hits.length, lines.length, `${name} ${JSON.stringify(labels)}: parser and grammar agree`);
  if (hits.length === 0) return undefined;
  assert.equal(Number(hits[0].value), lines[0].value);
  return lines[0].value;
}

before(async () => {
  // Enable the exporter the operator's way: settings, then a restart (it is read at start-up).
  const first = await startServer({ env: { NIMBOSTACK_SEED_LOCAL_ZONE: 'true' } });
  const off = first.logs.some((l) => l.includes('"prometheus exporter started"'));
  assert.equal(off, false, 'the exporter is off by default');
  await first.admin.request('updateConfiguration', { name: 'prometheus.exporter.enable', value: 'true' });
  // Port 0: the system picks a free port, which the server logs.
  await first.admin.request('updateConfiguration', { name: 'prometheus.exporter.port', value: '0' });
  await first.stop({ keepData: true });
  server = await startServer({
    dataDir: first.dataDir,
    databaseUrl: first.databaseUrl,
    env: { NIMBOSTACK_SEED_LOCAL_ZONE: 'true' },
  });
  const started = server.logs.find((l) => l.includes('"prometheus exporter started"'));
  assert.ok(started, 'the exporter starts once enabled');
  metricsUrl = `http://127.0.0.1:${JSON.parse(started).port}/metrics`;
});
after(() => server?.stop());

describe('the Prometheus exporter', () => {
  test('cloud figures equal what the API reports', async () => {
    const { admin } = server;
    const { zoneid, templateid, small } = await seededLocalZone(admin);
    zoneName = (await admin.request<any>('listZones', { id: zoneid })).zone[0].name;
    const ids: string[] = [];
    for (let i = 0; i < 4; i++)
      ids.push(
        (
          await admin.call<any>('deployVirtualMachine', {
            zoneid,
            templateid,
            serviceofferingid: small,
            name: `metrics-${i}`,
          })
        ).virtualmachine.id,
      );
    await admin.call('stopVirtualMachine', { id: ids[1] });
    await admin.call('stopVirtualMachine', { id: ids[2] });
    await admin.call('destroyVirtualMachine', { id: ids[2] });

    const vms = (await admin.request<any>('listVirtualMachines', { listall: true })).virtualmachine ?? [];
    const byState = new Map<string, number>();
    for (const vm of vms) byState.set(vm.state, (byState.get(vm.state) ?? 0) + 1);
    assert.deepEqual(Object.fromEntries(byState), { Running: 2, Stopped: 1, Destroyed: 1 });
    const hosts = (await admin.request<any>('listHosts', { type: 'Routing' })).host;
    const rootId = (await admin.request<any>('listDomains', { level: 0 })).domain[0].id;
    await admin.call('dedicateHost', { hostid: hosts[0].id, domainid: rootId, account: 'admin' });
    const volumes = (await admin.request<any>('listVolumes', { listall: true })).volume;
    const capacity = (await admin.request<any>('listCapacity', { zoneid })).capacity;
    const accounts = new Set(vms.filter((v: any) => v.state === 'Running').map((v: any) => v.account));

    const m = await scrape();
    for (const state of ['Running', 'Stopped', 'Destroyed', 'Starting', 'Error'])
      assert.equal(
        value(m, 'cloudstack_vms_total', { zone: zoneName, filter: state.toLowerCase() }),
        byState.get(state) ?? 0,
        `VMs ${state}`,
      );
    assert.equal(value(m, 'cloudstack_hosts_total', { zone: zoneName, filter: 'total' }), hosts.length);
    assert.equal(
      value(m, 'cloudstack_hosts_total', { zone: zoneName, filter: 'online' }),
      hosts.filter((h: any) => h.state === 'Up' && h.resourcestate === 'Enabled').length,
    );
    assert.equal(
      value(m, 'cloudstack_volumes_total', { zone: zoneName, filter: 'ready' }),
      volumes.filter((v: any) => v.state === 'Ready').length,
    );
    assert.equal(value(m, 'cloudstack_active_accounts_total', { zone: zoneName }), accounts.size);
    // Per host: the VMs placed on it (running and stopped-on-host alike) and its CPU total.
    for (const h of hosts) {
      const placed = vms.filter((v: any) => v.hostid === h.id).length;
      assert.equal(value(m, 'cloudstack_host_vms_total', { zone: zoneName, hostname: h.name }), placed);
      assert.equal(
        value(m, 'cloudstack_host_cpu_usage_mhz_total', { hostname: h.name, filter: 'total' }),
        h.cpunumber * h.cpuspeed,
      );
    }
    // The dedication, with upstream's labels (the domain by its path).
    assert.equal(value(m, 'cloudstack_host_is_dedicated', { zone: zoneName, hostname: hosts[0].name }), 1);
    assert.equal(
      value(m, 'cloudstack_host_dedicated_to_account', {
        hostname: hosts[0].name,
        account: 'admin',
        domain: '/',
      }),
      1,
    );
    // Capacity per zone and type, as listCapacity computes it.
    for (const c of capacity) {
      assert.equal(
        value(m, 'nimbostack_zone_capacity', { zone: zoneName, type: c.name, filter: 'total' }),
        c.capacitytotal,
        `${c.name} total`,
      );
      assert.equal(
        value(m, 'nimbostack_zone_capacity', { zone: zoneName, type: c.name, filter: 'used' }),
        c.capacityused,
        `${c.name} used`,
      );
    }
    // Two running small instances hold their cores on the zone's hosts.
    assert.equal(
      value(m, 'cloudstack_host_vms_cores_total', { zone: zoneName, filter: 'allocated' }),
      vms.filter((v: any) => v.state === 'Running').reduce((s: number, v: any) => s + v.cpunumber, 0),
    );
    // The management server's own: agents, jobs, process.
    assert.equal(value(m, 'nimbostack_agent_hosts', { state: 'Up' }), hosts.length);
    assert.equal(value(m, 'nimbostack_jobs_unfinished', {}), 0);
    assert.ok(value(m, 'nodejs_eventloop_lag_seconds', {})! >= 0);
    assert.ok(value(m, 'process_resident_memory_bytes', {})! > 0);
    assert.ok(
      value(m, 'nimbostack_job_duration_seconds', { command: 'deployVirtualMachine', outcome: 'success' })! >=
        4,
    );
    assert.ok(
      value(m, 'nimbostack_db_statement_duration_seconds', { statement: 'select', outcome: 'success' })! > 0,
    );
  });

  test('API latency histograms count the calls made', async () => {
    const { admin } = server;
    const earlier = await scrape();
    const count = (m: Scrape, command: string, outcome: string) =>
      value(m, 'nimbostack_api_request_duration_seconds', { command, outcome }) ?? 0;
    for (let i = 0; i < 3; i++) await admin.request('listZones', {});
    await assert.rejects(
      admin.request('listVirtualMachines', { id: 'not-a-uuid' }),
      (e: any) => e.errorcode === 431,
    );
    await assert.rejects(admin.request('noSuchCommandAnywhere', {}));
    const afterwards = await scrape();
    assert.equal(count(afterwards, 'listZones', 'success') - count(earlier, 'listZones', 'success'), 3);
    assert.equal(
      count(afterwards, 'listVirtualMachines', 'client_error') -
        count(earlier, 'listVirtualMachines', 'client_error'),
      1,
    );
    const errors = (m: Scrape) =>
      value(m, 'nimbostack_api_errors_total', { command: 'listVirtualMachines', errorcode: '431' }) ?? 0;
    assert.equal(errors(afterwards) - errors(earlier), 1);
    assert.equal(count(afterwards, 'unknown', 'client_error') - count(earlier, 'unknown', 'client_error'), 1);
    // A name that is not a command never becomes a label of its own.
    assert.ok(!afterwards.lines.some((s) => s.labels.command === 'noSuchCommandAnywhere'));
  });

  test('only allowed addresses may scrape', async () => {
    const { admin } = server;
    await assert.rejects(
      admin.request('updateConfiguration', {
        name: 'prometheus.exporter.allowed.ips',
        value: '10.0.0.1,nonsense',
      }),
      (e: any) => e.errorcode === 431,
    );
    await admin.request('updateConfiguration', {
      name: 'prometheus.exporter.allowed.ips',
      value: '192.0.2.10,198.51.100.0/24,2001:db8::/32',
    });
    const refused = await fetch(metricsUrl);
    assert.equal(refused.status, 403);
    assert.equal(await refused.text(), 'Forbidden');
    // A block that holds the client's address lets it in.
    await admin.request('updateConfiguration', {
      name: 'prometheus.exporter.allowed.ips',
      value: '192.0.2.10,127.0.0.0/8',
    });
    assert.equal((await fetch(metricsUrl)).status, 200);
    await admin.request('updateConfiguration', {
      name: 'prometheus.exporter.allowed.ips',
      value: '127.0.0.1',
    });
    assert.equal((await fetch(metricsUrl.replace('/metrics', '/nothing'))).status, 404);
  });
});
