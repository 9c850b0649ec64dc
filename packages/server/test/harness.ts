/**
 * Test harness: runs the real management server as a child process (as `npm start` does) on a
 * free port with its own data directory and database, and gives tests clients for it.
 * Databases: sqlite (default), or a fresh PostgreSQL / MariaDB database per server when the test
 * asks for one (see databaseUrls()).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { CloudStackClient } from '@nimbostack/client';
import { createConnection } from 'mysql2/promise';
import pg from 'pg';

export const REPO = resolve(import.meta.dirname, '../../..');
const MAIN = join(REPO, 'packages/server/src/main.ts');

export const POSTGRES_URL = process.env.NIMBOSTACK_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432';
export const MYSQL_URL = process.env.NIMBOSTACK_TEST_MYSQL ?? 'mysql://root@127.0.0.1:3306';

export type DbKind = 'sqlite' | 'postgres' | 'mysql';

/** The databases a multi-database test runs on: NIMBOSTACK_TEST_DBS=sqlite,postgres,mysql (default sqlite). */
export function testDatabases(): DbKind[] {
  return (process.env.NIMBOSTACK_TEST_DBS ?? 'sqlite').split(',').map((s) => s.trim()) as DbKind[];
}

/** Creates an empty database of the given kind and returns its URL and a function that drops it. */
export async function createDatabase(
  kind: DbKind,
  dataDir: string,
): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `nimbo_test_${randomBytes(6).toString('hex')}`;
  if (kind === 'sqlite')
    return { url: `sqlite:${join(dataDir, 'nimbostack.db')}`, drop: async () => undefined };
  if (kind === 'postgres') {
    const admin = new pg.Client({ connectionString: `${POSTGRES_URL}/postgres` });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.end();
    return {
      url: `${POSTGRES_URL}/${name}`,
      drop: async () => {
        const c = new pg.Client({ connectionString: `${POSTGRES_URL}/postgres` });
        await c.connect();
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        await c.end();
      },
    };
  }
  const admin = await createConnection(MYSQL_URL);
  await admin.query(`CREATE DATABASE ${name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
  await admin.end();
  return {
    url: `${MYSQL_URL}/${name}`,
    drop: async () => {
      const c = await createConnection(MYSQL_URL);
      await c.query(`DROP DATABASE IF EXISTS ${name}`);
      await c.end();
    },
  };
}

export interface TestServer {
  /** http://127.0.0.1:PORT */
  url: string;
  /** http://127.0.0.1:PORT/client/api */
  api: string;
  /** ws://127.0.0.1:PORT of the agent gateway, for host agents. */
  agentUrl: string;
  dataDir: string;
  databaseUrl: string;
  process: ChildProcess;
  /** Lines the server logged (JSON), for assertions on logs. */
  logs: string[];
  /** A session client logged in as admin/password. */
  admin: CloudStackClient;
  /** Sends SIGTERM and waits for the process to exit; keeps the data unless `keepData`. */
  stop(opts?: { keepData?: boolean }): Promise<number | null>;
}

export interface StartOptions {
  db?: DbKind;
  /** Reuse an existing data directory / database (restart tests). */
  dataDir?: string;
  databaseUrl?: string;
  env?: Record<string, string>;
  /** Extra node arguments, e.g. ['--import', fixture] to load test-only hooks into the server. */
  nodeArgs?: string[];
}

/** Runs one SQL statement (`?` placeholders) on a PostgreSQL or MariaDB test database, as an
 * operator would beside the servers; a connection per call. */
export async function sqlOn<T>(db: DbKind, url: string, query: string, params: unknown[] = []): Promise<T[]> {
  if (db === 'postgres') {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      let n = 0;
      return (
        await c.query(
          query.replace(/\?/g, () => `$${++n}`),
          params,
        )
      ).rows as T[];
    } finally {
      await c.end();
    }
  }
  const c = await createConnection(url);
  try {
    return (await c.query(query, params))[0] as T[];
  } finally {
    await c.end();
  }
}

export async function startServer(opts: StartOptions = {}): Promise<TestServer> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'nimbo-test-'));
  const database = opts.databaseUrl
    ? { url: opts.databaseUrl, drop: async () => undefined }
    : await createDatabase(opts.db ?? 'sqlite', dataDir);
  const child = spawn(process.execPath, ['--import', 'tsx', ...(opts.nodeArgs ?? []), MAIN], {
    cwd: REPO,
    env: {
      ...process.env,
      NIMBOSTACK_PORT: '0',
      NIMBOSTACK_AGENT_PORT: '0',
      NIMBOSTACK_HOST: '127.0.0.1',
      NIMBOSTACK_DATA: dataDir,
      DATABASE_URL: database.url,
      NIMBOSTACK_LOG_LEVEL: 'info',
      // Tests build the infrastructure they need; the local zone is opted into where tested.
      NIMBOSTACK_SEED_LOCAL_ZONE: 'false',
      ...opts.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  let agentUrl = '';
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const url = await new Promise<string>((resolveUrl, reject) => {
    const lines = createInterface({ input: child.stdout });
    const timer = setTimeout(() => reject(new Error(`server did not start in time\n${stderr}`)), 60_000);
    lines.on('line', (line) => {
      logs.push(line);
      if (line.includes('"agent gateway started"')) agentUrl = JSON.parse(line).agentUrl;
      if (line.includes('"management server started"')) {
        clearTimeout(timer);
        resolveUrl(JSON.parse(line).url);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}\n${stderr}\n${logs.join('\n')}`));
    });
  });
  const api = `${url}/client/api`;
  const admin = await CloudStackClient.login(api, 'admin', 'password');
  return {
    url,
    api,
    agentUrl,
    dataDir,
    databaseUrl: database.url,
    process: child,
    logs,
    admin,
    async stop({ keepData = false } = {}) {
      const exited = new Promise<number | null>((r) => {
        if (child.exitCode !== null) r(child.exitCode);
        else child.once('exit', (code) => r(code));
      });
      child.kill('SIGTERM');
      const code = await exited;
      if (!keepData) {
        await database.drop();
        rmSync(dataDir, { recursive: true, force: true });
      }
      return code;
    },
  };
}

/** Registers API keys for a user through the API and returns a signing client for them. */
export async function keyClient(
  server: TestServer,
  userId: string,
  via = server.admin,
): Promise<CloudStackClient> {
  const keys = await via.request<{ userkeys: { apikey: string; secretkey: string } }>('registerUserKeys', {
    id: userId,
  });
  return new CloudStackClient({
    url: server.api,
    apiKey: keys.userkeys.apikey,
    secretKey: keys.userkeys.secretkey,
  });
}

/** Creates an account (with its first user) and returns it with a session client for that user. */
export async function createAccountAndLogin(
  server: TestServer,
  opts: {
    name: string;
    accounttype?: number;
    domainid?: string;
    domainPath?: string;
    via?: CloudStackClient;
  },
): Promise<{ account: Record<string, unknown>; client: CloudStackClient; userId: string }> {
  const via = opts.via ?? server.admin;
  const r = await via.request<{ account: Record<string, unknown> & { user: { id: string }[] } }>(
    'createAccount',
    {
      username: opts.name,
      password: 'secret-pw',
      email: `${opts.name}@example.com`,
      firstname: opts.name,
      lastname: 'Test',
      accounttype: opts.accounttype ?? 0,
      domainid: opts.domainid,
    },
  );
  const client = await CloudStackClient.login(server.api, opts.name, 'secret-pw', opts.domainPath ?? '/');
  return { account: r.account, client, userId: r.account.user[0].id };
}
