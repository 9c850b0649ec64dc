/**
 * The interactive shell (`nimbo` with no arguments), on Node's readline: persisted history, tab
 * completion of verbs, nouns, `param=` names and values (ids with their names), and Ctrl-C that
 * stops waiting for a job without leaving the shell.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { splitLine } from './args.ts';
import { complete } from './completion.ts';
import { UsageError } from './config.ts';
import type { Context } from './context.ts';
import { reportError, runCommandLine } from './program.ts';

const HISTORY_SIZE = 1000;

/** The saved history, newest first as readline wants it; trims the file when it has grown long. */
function loadHistory(path: string): string[] {
  if (!existsSync(path)) return [];
  const lines = readFileSync(path, 'utf8').split('\n').filter(Boolean);
  if (lines.length > 2 * HISTORY_SIZE) writeFileSync(path, `${lines.slice(-HISTORY_SIZE).join('\n')}\n`);
  return lines.slice(-HISTORY_SIZE).reverse();
}

/** Lines that may hold a password stay in memory only, never in the history file. */
function saveHistory(path: string, line: string): void {
  if (/password/i.test(line)) return;
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  appendFileSync(path, `${line}\n`, { mode: 0o600 });
}

async function completer(base: Context, line: string): Promise<[string[], string]> {
  const { words, trailingSpace } = splitLine(line);
  const current = trailingSpace || words.length === 0 ? '' : words[words.length - 1];
  const before = trailingSpace ? words : words.slice(0, -1);
  const { replace, candidates } = await complete(base.derive({}), before, current);
  if (candidates.length === 1) {
    const only = candidates[0];
    return [[only.value + (only.partial ? '' : ' ')], replace];
  }
  // As cmk, a list of ids shows each with its name; only the id itself is ever inserted.
  const isValue = current.includes('=');
  return [
    candidates.map((c) => (isValue && c.description ? `${c.value} (${c.description})` : c.value)),
    replace,
  ];
}

export async function startShell(base: Context): Promise<void> {
  const historyPath = base.config().historyPath;
  base.shared.profileFlag = base.flags.profile;
  let interrupt: (() => void) | undefined;
  base.shared.interrupts = (onInterrupt) => {
    interrupt = onInterrupt;
    return () => {
      interrupt = undefined;
    };
  };
  // From a pipe (`nimbo < script`) the lines run without prompts or line editing.
  const tty = Boolean(process.stdin.isTTY);
  const rl = createInterface({
    input: process.stdin,
    output: process.stdout,
    terminal: tty,
    history: loadHistory(historyPath),
    historySize: HISTORY_SIZE,
    removeHistoryDuplicates: true,
    completer: (line: string, callback: (err: Error | null, result?: [string[], string]) => void) => {
      completer(base, line).then(
        (result) => callback(null, result),
        () => callback(null, [[], line]),
      );
    },
  });
  const prompt = () => {
    if (!tty) return;
    let name: string;
    try {
      name = base.derive({}).profileName();
    } catch {
      name = '?';
    }
    rl.setPrompt(`(${name}) nimbo> `);
    rl.prompt();
  };
  rl.on('SIGINT', () => {
    if (interrupt) return interrupt();
    rl.write(null, { ctrl: true, name: 'e' });
    rl.write(null, { ctrl: true, name: 'u' });
    process.stdout.write('^C\n');
    prompt();
  });

  const run = async (line: string) => {
    const text = line.trim();
    if (text === '') return prompt();
    if (text === 'exit' || text === 'quit') return rl.close();
    if (tty) saveHistory(historyPath, text);
    const { words, open } = splitLine(text);
    if (open) {
      const status = reportError(base, new UsageError('unterminated quote'));
      if (!tty) base.shared.shellStatus = status;
    } else {
      const status = await runCommandLine(base, words, { interactive: true });
      if (status !== 0 && !tty) base.shared.shellStatus = status;
    }
    prompt();
  };
  let queue = Promise.resolve();
  rl.on('line', (line) => {
    queue = queue.then(() => run(line));
  });
  const closed = new Promise<void>((resolve) => rl.once('close', resolve));
  if (tty) process.stdout.write(`nimbo shell: tab completes, "help" lists commands, Ctrl-D or exit quits\n`);
  prompt();
  await closed;
  await queue;
  if (tty) process.stdout.write('\n');
}
