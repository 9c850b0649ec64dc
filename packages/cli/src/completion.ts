/**
 * Completion of verbs, nouns, `param=` names and parameter values, shared by the interactive shell
 * and the bash and zsh scripts (which call the hidden `nimbo __complete`). Values of `*id=`
 * parameters come from the matching list command, as in cmk: zoneid= → listZones.
 */
import type { Api, ApiCatalog } from './apis.ts';
import { OUTPUT_FORMATS, PROFILE_KEYS } from './config.ts';
import type { Context, GlobalFlags } from './context.ts';

export interface Candidate {
  value: string;
  description?: string;
  /** More is expected right after it (`zoneid=`, a field of filter=), so no space follows. */
  partial?: boolean;
}

export interface Completion {
  /** The end of the current word that each candidate replaces. */
  replace: string;
  candidates: Candidate[];
}

/** nimbo's own commands, besides the verbs of the synced APIs. */
export const BUILTINS: Record<string, string> = {
  api: 'run an API by its name: nimbo api listZones id=...',
  completion: 'print the bash or zsh completion script',
  help: 'help for nimbo or for an API: nimbo help list zones',
  login: 'log in with username and password and keep the session',
  logout: 'end the saved session',
  set: 'change a setting of the current profile, or switch profiles',
  sync: 'fetch the API list (listApis) for completion and verbs',
};

const GLOBAL_OPTIONS: Record<string, keyof GlobalFlags> = {
  '-c': 'config',
  '--config': 'config',
  '-p': 'profile',
  '--profile': 'profile',
  '-o': 'output',
  '--output': 'output',
};

/** Splits global options (`-p prod`, `--output=table`) from the command words, as commander would. */
export function splitGlobalOptions(words: string[]): { words: string[]; flags: GlobalFlags } {
  const flags: GlobalFlags = {};
  const rest: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    const [name, inline] =
      w.startsWith('--') && w.includes('=') ? [w.slice(0, w.indexOf('=')), w] : [w, undefined];
    const flag = GLOBAL_OPTIONS[name];
    if (flag) {
      const value = inline === undefined ? words[++i] : inline.slice(name.length + 1);
      if (value !== undefined) (flags as Record<string, string>)[flag] = value;
    } else if (w === '--async') flags.async = true;
    else if (!w.startsWith('-')) rest.push(w);
  }
  return { words: rest, flags };
}

function byPrefix(prefix: string, candidates: Candidate[]): Candidate[] {
  const p = prefix.toLowerCase();
  return candidates.filter((c) => c.value.toLowerCase().startsWith(p));
}

function words(values: string[], describe?: (v: string) => string | undefined): Candidate[] {
  return values.map((value) => ({ value, description: describe?.(value) }));
}

/** A label for a list item, as cmk shows beside ids: its name, else username, display text, … */
function itemLabel(item: Record<string, unknown>): string | undefined {
  for (const k of ['name', 'username', 'displaytext', 'description', 'ipaddress']) {
    if (typeof item[k] === 'string' && item[k] !== '') return item[k] as string;
  }
  return undefined;
}

async function valuesFromList(ctx: Context, listApi: Api, param: string): Promise<Candidate[]> {
  const params: Record<string, string> = { listall: 'true' };
  if (listApi.noun === 'templates' || listApi.noun === 'isos') params.templatefilter = 'executable';
  if (listApi.noun === 'isos') params.isofilter = 'executable';
  let response: Record<string, unknown>;
  try {
    response = await ctx.connection().request(listApi.name, params);
  } catch {
    return [];
  }
  const items = Object.values(response).find(Array.isArray) as Record<string, unknown>[] | undefined;
  const byId = /ids?$/.test(param.toLowerCase());
  const candidates: Candidate[] = [];
  for (const item of items ?? []) {
    const value = byId ? item.id : itemLabel(item);
    if (typeof value !== 'string') continue;
    candidates.push({ value, description: byId ? itemLabel(item) : undefined });
  }
  return candidates.sort((a, b) => a.value.localeCompare(b.value));
}

async function completeParams(
  ctx: Context,
  catalog: ApiCatalog,
  api: Api,
  given: string[],
  current: string,
): Promise<Completion> {
  const eq = current.indexOf('=');
  if (eq < 0) {
    const used = new Set(given.map((w) => w.slice(0, w.indexOf('=')).toLowerCase()));
    const params: Candidate[] = api.params
      .filter((p) => !used.has(p.name.toLowerCase()))
      .map((p) => ({ value: `${p.name}=`, description: p.description, partial: true }));
    params.push(
      { value: 'filter=', description: 'fields to show, comma-separated', partial: true },
      { value: 'exclude=', description: 'fields to leave out, comma-separated', partial: true },
    );
    return { replace: current, candidates: byPrefix(current, params) };
  }
  const name = current.slice(0, eq);
  const value = current.slice(eq + 1);
  const lastItem = value.slice(value.lastIndexOf(',') + 1);
  if (name === 'filter' || name === 'exclude') {
    const chosen = value.split(',');
    const fields = api.response.map((f) => f.name).filter((f) => !chosen.includes(f));
    return {
      replace: lastItem,
      candidates: byPrefix(lastItem, words(fields)).map((c) => ({ ...c, partial: true })),
    };
  }
  const param = api.params.find((p) => p.name.toLowerCase() === name.toLowerCase());
  if (!param) return { replace: value, candidates: [] };
  if (param.type === 'boolean')
    return { replace: value, candidates: byPrefix(value, words(['true', 'false'])) };
  // Only ids (and account names, as cmk) come from list commands; guessing a list for `type=` or
  // `state=` would offer unrelated values.
  const fromList = param.type !== 'map' && /(ids?|^account)$/i.test(param.name);
  const listApi = fromList ? catalog.listApiForParam(param.name, api) : undefined;
  if (!listApi) return { replace: value, candidates: [] };
  const candidates = await valuesFromList(ctx, listApi, param.name);
  const isList = param.type === 'list';
  return { replace: isList ? lastItem : value, candidates: byPrefix(isList ? lastItem : value, candidates) };
}

