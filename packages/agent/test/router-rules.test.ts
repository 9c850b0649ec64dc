/**
 * What an isolated network's router is told to enforce, as text: the nftables table (router-nat.ts)
 * and the HAProxy configuration (router-haproxy.ts), and the rules they refuse. Pure: no root. When
 * haproxy is installed, the generated configurations are also checked by `haproxy -c`. The same
 * rules are proven on packets in router-nat.test.ts (root, npm run test:kvm).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { RouterLoadBalancer, RouterPublic, RouterRules } from '@nimbostack/protocol';
import { HAPROXY, haproxyConfig } from '../src/network/router-haproxy.ts';
import { egressMatch, ingressMatch, routerRuleset, validateRules } from '../src/network/router-nat.ts';

const pub = RouterPublic.parse({
  bridge: 'cloudbr0',
  mac: '02:00:5e:00:00:01',
  gateway: '203.0.113.1',
  addresses: [
    { ip: '203.0.113.10', prefix: 24 },
    { ip: '203.0.113.11', prefix: 24 },
  ],
  sourceNat: '203.0.113.10',
});
const lines = (text: string) => text.split('\n').map((l) => l.trim());

test('the ruleset replaces one table atomically: source NAT, static NAT before it, DNAT, ingress and egress chains', () => {
  const text = routerRuleset(
    '10.1.1.0/24',
    pub,
    RouterRules.parse({
      staticNats: [{ publicIp: '203.0.113.11', privateIp: '10.1.1.5' }],
      portForwards: [
        {
          publicIp: '203.0.113.10',
          protocol: 'tcp',
          publicStart: 22,
          publicEnd: 22,
          privateIp: '10.1.1.6',
          privateStart: 22,
          privateEnd: 22,
        },
        {
          publicIp: '203.0.113.10',
          protocol: 'udp',
          publicStart: 100,
          publicEnd: 102,
          privateIp: '10.1.1.6',
          privateStart: 200,
          privateEnd: 202,
        },
      ],
      firewall: [{ publicIp: '203.0.113.10', protocol: 'tcp', startPort: 22, endPort: 22 }],
    }),
  );
  const l = lines(text);
  assert.deepEqual(l.slice(0, 3), ['table ip nimbo {}', 'delete table ip nimbo', 'table ip nimbo {']);
  assert.ok(l.includes('iifname "eth1" ip daddr 203.0.113.10 tcp dport 22 dnat to 10.1.1.6'));
  assert.ok(
    l.includes(
      'iifname "eth1" ip daddr 203.0.113.10 udp dport 100-102 dnat to 10.1.1.6 : udp dport map { 100 : 200, 101 : 201, 102 : 202 }',
    ),
  );
  assert.ok(l.includes('iifname "eth1" ip daddr 203.0.113.11 dnat to 10.1.1.5'));
  const snat = l.indexOf('oifname "eth1" ip saddr 10.1.1.0/24 snat to 203.0.113.10');
  assert.ok(snat > l.indexOf('oifname "eth1" ip saddr 10.1.1.5 snat to 203.0.113.11'));
  assert.ok(l.includes('ct original ip daddr 203.0.113.10 meta l4proto tcp ct original proto-dst 22 accept'));
  // Default allow egress with no rule: everything goes; the ingress chain ends in drop.
  const ingress = l.slice(l.indexOf('chain ingress {'));
  assert.equal(ingress[ingress.indexOf('}') - 1], 'drop');
  const egress = l.slice(l.indexOf('chain egress {'));
  assert.deepEqual(egress.slice(1, egress.indexOf('}')), ['accept']);
});

test('egress rules are the exception to the default policy; without source NAT only static NAT guests leave', () => {
  const rule = { protocol: 'tcp', startPort: 80, endPort: 80, sourceCidrs: ['10.1.1.0/25'], destCidrs: [] };
  const deny = lines(routerRuleset('10.1.1.0/24', pub, RouterRules.parse({ egress: [rule] })));
  assert.ok(deny.includes('ip saddr 10.1.1.0/25 meta l4proto tcp tcp dport 80 drop'));
  const allow = lines(
    routerRuleset('10.1.1.0/24', pub, RouterRules.parse({ egressDefaultAllow: false, egress: [rule] })),
  );
  const chain = allow.slice(allow.indexOf('chain egress {') + 1);
  assert.deepEqual(chain.slice(0, chain.indexOf('}')), [
    'ip saddr 10.1.1.0/25 meta l4proto tcp tcp dport 80 accept',
    'drop',
  ]);
  const noSnat = lines(
    routerRuleset(
      '10.1.1.0/24',
      { ...pub, sourceNat: undefined },
      RouterRules.parse({ staticNats: [{ publicIp: '203.0.113.11', privateIp: '10.1.1.5' }] }),
    ),
  );
  assert.ok(noSnat.includes('ip saddr != 10.1.1.5 drop'));
  assert.ok(!noSnat.some((x) => x.includes('snat to 203.0.113.10')));
});

test('rule matches: ICMP type and code (-1 any), all protocols, sources, a rule without address applies to none', () => {
  const base = { sourceCidrs: [], destCidrs: [] };
  assert.equal(
    ingressMatch({ ...base, publicIp: '203.0.113.10', protocol: 'icmp', icmpType: 8, icmpCode: -1 }),
    'ct original ip daddr 203.0.113.10 ip protocol icmp icmp type 8',
  );
  assert.equal(
    ingressMatch({
      ...base,
      publicIp: '203.0.113.10',
      protocol: 'all',
      sourceCidrs: ['198.51.100.0/24', '192.0.2.0/24'],
    }),
    'ct original ip daddr 203.0.113.10 ip saddr { 198.51.100.0/24, 192.0.2.0/24 }',
  );
  assert.equal(ingressMatch({ ...base, protocol: 'tcp', startPort: 1, endPort: 2 }), undefined);
  assert.equal(egressMatch({ ...base, protocol: 'all' }), '');
  assert.equal(
    egressMatch({ ...base, protocol: 'udp', startPort: 53, destCidrs: ['8.8.8.8/32'] }),
    'ip daddr 8.8.8.8/32 meta l4proto udp udp dport 53',
  );
});

test('validation refuses what the router cannot enforce', () => {
  const pf = {
    publicIp: '203.0.113.10',
    protocol: 'tcp' as const,
    publicStart: 1000,
    publicEnd: 1010,
    privateIp: '10.1.1.6',
    privateStart: 2000,
    privateEnd: 2005,
  };
  assert.throws(() => validateRules(pub, RouterRules.parse({ portForwards: [pf] })), /differ in length/);
  assert.throws(
    () =>
      validateRules(
        pub,
        RouterRules.parse({ portForwards: [{ ...pf, publicEnd: 9000, privateEnd: 10000 }] }),
      ),
    /limited to 4096 ports/,
  );
  // The same ports need no map: any length is fine.
  validateRules(
    pub,
    RouterRules.parse({ portForwards: [{ ...pf, publicEnd: 60000, privateStart: 1000, privateEnd: 60000 }] }),
  );
  assert.throws(
    () =>
      validateRules(
        pub,
        RouterRules.parse({ staticNats: [{ publicIp: '203.0.113.99', privateIp: '10.1.1.5' }] }),
      ),
    /203\.0\.113\.99/,
  );
  assert.throws(
    () =>
      validateRules(
        undefined,
        RouterRules.parse({ staticNats: [{ publicIp: '203.0.113.10', privateIp: '10.1.1.5' }] }),
      ),
    /public side/,
  );
  validateRules(undefined, RouterRules.parse({}));
});

const lb = (over: object = {}) =>
  RouterLoadBalancer.parse({
    id: 'a1b2c3d4-0000-4000-8000-000000000001',
    publicIp: '203.0.113.10',
    publicPort: 80,
    privatePort: 8080,
    algorithm: 'roundrobin',
    members: [{ ip: '10.1.1.5' }, { ip: '10.1.1.6' }],
    ...over,
  });

function haproxyAccepts(text: string): void {
  if (!existsSync(HAPROXY)) return;
  const dir = mkdtempSync(join(tmpdir(), 'nimbo-haproxy-'));
  try {
    writeFileSync(join(dir, 'haproxy.cfg'), text);
    const r = spawnSync(HAPROXY, ['-c', '-q', '-f', join(dir, 'haproxy.cfg')], { encoding: 'utf8' });
    assert.equal(r.status, 0, `${r.stderr}\n${text}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('HAProxy: tcp round robin, stickiness on source, health checks', () => {
  const text = haproxyConfig('r-1-VM', [
    lb({
      algorithm: 'leastconn',
      stickiness: { method: 'SourceBased', params: { tablesize: '100k', expire: '10m' } },
      healthCheck: { intervalSec: 3, timeoutSec: 1, healthyThreshold: 2, unhealthyThreshold: 4 },
    }),
  ]);
  const l = lines(text);
  assert.ok(l.includes('bind 203.0.113.10:80'));
  assert.ok(l.includes('mode tcp'));
  assert.ok(l.includes('balance leastconn'));
  assert.ok(l.includes('stick-table type ip size 100k expire 10m'));
  assert.ok(l.includes('stick on src'));
  assert.ok(l.includes('default-server inter 3s fall 4 rise 2'));
  assert.ok(l.includes('timeout check 1s'));
  assert.ok(l.includes('server m0 10.1.1.5:8080 check'));
  assert.ok(!l.some((x) => x.startsWith('option httpchk')));
  haproxyAccepts(text);
});

test('HAProxy: cookie stickiness runs in http mode; an HTTP health check pings its path', () => {
  const text = haproxyConfig('r-1-VM', [
    lb({
      stickiness: { method: 'LbCookie', params: { 'cookie-name': 'NIMBO' } },
      healthCheck: {
        pingPath: '/health',
        intervalSec: 5,
        timeoutSec: 2,
        healthyThreshold: 2,
        unhealthyThreshold: 5,
      },
    }),
    lb({ id: 'second', publicPort: 8443, stickiness: { method: 'AppCookie', params: {} } }),
  ]);
  const l = lines(text);
  assert.ok(l.includes('cookie NIMBO insert indirect nocache'));
  assert.ok(l.includes('option httpchk GET /health'));
  assert.ok(l.includes('server m1 10.1.1.6:8080 check cookie m1'));
  assert.ok(l.includes('cookie JSESSIONID prefix nocache'));
  assert.equal(l.filter((x) => x === 'mode http').length, 4);
  haproxyAccepts(text);
});

test('HAProxy: refuses two balancers on one address and port, and parameters that would inject configuration', () => {
  assert.throws(() => haproxyConfig('r', [lb(), lb({ id: 'other' })]), /two load balancers/);
  assert.throws(
    () =>
      haproxyConfig('r', [
        lb({ stickiness: { method: 'LbCookie', params: { 'cookie-name': 'A\n  server x' } } }),
      ]),
    /not valid/,
  );
  assert.throws(
    () =>
      haproxyConfig('r', [
        lb({
          healthCheck: {
            pingPath: '/a b',
            intervalSec: 1,
            timeoutSec: 1,
            healthyThreshold: 1,
            unhealthyThreshold: 1,
          },
        }),
      ]),
    /not valid/,
  );
  // No members is a valid balancer that answers nothing yet.
  haproxyAccepts(haproxyConfig('r', [lb({ members: [] })]));
});
