/**
 * Renders an API response as json, table, column, csv or text, as cmk does. The rows are the
 * items of the response's list (`{count, domain: [...]}`) or its one object (`{account: {...}}`);
 * a flat response (`{success: true}`) is one row. filter= keeps fields in the order given,
 * exclude= drops fields; without filter= the columns are the fields in the order the server sent them.
 */
import Table from 'cli-table3';
import type { OutputFormat } from './config.ts';

type Row = Record<string, unknown>;
type Response = Record<string, unknown>;

function isRow(value: unknown): value is Row {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The key holding the response's rows, or undefined when the response itself is the row. */
function rowsKey(response: Response): string | undefined {
  const keys = Object.keys(response);
  return (
    keys.find((k) => Array.isArray(response[k]) && (response[k] as unknown[]).every(isRow)) ??
    keys.find((k) => isRow(response[k]))
  );
}

function rowsOf(response: Response): Row[] {
  const key = rowsKey(response);
  if (key === undefined) return Object.keys(response).length ? [response] : [];
  const value = response[key];
  return Array.isArray(value) ? (value as Row[]) : [value as Row];
}

function pick(row: Row, filter?: string[], exclude?: string[]): Row {
  const fields = filter ?? Object.keys(row);
  const out: Row = {};
  for (const f of fields) if (f in row && !exclude?.includes(f)) out[f] = row[f];
  return out;
}

/** Applies filter= and exclude= to the rows, keeping the rest of the response (count) as it is. */
export function filterResponse(response: Response, filter?: string[], exclude?: string[]): Response {
  if (!filter?.length && !exclude?.length) return response;
  const key = rowsKey(response);
  if (key === undefined) return pick(response, filter, exclude);
  const value = response[key];
  return {
    ...response,
    [key]: Array.isArray(value)
      ? (value as Row[]).map((r) => pick(r, filter, exclude))
      : pick(value as Row, filter, exclude),
  };
}

function columns(rows: Row[], filter?: string[]): string[] {
  if (filter?.length) return filter.filter((f) => rows.some((r) => f in r));
  const seen = new Set<string>();
  for (const row of rows) for (const k of Object.keys(row)) seen.add(k);
  return [...seen];
}

function cell(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

function renderTable(rows: Row[], cols: string[]): string {
  if (rows.length === 0) return '';
  // No colours: output must be the same whether or not it goes to a terminal.
  const table = new Table({ head: cols, style: { head: [], border: [] } });
  for (const row of rows) table.push(cols.map((c) => cell(row[c])));
  return `${table.toString()}\n`;
}

function renderColumn(rows: Row[], cols: string[]): string {
  if (rows.length === 0) return '';
  const lines = [cols.map((c) => c.toUpperCase()), ...rows.map((r) => cols.map((c) => cell(r[c])))];
  const widths = cols.map((_, i) => Math.max(...lines.map((l) => l[i].length)));
  return lines
    .map(
      (l) =>
        `${l
          .map((v, i) => v.padEnd(widths[i]))
          .join('   ')
          .trimEnd()}\n`,
    )
    .join('');
}

function renderCsv(rows: Row[], cols: string[]): string {
  if (rows.length === 0) return '';
  const lines = [cols, ...rows.map((r) => cols.map((c) => cell(r[c])))];
  return lines.map((l) => `${l.map(csvField).join(',')}\n`).join('');
}

function renderText(rows: Row[], cols: string[]): string {
  return rows
    .map((r) =>
      cols
        .filter((c) => c in r)
        .map((c) => `${c} = ${cell(r[c])}\n`)
        .join(''),
    )
    .join(`${'='.repeat(80)}\n`);
}

export function formatResponse(
  response: Response,
  format: OutputFormat,
  filter?: string[],
  exclude?: string[],
): string {
  const filtered = filterResponse(response, filter, exclude);
  if (format === 'json') return `${JSON.stringify(filtered, null, 2)}\n`;
  const rows = rowsOf(filtered);
  const cols = columns(rows, filter);
  switch (format) {
    case 'table':
      return renderTable(rows, cols);
    case 'column':
      return renderColumn(rows, cols);
    case 'csv':
      return renderCsv(rows, cols);
    case 'text':
      return renderText(rows, cols);
  }
}
