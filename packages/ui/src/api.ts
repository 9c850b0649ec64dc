/**
 * The browser slice of the API client (packages/client signs with node:crypto and reads
 * Set-Cookie, neither of which a browser allows). The session lives in the HttpOnly `sessionkey`
 * and JSESSIONID cookies that login sets, so calls are same-origin form POSTs that carry no key;
 * a 401 means the session is gone and the app returns to the login page.
 */

export const API_URL = '/client/api';

export type Params = Record<string, string | number | boolean | undefined | null>;
// API objects are open-ended (fields vary by version and role); screens read what they show.
// biome-ignore lint/suspicious/noExplicitAny: see above
export type Row = Record<string, any>;

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly errorcode: number,
    readonly errortext: string,
    readonly command: string,
  ) {
    super(errortext);
  }
}

/** The fields of loginresponse the UI keeps (never the session key: the cookie holds it). */
export interface LoginInfo {
  userid: string;
  username: string;
  account: string;
  domainid: string;
  type: string;
  firstname?: string;
  lastname?: string;
  timeout?: number;
}

let onUnauthorized: () => void = () => undefined;

export function setUnauthorizedHandler(handler: () => void): void {
  onUnauthorized = handler;
}

function form(command: string, params: Params): URLSearchParams {
  const body = new URLSearchParams({ command, response: 'json' });
  for (const [k, v] of Object.entries(params))
    if (v !== undefined && v !== null && v !== '') body.set(k, String(v));
  return body;
}

async function post(command: string, params: Params): Promise<{ status: number; inner: Row }> {
  let res: Response;
  try {
    res = await fetch(API_URL, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: form(command, params),
    });
  } catch (e) {
    throw new ApiError(0, 0, `The management server cannot be reached (${(e as Error).message})`, command);
  }
  const text = await res.text();
  let json: Record<string, Row>;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ApiError(
      res.status,
      res.status,
      `Unexpected response from the server (HTTP ${res.status})`,
      command,
    );
  }
  return { status: res.status, inner: Object.values(json)[0] ?? {} };
}

export async function login(username: string, password: string, domain: string): Promise<LoginInfo> {
  const { status, inner } = await post('login', { username, password, domain: domain || '/' });
  if (status !== 200)
    throw new ApiError(status, Number(inner.errorcode ?? status), String(inner.errortext), 'login');
  return inner as LoginInfo;
}

export async function logout(): Promise<void> {
  await post('logout', {}).catch(() => undefined);
}

/** Sends one command; resolves with the object under its response name, throws ApiError. */
export async function api<T = Row>(command: string, params: Params = {}): Promise<T> {
  const { status, inner } = await post(command, params);
  if (status === 401 && command !== 'login') {
    onUnauthorized();
    throw new ApiError(401, 401, 'Your session has expired; please log in again', command);
  }
  if (status !== 200)
    throw new ApiError(
      status,
      Number(inner.errorcode ?? status),
      String(inner.errortext ?? `HTTP ${status}`),
      command,
    );
  return inner as T;
}

export interface ListPage {
  items: Row[];
  count: number;
}

/** One page of a list command; `key` is the array's name in the response (e.g. virtualmachine). */
export async function listPage(command: string, key: string, params: Params): Promise<ListPage> {
  const r = await api(command, params);
  const items = (r[key] as Row[] | undefined) ?? [];
  return { items, count: Number(r.count ?? items.length) };
}

/** Every item of a list (pages of 500, the server's default maximum). */
export async function listAll(
  command: string,
  key: string,
  params: Params = {},
  max = 100_000,
): Promise<Row[]> {
  const out: Row[] = [];
  for (let page = 1; ; page++) {
    const { items, count } = await listPage(command, key, { ...params, page, pagesize: 500 });
    out.push(...items);
    if (items.length < 500 || out.length >= count || out.length >= max) return out;
  }
}

export interface Job {
  jobid: string;
  jobstatus: number;
  jobresult?: Row;
  jobprocstatus?: number;
  cmd?: string;
}

/** Polls an async job until it ends; resolves with its result, throws its error as ApiError. */
export async function waitForJob(jobid: string, command: string, onPoll?: (job: Job) => void): Promise<Row> {
  for (let delay = 300; ; delay = Math.min(delay * 1.5, 2000)) {
    const job = await api<Job>('queryAsyncJobResult', { jobid });
    onPoll?.(job);
    if (job.jobstatus === 1) return job.jobresult ?? {};
    if (job.jobstatus === 2) {
      const r = job.jobresult ?? {};
      throw new ApiError(200, Number(r.errorcode ?? 530), String(r.errortext ?? 'The job failed'), command);
    }
    await new Promise((r) => setTimeout(r, delay));
  }
}

export function errorText(e: unknown): string {
  if (e instanceof ApiError) return e.errorcode ? `${e.errortext} (${e.errorcode})` : e.errortext;
  return e instanceof Error ? e.message : String(e);
}
