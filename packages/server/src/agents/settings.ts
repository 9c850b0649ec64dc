/** Timings of agent liveness: how often agents ping and when a silent host is Disconnected, Alert, Down. */
import { invalidParameter } from '../errors.ts';
import { defineSetting } from '../settings/settings.ts';

export const PING_INTERVAL = defineSetting({
  name: 'ping.interval',
  category: 'Advanced',
  type: 'Integer',
  defaultValue: 60,
  min: 1,
  description:
    'Interval in seconds at which agents ping the management server (applies when a host connects).',
});

export const PING_TIMEOUT = defineSetting({
  name: 'ping.timeout',
  category: 'Advanced',
  type: 'Float',
  defaultValue: 2.5,
  min: 1,
  description: 'Multiplier of ping.interval after which a host that has not pinged is Disconnected.',
});

export const ALERT_WAIT = defineSetting({
  name: 'alert.wait',
  category: 'Alert',
  type: 'Integer',
  defaultValue: 1800,
  min: 0,
  description: 'Seconds a host stays Disconnected before it is put in Alert.',
});

export const HOST_DOWN_WAIT = defineSetting({
  name: 'host.down.wait',
  category: 'Advanced',
  type: 'Integer',
  defaultValue: 3600,
  min: 0,
  description: 'Seconds a host stays in Alert before it is declared Down.',
});

export const AGENT_COMMAND_TIMEOUT = defineSetting({
  name: 'wait',
  category: 'Advanced',
  type: 'Integer',
  defaultValue: 1800,
  min: 1,
  description: 'Default time in seconds to wait for an agent to answer a command.',
});

/** Upstream's `host`: the list handed to agents (agent-lb.ts). */
export const MANAGEMENT_SERVER_ADDRESSES = defineSetting({
  name: 'host',
  category: 'Advanced',
  type: 'String',
  defaultValue: '',
  description:
    "The management servers' agent ports, comma-separated (host, host:port or a ws:// or wss:// URL; the port defaults to this server's agent port), handed to every agent as the list it fails over between. Empty: agents keep the list they were started with.",
  validate: (value) => {
    for (const entry of value.split(',').map((e) => e.trim()))
      if (entry !== '' && !/^(wss?:\/\/)?[^\s/,]+(:\d+)?\/?$/.test(entry))
        throw invalidParameter(`host: ${entry} is not a host, host:port or ws(s):// URL`);
  },
});

/** Upstream's indirect.agent.lb.algorithm: the order each agent is given the list in. */
export const AGENT_LB_ALGORITHM = defineSetting({
  name: 'indirect.agent.lb.algorithm',
  category: 'Advanced',
  type: 'String',
  defaultValue: 'static',
  options: ['static', 'roundrobin', 'shuffle'],
  description:
    "Order in which agents get the 'host' list: static (as written, every agent prefers the first server), roundrobin (rotated by the host's place among its zone's hosts, spreading hosts over the servers) or shuffle (a random order for each host).",
});
