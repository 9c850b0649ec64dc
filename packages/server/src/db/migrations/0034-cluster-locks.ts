import type { MigrationContext } from './helpers.ts';

/**
 * Several management servers on one database (issue 15), jobs and scheduled work:
 * - `cluster_locks`: one row per object held by one server at a time (jobs/locks.ts). A job holds
 *   the objects it works on (job_id set) until it ends; withNetworkLock and the affinity lock hold
 *   theirs for a step; scheduled work holds a lease (expires set) that its holder renews. The
 *   primary key on `name` is the mutual exclusion; rows of a server declared Down are deleted.
 * - `async_job_objects`: every object of each job, written with the job, so that a job starts
 *   only after the older unfinished jobs on its objects (submission order across servers).
 */
export async function up(m: MigrationContext): Promise<void> {
  await m.db.schema
    .createTable('cluster_locks')
    .addColumn('name', 'varchar(255)', (c) => c.primaryKey())
    .addColumn('ms_id', 'integer', (c) => c.notNull())
    .addColumn('job_id', 'integer')
    .addColumn('token', 'varchar(64)', (c) => c.notNull())
    .addColumn('acquired', 'bigint', (c) => c.notNull())
    .addColumn('expires', 'bigint')
    .execute();
  await m.db.schema.createIndex('cluster_locks_ms').on('cluster_locks').column('ms_id').execute();
  await m.db.schema
    .createTable('async_job_objects')
    .addColumn('object_key', 'varchar(255)', (c) => c.notNull())
    .addColumn('job_id', 'integer', (c) => c.notNull())
    .addPrimaryKeyConstraint('async_job_objects_pk', ['object_key', 'job_id'])
    .execute();
  await m.db.schema.createIndex('async_job_objects_job').on('async_job_objects').column('job_id').execute();
}
