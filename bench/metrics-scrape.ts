/**
 * Measures a Prometheus scrape of a bench-sized cloud: `tsx bench/metrics-scrape.ts [--hosts N] [--vms M]`.
 * Builds the cloud as `npm run bench` does (bench/lib/cloud.ts), with the exporter enabled, then
 * times cold scrapes (figures computed) and warm ones (served from the cache).
 */
import { parseArgs } from 'node:util';
import { openStore } from '../packages/server/src/db/connection.ts';
import { startServer } from '../packages/server/test/harness.ts';
import { buildCloud, shapeFor } from './lib/cloud.ts';

const { values: args } = parseArgs({
  options: { hosts: { type: 'string', default: '5000' }, vms: { type: 'string', default: '100000' } },
});
const first = await startServer();
await first.admin.request('updateConfiguration', { name: 'prometheus.exporter.enable', value: 'true' });
await first.admin.request('updateConfiguration', { name: 'prometheus.exporter.port', value: '0' });
await first.stop({ keepData: true });
const server = await startServer({ dataDir: first.dataDir, databaseUrl: first.databaseUrl });
const line = server.logs.find((l) => l.includes('"prometheus exporter started"'));
if (!line) throw new Error('the exporter did not start');
const url = `http://127.0.0.1:${JSON.parse(line).port}/metrics`;
const store = openStore(server.databaseUrl);
try {
  const t0 = performance.now();
  await buildCloud(server, store, shapeFor(Number(args.hosts), Number(args.vms)), (s) => console.log(s));
  console.log(`cloud built in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  // Wall times suffer from whatever else the machine runs; the server's own CPU seconds
  // (process_cpu_seconds_total, read from each scrape) say what a scrape costs it.
  const cpuOf = (text: string) => Number(/^process_cpu_seconds_total ([0-9.e+-]+)$/m.exec(text)?.[1]);
  const scrape = async () => {
    const t = performance.now();
    const res = await fetch(url);
    const text = await res.text();
    return {
      ms: performance.now() - t,
      cpu: cpuOf(text),
      bytes: text.length,
      lines: text.split('\n').length,
      text,
    };
  };
  const cold: { ms: number; cpuMs: number }[] = [];
  const warm: { ms: number; cpuMs: number }[] = [];
  let last = await scrape();
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setTimeout(r, 5_200));
    const before = (await scrape()).cpu;
    // That scrape computed the figures; wait for the next interval for a measured cold one.
    await new Promise((r) => setTimeout(r, 5_200));
    last = await scrape();
    cold.push({ ms: last.ms, cpuMs: (last.cpu - before) * 1000 });
    let previous = last.cpu;
    for (let j = 0; j < 5; j++) {
      const w = await scrape();
      warm.push({ ms: w.ms, cpuMs: (w.cpu - previous) * 1000 });
      previous = w.cpu;
    }
  }
  const median = (xs: number[]) => Math.round(xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]);
  const compute = /nimbostack_cloud_metrics_compute_seconds ([0-9.e-]+)/.exec(last.text)?.[1];
  const vms = [...last.text.matchAll(/^cloudstack_vms_total\{[^}]*\} (\d+)/gm)].reduce(
    (s, m) => s + Number(m[1]),
    0,
  );
  console.log(
    JSON.stringify({
      hosts: Number(args.hosts),
      vms,
      cold_scrape_ms: cold.map((x) => Math.round(x.ms)),
      cold_scrape_server_cpu_ms: cold.map((x) => Math.round(x.cpuMs)),
      warm_scrape_ms_median: median(warm.map((x) => x.ms)),
      warm_scrape_server_cpu_ms_median: median(warm.map((x) => x.cpuMs)),
      compute_seconds: Number(compute),
      bytes: last.bytes,
      lines: last.lines,
      load_average: (await import('node:os')).loadavg()[0],
    }),
  );
} finally {
  await store.close();
  await server.stop();
}
