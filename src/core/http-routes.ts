/**
 * A service's HTTP surface as one table: method, path, who may call it, body limit, handler.
 * The dispatcher is written once for the region and the provisioning server:
 *
 *   no route's path matches     → null (not this service's; the caller answers 404)
 *   path matches, method not    → 405 with Allow
 *   body over the route's limit → 413, connection closed after the answer
 *   the caller may not call it  → the service's authorizer answers (401/403, or 404/409/503)
 *   otherwise                   → the handler; a thrown error goes to the service's errorReply
 *
 * The body is read (bounded) before the caller is checked, so a refused request never leaves
 * unread bytes on a kept-alive connection.
 */
import type { IncomingMessage } from 'node:http';
import { BodyTooLargeError, readBody, text, tooLargeHeaders, type Reply } from './http-util';

/**
 * Who may call a route:
 *  - open: anyone (the machine has nothing to show yet: enlistment, the bootstrap script);
 *  - provisioning-key: a provisioning server, with its own edge key or the shared key
 *    (Authorization: Bearer); the region's authorizer sets `authenticatedEdge` for an edge key;
 *  - node: the node itself, with its token while it is deploying or commissioning, from an
 *    address it owns (node-address.ts);
 *  - node-address: the node, from an address it owns, while it is deploying or commissioning
 *    (d-i fetches its preseed by the URL on its kernel line, which carries no token).
 */
export const ACCESS_KINDS = ['open', 'provisioning-key', 'node', 'node-address'] as const;
export type Access = (typeof ACCESS_KINDS)[number];

export type Method = 'GET' | 'HEAD' | 'POST';

/** A provisioning server that presented its own key (src/region/edges.ts): its name and the subnets it serves. */
export interface AuthenticatedEdge {
  name: string;
  subnets: readonly string[];
}

/** One request as a handler sees it: the path's captures, the body read within the limit. */
export interface RouteRequest {
  req: IncomingMessage;
  url: URL;
  method: string;
  params: string[];
  body: string;
  /**
   * Set by the region's authorizer on a provisioning-key route when the caller presented a
   * live edge's key; undefined for the shared key, a loopback caller and every other access.
   */
  authenticatedEdge?: AuthenticatedEdge;
}

/** One route; C is the service's options (passed to every handler), G what its authorizer grants. */
export interface Route<C, G> {
  methods: readonly Method[];
  /** For people and the docs: /metadata/latest/<id>/status/<event>. */
  path: string;
  /** Anchored; its captures become `params`. */
  pattern: RegExp;
  access: Access;
  /** Bytes; 0 for a route that takes no body. */
  bodyLimit: number;
  handler: (options: C, request: RouteRequest, grant: G) => Promise<Reply>;
  /** A provisioning-key route that a client on loopback may also call without the key (/metrics). */
  loopback?: boolean;
}

/** Checks the caller of a route: a grant for the handler, or the refusal to send. */
export type Authorizer<C, G> = (options: C, route: Route<C, G>, request: RouteRequest) => Promise<{ grant: G } | { refuse: Reply }>;

/** The first route whose path matches and whose methods include `method` (HEAD runs a GET route). */
export function selectRoute<R extends { methods: readonly Method[]; pattern: RegExp }>(routes: readonly R[], method: string, pathname: string): { route: R; params: string[] } | { allow: string[] } | null {
  let matched = false;
  const allow = new Set<string>();
  for (const route of routes) {
    const m = route.pattern.exec(pathname);
    if (!m) continue;
    matched = true;
    route.methods.forEach((x) => allow.add(x));
    if ((route.methods as readonly string[]).includes(method) || (method === 'HEAD' && route.methods.includes('GET'))) {
      return { route, params: m.slice(1).map((p) => p ?? '') };
    }
  }
  return matched ? { allow: [...allow] } : null;
}

/** The route table pattern each dispatched request matched, for the request metrics (metrics.ts). */
const matchedRoutes = new WeakMap<IncomingMessage, string>();

/** The `path` of the route that answered `req`, if a route table matched it (bounded: never the raw path). */
export function selectMatchedRoute(req: IncomingMessage): string | undefined {
  return matchedRoutes.get(req);
}

export async function dispatchRoutes<C, G>(
  routes: readonly Route<C, G>[],
  options: C,
  req: IncomingMessage,
  url: URL,
  authorize: Authorizer<C, G>,
  errorReply: (err: unknown, what: string) => Reply,
): Promise<Reply | null> {
  const method = req.method ?? 'GET';
  const found = selectRoute(routes, method, url.pathname);
  if (found === null) return null;
  if ('allow' in found) return text(405, 'method not allowed', { Allow: found.allow.join(', ') });
  const { route, params } = found;
  matchedRoutes.set(req, route.path);
  let body: string;
  try {
    body = await readBody(req, route.bodyLimit);
  } catch (err) {
    if (err instanceof BodyTooLargeError) return text(413, 'request body too large', tooLargeHeaders);
    throw err;
  }
  const request: RouteRequest = { req, url, method, params, body };
  try {
    const decision = await authorize(options, route, request);
    if ('refuse' in decision) return decision.refuse;
    return await route.handler(options, request, decision.grant);
  } catch (err) {
    return errorReply(err, `${method} ${url.pathname}`);
  }
}
