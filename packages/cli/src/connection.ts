/**
 * Talks to the server for one profile. Credentials are tried in this order: API key and secret key
 * (signed requests), a session saved by `nimbo login`, then username and password (a fresh login,
 * kept for the life of the process, as cmk does). A saved session that has expired is dropped and,
 * if the profile has a password, replaced by a new login.
 */
import { rmSync } from 'node:fs';
import {
  type AsyncJobResult,
  CloudStackClient,
  CloudStackError,
  type Params,
  type SessionCredentials,
} from '@nimbostack/client';
import { type Profile, readJson, UsageError, writePrivateJson } from './config.ts';

/** Network failures carry the URL, which fetch's own "fetch failed" leaves out. */
async function reaching<T>(url: string, send: () => Promise<T>): Promise<T> {
  try {
    return await send();
  } catch (e) {
    const timedOut = e instanceof Error && e.name === 'TimeoutError';
    if (!timedOut && !(e instanceof TypeError && e.message === 'fetch failed')) throw e;
    const reason = timedOut ? 'timed out' : e.cause instanceof Error ? e.cause.message : 'fetch failed';
    throw new Error(`cannot reach ${url}: ${reason}`);
  }
}

interface SavedSession extends SessionCredentials {
  url: string;
  username?: string;
  domain?: string;
}

export class Connection {
  private client?: CloudStackClient;
  private usingSavedSession = false;

  constructor(
    readonly profile: Profile,
    private readonly sessionPath: string,
  ) {}

  get url(): string {
    if (!this.profile.url)
      throw new UsageError(`profile ${this.profile.name} has no url; set one with: nimbo set url <url>`);
    return this.profile.url;
  }

  private get clientOptions() {
    return { url: this.url, timeout: this.profile.timeout * 1000, pollInterval: 0.5 };
  }

  savedSession(): SavedSession | undefined {
    const saved = readJson<SavedSession>(this.sessionPath);
    return saved && saved.url === this.profile.url ? saved : undefined;
  }

  private async connect(): Promise<CloudStackClient> {
    const { apikey, secretkey, username, password, domain } = this.profile;
    if (apikey && secretkey)
      return new CloudStackClient({ ...this.clientOptions, apiKey: apikey, secretKey: secretkey });
    const saved = this.savedSession();
    if (saved) {
      this.usingSavedSession = true;
      return new CloudStackClient({ ...this.clientOptions, session: saved });
    }
    if (username && password) return this.login(username, password, domain);
    throw new UsageError(
      `profile ${this.profile.name} has no credentials: set apikey and secretkey, or username and password, or run nimbo login`,
    );
  }

  async login(username: string, password: string, domain = '/'): Promise<CloudStackClient> {
    const client = await reaching(this.url, () =>
      CloudStackClient.login(this.url, username, password, domain, this.clientOptions),
    );
    this.client = client;
    this.usingSavedSession = false;
    return client;
  }

  /** Saves the current login session so that later nimbo processes reuse it. */
  saveSession(client: CloudStackClient, username: string, domain: string): void {
    const session = client.sessionCredentials;
    if (!session) throw new Error('not a login session');
    writePrivateJson(this.sessionPath, {
      ...session,
      url: this.url,
      username,
      domain,
    } satisfies SavedSession);
    if (this.client === client) this.usingSavedSession = true;
  }

  forgetSession(): void {
    rmSync(this.sessionPath, { force: true });
  }

  /** Ends the saved session on the server (whatever credentials the profile has) and forgets it. */
  async logoutSavedSession(): Promise<boolean> {
    const saved = this.savedSession();
    if (!saved) return false;
    const client = new CloudStackClient({ ...this.clientOptions, session: saved });
    try {
      await reaching(this.url, () => client.request('logout'));
    } catch (e) {
      // A session the server has already ended (401, or 431 "no session") is as good as logged out.
      if (!(e instanceof CloudStackError && (e.errorcode === 401 || e.errorcode === 431))) throw e;
    } finally {
      this.forgetSession();
      if (this.usingSavedSession) this.client = undefined;
      this.usingSavedSession = false;
    }
    return true;
  }

  async request<T = Record<string, unknown>>(command: string, params: Params = {}): Promise<T> {
    this.client ??= await this.connect();
    const client = this.client;
    try {
      return await reaching(this.url, () => client.request<T>(command, params));
    } catch (e) {
      const { username, password, domain } = this.profile;
      if (!(e instanceof CloudStackError && e.errorcode === 401 && this.usingSavedSession)) throw e;
      this.forgetSession();
      this.usingSavedSession = false;
      if (!username || !password) throw e;
      const fresh = await this.login(username, password, domain);
      return reaching(this.url, () => fresh.request<T>(command, params));
    }
  }

  async waitForJob(
    jobid: string,
    onProgress: (job: AsyncJobResult) => void,
    signal: AbortSignal,
  ): Promise<AsyncJobResult> {
    this.client ??= await this.connect();
    const client = this.client;
    return reaching(this.url, () => client.waitForJob(jobid, onProgress, signal));
  }
}
