/** Timings of agent liveness: how often agents ping and when a silent host is Disconnected, Alert, Down. */
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
