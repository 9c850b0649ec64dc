/**
 * A real host's own figures for getHostStats, shared by the KVM and LXC drivers: CPU use and
 * network rates are differences between two samples, so the first call answers 0 for them.
 */
import { readFileSync } from 'node:fs';
import type { CommandResult } from '@nimbostack/protocol';

export class HostStatsSampler {
  private cpuSample?: { busy: number; total: number };
  private netSample?: { at: number; rx: number; tx: number };

  sample(): CommandResult<'getHostStats'> {
    const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const total = cpu.reduce((a, b) => a + b, 0);
    const busy = total - (cpu[3] ?? 0) - (cpu[4] ?? 0);
    const prev = this.cpuSample;
    this.cpuSample = { busy, total };
    const cpuUtilization =
      prev && total > prev.total ? Math.min(100, (100 * (busy - prev.busy)) / (total - prev.total)) : 0;
    const meminfo = readFileSync('/proc/meminfo', 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s*(\\d+)`, 'm').exec(meminfo)?.[1] ?? 0) * 1024;
    let rx = 0;
    let tx = 0;
    for (const line of readFileSync('/proc/net/dev', 'utf8').split('\n').slice(2)) {
      const [iface, rest] = line.split(':');
      if (!rest || iface.trim() === 'lo') continue;
      const f = rest.trim().split(/\s+/).map(Number);
      rx += f[0];
      tx += f[8];
    }
    const now = Date.now();
    const net = this.netSample;
    this.netSample = { at: now, rx, tx };
    const secs = net ? (now - net.at) / 1000 : 0;
    return {
      cpuUtilization: Math.max(0, cpuUtilization),
      memoryUsedBytes: Math.max(0, kb('MemTotal') - kb('MemAvailable')),
      networkReadKbs: net && secs > 0 ? Math.max(0, (rx - net.rx) / 1024 / secs) : 0,
      networkWriteKbs: net && secs > 0 ? Math.max(0, (tx - net.tx) / 1024 / secs) : 0,
    };
  }
}
