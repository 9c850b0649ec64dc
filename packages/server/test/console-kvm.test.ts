/**
 * The console of a real QEMU VM through the real management server: a KVM agent process is added
 * as a host, the test template is registered and a VM deployed (one VM, 256 MiB); the VNC server
 * QEMU keeps on 127.0.0.1 of the host is then reached only through createConsoleEndpoint's
 * WebSocket, the server's proxy and the agent's tunnel, and answers the RFB 3.8 handshake.
 * Runs with NIMBOSTACK_TEST_KVM=1 (npm run test:kvm), as root with QEMU and the test template.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { ensureTemplate, figure, guestLinks, SKIP_KVM } from '../../agent/test/kvm-support.ts';
import { parseV4Authorization, v4Signature } from '../src/ec2/signature.ts';
import { createCluster, createPod, startAgent, type TestAgent, waitUntil } from './agents.ts';
import { startServer, type TestServer } from './harness.ts';

describe('console of a real QEMU VM through the management server', { skip: SKIP_KVM }, () => {
  let server: TestServer;
  let agent: TestAgent | undefined;
  let root = '';
  let vmId = '';
  /** Bridges and VXLAN links, and network namespaces, present before the test. */
  const links = guestLinks;
  const namespaces = () =>
    execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
      .split('\n')
      .map((l) => l.split(' ')[0]!)
      .filter((n) => n.startsWith('nimbo-r-'));
  let before0: { links: string[]; namespaces: string[] } = { links: [], namespaces: [] };

  /** QEMU processes started under this test's agent state directory. */
  const qemuPids = (): number[] => {
    const vms = join(root, 'state', 'kvm-console', 'vms');
    if (!existsSync(vms)) return [];
    return readdirSync(vms)
      .map((n) => join(vms, n, 'vm.json'))
      .filter((f) => existsSync(f))
      .map((f) => JSON.parse(readFileSync(f, 'utf8')).pid as number);
  };

  before(async () => {
    const template = ensureTemplate().path;
    root = mkdtempSync(join(tmpdir(), 'nimbo-console-kvm-'));
    before0 = { links: links(), namespaces: namespaces() };
    for (const d of ['primary', 'secondary', 'state']) mkdirSync(join(root, d));
    server = await startServer();
    const admin = server.admin;
    const zoneid = (
      await admin.request<any>('createZone', {
        name: 'kvm-console',
        networktype: 'Basic',
        dns1: '8.8.8.8',
        internaldns1: '8.8.8.8',
      })
    ).zone.id;
    const podid = await createPod(admin, zoneid, 'kvm-pod', 77);
    const clusterid = await createCluster(admin, zoneid, podid, 'kvm-cluster', 'KVM');
    await admin.request('createVlanIpRange', {
      zoneid,
      podid,
      gateway: '10.77.1.1',
      netmask: '255.255.255.0',
      startip: '10.77.1.10',
      endip: '10.77.1.50',
      forvirtualnetwork: 'false',
    });
    await admin.request('createStoragePool', {
      zoneid,
      podid,
      clusterid,
      name: 'kvm-primary',
      url: join(root, 'primary'),
      scope: 'cluster',
    });
    await admin.request('addImageStore', {
      zoneid,
      name: 'kvm-secondary',
      provider: 'NFS',
      url: join(root, 'secondary'),
    });
    await admin.request('updateZone', { id: zoneid, allocationstate: 'Enabled' });

    agent = startAgent(server.agentUrl, {
      token: 'console-kvm-token',
      name: 'kvm-console',
      args: ['--hypervisor', 'kvm', '--state-dir', join(root, 'state'), '--address', '127.0.0.1'],
    });
    await agent.waitForLog('waiting to be added', 60_000);
    await admin.request('addHost', {
      zoneid,
      podid,
      clusterid,
      url: 'agent://kvm-console',
      username: 'root',
      password: 'console-kvm-token',
      hypervisor: 'KVM',
    });

    const ostypeid = (await admin.request<any>('listOsTypes', {})).ostype[0].id;
    const templateid = (
      await admin.request<any>('registerTemplate', {
        name: 'console-test',
        displaytext: 'console test template',
        url: template,
        format: 'QCOW2',
        hypervisor: 'KVM',
        ostypeid,
        zoneid,
        ispublic: 'true',
      })
    ).template[0].id;
    await waitUntil(
      async () =>
        (await admin.request<any>('listTemplates', { id: templateid, templatefilter: 'all' })).template?.[0]
          ?.isready,
      120_000,
      'the test template on secondary storage',
    );
    const serviceofferingid = (
      await admin.request<any>('createServiceOffering', {
        name: 'console-tiny',
        displaytext: 'console tiny',
        cpunumber: 1,
        cpuspeed: 500,
        memory: 256,
      })
    ).serviceoffering.id;
    vmId = (
      await admin.call<any>('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid,
        name: 'kvm-console-vm',
      })
    ).virtualmachine.id;
  });

  after(async () => {
    if (vmId)
      await server?.admin.call('destroyVirtualMachine', { id: vmId, expunge: true }).catch(() => undefined);
    // Removing the host stops the network's router on it (namespace, dnsmasq, router service) and
    // tears its bridge and VXLAN link down; without it they outlive the test and the next suite's
    // network (same bridge and router names) cannot start.
    const host = (await server?.admin.request<any>('listHosts', { name: 'kvm-console' }).catch(() => ({})))
      ?.host?.[0];
    if (host) await server.admin.request('deleteHost', { id: host.id, forced: true }).catch(() => undefined);
    for (const pid of root ? qemuPids() : []) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    await agent?.kill();
    await server?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  test('the VNC banner and handshake of QEMU arrive through the proxy', async () => {
    const vm = (await server.admin.request<any>('listVirtualMachines', { id: vmId })).virtualmachine[0];
    assert.equal(vm.state, 'Running');
    const t0 = performance.now();
    const e = (await server.admin.request<any>('createConsoleEndpoint', { virtualmachineid: vmId }))
      .consoleendpoint;
    assert.equal(e.success, true, e.details);
    const ws = new WebSocket(
      `ws://${e.websocket.host}:${e.websocket.port}/${e.websocket.path}?token=${encodeURIComponent(e.websocket.token)}`,
      ['binary'],
    );
    let buf = Buffer.alloc(0);
    let closed = '';
    ws.on('message', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
    });
    ws.on('close', (code, reason) => {
      closed = `${code} ${reason}`;
    });
    const read = async (n: number) => {
      await waitUntil(
        async () => buf.length >= n || (closed ? Promise.reject(new Error(`closed ${closed}`)) : false),
        20_000,
        `${n} bytes`,
      );
      const out = buf.subarray(0, n);
      buf = buf.subarray(n);
      return out;
    };
    assert.equal((await read(12)).toString('latin1'), 'RFB 003.008\n');
    figure('console endpoint → VNC banner through the proxy (KVM)', performance.now() - t0);
    ws.send(Buffer.from('RFB 003.008\n'));
    const count = (await read(1))[0];
    const types = [...(await read(count))];
    assert.ok(types.includes(1), `QEMU offers security type None (offered ${types})`);
    ws.send(Buffer.from([1]));
    assert.equal((await read(4)).readUInt32BE(0), 0);
    ws.send(Buffer.from([1]));
    const init = await read(24);
    assert.ok(init.readUInt16BE(0) > 0 && init.readUInt16BE(2) > 0, 'a framebuffer size');
    await read(init.readUInt32BE(20));
    // A full update request is answered with the guest's screen.
    const req = Buffer.alloc(10);
    req[0] = 3;
    req.writeUInt16BE(init.readUInt16BE(0), 6);
    req.writeUInt16BE(init.readUInt16BE(2), 8);
    ws.send(req);
    assert.equal((await read(4))[0], 0, 'FramebufferUpdate');
    figure('console endpoint → first framebuffer update (KVM)', performance.now() - t0);
    ws.close();
  });

  test("EC2's GetConsoleOutput gives what the guest printed on its serial console", async () => {
    const adminUser = (await server.admin.request<any>('listUsers', { username: 'admin' })).user[0];
    const keys = (await server.admin.request<any>('registerUserKeys', { id: adminUser.id })).userkeys;
    const endpoint = `${server.url}/awsapi`;
    const body = `Action=GetConsoleOutput&Version=2016-11-15&InstanceId=i-${vmId.replace(/-/g, '')}`;
    const call = async () => {
      const amzDate = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '');
      const headers = {
        host: new URL(endpoint).host,
        'content-type': 'application/x-www-form-urlencoded',
        'x-amz-date': amzDate,
      };
      const scope = `${keys.apikey}/${amzDate.slice(0, 8)}/nimbostack/ec2/aws4_request`;
      const auth = parseV4Authorization(
        `AWS4-HMAC-SHA256 Credential=${scope}, SignedHeaders=content-type;host;x-amz-date, Signature=00`,
      )!;
      const signature = v4Signature(
        { method: 'POST', path: '/awsapi', query: '', headers, body },
        auth,
        amzDate,
        keys.secretkey,
      );
      const res = await fetch(endpoint, {
        method: 'POST',
        headers: {
          'content-type': headers['content-type'],
          'x-amz-date': amzDate,
          authorization: `AWS4-HMAC-SHA256 Credential=${scope}, SignedHeaders=content-type;host;x-amz-date, Signature=${signature}`,
        },
        body,
      });
      const xml = await res.text();
      assert.equal(res.status, 200, xml);
      return Buffer.from(/<output>([^<]*)<\/output>/.exec(xml)?.[1] ?? '', 'base64').toString('utf8');
    };
    // The test template's init writes NIMBO: lines on ttyS0 while it boots.
    const text = await waitUntil(
      async () => {
        const out = await call();
        return out.includes('NIMBO: ') ? out : '';
      },
      120_000,
      'NIMBO: on the console',
    );
    assert.match(text, /NIMBO: initramfs uptime=/);
  });

  test('removing the host (VM expunged) stops the router on it and tears its bridge down', async () => {
    const admin = server.admin;
    await admin.call('destroyVirtualMachine', { id: vmId, expunge: true });
    vmId = '';
    const router = (await admin.request<any>('listRouters', {})).router[0];
    assert.equal(router.state, 'Running');
    assert.ok(
      namespaces().some((n) => !before0.namespaces.includes(n)),
      'the router has a namespace',
    );
    const host = (await admin.request<any>('listHosts', { name: 'kvm-console' })).host[0];
    await admin.request('deleteHost', { id: host.id, forced: true });
    assert.equal((await admin.request<any>('listRouters', { id: router.id })).router[0].state, 'Stopped');
    assert.deepEqual(
      namespaces().filter((n) => !before0.namespaces.includes(n)),
      [],
      'no router namespace',
    );
    const ours = execFileSync('ps', ['-eo', 'stat=,args='], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.includes(root) && /dnsmasq|router-service/.test(l) && !l.trim().startsWith('Z'));
    assert.deepEqual(ours, [], 'no dnsmasq or router service process');
    assert.deepEqual(
      links().filter((l) => !before0.links.includes(l)),
      [],
      'no bridge or VXLAN link of the network',
    );
  });
});