/** Completes `current`, the word being typed, after the command-line `before` (without `nimbo`). */
export async function complete(ctx: Context, before: string[], current: string): Promise<Completion> {
  const previous = before.at(-1);
  if (previous === '-p' || previous === '--profile')
    return { replace: current, candidates: byPrefix(current, words(ctx.config().profileNames())) };
  if (previous === '-o' || previous === '--output')
    return { replace: current, candidates: byPrefix(current, words([...OUTPUT_FORMATS])) };
  if (current.startsWith('-')) {
    const options = ['--profile', '--output', '--config', '--async', '--help', '--version'];
    if (before[0] === 'login') options.push('--username', '--password', '--domain', '--save-keys');
    return { replace: current, candidates: byPrefix(current, words(options)) };
  }
  const { words: w, flags } = splitGlobalOptions(before);
  const cx = ctx.derive(flags);
  let catalog: ApiCatalog | undefined;
  try {
    catalog = await cx.ensureCatalog();
  } catch {
    catalog = undefined;
  }
  const none: Completion = { replace: current, candidates: [] };
  if (w.length === 0) {
    const verbs = words(catalog?.verbs() ?? []);
    return {
      replace: current,
      candidates: byPrefix(current, [...verbs, ...words(Object.keys(BUILTINS), (b) => BUILTINS[b])]),
    };
  }
  const [first, second] = w;
  switch (first) {
    case 'set':
      if (w.length === 1)
        return { replace: current, candidates: byPrefix(current, words(['profile', ...PROFILE_KEYS])) };
      if (w.length === 2 && second === 'profile')
        return { replace: current, candidates: byPrefix(current, words(cx.config().profileNames())) };
      if (w.length === 2 && second === 'output')
        return { replace: current, candidates: byPrefix(current, words([...OUTPUT_FORMATS])) };
      return none;
    case 'completion':
      return w.length === 1
        ? { replace: current, candidates: byPrefix(current, words(['bash', 'zsh'])) }
        : none;
    case 'api': {
      if (!catalog) return none;
      if (w.length === 1)
        return { replace: current, candidates: byPrefix(current, words(catalog.apis.map((a) => a.name))) };
      const api = catalog.get(second);
      return api ? completeParams(cx, catalog, api, w.slice(2), current) : none;
    }
    case 'help':
      if (!catalog || w.length > 2) return none;
      return {
        replace: current,
        candidates: byPrefix(current, words(w.length === 1 ? catalog.verbs() : catalog.nouns(second))),
      };
    case 'sync':
    case 'login':
    case 'logout':
      return none;
  }
  if (!catalog) return none;
  if (w.length === 1) return { replace: current, candidates: byPrefix(current, words(catalog.nouns(first))) };
  const api = catalog.resolve(first, second);
  return api ? completeParams(cx, catalog, api, w.slice(2), current) : none;
}

/** bash: splits the line itself, since bash's own words break at '=' and would split key=value. */
export const BASH_SCRIPT = `# nimbo completion for bash. Load with: source <(nimbo completion bash)
_nimbo() {
  local cur=\${COMP_WORDS[COMP_CWORD]}
  local line=\${COMP_LINE:0:COMP_POINT}
  local -a words
  read -r -a words <<< "$line"
  [[ $line =~ [[:space:]]$ ]] && words+=("")
  local current=\${words[\${#words[@]}-1]}
  local prefix=\${current%"$cur"}
  local IFS=$'\\n' item
  COMPREPLY=()
  for item in $(nimbo __complete -- "\${words[@]:1}" 2>/dev/null); do
    item=\${item%%$'\\t'*}
    COMPREPLY+=("\${item#"$prefix"}")
  done
  if [[ \${#COMPREPLY[@]} -eq 1 && \${COMPREPLY[0]} == *= ]]; then
    compopt -o nospace 2>/dev/null
  fi
  return 0
}
complete -F _nimbo nimbo
`;

/** zsh: ids are offered with their names as descriptions; `param=` takes no space after it. */
export const ZSH_SCRIPT = `#compdef nimbo
# nimbo completion for zsh. Load with: source <(nimbo completion zsh)
# (after compinit), or save it as _nimbo in a directory of your $fpath.
_nimbo() {
  local -a lines spaced unspaced
  local line word desc
  lines=("\${(@f)$(nimbo __complete -- "\${(@)words[2,CURRENT]}" 2>/dev/null)}")
  for line in $lines; do
    [[ -z $line ]] && continue
    word=\${line%%$'\\t'*}
    desc=\${line#*$'\\t'}
    [[ $desc == "$line" ]] && desc=''
    word=\${word//:/\\\\:}
    if [[ $word == *= ]]; then
      unspaced+=("$word\${desc:+:$desc}")
    else
      spaced+=("$word\${desc:+:$desc}")
    fi
  done
  (( $#unspaced )) && _describe -t parameters 'parameter' unspaced -S ''
  (( $#spaced )) && _describe -t values 'nimbo' spaced
  return 0
}
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
  _nimbo "$@"
else
  compdef _nimbo nimbo
fi
`;
