/** The host agent, for embedding (the server's built-in local zone) and for tests. */
export {
  AGENT_VERSION,
  Agent,
  type AgentLogger,
  type AgentOptions,
  consoleLogger,
  LB_ALGORITHMS,
  type LbAlgorithm,
  orderServers,
} from './agent.ts';
export {
  DriverError,
  type HostDriver,
  type HostResources,
  type HypervisorDriver,
  type StorageDriver,
} from './drivers/driver.ts';
export { KvmHost, type KvmHostOptions } from './drivers/kvm/kvm-host.ts';
export { LxcHost, type LxcHostOptions } from './drivers/lxc/lxc-host.ts';
export {
  SIMULATOR_DEFAULTS,
  SIMULATOR_VERSION,
  SimulatorFleet,
  SimulatorHost,
  type SimulatorOptions,
} from './drivers/simulator.ts';
