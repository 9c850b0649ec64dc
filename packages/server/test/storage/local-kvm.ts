/**
 * The cloud every real-storage suite (npm run test:storage) runs its VMs in: a server with the
 * seeded local zone whose one host is a real KVM agent (QEMU, the test template), its state and
 * directory pool in a temporary folder. It reads the guests' serial consoles, and on stop clears
 * everything a failed test may have left: VMs, routers, QEMU processes (they outlive the server),
 * hosts, the server, the folder.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { waitUntil } from '../agents.ts';
import { startServer, type TestServer } from '../harness.ts';
import { separateIds } from '../kvm-advanced-zone.ts';

export const TEMPLATE = process.env.NIMBOSTACK_TEST_TEMPLATE ?? '/var/lib/nimbostack/test-template.qcow2';
/** The local zone's KVM host. */
export const HOST = 'local-kvm';

/** Why a real-storage suite cannot run here, or false; `servers` names what its own servers need. */
export function storageSkip(servers: { installed: boolean; needs: string }): string | false {
  if (process.env.NIMBOSTACK_TEST_STORAGE !== '1')
    return 'real storage suite: run it with npm run test:storage';
  if (process.getuid?.() !== 0) return 'needs root';
  if (!existsSync(TEMPLATE)) return `${TEMPLATE} is missing: run npm run setup:host`;
  return servers.installed ? false : `needs ${servers.needs}`;
}

/** A measured duration, printed where the suite's figures are collected. */
export const figure = (name: string, ms: number) =>
  process.stdout.write(`# figure ${name}: ${(ms / 1000).toFixed(2)} s\n`);

export class LocalKvm {
  readonly root: string;
  server!: TestServer;

  constructor(prefix: string) {
    this.root = mkdtempSync(join(tmpdir(), prefix));
  }

  /**
   * Starts the server. `idBase` keeps instance (and so tap) names apart from another real-host
   * suite's on this machine. With `qmpTap`, qmp() can ask the VMs' QEMU what they hold.
   */
  async start(
    env: Record<string, string> = {},
    idBase?: number,
    { qmpTap = false }: { qmpTap?: boolean } = {},
  ): Promise<TestServer> {
    this.server = await startServer({
      nodeArgs: qmpTap ? ['--import', join(import.meta.dirname, '..', 'fixtures', 'qmp-tap.ts')] : [],
      env: {
        ...(qmpTap ? { NIMBOSTACK_TEST_QMP_TAP: this.qmpTap } : {}),
        NIMBOSTACK_SEED_LOCAL_ZONE: 'true',
        NIMBOSTACK_HYPERVISOR: 'kvm',
        NIMBOSTACK_KVM_STATE_DIR: join(this.root, 'agent'),
        NIMBOSTACK_KVM_STORAGE_DIR: this.root,
        NIMBOSTACK_KVM_TEMPLATE: TEMPLATE,
        ...env,
      },
    });
    if (idBase !== undefined) separateIds(this.server, idBase + (process.pid % 9000) * 10);
    return this.server;
  }

  readConsole(instance: string): string {
    const path = join(this.root, 'agent', HOST, 'vms', instance, 'console.log');
    return existsSync(path) ? readFileSync(path).toString('utf8').replace(/\r/g, '') : '';
  }

  /** The first (or, with `last`, the latest) console line matching `pattern`, once there is one. */
  async consoleLine(
    instance: string,
    pattern: RegExp,
    { timeoutMs = 240_000, last = false }: { timeoutMs?: number; last?: boolean } = {},
  ): Promise<string> {
    const line = await waitUntil(
      async () => {
        const lines = this.readConsole(instance).split('\n');
        return last ? lines.findLast((l) => pattern.test(l)) : lines.find((l) => pattern.test(l));
      },
      timeoutMs,
      `console line ${pattern} of ${instance}`,
    ).catch((e) => {
      throw new Error(`${(e as Error).message}\n${this.readConsole(instance).slice(-2000)}`);
    });
    return line!;
  }

  private get qmpTap(): string {
    return join(this.root, 'qmp-tap.sock');
  }

