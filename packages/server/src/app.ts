/**
 * Builds a management server: database, migrations, seed data, the command registry, the HTTP
 * API and background work. main.ts runs it as a process; tests start it in-process or as a child.
 */
import { readFileSync } from 'node:fs';
import type { Server as HttpsServer } from 'node:https';
import { hostname } from 'node:os';
import cookie from '@fastify/cookie';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { AgentGateway } from './agents/gateway.ts';
import { peerUrlOf } from './agents/peers.ts';
import { type Clock, type IdSource, randomIds, systemClock } from './clock.ts';
import { heartbeatThresholdMs, markSilentServersDown, startHeartbeat } from './cluster/heartbeat.ts';
import { claimSqliteDatabase } from './cluster/sqlite-guard.ts';
import { allCommands, allResponseFields } from './commands.ts';
import type { ServerConfig } from './config.ts';
import { registerLegacyConsole } from './console/legacy.ts';
import { ConsoleProxy } from './console/proxy.ts';
import type { App } from './context.ts';
import { insertId, openStore } from './db/connection.ts';
import { upgradeSchema } from './db/upgrade.ts';
import { registerEc2Routes, startEc2Listener } from './ec2/endpoint.ts';
import { ApiError, CsErrorCode, ErrorCode } from './errors.ts';
import { EventBusPublisher } from './events/bus.ts';
import { releaseLeases } from './events/outbox.ts';
import { startHaMonitor } from './ha/monitor.ts';
import { releaseHaWork } from './ha/vm-ha.ts';
import { registerApiRoutes } from './http/api.ts';
import { errorBody, render } from './http/serialize.ts';
import { answerClientError, apiListener, watchTlsFiles } from './http/transport.ts';
import { openCloudKey } from './iam/cloud-key.ts';
import { seedIdentity } from './iam/seed.ts';
import { startCapacityChecks } from './infra/alerts.ts';
import { checkKvmLocalZone, startLocalZone } from './infra/local-zone.ts';
import { sweepLocks } from './jobs/locks.ts';
import { recoverIfPending, recoverInterruptedWork } from './jobs/recovery.ts';
import { JobRunner } from './jobs/runner.ts';
import { releaseMyLeases } from './jobs/scheduled.ts';
import { takeOverDeadServers } from './jobs/takeover.ts';
import { type Exporter, startExporter } from './metrics/exporter.ts';
import { statsOf } from './metrics/host-stats.ts';
import { ServerMetrics } from './metrics/server-metrics.ts';
import { startNetworkGc } from './network/network-gc.ts';
import { startVpnMonitor } from './network/vpn/vpn-apply.ts';
import { Registry } from './registry/registry.ts';
import { Settings } from './settings/settings.ts';
import { startTemplates } from './storage/extract.ts';
import { startObjectStoreUsage } from './storage/object-store-usage.ts';
import { startPoolMonitor } from './storage/pool-monitor.ts';
import { startSnapshotScheduler } from './storage/snapshot-policies.ts';
import { registerUi } from './ui/static.ts';
import { WebhookDispatcher } from './webhooks/dispatch.ts';

export const VERSION = '0.1.0';

export interface Server {
  app: App;
  http: FastifyInstance;
  /** The base URL once listening, e.g. http://127.0.0.1:8080 */
  url: string;
  /** The EC2 endpoint's own port's URL when `ec2Port` is set (/awsapi on `url` is always there). */
  ec2Url?: string;
  stop(): Promise<void>;
}

export interface StartOptions {
  clock?: Clock;
  ids?: IdSource;
  /**
   * Told when the heartbeat finds this server declared Down by its peers (cluster/heartbeat.ts),
   * after the server has stopped; main.ts exits. Without it the server just stops.
   */
  onFenced?: (why: string) => void;
}

