/**
 * Containers per host (issue 20): starts N containers of one offering (default 256 MiB, 1 CPU) from
 * the LXC test template on this machine through the LXC driver, one after the other, each with a
 * NIC on a private bridge, and measures each start, what their cgroups are charged once all run,
 * and what the host's available memory lost; then stops and deletes them. The containers per host
 * at that memory follow: by allocation (the planner reserves the offering for each) and by use.
 * Needs root, LXC and `npm run setup:host`'s LXC template.
 *
 *   node --import tsx bench/lxc-density.ts [--containers 20] [--memory-mib 256]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { VmSpec } from '@nimbostack/protocol';
import { LxcHost } from '../packages/agent/src/drivers/lxc/lxc-host.ts';
import { ensureLxcTemplate } from '../packages/agent/test/lxc-support.ts';

const { values } = parseArgs({
  options: {
    containers: { type: 'string', default: '20' },
    'memory-mib': { type: 'string', default: '256' },
  },
});
const count = Number(values.containers);
const memoryBytes = Number(values['memory-mib']) * 1024 ** 2;
const BRIDGE = 'nimbodens0';
const MiB = 1024 ** 2;

const available = () =>
  Number(/^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0) * 1024;
const total = Number(/^MemTotal:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0) * 1024;

const root = mkdtempSync(join(tmpdir(), 'nimbo-lxc-density-'));
const pool = { uuid: 'density', type: 'Filesystem' as const, path: join(root, 'pool') };
mkdirSync(pool.path);
spawnSync('ip', ['link', 'del', BRIDGE], { stdio: 'ignore' });
execFileSync('ip', ['link', 'add', BRIDGE, 'type', 'bridge']);
execFileSync('ip', ['link', 'set', BRIDGE, 'up']);
const host = await LxcHost.create({ name: 'density', stateDir: join(root, 'state'), privateIp: '127.0.0.1' });
const template = ensureLxcTemplate().path;
const specs: VmSpec[] = [];
const starts: number[] = [];
const before = available();
try {
  for (let i = 0; i < count; i++) {
    const v = await host.storage.createVolumeFromTemplate({
      volumeUuid: `root-${i}`,
      pool,
      template: { uuid: 'tpl', path: template, sizeBytes: statSync(template).size },
    });
    const spec: VmSpec = {
      name: `i-9-${i}-VM`,
      uuid: `density-${i}`,
      cpus: 1,
      cpuMhz: 1000,
      memoryBytes,
      disks: [{ volumeUuid: `root-${i}`, path: v.path, pool, deviceId: 0, type: 'ROOT' }],
      nics: [
        {
          mac: `02:00:4e:aa:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`,
          deviceId: 0,
          bridge: BRIDGE,
        },
      ],
    };
    const t0 = performance.now();
    await host.startVm(spec);
    starts.push(performance.now() - t0);
    specs.push(spec);
  }
  // Their inits run DHCP (no server on this bridge: 3 s) and reach their prompt.
  await new Promise((r) => setTimeout(r, 5000));
  const charged = specs.map((s) => host.memoryUsage(s.name) ?? 0);
  const used = before - available();
  const sum = charged.reduce((a, b) => a + b, 0);
  const sorted = [...starts].sort((a, b) => a - b);
  const out = {
    containers: count,
    offeringMiB: memoryBytes / MiB,
    startMs: { median: sorted[Math.floor(sorted.length / 2)], max: sorted.at(-1) },
    chargedMiB: { total: sum / MiB, perContainer: sum / count / MiB },
    hostMemAvailableDropMiB: used / MiB,
    perContainerHostMiB: used / count / MiB,
    hostMemoryMiB: total / MiB,
    perHostByAllocation: Math.floor(total / memoryBytes),
    perHostByUse: Math.floor(total / Math.max(1, used / count)),
  };
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
} finally {
  for (const s of specs) await host.stopVm(s.name, true).catch(() => undefined);
  spawnSync('ip', ['link', 'del', BRIDGE], { stdio: 'ignore' });
  rmSync(root, { recursive: true, force: true });
}
