/**
 * The management server's own metrics, with prom-client (the standard Node client): API calls by
 * command, database statements, async jobs, agent connections, and the process (event loop lag,
 * memory, CPU, file descriptors: prom-client's default metrics).
 *
 * One registry per server instance rather than prom-client's global one, so that tests starting
 * several servers in one process do not share or double-register metrics.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { App } from '../context.ts';

/** API latency buckets in seconds: most calls take milliseconds, list calls on big clouds up to seconds. */
const API_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const DB_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];
const JOB_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800];

/** success for 200, client_error for 4xx CloudStack error codes (431, 432, 401...), server_error for 5xx (530...). */
export function outcomeOf(status: number): 'success' | 'client_error' | 'server_error' {
  if (status < 400) return 'success';
  return status < 500 ? 'client_error' : 'server_error';
}

/** The first word of a SQL statement, lower case (select, insert, begin...), or "other". */
export function statementKind(sql: string): string {
  const m = /^\s*([a-zA-Z]+)/.exec(sql);
  const word = m ? m[1].toLowerCase() : '';
  return ['select', 'insert', 'update', 'delete', 'begin', 'commit', 'rollback', 'with'].includes(word)
    ? word
    : 'other';
}

export class ServerMetrics {
  readonly registry = new Registry();
  private readonly apiDuration: Histogram<'command' | 'outcome'>;
  private readonly apiErrors: Counter<'command' | 'errorcode'>;
  private readonly dbDuration: Histogram<'statement' | 'outcome'>;
  private readonly jobDuration: Histogram<'command' | 'outcome'>;

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    this.apiDuration = new Histogram({
      name: 'nimbostack_api_request_duration_seconds',
      help: 'Time to answer an API call, by command (unknown for names that are not commands) and outcome; its _count is the request rate.',
      labelNames: ['command', 'outcome'],
      buckets: API_BUCKETS,
      registers: [this.registry],
    });
    this.apiErrors = new Counter({
      name: 'nimbostack_api_errors_total',
      help: 'API calls answered with an error, by command and CloudStack error code.',
      labelNames: ['command', 'errorcode'],
      registers: [this.registry],
    });
    this.dbDuration = new Histogram({
      name: 'nimbostack_db_statement_duration_seconds',
      help: 'Time the database took for a statement, by its kind (select, insert, update, delete, begin, commit...) and outcome.',
      labelNames: ['statement', 'outcome'],
      buckets: DB_BUCKETS,
      registers: [this.registry],
    });
    this.jobDuration = new Histogram({
      name: 'nimbostack_job_duration_seconds',
      help: 'Time an async job ran on this server (after waiting for earlier jobs on the same object), by command and outcome.',
      labelNames: ['command', 'outcome'],
      buckets: JOB_BUCKETS,
      registers: [this.registry],
    });
  }

  /** Records one API call; `command` must already be bounded (a declared command, login, logout or unknown). */
  observeApiCall(command: string, status: number, seconds: number): void {
    this.apiDuration.observe({ command, outcome: outcomeOf(status) }, seconds);
    if (status !== 200) this.apiErrors.inc({ command, errorcode: String(status) });
  }

  observeQuery(sql: string, seconds: number, failed: boolean): void {
    this.dbDuration.observe(
      { statement: statementKind(sql), outcome: failed ? 'error' : 'success' },
      seconds,
    );
  }

  observeJob(command: string, succeeded: boolean, seconds: number): void {
    this.jobDuration.observe({ command, outcome: succeeded ? 'success' : 'failure' }, seconds);
  }

  /** Adds the gauges read from the running server when scraped: jobs, agents, the connection pool. */
  attach(app: App): void {
    const registry = this.registry;
    // The two job gauges share one read per scrape: one indexed query on async_jobs (status, ms_id).
    let jobRead: { at: number; figures: Promise<{ count: number; oldest: number | null }> } | undefined;
    const jobFigures = () => {
      const now = Date.now();
      if (jobRead && now - jobRead.at < 1000) return jobRead.figures;
      const figures = app.store.db
        .selectFrom('async_jobs')
        .select((eb) => [eb.fn.countAll().as('n'), eb.fn.min('created').as('oldest')])
        .where('status', '=', 0)
        .where('ms_id', '=', app.server.id)
        .executeTakeFirst()
        .then((r) => ({ count: Number(r?.n ?? 0), oldest: r?.oldest == null ? null : Number(r.oldest) }));
      jobRead = { at: now, figures };
      return figures;
    };
    new Gauge({
      name: 'nimbostack_jobs_unfinished',
      help: 'Async jobs of this management server not finished yet: running, or queued behind an earlier job on the same object.',
      registers: [registry],
      async collect() {
        const r = await jobFigures();
        this.set(r.count);
      },
    });
    new Gauge({
      name: 'nimbostack_jobs_oldest_unfinished_age_seconds',
      help: 'Age of the oldest unfinished async job of this management server; 0 when there is none.',
      registers: [registry],
      async collect() {
        const r = await jobFigures();
        this.set(r.oldest === null ? 0 : Math.max(0, (app.clock.now() - r.oldest) / 1000));
      },
    });
    new Gauge({
      name: 'nimbostack_jobs_executing',
      help: 'Async jobs whose handler is running now on this server (the rest of the unfinished ones are queued).',
      registers: [registry],
      collect() {
        this.set(app.jobs.executing);
      },
    });
    new Gauge({
      name: 'nimbostack_agent_connections',
      help: 'WebSocket connections of host agents open to this management server.',
      registers: [registry],
      collect() {
        this.set(app.agents.stats().connections);
      },
    });
    new Gauge({
      name: 'nimbostack_agent_hosts',
      help: 'Hosts whose agent session this management server holds, by host status (Up, Connecting, Disconnected, Alert, Down).',
      labelNames: ['state'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [state, count] of Object.entries(app.agents.stats().hosts)) this.set({ state }, count);
      },
    });
    new Gauge({
      name: 'nimbostack_agent_commands_inflight',
      help: 'Commands sent to host agents still waiting for their answer.',
      registers: [registry],
      collect() {
        this.set(app.agents.stats().inflight);
      },
    });
    new Gauge({
      name: 'nimbostack_agent_startups_pending',
      help: 'Agents that presented a host no administrator has added yet.',
      registers: [registry],
      collect() {
        this.set(app.agents.stats().pendingHosts);
      },
    });
    if (app.store.poolStats) {
      const stats = app.store.poolStats;
      new Gauge({
        name: 'nimbostack_db_pool_connections',
        help: 'Connections of the database pool (PostgreSQL, MySQL/MariaDB) by state: idle, busy, and requests waiting for one.',
        labelNames: ['state'],
        registers: [registry],
        collect() {
          const s = stats();
          this.set({ state: 'idle' }, s.idle);
          this.set({ state: 'busy' }, s.total - s.idle);
          this.set({ state: 'waiting' }, s.waiting);
        },
      });
    }
  }
}
