/**
 * A container in an isolated network, behind its virtual router, for real: the LXC host's own
 * guest networking (HostNetwork) sets up the network's bridge and starts the router with a public
 * side on a test "public" bridge, where an "internet" namespace (203.0.113.1, documentation range,
 * never leaves the machine) runs an HTTP server answering the address it sees. The container gets
 * its lease, host name and user data from the router, and its user data's request reaches the
 * internet from the router's source-NAT address. Run by `npm run test:lxc`.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { GuestNetwork, RouterSpec } from '@nimbostack/protocol';
import { LxcHost } from '../src/drivers/lxc/lxc-host.ts';
import { waitForConsole } from './kvm-support.ts';
import { ensureLxcTemplate, SKIP_LXC } from './lxc-support.ts';

const tag = String(process.pid % 10000);
const net = `10.253.${process.pid % 250}`;
const GUEST_BRIDGE = `nlg${tag}`;
const PUBLIC_BRIDGE = `nlp${tag}`;
const INTERNET = `nli${tag}`;
const ROUTER = `r-lxc-${tag}-VM`;
const INET_IP = '203.0.113.1';
const SNAT_IP = '203.0.113.10';
const CT = 'i-2-90-VM';
const CT_IP = `${net}.20`;
const CT_MAC = '02:00:4e:00:5a:01';
/** Answers every request with the address it came from. */
const INTERNET_SERVER = `require('http').createServer((q, r) => r.end('seen ' + q.socket.remoteAddress.replace('::ffff:', '') + '\\n')).listen(9000, '0.0.0.0');`;

const quiet = (cmd: string, args: string[]) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
const network = GuestNetwork.parse({
  uuid: `net-lxc-${tag}`,
  bridge: GUEST_BRIDGE,
  cidr: `${net}.0/24`,
  gateway: `${net}.1`,
  gatewayOnHost: false,
});

let root = '';
let host: LxcHost;
let server: ChildProcess | undefined;

describe('a container in an isolated network behind its router', { skip: SKIP_LXC }, () => {
  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'nimbo-lxc-isolated-'));
    mkdirSync(join(root, 'pool'));
    execFileSync('ip', ['link', 'add', PUBLIC_BRIDGE, 'type', 'bridge']);
    execFileSync('ip', ['link', 'set', PUBLIC_BRIDGE, 'up']);
    execFileSync('ip', ['netns', 'add', INTERNET]);
    execFileSync('ip', [
      'link',
      'add',
      `${INTERNET}p`,
      'type',
      'veth',
      'peer',
      'name',
      'eth0',
      'netns',
      INTERNET,
    ]);
    execFileSync('ip', ['-n', INTERNET, 'addr', 'add', `${INET_IP}/24`, 'dev', 'eth0']);
    execFileSync('ip', ['-n', INTERNET, 'link', 'set', 'eth0', 'up']);
    execFileSync('ip', ['link', 'set', `${INTERNET}p`, 'master', PUBLIC_BRIDGE, 'up']);
    server = spawn('ip', ['netns', 'exec', INTERNET, process.execPath, '-e', INTERNET_SERVER], {
      stdio: 'ignore',
    });
    host = await LxcHost.create({
      name: `lxc-iso-${tag}`,
      stateDir: join(root, 'state'),
      privateIp: '127.0.0.1',
    });
  });

  after(async () => {
    await host?.stopVm(CT, true).catch(() => undefined);
    await host?.network.stopRouter(ROUTER).catch(() => undefined);
    await host?.network.teardownNetwork(network).catch(() => undefined);
    server?.kill('SIGKILL');
    quiet('ip', ['netns', 'del', INTERNET]);
    for (const link of [`${INTERNET}p`, PUBLIC_BRIDGE, GUEST_BRIDGE]) quiet('ip', ['link', 'del', link]);
    if (root) rmSync(root, { recursive: true, force: true });
  });

  test('lease, host name and user data from the router; out to the internet from the source-NAT address', async () => {
    const template = ensureLxcTemplate().path;
    const pool = { uuid: 'pool-iso', type: 'Filesystem' as const, path: join(root, 'pool') };
    const script = `#!/bin/sh\necho "NIMBO: egress $(timeout 5 wget -q -O - http://${INET_IP}:9000/)"\n`;
    await host.network.setupNetwork(network);
    await host.network.startRouter(
      RouterSpec.parse({
        name: ROUTER,
        network,
        ip: network.gateway,
        mac: '02:00:5e:fd:00:02',
        public: {
          bridge: PUBLIC_BRIDGE,
          mac: '02:00:5e:fd:00:01',
          gateway: INET_IP,
          addresses: [{ ip: SNAT_IP, prefix: 24 }],
          sourceNat: SNAT_IP,
        },
        vms: [
          {
            mac: CT_MAC,
            ip: CT_IP,
            hostname: 'ct-isolated',
            instanceId: `uuid-${tag}`,
            vmName: CT,
            userData: Buffer.from(script).toString('base64'),
          },
        ],
        rules: {},
      }),
    );
    const v = await host.storage.createVolumeFromTemplate({
      volumeUuid: 'root-iso',
      pool,
      template: { uuid: 'tpl-lxc', path: template, sizeBytes: statSync(template).size },
    });
    const t0 = Date.now();
    await host.startVm({
      name: CT,
      uuid: `uuid-${tag}`,
      cpus: 1,
      cpuMhz: 500,
      memoryBytes: 128 * 1024 ** 2,
      disks: [{ volumeUuid: 'root-iso', path: v.path, pool, deviceId: 0, type: 'ROOT' }],
      nics: [{ mac: CT_MAC, ip: CT_IP, deviceId: 0, bridge: GUEST_BRIDGE }],
    });
    const log = host.consoleLog(CT);
    await waitForConsole(log, new RegExp(`NIMBO: dhcp ${CT_IP.replace(/\./g, '\\.')}$`), 30_000);
    process.stdout.write(
      `# figure container start → lease from the isolated router: ${((Date.now() - t0) / 1000).toFixed(2)} s\n`,
    );
    await waitForConsole(log, /NIMBO: hostname ct-isolated$/, 30_000);
    const egress = await waitForConsole(log, /NIMBO: egress /, 30_000);
    assert.match(
      egress,
      new RegExp(`NIMBO: egress seen ${SNAT_IP.replace(/\./g, '\\.')}$`),
      'the internet sees the source-NAT address',
    );
  });
});
