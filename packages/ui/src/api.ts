/**
 * The browser slice of the API client (packages/client signs with node:crypto and reads
 * Set-Cookie, neither of which a browser allows). The session lives in the HttpOnly `sessionkey`
 * and JSESSIONID cookies that login sets; calls are same-origin form POSTs that also carry the
 * session key from the login response as the `sessionkey` parameter (so they keep working where
 * an operator sets api.sessionkey.check.locations to demand it). A 401 means the session is gone
 * and the app returns to the login page.
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

/** The fields of loginresponse the UI keeps (the session key is kept apart, see sessionKey). */
export interface LoginInfo {
  userid: string;
  username: string;
  account: string;
  domainid: string;
  type: string;
  firstname?: string;
  lastname?: string;
  timeout?: number;
  /** 'true' when this login owes a two-factor code; 'true' in is2faverified once none is owed. */
  is2faenabled?: string;
  is2faverified?: string;
  /** The user's 2FA provider (totp, staticpin); absent when 2FA is mandated but not set up. */
  providerfor2fa?: string;
  issuerfor2fa?: string;
}

const SESSION_KEY = 'nimbostack.sessionkey';

/** The session key of this tab's login: sessionStorage, so a reload keeps it and closing forgets it. */
function sessionKey(): string | undefined {
  return sessionStorage.getItem(SESSION_KEY) ?? undefined;
}

let onUnauthorized: () => void = () => undefined;

export function setUnauthorizedHandler(handler: () => void): void {
  onUnauthorized = handler;
}

const PROJECT = 'nimbostack.projectid';

/** The project chosen in the header's switcher (ProjectSwitcher): this tab's calls are made in it. */
export function currentProject(): string | undefined {
  return sessionStorage.getItem(PROJECT) ?? undefined;
}

export function setCurrentProject(id: string | undefined): void {
  if (id) sessionStorage.setItem(PROJECT, id);
  else sessionStorage.removeItem(PROJECT);
}

function form(command: string, params: Params): URLSearchParams {
  const body = new URLSearchParams({ command, response: 'json' });
  const key = command === 'login' ? undefined : sessionKey();
  if (key) body.set('sessionkey', key);
  // As CloudStack's UI: in a project every call carries its projectid (commands without the
  // parameter ignore it); a call naming its own project keeps it.
  const project = command === 'login' ? undefined : currentProject();
  if (project && !params.projectid) body.set('projectid', project);
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
  const { sessionkey, ...info } = inner;
  sessionStorage.setItem(SESSION_KEY, String(sessionkey));
  return info as LoginInfo;
}

export async function logout(): Promise<void> {
  await post('logout', {}).catch(() => undefined);
  sessionStorage.removeItem(SESSION_KEY);
  setCurrentProject(undefined);
}

/** Whether this login still owes a two-factor code (the server allows only the 2FA commands). */
export function owesTwoFactorCode(info: LoginInfo): boolean {
  return info.is2faenabled === 'true' && info.is2faverified !== 'true';
}

/**
 * The otpauth:// URI that authenticator apps take (typed in, or as a QR code): the TOTP secret
 * with its issuer and account label, SHA-1, 6 digits, 30-second steps (the server's parameters).
 */
export function otpauthUri(secret: string, issuer: string, account: string): string {
  const label = encodeURIComponent(`${issuer}:${account}`);
  const q = new URLSearchParams({ secret, issuer, algorithm: 'SHA1', digits: '6', period: '30' });
  return `otpauth://totp/${label}?${q.toString()}`;
}

/** Sends one command; resolves with the object under its response name, throws ApiError. */
export async function api<T = Row>(command: string, params: Params = {}): Promise<T> {
  const { status, inner } = await post(command, params);
  if (status === 401 && command !== 'login') {
    sessionStorage.removeItem(SESSION_KEY);
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
