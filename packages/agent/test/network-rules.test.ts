/** The nftables rulesets security groups generate: pure functions, checked without root. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { run } from '../src/drivers/kvm/exec.ts';
import {
  type Installed,
  nicRuleset,
  parseInstalled,
  removalRuleset,
  ruleMatch,
} from '../src/network/security.ts';

const nic = {
  port: 'vn0123456789a0',
  bridge: 'brg1',
  mac: '02:00:00:00:00:AA',
  ip: '10.9.0.5',
  security: {
    router: '10.9.0.2',
    ingress: [{ protocol: 'tcp' as const, startPort: 22, endPort: 22, cidrs: ['10.0.0.0/8'] }],
  },
};

describe('security group rulesets', () => {
  test('rule matches: protocols, port ranges, ICMP type and code, CIDR sets, the any-address CIDR', () => {
    assert.equal(
      ruleMatch(
        { protocol: 'tcp', startPort: 80, endPort: 90, cidrs: ['10.0.0.0/8', '192.168.0.0/16'] },
        'ingress',
      ),
      'ip saddr { 10.0.0.0/8, 192.168.0.0/16 } tcp dport 80-90',
    );
    assert.equal(
      ruleMatch({ protocol: 'udp', startPort: 53, endPort: 53, cidrs: ['1.2.3.4/32'] }, 'egress'),
      'ip daddr 1.2.3.4/32 udp dport 53',
    );
    assert.equal(
      ruleMatch({ protocol: 'tcp', startPort: 0, endPort: 65535, cidrs: ['0.0.0.0/0'] }, 'ingress'),
      'meta l4proto tcp',
    );
    assert.equal(ruleMatch({ protocol: 'icmp', cidrs: ['0.0.0.0/0'] }, 'ingress'), 'ip protocol icmp');
    assert.equal(
      ruleMatch({ protocol: 'icmp', icmpType: -1, icmpCode: -1, cidrs: ['0.0.0.0/0'] }, 'ingress'),
      'ip protocol icmp',
    );
    assert.equal(
      ruleMatch({ protocol: 'icmp', icmpType: 8, icmpCode: 0, cidrs: ['0.0.0.0/0'] }, 'ingress'),
      'ip protocol icmp icmp type 8 icmp code 0',
    );
    assert.equal(
      ruleMatch({ protocol: 'icmp', icmpType: 3, cidrs: ['0.0.0.0/0'] }, 'ingress'),
      'ip protocol icmp icmp type 3',
    );
    assert.equal(
      ruleMatch({ protocol: 'all', cidrs: ['10.1.0.0/16'] }, 'egress'),
      'ip daddr 10.1.0.0/16 meta nfproto ipv4',
    );
    assert.equal(
      ruleMatch({ protocol: 'all', cidrs: [] }, 'ingress'),
      undefined,
      'an empty group matches nothing',
    );
  });

  test('a NIC: anti-spoofing on its port, stateful ingress default deny, egress open without egress rules', () => {
    const lines = nicRuleset([nic]).trim().split('\n');
    const has = (l: string) => assert.ok(lines.includes(l), `missing: ${l}\n${lines.join('\n')}`);
    has('add table bridge nimbostack');
    has('add rule bridge nimbostack prerouting iifname vmap @spoof');
    has('add rule bridge nimbostack vn0123456789a0_s ether saddr != 02:00:00:00:00:aa drop');
    has('add rule bridge nimbostack vn0123456789a0_s arp saddr ip != { 10.9.0.5, 0.0.0.0 } drop');
    has('add rule bridge nimbostack vn0123456789a0_s ip saddr 0.0.0.0 udp sport 68 udp dport 67 return');
    has('add rule bridge nimbostack vn0123456789a0_s ip saddr 10.9.0.5 return');
    has('add rule bridge nimbostack vn0123456789a0_s drop');
    has('add element bridge nimbostack spoof { "vn0123456789a0" : jump vn0123456789a0_s }');
    for (const hook of ['forward', 'input'])
      has(`add rule inet nimbostack ${hook} iifname . ip saddr vmap @from_vm`);
    for (const hook of ['forward', 'output'])
      has(`add rule inet nimbostack ${hook} oifname . ip daddr vmap @to_vm`);
    has('add rule inet nimbostack vn0123456789a0_i ct state established,related return');
    has('add rule inet nimbostack vn0123456789a0_i ip saddr 10.0.0.0/8 tcp dport 22 return');
    assert.equal(
      lines.at(
        lines.indexOf('add rule inet nimbostack vn0123456789a0_i ip saddr 10.0.0.0/8 tcp dport 22 return') +
          1,
      ),
      'add rule inet nimbostack vn0123456789a0_i drop',
    );
    has('add rule inet nimbostack vn0123456789a0_e ip daddr 10.9.0.2 tcp dport { 53, 80, 8080 } return');
    assert.ok(
      !lines.includes('add rule inet nimbostack vn0123456789a0_e drop'),
      'no egress rules: egress is open',
    );
    // Map keys that exist are replaced (delete, add), so that they point at this port's chains.
    const key = '{ "brg1" . 10.9.0.5 : jump vn0123456789a0_i }';
    assert.deepEqual(
      lines.filter((l) => l.includes('element inet nimbostack to_vm')),
      [`add element inet nimbostack to_vm ${key}`],
    );
    const again = nicRuleset([nic], new Set(['to_vm "brg1" . 10.9.0.5']));
    assert.deepEqual(
      again.split('\n').filter((l) => l.includes('element inet nimbostack to_vm')),
      [
        'delete element inet nimbostack to_vm { "brg1" . 10.9.0.5 }',
        `add element inet nimbostack to_vm ${key}`,
      ],
    );
    // Chains are flushed before their rules: applying again replaces, never appends.
    assert.ok(
      lines.indexOf('flush chain inet nimbostack vn0123456789a0_i') <
        lines.indexOf('add rule inet nimbostack vn0123456789a0_i drop'),
    );
  });

  test('egress rules close egress except the router and DHCP', () => {
    const text = nicRuleset([
      { ...nic, security: { ...nic.security, egress: [{ protocol: 'icmp', cidrs: ['0.0.0.0/0'] }] } },
    ]);
    const egress = text.split('\n').filter((l) => l.startsWith('add rule inet nimbostack vn0123456789a0_e'));
    assert.deepEqual(
      egress.map((l) => l.slice('add rule inet nimbostack vn0123456789a0_e '.length)),
      [
        'ct state established,related return',
        'udp dport 67 return',
        'ip daddr 10.9.0.2 udp dport 53 return',
        'ip daddr 10.9.0.2 tcp dport { 53, 80, 8080 } return',
        'ip protocol icmp return',
        'drop',
      ],
    );
  });

  test('removal: only the chains and map elements of the given VM prefix', () => {
    const have: Installed = { chains: [], elements: [] };
    parseInstalled(
      'inet',
      {
        nftables: [
          { chain: { table: 'nimbostack', name: 'forward' } },
          { chain: { table: 'nimbostack', name: 'vnaaaa0_e' } },
          { chain: { table: 'nimbostack', name: 'vnaaaa0_i' } },
          { chain: { table: 'nimbostack', name: 'vnbbbb0_i' } },
          {
            map: {
              table: 'nimbostack',
              name: 'to_vm',
              elem: [
                [{ concat: ['brg1', '10.9.0.5'] }, { jump: { target: 'vnaaaa0_i' } }],
                [{ concat: ['brg1', '10.9.0.6'] }, { jump: { target: 'vnbbbb0_i' } }],
              ],
            },
          },
          { chain: { table: 'other', name: 'vnaaaa0_x' } },
        ],
      },
      have,
    );
    assert.equal(
      removalRuleset(have, 'vnaaaa'),
      [
        'delete element inet nimbostack to_vm { "brg1" . 10.9.0.5 }',
        'delete chain inet nimbostack vnaaaa0_e',
        'delete chain inet nimbostack vnaaaa0_i',
        '',
      ].join('\n'),
    );
    assert.equal(removalRuleset(have, 'vncccc'), '');
  });

  test('a missing host tool is one clear line naming its package, not a stack trace', async () => {
    await assert.rejects(run('nft-not-installed-here', ['list']), (err: Error) => {
      assert.equal(err.constructor.name, 'DriverError');
      assert.equal(
        err.message,
        'nft-not-installed-here is not installed on this host: run npm run setup:host',
      );
      return true;
    });
  });
});
