/**
 * Settings of the Prometheus exporter, under upstream's names so that an operator's existing
 * configuration carries over. The listener is opened at start-up only: enabling it or moving its
 * port takes a restart, as upstream; the allow-list is read on every scrape.
 */
import { BlockList, isIP } from 'node:net';
import { invalidParameter } from '../errors.ts';
import { defineSetting } from '../settings/settings.ts';

export const PROMETHEUS_ENABLE = defineSetting({
  name: 'prometheus.exporter.enable',
  category: 'Advanced',
  type: 'Boolean',
  defaultValue: false,
  isDynamic: false,
  description:
    'Serve cloud and management-server metrics for Prometheus on their own HTTP port; read when the server starts.',
});

export const PROMETHEUS_PORT = defineSetting({
  name: 'prometheus.exporter.port',
  category: 'Advanced',
  type: 'Integer',
  defaultValue: 9595,
  min: 0,
  max: 65535,
  isDynamic: false,
  description:
    'TCP port of the metrics listener (0 picks a free one, for tests); a change applies at the next start.',
});

export const PROMETHEUS_ALLOWED_IPS = defineSetting({
  name: 'prometheus.exporter.allowed.ips',
  category: 'Advanced',
  type: 'String',
  defaultValue: '127.0.0.1',
  description:
    'Comma-separated addresses or CIDR blocks (IPv4 or IPv6) whose scrapes are answered; any other client gets 403.',
  validate: (value) => {
    parseAllowList(value);
  },
});

export const PROMETHEUS_OFFERING_LIMIT = defineSetting({
  name: 'prometheus.exporter.offering.output.limit',
  category: 'Advanced',
  type: 'Integer',
  defaultValue: -1,
  min: -1,
  description:
    'Most CPU/memory combinations reported in cloudstack_vms_total_by_size per zone, the commonest first; -1 for all.',
});

/** An IPv4 address written as IPv6 (::ffff:a.b.c.d, what a dual-stack socket reports) as IPv4. */
export function plainAddress(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1] : address;
}

/** Parses the allow-list into a matcher; throws a 431 naming the first entry that is not an address or block. */
export function parseAllowList(text: string): BlockList {
  const list = new BlockList();
  for (const raw of text.split(',')) {
    const entry = raw.trim();
    if (entry === '') continue;
    const [address, bits, extra] = entry.split('/');
    const family = isIP(address);
    const max = family === 4 ? 32 : 128;
    const prefix = bits === undefined ? max : Number(bits);
    if (family === 0 || extra !== undefined || !Number.isInteger(prefix) || prefix < 0 || prefix > max)
      throw invalidParameter(
        `prometheus.exporter.allowed.ips: "${entry}" is not an IP address or CIDR block`,
      );
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (bits === undefined) list.addAddress(address, type);
    else list.addSubnet(address, prefix, type);
  }
  return list;
}

/** Whether a client address is on the allow-list. */
export function isAllowed(list: BlockList, remote: string | undefined): boolean {
  if (!remote) return false;
  const address = plainAddress(remote);
  const family = isIP(address);
  if (family === 0) return false;
  return list.check(address, family === 4 ? 'ipv4' : 'ipv6');
}
