/**
 * nimbo's command line, parsed by commander: global options, nimbo's own commands (sync, set,
 * login, logout, api, help, completion), and `<verb> <noun> key=value ...` for every synced API.
 * The interactive shell parses each line with a fresh program from here, so both accept the same.
 */
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { CloudStackError } from '@nimbostack/client';
import { Argument, Command, CommanderError, Option } from 'commander';
import type { Api, ApiCatalog } from './apis.ts';
import { BASH_SCRIPT, BUILTINS, complete, ZSH_SCRIPT } from './completion.ts';
import { OUTPUT_FORMATS, PROFILE_KEYS, UsageError } from './config.ts';
import type { Context, GlobalFlags } from './context.ts';
import { JobInterrupted, JobTimedOut, runApi } from './execute.ts';

const VERSION = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

export interface ProgramOptions {
  /** Set in the shell, where an empty line or `nimbo` alone must not open another shell. */
  interactive?: boolean;
  /** Opens the interactive shell; given by the entry point. */
  startShell?: (ctx: Context) => Promise<void>;
}

function apiHelp(api: Api): string {
  const width = Math.max(4, ...api.params.map((p) => p.name.length));
  const params = api.params.map(
    (p) => `  ${p.required ? '*' : ' '} ${p.name.padEnd(width)}  ${p.type.padEnd(8)}  ${p.description}`,
  );
  return [
    `${api.name} (${api.isasync ? 'async' : 'sync'}): ${api.description}`,
    `usage: nimbo ${api.verb} ${api.noun}${api.params.some((p) => p.required) ? ' <required params>' : ''} [key=value ...]`,
    '',
    params.length ? 'parameters (* = required):' : 'no parameters',
    ...params,
    ...(api.response.length ? ['', `response fields: ${api.response.map((f) => f.name).join(', ')}`] : []),
    '',
  ].join('\n');
}

/** Reads a line from the terminal without echoing it, for passwords. */
async function askHidden(question: string): Promise<string> {
  if (!process.stdin.isTTY)
    throw new UsageError('no password: give --password, set password, or use a terminal');
  const muted = new Writable({ write: (_chunk, _enc, done) => done() });
  process.stderr.write(question);
  const rl = createInterface({ input: process.stdin, output: muted, terminal: true });
  try {
    return await new Promise<string>((resolve, reject) => {
      rl.on('SIGINT', () => reject(new UsageError('login cancelled')));
      rl.question('', resolve);
    });
  } finally {
    rl.close();
    process.stderr.write('\n');
  }
}

async function login(
  ctx: Context,
  opts: { username?: string; password?: string; domain?: string; saveKeys?: boolean },
  interactive: boolean,
) {
  const conn = ctx.connection();
  const profile = conn.profile;
  const username = opts.username ?? profile.username;
  if (!username) throw new UsageError('no username: give --username or set username');
  const password =
    opts.password ??
    (opts.username === undefined ? profile.password : undefined) ??
    (interactive ? undefined : await askHidden(`password for ${username} at ${conn.url}: `));
  if (!password) throw new UsageError('no password: give --password or set password');
  const domain = opts.domain ?? profile.domain;
  const client = await conn.login(username, password, domain);
  conn.saveSession(client, username, domain);
  const info = client.loginResponse ?? {};
  ctx.out.write(
    `Logged in to ${conn.url} as ${username} (account ${info.account}); session saved for profile ${profile.name}\n`,
  );
  if (!opts.saveKeys) return;
  const userid = String(info.userid);
  const existing = await client.request<{ userkeys?: { apikey?: string; secretkey?: string } }>(
    'getUserKeys',
    {
      id: userid,
    },
  );
  let keys = existing.userkeys;
  if (!keys?.apikey || !keys.secretkey) {
    const registered = await client.request<{ userkeys: { apikey: string; secretkey: string } }>(
      'registerUserKeys',
      { id: userid },
    );
    keys = registered.userkeys;
  }
  const config = ctx.config();
  config.setProfileValue(profile.name, 'apikey', String(keys.apikey));
  config.setProfileValue(profile.name, 'secretkey', String(keys.secretkey));
  config.save();
  ctx.out.write(`API keys of ${username} saved to profile ${profile.name} in ${config.path}\n`);
}

async function logout(ctx: Context) {
  const conn = ctx.connection();
  if (await conn.logoutSavedSession()) ctx.out.write(`logged out of ${conn.url}\n`);
  else ctx.out.write(`no saved session for profile ${conn.profile.name}\n`);
}

