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
import { addNode, deployNode } from '../../src/region/node-ops';
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

t.test('an edge key reads and claims only the nodes of its subnets; the shared key all; boot events from its queue are taken', async (t) => {
  const f = await startFixture(t);
  const edges = createEdgeRegistry(f.paths);
  f.region.edges = edges;
  const { key } = await edges.add('edge-b', ['10.2.0.0/16']);
  const mine = await addNode(f.store, { hostname: 'in-b', macs: ['52:54:00:02:00:05'], ipv4: '10.2.0.5' }, f.clock);
  const other = await addNode(f.store, { hostname: 'in-a', macs: ['52:54:00:01:00:05'], ipv4: '10.1.0.5' }, f.clock);
  const roles = await f.region.loadRoles();
  for (const n of [mine, other]) await deployNode(f.store, n.systemId, roles, { role: 'server', release: 'bookworm' }, f.clock);
  const call = async (k: string, p: string, body?: object) => {
    const r = await fetch(`${f.regionUrl}${p}`, { method: body ? 'POST' : 'GET', headers: { Authorization: `Bearer ${k}` }, body: body ? JSON.stringify(body) : undefined });
    return { status: r.status, body: await r.text() };
  };
  t.equal((await call(key, `/api/v1/nodes/${mine.systemId}/context`)).status, 200, 'its own node\'s context');
  t.equal((await call(key, `/api/v1/context?mac=52:54:00:02:00:05`)).status, 200, 'by MAC too');
  const refused = await call(key, `/api/v1/nodes/${other.systemId}/context`);
  t.same(refused, { status: 403, body: 'forbidden\n' }, 'another subnet\'s node: the same 403 as any refusal');
  t.equal((await call(key, `/api/v1/context?mac=52:54:00:01:00:05`)).status, 403, 'by MAC too');
  t.ok(f.lines.some((l) => /refused the context of node in-a \(.*\) to edge edge-b \(10\.2\.0\.0\/16\): the node's address 10\.1\.0\.5 is outside its subnets/.test(l)), 'the log says which edge and why');
  t.equal((await call(KEY, `/api/v1/nodes/${other.systemId}/context`)).status, 200, 'the shared key is not limited');

  const listed = JSON.parse((await call(key, '/api/v1/nodes')).body) as { hostname: string }[];
  t.same(listed.map((n) => n.hostname), ['in-b'], 'the node list holds only its subnets\' nodes');
  t.equal((JSON.parse((await call(KEY, '/api/v1/nodes')).body) as unknown[]).length, 2);

  t.equal((await call(key, `/api/v1/nodes/${other.systemId}/claim`, { address: '10.1.0.5', mac: '52:54:00:01:00:05' })).status, 403, 'a claim of another subnet\'s node');
  t.equal((await call(key, `/api/v1/nodes/${mine.systemId}/claim`, { address: '10.1.0.9', mac: '52:54:00:02:00:05' })).status, 403, 'a claim for a client outside its subnets');
  t.ok(f.lines.some((l) => /refused a claim of node in-b .* the client address "10\.1\.0\.9" is outside its subnets/.test(l)));
  t.equal((await call(key, `/api/v1/nodes/${mine.systemId}/claim`, { address: '10.2.0.5', mac: '52:54:00:02:00:05' })).status, 200, 'its own node from its subnet');
  t.equal((await call(key, `/api/v1/nodes/${other.systemId}/events`, { type: 'preseed', message: 'taken before a reassignment' })).status, 201, 'an event is taken whatever the node\'s subnet');
});
