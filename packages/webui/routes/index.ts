/**
 * The web UI's whole HTTP surface, one line of policy per route: method, path, who may call
 * it, whether a cookie session must send its CSRF token, the body limit, the handler. The
 * dispatcher (app.ts) enforces the policy; test/packages/webui/routes.test.ts walks this table.
 */
import { accountRoutes } from './account';
import { auditRoutes } from './audit';
import { configRoutes } from './config';
import { deployRoutes } from './deploy';
import { edgeRoutes } from './edges';
import { imageRoutes } from './images';
import { metricsRoutes } from './metrics';
import { nodeRoutes } from './nodes';
import { overviewRoutes } from './overview';
import { pageRoutes } from './pages';
import type { Route } from './route';
import { sessionRoutes } from './session';
import { tokenRoutes } from './tokens';
import { userRoutes } from './users';

export const ROUTES: readonly Route[] = [
  ...sessionRoutes,
  ...overviewRoutes,
  ...nodeRoutes,
  ...deployRoutes,
  ...imageRoutes,
  ...configRoutes,
  ...accountRoutes,
  ...userRoutes,
  ...tokenRoutes,
  ...metricsRoutes,
  ...auditRoutes,
  ...edgeRoutes,
  ...pageRoutes,
];

/** The table without handlers, for tests and documentation. */
export function listRoutes(): { method: string; path: string; who: Route['who']; csrf: boolean; bodyLimit: number }[] {
  return ROUTES.map(({ method, path, who, csrf, bodyLimit }) => ({ method, path, who, csrf, bodyLimit }));
}
