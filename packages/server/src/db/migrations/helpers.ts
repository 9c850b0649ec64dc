import type { CreateTableBuilder, Kysely } from 'kysely';
import type { DialectName } from '../connection.ts';

/** What every migration receives: the database and which dialect it speaks. */
export interface MigrationContext {
  // biome-ignore lint/suspicious/noExplicitAny: migrations run against the schema as it was, not as typed today
  db: Kysely<any>;
  dialect: DialectName;
}

/** A table with the integer key and the public uuid every entity has. */
export function entityTable(m: MigrationContext, name: string): CreateTableBuilder<string, 'id' | 'uuid'> {
  const t = m.db.schema.createTable(name);
  const withId =
    m.dialect === 'postgres'
      ? t.addColumn('id', 'serial', (c) => c.primaryKey())
      : t.addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement());
  return withId.addColumn('uuid', 'varchar(40)', (c) => c.notNull().unique());
}

/** A table with only the integer key (no public id). */
export function keyedTable(m: MigrationContext, name: string): CreateTableBuilder<string, 'id'> {
  const t = m.db.schema.createTable(name);
  return m.dialect === 'postgres'
    ? t.addColumn('id', 'serial', (c) => c.primaryKey())
    : t.addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement());
}
