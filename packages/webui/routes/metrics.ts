/**
 * Prometheus metrics of the web UI process (docs/metrics.md): an admin view, so an admin
 * session or an admin's API token (Authorization: Bearer, how a Prometheus scrape job calls it).
 */
import { renderMetrics } from '../../../src/core/metrics';
import { NO_BODY, written, type Route } from './route';

export const metricsRoutes: Route[] = [
  {
    method: 'GET',
    path: '/api/metrics',
    who: 'admin',
    csrf: false,
    bodyLimit: NO_BODY,
    async handler({ req, res }) {
      const { type, body } = await renderMetrics();
      const bytes = Buffer.from(body);
      res.writeHead(200, { 'Content-Type': type, 'Content-Length': String(bytes.length), 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' });
      res.end(req.method === 'HEAD' ? undefined : bytes);
      return written(200);
    },
  },
];
