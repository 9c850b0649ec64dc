/**
 * MySQL/MariaDB commit every DDL statement implicitly, so a migration step that fails half-way
 * cannot be rolled back: the tables, columns and indexes it had already added stay, and running
 * the step again would fail on them. Before each step on MySQL the migrator takes a snapshot of
 * the schema (information_schema); when the step fails, what the step added is dropped again —
 * new tables, new columns of existing tables, new indexes — so the database is back at the shape
 * of the previous version and the step can run again from its start. What it cannot undo (a
 * changed column type, rows a step changed before failing) is why operations.md asks for a dump
 * before upgrading MySQL.
 */
import { sql } from 'kysely';
import type { Store } from './connection.ts';

export interface SchemaSnapshot {
  tables: Set<string>;
  /** "table.column" */
  columns: Set<string>;
  /** "table.index" */
  indexes: Set<string>;
  /** "table.constraint" of foreign keys: they must go before the columns and indexes they use. */
  foreignKeys: Set<string>;
}

export async function snapshotSchema(store: Store): Promise<SchemaSnapshot> {
  const db = store.db;
  const tables = await sql<{ t: string }>`
    select table_name as t from information_schema.tables where table_schema = database()`.execute(db);
  const columns = await sql<{ t: string; c: string }>`
    select table_name as t, column_name as c from information_schema.columns
    where table_schema = database()`.execute(db);
  const indexes = await sql<{ t: string; i: string }>`
    select distinct table_name as t, index_name as i from information_schema.statistics
    where table_schema = database()`.execute(db);
  const foreignKeys = await sql<{ t: string; k: string }>`
    select table_name as t, constraint_name as k from information_schema.table_constraints
    where table_schema = database() and constraint_type = 'FOREIGN KEY'`.execute(db);
  return {
    foreignKeys: new Set(foreignKeys.rows.map((r) => `${r.t}.${r.k}`)),
    tables: new Set(tables.rows.map((r) => r.t)),
    columns: new Set(columns.rows.map((r) => `${r.t}.${r.c}`)),
    indexes: new Set(indexes.rows.map((r) => `${r.t}.${r.i}`)),
  };
}

/** Drops what was added since `before`; returns what it dropped, for the error message. */
export async function undoAdditions(store: Store, before: SchemaSnapshot): Promise<string[]> {
  const now = await snapshotSchema(store);
  const dropped: string[] = [];
  const db = store.db;
  // On a dedicated connection: the foreign-key switch is per session.
  await db.connection().execute(async (c) => {
    await sql`set foreign_key_checks = 0`.execute(c);
    try {
      for (const key of now.foreignKeys) {
        const [table, fk] = key.split('.');
        if (before.foreignKeys.has(key) || !before.tables.has(table)) continue;
        await sql`alter table ${sql.table(table)} drop foreign key ${sql.ref(fk)}`.execute(c);
        dropped.push(`foreign key ${key}`);
      }
      for (const key of now.indexes) {
        const [table, index] = key.split('.');
        if (before.indexes.has(key) || !before.tables.has(table) || index === 'PRIMARY') continue;
        await sql`alter table ${sql.table(table)} drop index ${sql.ref(index)}`.execute(c);
        dropped.push(`index ${key}`);
      }
      for (const key of now.columns) {
        const [table, column] = key.split('.');
        if (before.columns.has(key) || !before.tables.has(table)) continue;
        await sql`alter table ${sql.table(table)} drop column ${sql.ref(column)}`.execute(c);
        dropped.push(`column ${key}`);
      }
      for (const table of now.tables) {
        if (before.tables.has(table)) continue;
        await sql`drop table ${sql.table(table)}`.execute(c);
        dropped.push(`table ${table}`);
      }
    } finally {
      await sql`set foreign_key_checks = 1`.execute(c);
    }
  });
  return dropped;
}
