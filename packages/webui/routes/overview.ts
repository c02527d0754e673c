/** The dashboard numbers, the live event stream and the roles: read by any logged-in user. */
import { loadRoles } from '../../../src/contract/roles';
import { loadHealth } from '../health';
import { NO_BODY, json, written, type Route } from './route';

export const overviewRoutes: Route[] = [
  {
    method: 'GET',
    path: '/api/dashboard',
    who: 'session',
    csrf: false,
    bodyLimit: NO_BODY,
    async handler({ options }) {
      // Counts kept by the store: no node is read.
      const counts = await options.store.countByStatus();
      const total = Object.values(counts).reduce((a, b) => a + b, 0);
      return json({ total, counts, health: await loadHealth({ paths: options.paths, config: await options.loadConfig() }) });
    },
  },
  {
    method: 'GET',
    path: '/api/events',
    who: 'session',
    csrf: false,
    bodyLimit: NO_BODY,
    async handler(ctx) {
      ctx.services.openEvents(ctx.req, ctx.res, ctx.auth.user.name);
      return written(200);
    },
  },
  {
    method: 'GET',
    path: '/api/roles',
    who: 'session',
    csrf: false,
    bodyLimit: NO_BODY,
    handler: async ({ options }) => json((await loadRoles(options.paths)).map((r) => ({ name: r.name, description: r.description, releases: Object.keys(r.packages).sort() }))),
  },
];
