/**
 * The API list that `nimbo sync` fetches with listApis and caches per profile. Every verb, noun,
 * parameter and async flag nimbo knows comes from here; no command is hard-coded.
 */
import { readJson, writePrivateJson } from './config.ts';

export interface ApiParam {
  name: string;
  type: string;
  required: boolean;
  description: string;
}

export interface ApiField {
  name: string;
  type?: string;
  description?: string;
}

export interface Api {
  name: string;
  description: string;
  isasync: boolean;
  params: ApiParam[];
  response: ApiField[];
  verb: string;
  noun: string;
}

interface CacheFile {
  url: string;
  synced: string;
  api: Omit<Api, 'verb' | 'noun'>[];
}

/** Splits an API name as cmk does: the leading lower-case letters are the verb, the rest the noun. */
export function splitApiName(name: string): { verb: string; noun: string } {
  const verb = /^[a-z]*/.exec(name)![0];
  return { verb, noun: name.slice(verb.length).toLowerCase() };
}

/** The other spellings of a noun a user may type: `list zone` means listZones, `create zones` createZone. */
function nounVariants(noun: string): string[] {
  const n = noun.toLowerCase();
  const variants = [n, `${n}s`, `${n}es`];
  if (n.endsWith('ies')) variants.push(`${n.slice(0, -3)}y`);
  if (n.endsWith('y')) variants.push(`${n.slice(0, -1)}ies`);
  if (n.endsWith('es')) variants.push(n.slice(0, -2));
  if (n.endsWith('s')) variants.push(n.slice(0, -1));
  return variants;
}

export class ApiCatalog {
  private readonly byLowerName = new Map<string, Api>();

  constructor(
    readonly apis: Api[],
    readonly url: string,
    readonly synced: string,
  ) {
    for (const api of apis) this.byLowerName.set(api.name.toLowerCase(), api);
  }

  static fromListApis(response: { api?: Omit<Api, 'verb' | 'noun'>[] }, url: string): ApiCatalog {
    return ApiCatalog.build(response.api ?? [], url, new Date().toISOString());
  }

  private static build(raw: Omit<Api, 'verb' | 'noun'>[], url: string, synced: string): ApiCatalog {
    const apis = raw
      .map((a) => ({
        name: a.name,
        description: a.description ?? '',
        isasync: Boolean(a.isasync),
        params: [...(a.params ?? [])]
          .map((p) => ({
            name: p.name,
            type: p.type ?? 'string',
            required: Boolean(p.required),
            description: p.description ?? '',
          }))
          .sort((x, y) => x.name.localeCompare(y.name)),
        response: (a.response ?? []).map((f) => ({ name: f.name, type: f.type, description: f.description })),
        ...splitApiName(a.name),
      }))
      .sort((x, y) => x.name.localeCompare(y.name));
    return new ApiCatalog(apis, url, synced);
  }

  static load(path: string): ApiCatalog | undefined {
    const file = readJson<CacheFile>(path);
    if (!file || !Array.isArray(file.api)) return undefined;
    return ApiCatalog.build(file.api, file.url, file.synced);
  }

  save(path: string): void {
    const api = this.apis.map(({ verb: _verb, noun: _noun, ...rest }) => rest);
    writePrivateJson(path, { url: this.url, synced: this.synced, api } satisfies CacheFile);
  }

  get(name: string): Api | undefined {
    return this.byLowerName.get(name.toLowerCase());
  }

  /** The API a `<verb> <noun>` pair names, matched case-insensitively and in singular or plural. */
  resolve(verb: string, noun: string): Api | undefined {
    for (const n of nounVariants(noun)) {
      const api = this.get(verb + n);
      if (api && api.verb === verb.toLowerCase()) return api;
    }
    return undefined;
  }

  verbs(): string[] {
    return [...new Set(this.apis.map((a) => a.verb))].filter((v) => v !== '').sort();
  }

  nouns(verb: string): string[] {
    return this.apis
      .filter((a) => a.verb === verb.toLowerCase())
      .map((a) => a.noun)
      .sort();
  }

  private listApi(noun: string): Api | undefined {
    return this.apis.find((a) => a.verb === 'list' && a.noun === noun);
  }

  /**
   * The list command whose items a parameter takes as values, with cmk's heuristics: zoneid →
   * listZones, domainid → listDomains, id/ids → the list command of the API's own noun.
   */
  listApiForParam(param: string, api: Api): Api | undefined {
    const name = param.toLowerCase();
    const special: Record<string, string> = {
      account: 'accounts',
      ipaddressid: 'publicipaddresses',
      storageid: 'storagepools',
      associatednetworkid: 'networks',
    };
    let nouns: string[];
    if (name === 'id' || name === 'ids') nouns = api.verb === 'list' ? [api.noun] : nounVariants(api.noun);
    else if (special[name]) nouns = [special[name]];
    else nouns = nounVariants(name.replace(/ids?$/, '')).slice(1);
    for (const noun of nouns) {
      const found = this.listApi(noun);
      if (found) return found;
    }
    const stem = name.replace(/ids?$/, '');
    const candidates = this.apis.filter((a) => a.verb === 'list' && stem !== '' && a.noun.includes(stem));
    return candidates.length === 1 ? candidates[0] : undefined;
  }
}