  /**
   * A query (query-*, qom-list, qom-get) to a VM's QEMU over the agent's own monitor connection
   * (fixtures/qmp-tap.ts: QEMU takes one monitor client); the server must be started with qmpTap.
   */
  qmp<T = any>(instance: string, execute: string, args?: Record<string, unknown>): Promise<T> {
    const monitor = join(this.root, 'agent', HOST, 'vms', instance, 'qmp.sock');
    return new Promise((resolve, reject) => {
      const socket = createConnection(this.qmpTap);
      socket.once('error', reject);
      socket.once('connect', () =>
        socket.write(`${JSON.stringify({ monitor, execute, arguments: args })}\n`),
      );
      createInterface({ input: socket }).once('line', (line) => {
        socket.destroy();
        const answer = JSON.parse(line);
        if (answer.error) reject(new Error(`${execute} on ${instance}: ${answer.error}`));
        else resolve(answer.return);
      });
    });
  }

  /** The QEMU processes the host's state directory records. */
  qemuPids(): number[] {
    const vms = join(this.root, 'agent', HOST, 'vms');
    if (!existsSync(vms)) return [];
    return readdirSync(vms)
      .map((n) => join(vms, n, 'vm.json'))
      .filter((f) => existsSync(f))
      .map((f) => JSON.parse(readFileSync(f, 'utf8')).pid as number);
  }

  /**
   * Clears the cloud, then `stopServers` (the suite's storage servers, which the QEMU processes
   * may still have open until they are killed), then removes the folder.
   */
  async stop(stopServers: () => unknown = () => undefined): Promise<void> {
    const admin = this.server?.admin;
    if (admin) {
      const vms = await admin.request<any>('listVirtualMachines', { listall: true }).catch(() => ({}));
      for (const v of vms.virtualmachine ?? [])
        await admin.call('destroyVirtualMachine', { id: v.id, expunge: true }).catch(() => undefined);
      const routers = await admin.request<any>('listRouters', {}).catch(() => ({}));
      for (const r of routers.router ?? [])
        await admin.call('destroyRouter', { id: r.id }).catch(() => undefined);
    }
    for (const pid of this.qemuPids()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    if (admin) {
      const hosts = await admin.request<any>('listHosts', {}).catch(() => ({}));
      for (const h of hosts.host ?? [])
        await admin.request('deleteHost', { id: h.id, forced: true }).catch(() => undefined);
      await this.server.stop();
    }
    await stopServers();
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** A compute and a disk offering carrying storage tag `tag`, so their disks land on its pool. */
export async function taggedOfferings(
  admin: TestServer['admin'],
  tag: string,
  where: string,
): Promise<{ serviceofferingid: string; diskofferingid: string }> {
  const serviceofferingid = (
    await admin.request<any>('createServiceOffering', {
      name: `${tag}-small`,
      displaytext: `small, ROOT on ${where}`,
      cpunumber: 1,
      cpuspeed: 500,
      memory: 256,
      tags: tag,
    })
  ).serviceoffering.id;
  const diskofferingid = (
    await admin.request<any>('createDiskOffering', {
      name: `${tag}-1`,
      displaytext: `1 GB on ${where}`,
      disksize: 1,
      tags: tag,
    })
  ).diskoffering.id;
  return { serviceofferingid, diskofferingid };
}

/**
 * User data for a guest that waits for its data disk, writes `marker` to it, drops its caches and
 * prints what it reads back as "NIMBO-DATA read <marker>" on its console.
 */
export function dataDiskProbe(marker: string): string {
  const script = [
    '#!/bin/sh',
    '(',
    '  for i in $(seq 1 240); do [ -b /dev/vdb ] && break; sleep 1; done',
    `  printf '%s\\n' '${marker}' > /run/marker`,
    '  dd if=/run/marker of=/dev/vdb bs=512 count=1 conv=sync,fsync 2>/dev/null',
    '  sync; echo 3 > /proc/sys/vm/drop_caches',
    '  echo "NIMBO-DATA read $(dd if=/dev/vdb bs=512 count=1 2>/dev/null | head -n 1)"',
    ') > /dev/console 2>&1 &',
    '',
  ].join('\n');
  return Buffer.from(script).toString('base64');
}
