/**
 * What a route of the web UI is: one entry of the table in routes/index.ts, which says who may
 * call it, whether a cookie session must send its CSRF token, how large its body may be, and
 * which handler answers. The dispatcher (app.ts) enforces all of that once; handlers only do
 * their resource's work and return an Outcome.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { User } from '../accounts';
import type { Session } from '../sessions';
import type { WebuiServices, WebuiOptions } from '../services';

export const BASE = '/uec-provisioning';
export const COOKIE = 'uecp_session';

/** The body limits of the table: most bodies are small forms or JSON; a CSV import is larger. */
export const SMALL_BODY = 64 * 1024;
export const CSV_BODY = 1024 * 1024;
/** Reads carry no body. */
export const NO_BODY = 0;

export type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

/** public: anyone; session: any logged-in user (cookie or API token); admin: users with the admin role. */
export type Who = 'public' | 'session' | 'admin';

export interface Auth {
  user: User;
  /** Undefined for API tokens (they need no CSRF token). */
  session?: Session;
}

export type Body = Record<string, string | string[]>;

export function field(body: Body, name: string): string {
  const v = body[name];
  return Array.isArray(v) ? (v[0] ?? '') : (v ?? '');
}

export function list(body: Body, name: string): string[] {
  const v = body[name];
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

/** A refusal with its HTTP status (and headers such as Retry-After). */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export type Headers = Record<string, string>;

/** What a handler answers; the dispatcher turns it into bytes (and a form post's JSON into a redirect). */
export type Outcome =
  | { kind: 'json'; status: number; value: unknown; headers?: Headers }
  | { kind: 'html'; status: number; html: string; headers?: Headers }
  | { kind: 'redirect'; location: string; headers?: Headers }
  /** The handler wrote the answer itself (the event stream, static files). */
  | { kind: 'written'; status: number };

export const json = (value: unknown, status = 200, headers?: Headers): Outcome => ({ kind: 'json', status, value, headers });
export const htmlPage = (html: string, status = 200, headers?: Headers): Outcome => ({ kind: 'html', status, html, headers });
export const seeOther = (location: string, headers?: Headers): Outcome => ({ kind: 'redirect', location, headers });
export const written = (status = 200): Outcome => ({ kind: 'written', status });

export interface RouteContext {
  options: WebuiOptions;
  services: WebuiServices;
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  /** Named path parameters, still percent-encoded (decode with services.nodeRef and friends). */
  params: Record<string, string>;
  body: Body;
  bodyText: string;
  /** The request came from an HTML form (application/x-www-form-urlencoded). */
  form: boolean;
  /** The client's address (the socket peer, or the trusted proxy's X-Forwarded-For). */
  client: string;
  /** The client reached the proxy over https (trusted X-Forwarded-Proto): cookies get Secure. */
  secure: boolean;
  auth: Auth | undefined;
}

export interface SignedInContext extends RouteContext {
  auth: Auth;
}

interface RouteCommon {
  method: Method;
  /** Under BASE: exact segments, or `:name` for a parameter (one segment). */
  path: string;
  /** A state change made with a cookie session must carry the session's CSRF token. */
  csrf: boolean;
  /** Bytes; a larger body is answered 413 before the handler runs. */
  bodyLimit: number;
  /** For an API route answering a form post: where the browser goes instead of back to `_back`. */
  formReply?: (ctx: SignedInContext, value: unknown) => Outcome | undefined | Promise<Outcome | undefined>;
}

export type Route =
  | (RouteCommon & { who: 'public'; handler: (ctx: RouteContext) => Promise<Outcome> })
  | (RouteCommon & { who: 'session' | 'admin'; handler: (ctx: SignedInContext) => Promise<Outcome> });

/** A route's parameters when `rel` (the path under BASE) matches its pattern, else null. */
export function matchPath(pattern: string, rel: string): Record<string, string> | null {
  const want = pattern.split('/');
  const got = rel.split('/');
  if (want.length !== got.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    const w = want[i]!;
    const g = got[i]!;
    if (w.startsWith(':')) {
      if (g === '') return null;
      params[w.slice(1)] = g;
    } else if (w !== g) return null;
  }
  return params;
}

/** How specific a pattern is: literal segments count; `/api/nodes/import` wins over `/api/nodes/:ref`. */
function literalSegments(pattern: string): number {
  return pattern.split('/').filter((s) => !s.startsWith(':')).length;
}

export interface RouteMatch {
  route: Route;
  params: Record<string, string>;
}

/**
 * Every route whose path matches, most specific first (pure). The caller picks the first with
 * the request's method; the methods of all of them make the Allow header of a 405.
 */
export function selectRoutes(routes: readonly Route[], rel: string): RouteMatch[] {
  const out: RouteMatch[] = [];
  for (const route of routes) {
    const params = matchPath(route.path, rel);
    if (params) out.push({ route, params });
  }
  return out.sort((a, b) => literalSegments(b.route.path) - literalSegments(a.route.path));
}

export function allowedMethods(matches: readonly RouteMatch[]): string[] {
  const methods = new Set<string>();
  for (const { route } of matches) {
    methods.add(route.method);
    if (route.method === 'GET') methods.add('HEAD');
  }
  return [...methods].sort();
}

/** The match for a method: HEAD is answered by the GET route. */
export function selectMethod(matches: readonly RouteMatch[], method: string): RouteMatch | undefined {
  const want = method === 'HEAD' ? 'GET' : method;
  return matches.find((m) => m.route.method === want);
}
