/**
 * Edges (admins only): the provisioning servers on other hosts registered with the region
 * (src/region/edges.ts). The page and the same as JSON; register (the key is shown once, in
 * the answer itself), revoke, assign subnets. Every change is audited, never the key.
 */
import { selectChanges } from '../../../src/core/audit';
import { createEdgeRegistry, parseEdgeName, publicEdge } from '../../../src/region/edges';
import { auditRequest } from '../audit';
import * as pages from '../pages';
import { HttpError, NO_BODY, SMALL_BODY, field, htmlPage, json, list, seeOther, type Body, type Route, type SignedInContext } from './route';

/** The registered edge named by the path, or 404. */
async function edgeName(ctx: SignedInContext): Promise<string> {
  let name: string;
  try {
    name = parseEdgeName(decodeURIComponent(ctx.params.name ?? ''));
  } catch {
    throw new HttpError(404, 'no such edge');
  }
  if (!(await createEdgeRegistry(ctx.options.paths).list()).some((e) => e.name === name)) throw new HttpError(404, 'no such edge');
  return name;
}

/** The subnets of a form or JSON body: `subnet` (repeated, or one field with commas/spaces) or `subnets`. */
function bodySubnets(body: Body): string[] {
  return [...list(body, 'subnet'), ...list(body, 'subnets')];
}

/** How long the page waits for the region's list of feed followers before showing last contact only. */
const FOLLOWERS_TIMEOUT_MS = 1000;

/**
 * What the region process knows of each edge following its change feed (GET
 * /api/v1/changes/followers on this host, allowed from loopback): last poll, changes behind,
 * seconds behind. Empty when the region does not answer (not running, or without the feed).
 */
async function loadFollowers(ctx: SignedInContext): Promise<pages.EdgeFollower[]> {
  const port = (await ctx.options.loadConfig()).getNumber('server.http_port');
  try {
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/changes/followers`, { signal: AbortSignal.timeout(FOLLOWERS_TIMEOUT_MS) });
    if (res.status !== 200) return [];
    return pages.selectEdgeFollowers(await res.json());
  } catch {
    return [];
  }
}

async function listEdges(ctx: SignedInContext): Promise<pages.EdgesView> {
  const [edges, followers] = await Promise.all([createEdgeRegistry(ctx.options.paths).list(), loadFollowers(ctx)]);
  return pages.selectEdgesView(edges.map(publicEdge), followers);
}

export const edgeRoutes: Route[] = [
  {
    method: 'GET',
    path: '/edges',
    who: 'admin',
    csrf: false,
    bodyLimit: NO_BODY,
    handler: async (ctx) => htmlPage(pages.edgesPage(ctx.services.pageUser(ctx.auth), ctx.url.searchParams.get('msg') ?? '', await listEdges(ctx))),
  },
  {
    method: 'GET',
    path: '/api/edges',
    who: 'admin',
    csrf: false,
    bodyLimit: NO_BODY,
    handler: async (ctx) => json((await listEdges(ctx)).edges),
  },
  {
    method: 'POST',
    path: '/api/edges',
    who: 'admin',
    csrf: true,
    bodyLimit: SMALL_BODY,
    async handler(ctx) {
      const { options, body, auth } = ctx;
      const { edge, key } = await createEdgeRegistry(options.paths).add(field(body, 'name'), bodySubnets(body), options.clock.now());
      await auditRequest(ctx, 'edge.register', { edge: edge.name }, selectChanges(null, { subnets: edge.subnets }));
      options.log.info(`${auth.user.name} registered edge ${edge.name} (${edge.subnets.join(', ')})`);
      return json({ ...publicEdge(edge), key }, 201);
    },
    // Shown once, in the response itself: never in a URL, a log or the history.
    formReply: (ctx, value) => {
      const v = value as { name: string; key: string };
      return htmlPage(pages.edgeCreatedPage(ctx.services.pageUser(ctx.auth), String(v.name), String(v.key)), 201);
    },
  },
  {
    method: 'DELETE',
    path: '/api/edges/:name',
    who: 'admin',
    csrf: true,
    bodyLimit: SMALL_BODY,
    async handler(ctx) {
      const { options, auth } = ctx;
      const name = await edgeName(ctx);
      const { before, after } = await createEdgeRegistry(options.paths).revoke(name, options.clock.now());
      if (!before.revokedAt) {
        await auditRequest(ctx, 'edge.revoke', { edge: name }, selectChanges({ revoked: false }, { revoked: true }));
        options.log.info(`${auth.user.name} revoked edge ${name}`);
      }
      return json({ revoked: name, revokedAt: after.revokedAt, message: `edge ${name} revoked` });
    },
    formReply: (_ctx, value) => seeOther(`/uec-provisioning/edges?msg=${encodeURIComponent(String((value as { message: string }).message))}`),
  },
  {
    method: 'POST',
    path: '/api/edges/:name/subnets',
    who: 'admin',
    csrf: true,
    bodyLimit: SMALL_BODY,
    async handler(ctx) {
      const { options, body, auth } = ctx;
      const name = await edgeName(ctx);
      const { before, after } = await createEdgeRegistry(options.paths).assign(name, bodySubnets(body));
      const changes = selectChanges({ subnets: before.subnets }, { subnets: after.subnets });
      if (Object.keys(changes).length > 0) {
        await auditRequest(ctx, 'edge.assign', { edge: name }, changes);
        options.log.info(`${auth.user.name} set the subnets of edge ${name}: ${after.subnets.join(', ')}`);
      }
      return json({ ...publicEdge(after), message: `edge ${name} serves ${after.subnets.join(', ')}` });
    },
    formReply: (_ctx, value) => seeOther(`/uec-provisioning/edges?msg=${encodeURIComponent(String((value as { message: string }).message))}`),
  },
];
