/**
 * A CloudStack API client: API-key signing or a login session, JSON responses, CloudStack errors
 * as exceptions, and polling of async jobs. Used by the CLI, the tests and the benchmarks.
 */
import { apiDate, signParams } from './signing.ts';

export type Params = Record<string, string | number | boolean | undefined | Record<string, string>[]>;

export class CloudStackError extends Error {
  constructor(
    readonly status: number,
    readonly errorcode: number,
    readonly cserrorcode: number | undefined,
    readonly errortext: string,
    readonly command: string,
  ) {
    super(`${command}: ${errorcode} ${errortext}`);
  }
}

export interface ClientOptions {
  /** Endpoint, e.g. http://localhost:8080/client/api */
  url: string;
  apiKey?: string;
  secretKey?: string;
  /** Use POST with a form body (always used for login and for password/userdata). */
  post?: boolean;
  /** Seconds between job polls. */
  pollInterval?: number;
  /** Request timeout in milliseconds. */
  timeout?: number;
  /** Resume a login session saved earlier (see `sessionCredentials`). */
  session?: SessionCredentials;
}

/** What a client needs to go on using a login session: its cookies and its session key. */
export interface SessionCredentials {
  cookie: string;
  sessionKey: string;
}

export interface AsyncJobResult {
  jobid: string;
  jobstatus: number;
  jobresultcode: number;
  jobresult?: Record<string, unknown>;
  [key: string]: unknown;
}

/** Flattens map parameters (details: [{k: v}]) into name[i].field=value. */
export function flattenParams(params: Params): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) {
      value.forEach((entry, i) => {
        for (const [field, v] of Object.entries(entry)) out[`${name}[${i}].${field}`] = String(v);
      });
    } else {
      out[name] = String(value);
    }
  }
  return out;
}

export class CloudStackClient {
  private session?: SessionCredentials;
  /** The login response (userid, account, domainid, sessionkey, ...) of a client made by `login`. */
  loginResponse?: Record<string, unknown>;

  constructor(readonly options: ClientOptions) {
    this.session = options.session;
  }

  /** The session of a logged-in client, for callers that persist it between processes. */
  get sessionCredentials(): SessionCredentials | undefined {
    return this.session;
  }

  /** Logs in with a username and password and returns a client bound to that session. */
  static async login(
    url: string,
    username: string,
    password: string,
    domain = '/',
    options: Omit<ClientOptions, 'url' | 'session'> = {},
  ): Promise<CloudStackClient> {
    const client = new CloudStackClient({ ...options, url });
    const body = new URLSearchParams({ command: 'login', username, password, domain, response: 'json' });
    const res = await fetch(url, {
      method: 'POST',
      body,
      signal: AbortSignal.timeout(options.timeout ?? 120_000),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    const json = (await res.json()) as { loginresponse: Record<string, unknown> };
    const inner = json.loginresponse;
    if (res.status !== 200) {
      throw new CloudStackError(
        res.status,
        Number(inner.errorcode),
        inner.cserrorcode as number,
        String(inner.errortext),
        'login',
      );
    }
    const cookies = res.headers.getSetCookie().map((c) => c.split(';')[0]);
    client.session = { cookie: cookies.join('; '), sessionKey: String(inner.sessionkey) };
    client.loginResponse = inner;
    return client;
  }

  /** Sends one command and returns the object under its response name. */
  async request<T = Record<string, unknown>>(command: string, params: Params = {}): Promise<T> {
    const flat: Record<string, string> = { ...flattenParams(params), command, response: 'json' };
    const headers: Record<string, string> = {};
    if (this.session) {
      flat.sessionkey = this.session.sessionKey;
      headers.cookie = this.session.cookie;
    } else if (this.options.apiKey && this.options.secretKey) {
      flat.apiKey = this.options.apiKey;
      flat.signatureVersion = '3';
      flat.expires = apiDate(Date.now() + 10 * 60 * 1000);
      flat.signature = signParams(flat, this.options.secretKey);
    }
    const query = new URLSearchParams(flat).toString();
    const post = this.options.post || 'password' in flat || 'userdata' in flat;
    const signal = AbortSignal.timeout(this.options.timeout ?? 120_000);
    const res = post
      ? await fetch(this.options.url, {
          method: 'POST',
          body: query,
          signal,
          headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' },
        })
      : await fetch(`${this.options.url}?${query}`, { headers, signal });
    const text = await res.text();
    let json: Record<string, Record<string, unknown>>;
    try {
      json = JSON.parse(text);
    } catch {
      throw new CloudStackError(
        res.status,
        res.status,
        undefined,
        `unexpected response: ${text.slice(0, 200)}`,
        command,
      );
    }
    const inner = Object.values(json)[0] ?? {};
    if (res.status !== 200) {
      throw new CloudStackError(
        res.status,
        Number(inner.errorcode ?? res.status),
        inner.cserrorcode as number | undefined,
        String(inner.errortext ?? text),
        command,
      );
    }
    return inner as T;
  }

  /**
   * Polls a job until it ends; resolves with its result or throws its CloudStack error. Aborting
   * `signal` stops the polling (rejecting with the signal's reason) and leaves the job running.
   */
  async waitForJob(
    jobid: string,
    onProgress?: (job: AsyncJobResult) => void,
    signal?: AbortSignal,
  ): Promise<AsyncJobResult> {
    const interval = (this.options.pollInterval ?? 0.2) * 1000;
    for (;;) {
      signal?.throwIfAborted();
      const job = await this.request<AsyncJobResult>('queryAsyncJobResult', { jobid });
      onProgress?.(job);
      if (job.jobstatus === 1) return job;
      if (job.jobstatus === 2) {
        const r = (job.jobresult ?? {}) as { errorcode?: number; errortext?: string };
        throw new CloudStackError(
          200,
          Number(r.errorcode ?? job.jobresultcode),
          undefined,
          String(r.errortext ?? 'job failed'),
          String(job.cmd ?? 'job'),
        );
      }
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => {
          clearTimeout(timer);
          reject(signal?.reason);
        };
        const timer = setTimeout(() => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        }, interval);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    }
  }

  /** Runs a command; for async commands, waits and returns the job's result object. */
  async call<T = Record<string, unknown>>(command: string, params: Params = {}): Promise<T> {
    const first = await this.request(command, params);
    if (typeof first.jobid === 'string' && Object.keys(first).every((k) => k === 'jobid' || k === 'id')) {
      const job = await this.waitForJob(first.jobid);
      return (job.jobresult ?? {}) as T;
    }
    return first as T;
  }

  /** Fetches every page of a list command and returns the items. */
  async listAll<T = Record<string, unknown>>(
    command: string,
    key: string,
    params: Params = {},
    pagesize = 500,
  ): Promise<T[]> {
    const items: T[] = [];
    for (let page = 1; ; page++) {
      const r = await this.request<Record<string, unknown>>(command, { ...params, page, pagesize });
      const batch = (r[key] as T[] | undefined) ?? [];
      items.push(...batch);
      if (batch.length < pagesize || items.length >= Number(r.count ?? 0)) return items;
    }
  }
}
