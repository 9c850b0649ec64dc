/**
 * The Prometheus exporter: its own HTTP listener (as upstream's, apart from the API port, so that
 * a firewall can open it to the monitoring network only), serving /metrics in the Prometheus text
 * format to the addresses of prometheus.exporter.allowed.ips. Others get 403.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { App } from '../context.ts';
import { cloudExposition } from './cloud-metrics.ts';
import type { ServerMetrics } from './server-metrics.ts';
import {
  isAllowed,
  PROMETHEUS_ALLOWED_IPS,
  PROMETHEUS_ENABLE,
  PROMETHEUS_PORT,
  parseAllowList,
} from './settings.ts';

const LANDING =
  '<html><head><title>Nimbostack exporter</title></head><body><h1>Nimbostack exporter</h1><p><a href="/metrics">Metrics</a></p></body></html>';

export interface Exporter {
  port: number;
  stop(): Promise<void>;
}

/** Starts the exporter when prometheus.exporter.enable is true; undefined when it is off. */
export async function startExporter(app: App, metrics: ServerMetrics): Promise<Exporter | undefined> {
  if (!app.settings.get(PROMETHEUS_ENABLE)) return undefined;
  const cloudText = cloudExposition(app);
  const contentType = metrics.registry.contentType;
  // The allow-list is read on every scrape (it may change at run time); parsed again only when it did.
  let allowText: string | undefined;
  let allow = parseAllowList('');
  const allowed = (remote: string | undefined) => {
    const text = app.settings.get(PROMETHEUS_ALLOWED_IPS);
    if (text !== allowText) {
      try {
        allow = parseAllowList(text);
      } catch {
        // A value that got into the database unchecked allows nobody rather than everybody.
        allow = parseAllowList('');
      }
      allowText = text;
    }
    return isAllowed(allow, remote);
  };

  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('Method Not Allowed');
      return;
    }
    if (path === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(LANDING);
      return;
    }
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Not Found');
      return;
    }
    if (!allowed(req.socket.remoteAddress)) {
      app.log.debug(
        { remote: req.socket.remoteAddress },
        'refused a metrics scrape from an address not allowed',
      );
      res.writeHead(403, { 'content-type': 'text/plain' }).end('Forbidden');
      return;
    }
    Promise.all([cloudText(), metrics.registry.metrics()]).then(
      ([cloud, own]) => {
        res
          .writeHead(200, { 'content-type': contentType })
          .end(req.method === 'HEAD' ? undefined : cloud + own);
      },
      (err) => {
        app.log.error({ err }, 'computing metrics failed');
        res
          .writeHead(500, { 'content-type': 'text/plain' })
          .end('The metrics could not be computed; see the server log');
      },
    );
  });
  // Scrapes are short requests; an idle keep-alive connection need not outlive a scrape interval.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(app.settings.get(PROMETHEUS_PORT), app.config.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  app.log.info({ port, path: '/metrics' }, 'prometheus exporter started');
  return {
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
