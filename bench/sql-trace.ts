/**
 * Summarises a statement trace written by a server run with NIMBOSTACK_SQL_TRACE=<dir>
 * (db/connection.ts): statements grouped by their SQL text (parameters are placeholders already;
 * `in (...)` lists of any length count as one text), with how often each ran and its time.
 *
 *   npx tsx bench/sql-trace.ts DIR/sql-<pid>.tsv [--window TEXT] [--per N] [--top 30]
 *
 * --window TEXT  only the statements from the first one containing TEXT (where a case of the bench
 *                starts: e.g. `count(*) as "count" from "zones"` for listZones) to the last one
 * --until TEXT   ... or to the first one after it containing TEXT (where the next case starts)
 * --per N        also print each figure divided by N (the calls of that case: round trips per call)
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    window: { type: 'string' },
    until: { type: 'string' },
    per: { type: 'string' },
    top: { type: 'string', default: '30' },
  },
});
const file = positionals[0];
if (!file) throw new Error('usage: bench/sql-trace.ts FILE [--window TEXT] [--per N] [--top N]');

interface Line {
  at: number;
  ms: number;
  sql: string;
}
let lines: Line[] = readFileSync(file, 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((l) => {
    const [at, ms, ...sql] = l.split('\t');
    return { at: Number(at), ms: Number(ms), sql: sql.join('\t') };
  });
if (args.window) {
  const text = args.window;
  const first = lines.findIndex((l) => l.sql.includes(text));
  if (first < 0) throw new Error(`no statement contains ${text}`);
  const until = args.until;
  const next = until ? lines.findIndex((l, i) => i > first && l.sql.includes(until)) : -1;
  const last = next > 0 ? next - 1 : lines.findLastIndex((l) => l.sql.includes(text));
  lines = lines.slice(first, last + 1);
}
const per = args.per ? Number(args.per) : undefined;
const groups = new Map<string, { n: number; ms: number }>();
for (const l of lines) {
  const key = l.sql.replace(/\((\$\d+|\?)(, (\$\d+|\?))*\)/g, '(…)').slice(0, 240);
  const g = groups.get(key) ?? { n: 0, ms: 0 };
  g.n++;
  g.ms += l.ms;
  groups.set(key, g);
}
const total = lines.reduce((s, l) => s + l.ms, 0);
const span = lines.length ? (lines[lines.length - 1]!.at - lines[0]!.at) / 1000 : 0;
const f = (n: number) => (per ? `${n} (${(n / per).toFixed(2)}/call)` : String(n));
console.log(`${f(lines.length)} statements over ${span.toFixed(1)} s, ${total.toFixed(0)} ms in the driver`);
for (const [sql, g] of [...groups].sort((a, b) => b[1].n - a[1].n).slice(0, Number(args.top))) {
  console.log(`${f(g.n).padStart(18)}  ${(g.ms / g.n).toFixed(3).padStart(7)} ms  ${sql}`);
}