function set(ctx: Context, key: string | undefined, value: string | undefined) {
  const config = ctx.config();
  if (key === undefined) {
    const profile = ctx.profile();
    ctx.out.write(`profile = ${profile.name}  (${config.path})\n`);
    for (const k of PROFILE_KEYS) {
      const v = profile[k];
      const shown = (k === 'password' || k === 'secretkey') && v ? '********' : (v ?? '');
      ctx.out.write(`${k} = ${shown}\n`);
    }
    return;
  }
  if (value === undefined) throw new UsageError(`give a value: nimbo set ${key} <value>`);
  if (key === 'profile') {
    config.selectProfile(value);
    config.save();
    ctx.shared.profileFlag = undefined;
    if (ctx.env.NIMBO_PROFILE && ctx.env.NIMBO_PROFILE !== value)
      ctx.err.write(
        `note: NIMBO_PROFILE=${ctx.env.NIMBO_PROFILE} still selects that profile in this environment\n`,
      );
    return;
  }
  const profile = ctx.profileName();
  config.setProfileValue(profile, key, value);
  config.save();
}

/** `<verb> <noun> ...`, or as cmk also takes it, the API's own name first: `listZones id=...`. */
function findApi(catalog: ApiCatalog, words: string[]): { api: Api; args: string[] } | undefined {
  const [first, second] = words;
  const api = second === undefined ? undefined : catalog.resolve(first, second);
  if (api) return { api, args: words.slice(2) };
  const byName = catalog.get(first);
  return byName && { api: byName, args: words.slice(1) };
}

async function runWords(ctx: Context, words: string[]) {
  const cached = ctx.catalog();
  let catalog = cached ?? (await ctx.sync());
  let found = findApi(catalog, words);
  if (!found && cached) {
    // The server may have gained commands since the last sync.
    catalog = await ctx.sync();
    found = findApi(catalog, words);
  }
  if (found) return runApi(ctx, found.api.name, found.api, found.args);
  const [verb, noun] = words;
  const nouns = catalog.nouns(verb);
  if (noun === undefined && nouns.length) throw new UsageError(`${verb} what? one of: ${nouns.join(' ')}`);
  throw new UsageError(`unknown API ${words.slice(0, 2).join(' ')}; see nimbo help`);
}

