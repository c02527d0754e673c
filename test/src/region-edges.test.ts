/**
 * The region's authorizer with per-edge keys: a handler of a provisioning-key route sees which
 * edge asked (`authenticatedEdge`: name and subnets), and nothing for the shared key; the edge's
 * last contact is recorded; every refusal is the same 403.
 */
import t from 'tap';
import { dispatchRoutes, type Route, type RouteRequest } from '../../src/core/http-routes';
import { json, send, text } from '../../src/core/http-util';
import { createEdgeRegistry } from '../../src/region/edges';
import { authorizeRegion, type RegionGrant, type RegionOptions } from '../../src/region/region';
import { KEY, listen, startFixture } from '../helpers/region-fixture';

t.test('authenticatedEdge: the live edge for its key, undefined for the shared key; last contact recorded', async (t) => {
  const f = await startFixture(t);
  const edges = createEdgeRegistry(f.paths);
  f.region.edges = edges;
  const seen: (RouteRequest['authenticatedEdge'] | null)[] = [];
  const route: Route<RegionOptions, RegionGrant> = {
    methods: ['GET'],
    path: '/api/v1/probe',
    pattern: /^\/api\/v1\/probe$/,
    access: 'provisioning-key',
    bodyLimit: 0,
    handler: async (_o, request) => {
      seen.push(request.authenticatedEdge ?? null);
      return json(200, {});
    },
  };
  const base = await listen(t, (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    void dispatchRoutes([route], f.region, req, url, authorizeRegion, () => text(500, 'internal error')).then((reply) => send(res, reply ?? text(404, 'not found')));
  });
  const { key } = await edges.add('edge-b', ['10.2.0.0/16', 'fd00:2::/64']);
  const call = async (k: string) => (await fetch(`${base}/api/v1/probe`, { headers: { Authorization: `Bearer ${k}` } })).status;
  t.equal(await call(key), 200);
  t.equal(await call(KEY), 200);
  t.same(seen, [{ name: 'edge-b', subnets: ['10.2.0.0/16', 'fd00:2::/64'] }, null]);
  t.equal((await edges.list())[0]?.lastContact, f.clock.now().toISOString(), 'last contact at the region clock');
  await edges.assign('edge-b', ['10.3.0.0/16']);
  t.equal(await call(key), 200);
  t.same(seen[2], { name: 'edge-b', subnets: ['10.3.0.0/16'] }, 'a new assignment is seen at the next request');
  await edges.revoke('edge-b');
  t.equal(await call(key), 403);
  t.equal(seen.length, 3, 'the handler did not run for the revoked edge');

  // Without a registry (a region built without one), an edge key is refused like any wrong key.
  f.region.edges = undefined;
  t.equal(await call((await createEdgeRegistry(f.paths).add('edge-c', ['10.4.0.0/16'])).key), 403);
  t.ok(f.lines.some((l) => l.includes('an edge key, and this region has no edge registry')));
});
