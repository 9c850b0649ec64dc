/**
 * VM high availability settings. Upstream's names where upstream has the setting (ha.workers,
 * max.retries, restart.retry.interval, investigate.retry.interval); its defaults add up to about
 * eight minutes from a host's death to its VMs running elsewhere, ours to about one.
 */
import { defineSetting } from '../settings/settings.ts';

export const HA_WORKERS = defineSetting({
  name: 'ha.workers',
  category: 'Advanced',
  type: 'Integer',
  defaultValue: 5,
  min: 1,
  max: 100,
  description: 'How many VMs of fenced hosts one management server restarts at the same time.',
});

export const HA_MAX_RETRIES = defineSetting({
  name: 'max.retries',
  category: 'Advanced',
  type: 'Integer',
  defaultValue: 5,
  min: 1,
  description: 'How many times a VM of a fenced host is tried on other hosts before it is left Stopped.',
});

export const HA_RESTART_RETRY = defineSetting({
  name: 'restart.retry.interval',
  category: 'Advanced',
  type: 'Integer',
  defaultValue: 30,
  min: 1,
  description: 'Seconds between two attempts to restart a VM of a fenced host.',
});

export const HA_INVESTIGATE_RETRY = defineSetting({
  name: 'investigate.retry.interval',
  category: 'Advanced',
  type: 'Integer',
  defaultValue: 10,
  min: 1,
  description:
    'Seconds between two investigations of a host whose agent is gone, until it is back or proven dead.',
});

export const HA_RESTART_HOST_UP = defineSetting({
  name: 'ha.vm.restart.hostup',
  category: 'Advanced',
  type: 'Boolean',
  defaultValue: true,
  description:
    'Whether an HA-enabled VM found powered off on a host that is still Up, without anyone having asked for a stop (its guest crashed or shut itself down), is started again.',
});

export const HA_HEARTBEAT_INTERVAL = defineSetting({
  name: 'ha.heartbeat.interval',
  category: 'Advanced',
  type: 'Integer',
  defaultValue: 10,
  min: 1,
  description: 'Seconds between two heartbeat writes of a host to each shared primary storage pool.',
});

export const HA_HEARTBEAT_TIMEOUT = defineSetting({
  name: 'ha.heartbeat.timeout',
  category: 'Advanced',
  type: 'Integer',
  defaultValue: 40,
  min: 2,
  description:
    'Seconds after which a host heartbeat on shared storage counts as stopped; keep it several heartbeat intervals long, plus any clock difference between hosts.',
});
