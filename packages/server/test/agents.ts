/**
 * Test helpers for host agents: runs the real agent process (packages/agent/src/main.ts) against
 * a test server, and builds a zone, pods and clusters for hosts through the API.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { CloudStackClient } from '@nimbostack/client';
import { REPO } from './harness.ts';

const AGENT = join(REPO, 'packages/agent/src/main.ts');

export interface TestAgent {
  process: ChildProcess;
  logs: string[];
  /** Resolves with the first log line (present or future) containing `text`. */
  waitForLog(text: string, timeoutMs?: number): Promise<string>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export function startAgent(
  agentUrl: string,
  opts: { token: string; name: string; hosts?: number; args?: string[] },
): TestAgent {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      AGENT,
      '--server',
      agentUrl,
      '--token',
      opts.token,
      '--name',
      opts.name,
      '--hosts',
      String(opts.hosts ?? 1),
      '--max-backoff',
      '300',
      ...(opts.args ?? []),
    ],
    { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const logs: string[] = [];
  const waiters: { text: string; resolve: (l: string) => void }[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    logs.push(line);
    for (const w of [...waiters])
      if (line.includes(w.text)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
  });
  return {
    process: child,
    logs,
    waitForLog(text, timeoutMs = 10_000) {
      const seen = logs.find((l) => l.includes(text));
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`agent never logged "${text}"\n${logs.join('\n')}`)),
          timeoutMs,
        );
        waiters.push({
          text,
          resolve: (l) => {
            clearTimeout(timer);
            resolve(l);
          },
        });
      });
    },
    async kill(signal = 'SIGKILL') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill(signal);
      await exited;
    },
  };
}

/** Polls `check` until it returns a truthy value or the time is up. */
export async function waitUntil<T>(
  check: () => Promise<T>,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T;
  for (;;) {
    last = await check();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function createZone(admin: CloudStackClient, name: string): Promise<string> {
  const r = await admin.request<any>('createZone', {
    name,
    networktype: 'Advanced',
    dns1: '8.8.8.8',
    internaldns1: '10.0.0.2',
  });
  return r.zone.id;
}

export async function createPod(
  admin: CloudStackClient,
  zoneid: string,
  name: string,
  octet: number,
): Promise<string> {
  const r = await admin.request<any>('createPod', {
    zoneid,
    name,
    gateway: `10.${octet}.0.1`,
    netmask: '255.255.0.0',
    startip: `10.${octet}.0.10`,
    endip: `10.${octet}.0.200`,
  });
  return r.pod.id;
}

export async function createCluster(
  admin: CloudStackClient,
  zoneid: string,
  podid: string,
  name: string,
  hypervisor = 'Simulator',
): Promise<string> {
  const r = await admin.request<any>('addCluster', {
    zoneid,
    podid,
    clustername: name,
    hypervisor,
    clustertype: 'CloudManaged',
  });
  return (r.cluster?.[0] ?? r.cluster).id;
}

export async function hostByName(admin: CloudStackClient, name: string): Promise<any> {
  const r = await admin.request<any>('listHosts', { name });
  return (r.host ?? []).find((h: any) => h.name === name);
}

/**
 * What a test deploys with in the seeded local zone (NIMBOSTACK_SEED_LOCAL_ZONE): the zone, its
 * built-in template once ready, the Small Instance offering and the custom-size disk offering.
 */
export async function seededLocalZone(admin: CloudStackClient) {
  const zoneid: string = (await admin.request<any>('listZones', {})).zone[0].id;
  const templateid: string = await waitUntil(
    async () =>
      (await admin.request<any>('listTemplates', { templatefilter: 'featured', zoneid })).template?.find(
        (t: any) => t.isready,
      )?.id,
    20_000,
    'the built-in template',
  );
  const small: string = (await admin.request<any>('listServiceOfferings', { name: 'Small Instance' }))
    .serviceoffering[0].id;
  const customDisk: string = (await admin.request<any>('listDiskOfferings', {})).diskoffering.find(
    (d: any) => d.iscustomized,
  ).id;
  return { zoneid, templateid, small, customDisk };
}