export async function startServer(config: ServerConfig, options: StartOptions = {}): Promise<Server> {
  const log = pino({ level: config.logLevel, base: { service: 'nimbostack' } });
  // Before the database is touched: a machine that cannot be the KVM local zone's host says so.
  if (config.seedLocalZone) checkKvmLocalZone(config);
  const metrics = new ServerMetrics();
  const store = openStore(config.databaseUrl, {
    onQuery: (sql, seconds, failed) => metrics.observeQuery(sql, seconds, failed),
  });
  let http: FastifyInstance | undefined;
  let releaseSqlite: (() => void) | undefined;
  try {
    const clock = options.clock ?? systemClock;
    const ids = options.ids ?? randomIds;
    const name = config.serverName ?? hostname();
    const { applied, backup } = await upgradeSchema(store, {
      serverName: name,
      liveWindowMs: config.upgradeLiveWindow,
      backupsKept: config.upgradeBackupsKept,
      now: clock.now(),
    });
    if (applied.length > 0)
      log.info({ applied, backup, database: store.describe }, 'database schema upgraded');

    const settings = new Settings(store);
    await settings.load();
    const msUuid = ids.uuid();
    if (store.dialect === 'sqlite')
      releaseSqlite = await claimSqliteDatabase(store, store.describe.slice('sqlite:'.length), {
        uuid: msUuid,
        name,
        now: clock.now(),
        thresholdMs: heartbeatThresholdMs(settings),
      });
    // Before this server counts as running: a key that is not the cloud's stops it here.
    const secrets = await openCloudKey(store, config, { now: clock.now(), create: true });
    const now = clock.now();
    const msId = await insertId(store, store.db, 'management_servers', {
      uuid: msUuid,
      name,
      version: VERSION,
      started: now,
      last_heartbeat: now,
      state: 'Up',
    });
    // Declared before use so that services can reach the app through the runner lazily.
    const app: App = {
      config,
      store,
      log,
      clock,
      ids,
      settings,
      secrets,
      jobs: new JobRunner(() => app),
      registry: new Registry(allCommands, allResponseFields),
      agents: new AgentGateway(() => app),
      server: { id: msId, uuid: msUuid, name },
    };
    metrics.attach(app);
    app.jobs.onFinished = (command, ok, seconds) => metrics.observeJob(command, ok, seconds);
    if (await seedIdentity(app)) log.info('seeded ROOT domain, default roles and the admin account');
    // A server that starts again under its name is the same server: its previous run is gone
    // (killed, or it would have marked itself Down), so its unfinished jobs fail now rather than
    // when its heartbeat is a minute old. Servers sharing a database need names of their own.
    const killed = await store.db
      .updateTable('management_servers')
      .set({ state: 'Down' })
      .where('name', '=', name)
      .where('id', '!=', msId)
      .where('state', '=', 'Up')
      .executeTakeFirst();
    // Their jobs fail, the objects they held are settled and released (jobs/takeover.ts); the rest
    // of what they left half-done is settled before the API takes new work (jobs/recovery.ts), and
    // what cannot be yet (an expunge whose host is still reconnecting) is tried at heartbeats.
    const { failed } = await takeOverDeadServers(app);
    if (failed > 0) log.warn({ failed }, 'failed async jobs left unfinished by stopped management servers');
    await recoverInterruptedWork(app, failed > 0 || Number(killed.numUpdatedRows) > 0);

    settings.startRefresh();
    // The server object exists once start-up is done; a fence found before then waits for it.
    let serverReady: (s: Server) => void = () => undefined;
    const started = new Promise<Server>((resolve) => {
      serverReady = resolve;
    });
    const stopHeartbeat = startHeartbeat(
      app,
      async () => {
        const down = await markSilentServersDown(app);
        if (down.length > 0) log.warn({ servers: down }, 'declared silent management servers Down');
        const taken = await takeOverDeadServers(app);
        await sweepLocks(app);
        if (taken.failed > 0) await recoverInterruptedWork(app, true);
        else await recoverIfPending(app);
      },
      (why) => {
        log.error({ why }, 'this management server was declared Down: stopping');
        void started.then((s) => s.stop()).then(() => options.onFenced?.(why));
      },
    );
    const stopCapacityChecks = startCapacityChecks(app);
    const stopSnapshotScheduler = startSnapshotScheduler(app);
    const stopNetworkGc = startNetworkGc(app);
    const stopVpnMonitor = startVpnMonitor(app);
    await releaseHaWork(app);
    const stopHaMonitor = startHaMonitor(app);
    statsOf(app).start();
    const stopPoolMonitor = startPoolMonitor(app);
    const stopObjectStoreUsage = startObjectStoreUsage(app);
    // Events leave through the outbox: to RabbitMQ when configured, and to webhooks. Rows a killed
    // server had claimed are freed first, so a restart hands on everything still pending.
    const freed = await releaseLeases(app, 'down');
    if (freed > 0) log.info({ freed }, 'took over event outbox rows left claimed by stopped servers');
    const eventBus = config.eventBusUrl
      ? new EventBusPublisher(app, config.eventBusUrl, config.eventBusExchange)
      : undefined;
    eventBus?.start();
    const webhooks = new WebhookDispatcher(app);
    webhooks.start();

    const fastify = apiListener(config, log.child({ component: 'http' }), {
      clientErrorHandler: answerClientError,
    });
    http = fastify;
    await fastify.register(cookie);
    fastify.setErrorHandler((err, req, reply) => {
      req.log.warn({ err }, 'request failed before reaching the API');
      const status = (err as { statusCode?: number }).statusCode ?? 500;
      // A body over requestContentSize is refused as HTTP 413 before any of it is parsed.
      const e =
        status === 413
          ? new ApiError(
              413,
              CsErrorCode.SERVER_API,
              `The request body is larger than ${config.requestContentSize} bytes`,
            )
          : new ApiError(ErrorCode.INTERNAL_ERROR, CsErrorCode.SERVER_API, 'Malformed request');
      reply
        .code(e.errorcode)
        .header('content-type', 'application/json; charset=UTF-8')
        .send(render('json', 'errorresponse', errorBody(e), false));
    });
    registerApiRoutes(fastify, app, (command, status, seconds) =>
      metrics.observeApiCall(command, status, seconds),
    );
    registerEc2Routes(fastify, app);
    registerLegacyConsole(fastify, app);
    const consoleProxy = new ConsoleProxy(app);
    consoleProxy.register(fastify);
    await registerUi(fastify, config.uiDir);
    const stopTemplates = await startTemplates(app, fastify);
    const agentTls =
      config.agentTlsCert && config.agentTlsKey
        ? { cert: readFileSync(config.agentTlsCert), key: readFileSync(config.agentTlsKey) }
        : undefined;
    const agentPort = await app.agents.start(config.host, config.agentPort, agentTls);
    const agentUrl = `${agentTls ? 'wss' : 'ws'}://${config.host === '0.0.0.0' ? '127.0.0.1' : config.host}:${agentPort}`;
    log.info({ agentUrl, agentPort }, 'agent gateway started');
    // Peers forward commands for hosts held here, and relay consoles, to this address (agents/peers.ts).
    await store.db
      .updateTable('management_servers')
      .set({ peer_url: peerUrlOf(config, agentPort, !!agentTls) })
      .where('id', '=', msId)
      .execute();
    const localAgent = await startLocalZone(app, {
      fresh: applied.includes('0001-foundation'),
      agentUrl,
      ca: agentTls?.cert,
    });
    await fastify.listen({ port: config.port, host: config.host });
    const address = fastify.server.address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    const stopTlsWatch =
      config.tlsCert && config.tlsKey
        ? watchTlsFiles(fastify.server as HttpsServer, config.tlsCert, config.tlsKey, log)
        : () => undefined;
    // Metrics are not worth refusing the API for: a port in use is logged and the server goes on.
    let exporter: Exporter | undefined;
    try {
      exporter = await startExporter(app, metrics);
    } catch (err) {
      log.error({ err }, 'the prometheus exporter could not start');
    }
    // The EC2 API's own port, when configured: refusing to start beats an endpoint silently absent.
    const ec2 = config.ec2Port !== undefined ? await startEc2Listener(app, config) : undefined;
    if (ec2) log.info({ ec2Url: ec2.url }, 'EC2 endpoint started on its own port');
    const scheme = config.tlsCert ? 'https' : 'http';
    const url = `${scheme}://${config.host === '0.0.0.0' ? '127.0.0.1' : config.host}:${port}`;
    log.info({ url, database: store.describe, managementServer: name }, 'management server started');

    let stopping: Promise<void> | undefined;
    const server: Server = {
      app,
      http: fastify,
      url,
      ec2Url: ec2?.url,
      stop: () => {
        stopping ??= (async () => {
          stopHeartbeat();
          stopCapacityChecks();
          stopSnapshotScheduler();
          stopNetworkGc();
          stopVpnMonitor();
          stopHaMonitor();
          statsOf(app).stop();
          stopPoolMonitor();
          stopObjectStoreUsage();
          stopTemplates();
          stopTlsWatch();
          settings.stop();
          consoleProxy.stop();
          await exporter?.stop();
          await ec2?.close();
          await fastify.close();
          await localAgent?.stop();
          await app.agents.stop();
          await app.jobs.drain();
          await Promise.all([eventBus?.stop(), webhooks.stop()]);
          await releaseLeases(app, 'mine').catch(() => undefined);
          await releaseMyLeases(app).catch(() => undefined);
          await store.db
            .updateTable('management_servers')
            .set({ state: 'Down' })
            .where('id', '=', msId)
            .execute();
          await store.close();
          releaseSqlite?.();
          log.info('management server stopped');
        })();
        return stopping;
      },
    };
    serverReady(server);
    return server;
  } catch (e) {
    await http?.close().catch(() => undefined);
    await store.close().catch(() => undefined);
    releaseSqlite?.();
    throw e;
  }
}
