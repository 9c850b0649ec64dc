/** `key=value` words to API parameters, and the shell's line splitting. */
import type { Api } from './apis.ts';
import { UsageError } from './config.ts';

export interface ParsedArgs {
  params: Record<string, string>;
  /** Fields to keep in the output (`filter=name,id`), in the order given. */
  filter?: string[];
  /** Fields to drop from the output (`exclude=tags`). */
  exclude?: string[];
}

function fieldList(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/**
 * Parses `key=value` words. Map parameters (`details[0].cpuNumber=2`) and list values (`ids=a,b`)
 * pass through as they are; a key given twice is joined with a comma, as the `cs` CLI does.
 */
export function parseArgs(words: string[]): ParsedArgs {
  const parsed: ParsedArgs = { params: {} };
  for (const word of words) {
    const eq = word.indexOf('=');
    if (eq <= 0) throw new UsageError(`expected key=value, got ${word}`);
    const key = word.slice(0, eq);
    const value = word.slice(eq + 1);
    if (key === 'filter') parsed.filter = [...(parsed.filter ?? []), ...fieldList(value)];
    else if (key === 'exclude') parsed.exclude = [...(parsed.exclude ?? []), ...fieldList(value)];
    else if (key in parsed.params) parsed.params[key] = `${parsed.params[key]},${value}`;
    else parsed.params[key] = value;
  }
  return parsed;
}

/** The required parameters of `api` that `params` lacks; `tags` is given by `tags[0].key=...`. */
export function missingParams(api: Api, params: Record<string, string>): string[] {
  const given = Object.keys(params).map((k) => k.toLowerCase().replace(/\[.*$/, ''));
  return api.params.filter((p) => p.required && !given.includes(p.name.toLowerCase())).map((p) => p.name);
}

/**
 * Splits a shell line into words with POSIX-like quoting: '...' literal, "..." with backslash
 * escapes, and a backslash escaping the next character outside quotes. `open` is set when the
 * line ends inside quotes, so that completion can still work on the last word.
 */
export function splitLine(line: string): { words: string[]; trailingSpace: boolean; open: boolean } {
  const words: string[] = [];
  let word: string | undefined;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote === "'") {
      if (c === "'") quote = undefined;
      else word += c;
    } else if (quote === '"') {
      if (c === '"') quote = undefined;
      else if (c === '\\' && i + 1 < line.length && '"\\$`'.includes(line[i + 1])) word += line[++i];
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      word ??= '';
    } else if (c === '\\' && i + 1 < line.length) {
      word = (word ?? '') + line[++i];
    } else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else {
      word = (word ?? '') + c;
    }
  }
  const trailingSpace = word === undefined && quote === undefined && /\s$/.test(line);
  if (word !== undefined) words.push(word);
  return { words, trailingSpace, open: quote !== undefined };
}