export function buildProgram(base: Context, options: ProgramOptions = {}): Command {
  const ctxOf = (cmd: Command) => base.derive(cmd.optsWithGlobals<GlobalFlags>());
  const program = new Command('nimbo')
    .description('A CloudMonkey-compatible command-line client for Nimbostack and Apache CloudStack.')
    .usage('[options] <verb> <noun> [key=value ...]   (no arguments: interactive shell)')
    .version(VERSION, '-V, --version')
    .option('-c, --config <path>', 'config file (default: $NIMBO_CONFIG or ~/.nimbo/config)')
    .option('-p, --profile <name>', 'profile to use (default: $NIMBO_PROFILE or the one set)')
    .addOption(new Option('-o, --output <format>', 'output format').choices(OUTPUT_FORMATS))
    .option('--async', 'return the job id of an async command at once instead of waiting')
    .argument('[words...]')
    .helpCommand(false)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => base.out.write(s),
      writeErr: (s) => base.err.write(s),
    })
    .addHelpText(
      'after',
      `
Examples:
  nimbo sync                                   fetch the API list of the current profile
  nimbo list domains filter=id,name -o table
  nimbo create account username=bob password=... email=bob@example.com firstname=Bob lastname=B accounttype=0
  nimbo list virtualmachines state=Running tags[0].key=env tags[0].value=prod
  nimbo api listZones id=...                   an API by its own name
  nimbo help list zones                        the parameters of listZones

See docs/cli.md for profiles, completion and output formats.`,
    )
    .action(async (words: string[], _opts: GlobalFlags, cmd: Command) => {
      const ctx = ctxOf(cmd);
      if (words.length) return runWords(ctx, words);
      if (!options.interactive && options.startShell) return options.startShell(ctx);
    });

  program
    .command('sync')
    .description(BUILTINS.sync)
    .action(async (_opts, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const catalog = await ctx.sync();
      ctx.out.write(`Discovered ${catalog.apis.length} APIs\n`);
    });

  program
    .command('api')
    .description(BUILTINS.api)
    .argument('<command>', 'API name, e.g. listZones')
    .argument('[params...]', 'key=value parameters')
    .action(async (command: string, params: string[], _opts, cmd: Command) => {
      const ctx = ctxOf(cmd);
      // A name the list lacks is still sent: the server has the last word on what exists.
      const api = (await ctx.ensureCatalog().catch(() => undefined))?.get(command);
      return runApi(ctx, command, api, params);
    });

  program
    .command('set')
    .description(BUILTINS.set)
    .argument('[key]', `profile, ${PROFILE_KEYS.join(', ')}`)
    .argument('[value]')
    .action((key: string | undefined, value: string | undefined, _opts, cmd: Command) =>
      set(ctxOf(cmd), key, value),
    );

  program
    .command('login')
    .description(BUILTINS.login)
    .option('-u, --username <name>', 'user name (default: the profile username)')
    .option('--password <password>', 'password (default: the profile password, else asked for)')
    .option('-d, --domain <path>', 'domain path, e.g. / or /ROOT/sales (default: the profile domain)')
    .option('--save-keys', "store the user's API keys (registered if needed) in the profile")
    .action((opts, cmd: Command) => login(ctxOf(cmd), opts, Boolean(options.interactive)));

  program
    .command('logout')
    .description(BUILTINS.logout)
    .action((_opts, cmd: Command) => logout(ctxOf(cmd)));

  program
    .command('completion')
    .description(BUILTINS.completion)
    .addArgument(new Argument('<shell>', 'bash or zsh').choices(['bash', 'zsh']))
    .action((shell: string) => {
      base.out.write(shell === 'bash' ? BASH_SCRIPT : ZSH_SCRIPT);
    });

  program
    .command('help')
    .description(BUILTINS.help)
    .argument('[words...]', 'a verb and noun, or an API name')
    .action(async (words: string[], _opts, cmd: Command) => {
      const ctx = ctxOf(cmd);
      if (words.length === 0) return void base.out.write(program.helpInformation());
      const catalog = await ctx.ensureCatalog();
      const api = words.length >= 2 ? catalog.resolve(words[0], words[1]) : catalog.get(words[0]);
      if (api) return void ctx.out.write(apiHelp(api));
      if (words.length === 1 && catalog.nouns(words[0]).length)
        return void ctx.out.write(`${words[0]}: ${catalog.nouns(words[0]).join(' ')}\n`);
      throw new UsageError(`no API ${words.join(' ')}`);
    });

  program
    .command('__complete', { hidden: true })
    .argument('[words...]')
    .allowUnknownOption()
    .action(async (words: string[], _opts, cmd: Command) => {
      const before = words.slice(0, -1);
      const current = words.at(-1) ?? '';
      const { replace, candidates } = await complete(ctxOf(cmd), before, current);
      const prefix = current.slice(0, current.length - replace.length);
      for (const c of candidates) {
        const description = c.description?.replace(/\s+/g, ' ').trim();
        base.out.write(`${prefix}${c.value}${description ? `\t${description}` : ''}\n`);
      }
    });

  return program;
}

/** Parses and runs one command line; prints errors and returns the exit status. */
export async function runCommandLine(
  base: Context,
  args: string[],
  options: ProgramOptions = {},
): Promise<number> {
  const program = buildProgram(base, options);
  try {
    await program.parseAsync(args, { from: 'user' });
    return base.shared.shellStatus;
  } catch (e) {
    return reportError(base, e);
  }
}

export function reportError(ctx: Context, e: unknown): number {
  if (e instanceof CommanderError) {
    // commander has printed its message (or the help) already.
    return e.exitCode === 0 ? 0 : 2;
  }
  if (e instanceof CloudStackError) {
    const cs = e.cserrorcode === undefined ? '' : `, cserrorcode ${e.cserrorcode}`;
    ctx.err.write(`Error: (errorcode ${e.errorcode}${cs}) ${e.errortext}\n`);
    return 1;
  }
  if (e instanceof UsageError) {
    ctx.err.write(`Error: ${e.message}\n`);
    return 2;
  }
  if (e instanceof JobInterrupted) {
    ctx.err.write(`${e.message}\n`);
    return 130;
  }
  if (e instanceof JobTimedOut) {
    ctx.err.write(`Error: ${e.message}\n`);
    return 1;
  }
  ctx.err.write(`Error: ${e instanceof Error ? e.message : String(e)}\n`);
  return 1;
}
