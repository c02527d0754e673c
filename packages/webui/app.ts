/**
 * The web UI's HTTP handler: one REST API under /uec-provisioning/api/ that the pages, the
 * scripts and the CLI all use, and the server-rendered pages under /uec-provisioning/.
 * The same path works on the service's own port and behind apache2's reverse proxy.
 *
 * Every route is a line of the table in routes/index.ts (who may call it, CSRF, body limit);
 * this dispatcher enforces that policy once: authentication (session cookie, or an API token
 * as Bearer), the body limit (413), the CSRF token of a cookie session (X-CSRF-Token header or
 * _csrf form field), the admin role, 404 against 405 with Allow, JSON against a form post's
 * 303 (or HTML error page, so the pages work without script), errors to statuses, and the
 * access log.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { UecError, describeError, type ErrorCode } from '../../src/core/errors';
import { recordRequest, useMetricsSources } from '../../src/core/metrics';
import { BodyTooLargeError, clientAddress, loggablePath, parseJsonObject, readBody, tooLargeHeaders } from '../../src/core/http-util';
import { selectClient, DEFAULT_TRUSTED_PROXIES, parseTrustedProxies } from './client-address';
import * as pages from './pages';
import type { PowerAction } from './power';
import { ROUTES } from './routes';
import { BASE, COOKIE, HttpError, allowedMethods, field, selectMethod, selectRoutes, type Auth, type Body, type Outcome, type RouteContext, type RouteMatch } from './routes/route';
import { createWebuiServices, type WebuiOptions } from './services';
import { csrfMatches } from './sessions';

export { BASE, COOKIE } from './routes/route';
export { ROUTES, listRoutes } from './routes';
export type { WebuiOptions } from './services';

const STATUS_OF: Partial<Record<ErrorCode, number>> = {
  NODE_UNKNOWN: 404,
  NODE_STATE: 409,
  NODE_CONFLICT: 409,
  ROLE_UNKNOWN: 409,
  INVALID_VALUE: 400,
  USAGE: 400,
  CONFIG_INVALID_VALUE: 400,
  CONFIG_UNKNOWN_KEY: 400,
  CONFIG_OVERRIDDEN: 409,
  ACCOUNT_FAILED: 400,
  POWER_FAILED: 502,
  TEMPLATE_NOT_FOUND: 500,
  UPSTREAM_FAILED: 502,
};

const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'Cache-Control': 'no-store',
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'same-origin',
  'Content-Security-Policy': "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
};

function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) out.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  return out;
}

function isForm(req: IncomingMessage): boolean {
  return (req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded');
}

/** The body as fields: JSON (an object) or a form; anything else only as text (a CSV import). */
async function parseBody(req: IncomingMessage, limit: number): Promise<{ body: Body; text: string }> {
  let text: string;
  try {
    text = await readBody(req, limit);
  } catch (err) {
    if (err instanceof BodyTooLargeError) throw new HttpError(413, err.message, tooLargeHeaders);
    throw err;
  }
  const type = req.headers['content-type'] ?? '';
  if (text === '') return { body: {}, text };
  if (type.startsWith('application/json')) {
    const parsed = parseJsonObject(text);
    if ('error' in parsed) throw new HttpError(400, parsed.error);
    const body: Body = {};
    for (const [k, v] of Object.entries(parsed.value)) {
      if (Array.isArray(v)) body[k] = v.map((x) => String(x));
      else if (v !== null && v !== undefined) body[k] = typeof v === 'object' ? JSON.stringify(v) : String(v);
    }
    return { body, text };
  }
  if (type.startsWith('application/x-www-form-urlencoded')) {
    const body: Body = {};
    for (const [k, v] of new URLSearchParams(text)) {
      const prev = body[k];
      body[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
    }
    return { body, text };
  }
  return { body: {}, text };
}

/** Where a form post returns to: a path inside the UI only. */
function backTo(body: Body, fallback: string): string {
  const back = field(body, '_back');
  return back.startsWith(`${BASE}/`) && !back.startsWith(`${BASE}//`) && !/[\\\r\n]/.test(back) ? back : fallback;
}

function withMessage(location: string, msg: string): string {
  return `${location}${location.includes('?') ? '&' : '?'}msg=${encodeURIComponent(msg.slice(0, 300))}`;
}

/** HTML forms can only GET and POST: a POST to an API path with _method=DELETE|PUT means that method. */
const OVERRIDES = ['DELETE', 'PUT'];

export interface Webui {
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
  /** Power a node on, off or cycle; recorded as a node event either way. */
  power(ref: string, action: PowerAction, who: string): Promise<string>;
  close(): void;
}

export function createWebui(options: WebuiOptions): Webui {
  const { accounts, sessions, log } = options;
  const services = createWebuiServices(options);
  const trusted = options.trustedProxies ?? parseTrustedProxies(DEFAULT_TRUSTED_PROXIES) ?? [];
  // Metrics (src/core/metrics.ts): nodes by status from this store; each request by its route's pattern.
  useMetricsSources({ countNodesByStatus: () => options.store.countByStatus() });
  const matchedRoutes = new WeakMap<IncomingMessage, string>();

  async function authenticate(req: IncomingMessage): Promise<Auth | undefined> {
    const header = req.headers.authorization;
    if (header?.startsWith('Bearer ')) {
      const user = await accounts.userOfToken(header.slice(7).trim());
      return user ? { user } : undefined;
    }
    const sid = parseCookies(req.headers.cookie).get(COOKIE);
    if (!sid) return undefined;
    const session = sessions.get(sid);
    if (!session) return undefined;
    const user = await accounts.find(session.user);
    if (!user || user.generation !== session.generation) {
      sessions.close(sid);
      return undefined;
    }
    return { user, session };
  }

  function reply(res: ServerResponse, status: number, type: string, body: string, headers: Record<string, string> = {}): void {
    const buf = Buffer.from(body);
    res.writeHead(status, { 'Content-Type': type, 'Content-Length': String(buf.length), ...SECURITY_HEADERS, ...headers });
    res.end(buf);
  }

  /** Send an outcome; its status. */
  function send(res: ServerResponse, outcome: Outcome): number {
    switch (outcome.kind) {
      case 'json':
        reply(res, outcome.status, 'application/json', `${JSON.stringify(outcome.value ?? null)}\n`, outcome.headers);
        return outcome.status;
      case 'html':
        reply(res, outcome.status, 'text/html; charset=utf-8', outcome.html, outcome.headers);
        return outcome.status;
      case 'redirect':
        reply(res, 303, 'text/plain; charset=utf-8', `see ${outcome.location}\n`, { Location: outcome.location, ...outcome.headers });
        return 303;
      case 'written':
        return outcome.status;
    }
  }

  /** An API answer to a form post: back to the page it came from (or where the route says). */
  async function formOutcome(match: RouteMatch, ctx: RouteContext & { auth: Auth }, outcome: Outcome): Promise<Outcome> {
    if (outcome.kind !== 'json') return outcome;
    const special = await match.route.formReply?.(ctx, outcome.value);
    if (special) return special.kind === 'redirect' || special.kind === 'html' ? { ...special, headers: { ...outcome.headers, ...special.headers } } : special;
    const v = outcome.value as Record<string, unknown> | null;
    const message = v && typeof v === 'object' && 'message' in v ? String(v.message) : 'done';
    return { kind: 'redirect', location: withMessage(backTo(ctx.body, `${BASE}/`), message), headers: outcome.headers };
  }

  async function dispatch(req: IncomingMessage, res: ServerResponse, url: URL, method: string, client: { address: string; secure: boolean }): Promise<number> {
    const pathname = url.pathname;
    if (pathname === '/' || pathname === BASE) return send(res, { kind: 'redirect', location: `${BASE}/` });
    if (!pathname.startsWith(`${BASE}/`)) throw new HttpError(404, 'not found');
    const rel = pathname.slice(BASE.length);
    const isApi = rel.startsWith('/api/');
    const form = isForm(req);
    const matches = selectRoutes(ROUTES, rel);
    let match = selectMethod(matches, method);
    const overrides = isApi && form && method === 'POST' ? matches.filter((m) => OVERRIDES.includes(m.route.method)) : [];
    const candidate = match ?? overrides[0];

    let auth: Auth | undefined;
    if (!candidate || candidate.route.who !== 'public') {
      auth = await authenticate(req);
      if (!auth) {
        if (isApi || method !== 'GET') throw new HttpError(401, 'log in first (session cookie or Authorization: Bearer <API token>)', { 'WWW-Authenticate': 'Bearer realm="uec-provisioning"' });
        return send(res, { kind: 'redirect', location: `${BASE}/login` });
      }
    }
    if (!candidate) {
      if (matches.length > 0) throw new HttpError(405, `method ${method} not allowed here`, { Allow: allowedMethods(matches).join(', ') });
      throw new HttpError(404, isApi ? 'no such API route' : 'no such page');
    }

    const readLimit = Math.max(...[match, ...overrides].filter((m): m is RouteMatch => m !== undefined).map((m) => m.route.bodyLimit));
    const { body, text } = await parseBody(req, readLimit);
    const override = field(body, '_method').toUpperCase();
    if (overrides.length > 0 && OVERRIDES.includes(override)) match = overrides.find((m) => m.route.method === override) ?? match;
    if (!match) throw new HttpError(405, `method ${method} not allowed here`, { Allow: allowedMethods(matches).join(', ') });
    const { route, params } = match;
    matchedRoutes.set(req, route.path);
    if (Buffer.byteLength(text) > route.bodyLimit) throw new HttpError(413, `request body over ${route.bodyLimit} bytes`, tooLargeHeaders);

    const ctx: RouteContext = { options, services, req, res, url, params, body, bodyText: text, form, client: client.address, secure: client.secure, auth };
    if (route.who === 'public') return send(res, await route.handler(ctx));
    if (!auth) throw new HttpError(401, 'log in first');
    if (route.csrf && auth.session && !csrfMatches((req.headers['x-csrf-token'] as string | undefined) ?? field(body, '_csrf'), auth.session.csrf)) {
      throw new HttpError(403, 'missing or wrong CSRF token (send X-CSRF-Token, or _csrf in the form)');
    }
    if (route.who === 'admin' && auth.user.role !== 'admin') throw new HttpError(403, `user ${auth.user.name} has the ${auth.user.role} role; this needs admin`);
    const signedIn = { ...ctx, auth };
    const outcome = await route.handler(signedIn);
    if (res.headersSent) return outcome.kind === 'written' ? outcome.status : 200;
    return send(res, isApi && form ? await formOutcome(match, signedIn, outcome) : outcome);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = process.hrtime.bigint();
    const client = selectClient(clientAddress(req), req.headers, trusted);
    const method = req.method ?? 'GET';
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      reply(res, 400, 'text/plain; charset=utf-8', 'bad request\n');
      return;
    }
    let status = 200;
    try {
      status = await dispatch(req, res, url, method, client);
    } catch (err) {
      let code: string | undefined;
      let message: string;
      let headers: Record<string, string> = {};
      if (err instanceof HttpError) {
        status = err.status;
        message = err.message;
        headers = err.headers;
      } else if (err instanceof UecError) {
        status = STATUS_OF[err.code] ?? 500;
        code = err.code;
        message = status >= 500 && status !== 502 ? 'internal error' : err.message;
        (status >= 500 ? log.error : log.warn)(`${method} ${url.pathname}: ${err.message}`, { code: err.code });
      } else {
        status = 500;
        message = 'internal error';
        log.error(`${method} ${url.pathname}: ${describeError(err)}`, { code: 'INTERNAL' });
      }
      if (res.headersSent) {
        res.end();
        return;
      }
      if (url.pathname.startsWith(`${BASE}/api/`) && !isForm(req)) reply(res, status, 'application/json', `${JSON.stringify({ error: message, ...(code ? { code } : {}) })}\n`, headers);
      else reply(res, status, 'text/html; charset=utf-8', pages.errorPage(status, message), headers);
    } finally {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      recordRequest('webui', matchedRoutes.get(req) ?? 'unmatched', method, status);
      log.debug(`${method} ${loggablePath(url)} ${status} ${ms.toFixed(1)} ms`, { client: client.address });
    }
  }

  return {
    handle,
    power: services.power,
    close: services.closeStreams,
  };
}
