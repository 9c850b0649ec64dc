/** The snapshot capability's commands: volume snapshots, their policies, VM snapshots, and templates made from them. */
import { snapshotPolicyCommands } from './snapshot-policies.ts';
import { snapshotCommands } from './snapshots.ts';
import { createTemplate } from './template-from-snapshot.ts';
import { vmSnapshotCommands } from './vm-snapshots.ts';

export const allSnapshotCommands = [
  ...snapshotCommands,
  ...snapshotPolicyCommands,
  ...vmSnapshotCommands,
  createTemplate,
];
