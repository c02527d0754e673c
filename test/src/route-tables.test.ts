/**
 * Every route of both services' tables, walked: without credentials → 401/403 (open routes
 * excepted), with a wrong key or token (or from another machine's address) → 403, another
 * method → 405 with Allow, a body one byte over the route's limit → 413; none of it changes
 * the node store, and afterwards each route still answers its rightful caller.
 */
import * as crypto from 'node:crypto';
import * as http from 'node:http';
import t from 'tap';
import { ACCESS_KINDS } from '../../src/core/http-routes';
import { addNode, deployNode } from '../../src/region/node-ops';
import { EDGE_ROUTES, PROVISIONING_ROUTES } from '../../src/edge/provisioning';
import { REGION_ROUTES } from '../../src/region/region';
import { createEdgeRegistry } from '../../src/region/edges';
import { readStoreFiles } from '../helpers/node-store-files';
import { KEY, startEdgeFixture, startFixture } from '../helpers/region-fixture';

const NODE_MAC = '52:54:00:00:00:01';
const NODE_IP = '10.0.0.5';
const BYSTANDER_IP = '10.0.0.66';

/** Any method, any body (fetch refuses a body on GET); resolves with the status and headers. */
function request(url: string, method: string, headers: Record<string, string>, body?: Buffer): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers: { ...headers, ...(body ? { 'Content-Length': String(body.length) } : {}) }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

t.test('every route of REGION_ROUTES and PROVISIONING_ROUTES: 401/403, 403, 405, 413, nothing changed, still answering', async (t) => {
  const f = await startFixture(t);
  // Per-edge keys (src/region/edges.ts): a live edge answers below, a revoked one is refused everywhere.
  const edges = createEdgeRegistry(f.paths);
  f.region.edges = edges;
  const edgeKey = (await edges.add('edge-a', ['10.0.0.0/24'])).key;
  const revokedKey = (await edges.add('edge-gone', ['10.9.0.0/24'])).key;
  await edges.revoke('edge-gone');
  f.lan.neighbour(NODE_IP, NODE_MAC);
  f.lan.neighbour(BYSTANDER_IP, '52:54:00:00:00:66');
  await addNode(f.store, { hostname: 'web1', macs: [NODE_MAC] }, f.clock);
  const node = await deployNode(f.store, 'web1', await f.region.loadRoles(), {}, f.clock);
  const tables = [
    { name: 'region', base: f.regionUrl, routes: REGION_ROUTES },
    { name: 'provisioning', base: f.provisioningUrl, routes: PROVISIONING_ROUTES },
  ];
  t.ok(tables.every((x) => x.routes.every((r) => (ACCESS_KINDS as readonly string[]).includes(r.access))), 'every route says who may call it');
  t.ok(REGION_ROUTES.length >= 8 && PROVISIONING_ROUTES.length >= 7, 'both tables are walked in full');
  const target = (path: string) =>
    path.replace('<id>', node.systemId).replace('<event>', 'installing').replace('<path>', 'nothing').replace('<mac>', NODE_MAC) + (path === '/metadata/enlist' ? `?mac=52:54:00:00:00:77` : '');
  const withQuery = (url: string, key: string, value: string) => `${url}${url.includes('?') ? '&' : '?'}${key}=${encodeURIComponent(value)}`;
  // The embedded store is a snapshot and a journal: both must be unchanged.
  const snapshot = () => crypto.createHash('sha256').update(readStoreFiles(f.paths)).digest('hex');
  const before = snapshot();
  const openRoutes: string[] = [];
  for (const { name, base, routes } of tables) {
    for (const route of routes) {
      const what = `${name} ${route.methods.join('|')} ${route.path} (${route.access})`;
      const url = `${base}${target(route.path)}`;
      const method = route.methods[0]!;
      const bystander = { 'X-Fake-Client': BYSTANDER_IP };
      if (route.access === 'open') openRoutes.push(route.path);
      else {
        const bare = await request(url, method, bystander);
        t.ok([401, 403].includes(bare.status), `${what}: no credentials → ${bare.status}`);
        const wrong =
          route.access === 'provisioning-key'
            ? await request(url, method, { ...bystander, Authorization: `Bearer ${KEY.slice(1)}x` })
            : route.access === 'node'
              ? await request(withQuery(url, 'token', `${node.token.slice(1)}x`), method, { 'X-Fake-Client': NODE_IP })
              : await request(url, method, { 'X-Fake-Client': '127.0.0.1' });
        t.equal(wrong.status, 403, `${what}: a wrong key or token, or loopback → 403`);
        if (route.access === 'provisioning-key') {
          for (const [how, key] of [
            ['a revoked edge key', revokedKey],
            ['a wrong secret for a live edge', `${edgeKey.slice(0, -1)}${edgeKey.endsWith('x') ? 'y' : 'x'}`],
            ['an unknown edge', edgeKey.replace('edge-a', 'edge-q')],
          ]) {
            const refused = await request(url, method, { ...bystander, Authorization: `Bearer ${key}` });
            t.same([refused.status, refused.body], [403, 'forbidden\n'], `${what}: ${how} → the same 403`);
          }
        }
        if (route.access === 'node') {
          const stolen = await request(withQuery(url, 'token', node.token), method, bystander);
          t.equal(stolen.status, 403, `${what}: the right token from another machine → 403`);
        }
      }
      const other = await request(url, 'DELETE', bystander);
      t.equal(other.status, 405, `${what}: DELETE → 405`);
      t.same(other.headers.allow?.split(', ').sort(), [...route.methods].sort(), `${what}: Allow names the route's methods`);
      const big = await request(url, method, bystander, Buffer.alloc(route.bodyLimit + 1, 'x'));
      t.equal(big.status, 413, `${what}: ${route.bodyLimit + 1} bytes → 413`);
    }
  }
  t.same(openRoutes.sort(), ['/boot/<path>', '/boot/ipxe', '/boot/ipxe/node?mac=<mac>', '/enlist?mac=<mac>', '/metadata/enlist', '/preseed/enlist'], 'only these need no credentials');
  t.equal(snapshot(), before, 'no refused request changed the node store');
  t.ok(f.lines.some((l) => l.includes(`from ${BYSTANDER_IP}`) && l.includes('refused')), 'refusals are logged with the address');

  // Still answering, and each route serves its rightful caller (so the refusals above were not an outage).
  const bodies: Record<string, string> = {
    '/api/v1/nodes/<id>/events': JSON.stringify({ type: 'netboot', message: 'walk' }),
    '/api/v1/nodes/<id>/claim': JSON.stringify({ address: NODE_IP, mac: NODE_MAC }),
  };
  const expected: Record<string, number> = { '/boot/<path>': 404, '/api/v1/nodes/<id>/events': 201, '/metadata/enlist': 201, '/enlist?mac=<mac>': 200 };
  for (const { name, base, routes } of tables) {
    for (const route of [...routes].sort((a, b) => Number(a.path.includes('disable-netboot')) - Number(b.path.includes('disable-netboot')))) {
      let url = `${base}${target(route.path)}`;
      const headers: Record<string, string> = { 'X-Fake-Client': NODE_IP };
      // The live edge's own key; the shared key is checked once after the walk.
      if (route.access === 'provisioning-key') headers.Authorization = `Bearer ${edgeKey}`;
      if (route.access === 'node') url = withQuery(url, 'token', node.token);
      const body = bodies[route.path];
      const res = await request(url, route.methods.includes('POST') && body ? 'POST' : route.methods[0]!, body ? { ...headers, 'Content-Type': 'application/json' } : headers, body ? Buffer.from(body) : undefined);
      t.equal(res.status, expected[route.path] ?? 200, `${name} ${route.path}: its caller is answered (${res.body.trim().slice(0, 60)})`);
    }
  }
  t.equal((await request(`${f.regionUrl}/api/v1/nodes`, 'GET', { 'X-Fake-Client': NODE_IP, Authorization: `Bearer ${KEY}` })).status, 200, 'the shared key still answers');
  t.notOk(f.lines.some((l) => l.includes(edgeKey.split('.')[2]!) || l.includes(revokedKey.split('.')[2]!)), 'no edge key in the log');
  t.ok(f.lines.some((l) => l.includes('edge edge-gone: edge edge-gone was revoked')), 'refusals name the edge');
});

t.test('every route of EDGE_ROUTES (call-backs an edge takes and queues): 401/403, 403, 405, 413, nothing queued; the node itself is answered and queued', async (t) => {
  const f = await startFixture(t);
  f.lan.neighbour(NODE_IP, NODE_MAC);
  f.lan.neighbour(BYSTANDER_IP, '52:54:00:00:00:66');
  await addNode(f.store, { hostname: 'web1', macs: [NODE_MAC] }, f.clock);
  const node = await deployNode(f.store, 'web1', await f.region.loadRoles(), {}, f.clock);
  const e = await startEdgeFixture(t, f, t.testdir());
  for (let i = 0; i < 200 && e.cache.get(node.systemId)?.token !== node.token; i++) await new Promise((r) => setTimeout(r, 50));
  t.equal(e.cache.get(node.systemId)?.token, node.token, "the edge's cache holds the deploying node");
  t.ok(EDGE_ROUTES.length >= 2 && EDGE_ROUTES.every((r) => r.access === 'node'), 'the edge-only routes are node call-backs');
  const target = (path: string) => path.replace('<id>', node.systemId).replace('<event>', 'installing');
  const withToken = (url: string, token: string) => `${url}?token=${encodeURIComponent(token)}`;
  for (const route of EDGE_ROUTES) {
    const what = `edge ${route.methods.join('|')} ${route.path}`;
    const url = `${e.edgeUrl}${target(route.path)}`;
    const method = route.methods[0]!;
    const bystander = { 'X-Fake-Client': BYSTANDER_IP };
    const bare = await request(url, method, bystander);
    t.ok([401, 403].includes(bare.status), `${what}: no token → ${bare.status}`);
    t.equal((await request(withToken(url, `${node.token.slice(1)}x`), method, { 'X-Fake-Client': NODE_IP })).status, 403, `${what}: a wrong token → 403`);
    t.equal((await request(withToken(url, node.token), method, bystander)).status, 403, `${what}: the right token from another machine → 403`);
    t.equal((await request(withToken(url, node.token), method, { 'X-Fake-Client': '127.0.0.1' })).status, 403, `${what}: the right token from loopback → 403`);
    const other = await request(url, 'DELETE', bystander);
    t.equal(other.status, 405, `${what}: DELETE → 405`);
    t.same(other.headers.allow?.split(', ').sort(), [...route.methods].sort(), `${what}: Allow names the route's methods`);
    t.equal((await request(url, method, bystander, Buffer.alloc(route.bodyLimit + 1, 'x'))).status, 413, `${what}: ${route.bodyLimit + 1} bytes → 413`);
  }
  t.same(e.outbox.pending(), [], 'no refused call-back was queued');
  const ok = await request(withToken(`${e.edgeUrl}${target(EDGE_ROUTES[0]!.path)}`, node.token), EDGE_ROUTES[0]!.methods[0]!, { 'X-Fake-Client': NODE_IP });
  t.equal(ok.status, 200, `the node's own call-back is answered (${ok.body.trim().slice(0, 60)})`);
  for (let i = 0; i < 100 && !f.lines.some((l) => l.includes(node.systemId) && l.includes('installing')) && e.outbox.pending().length > 0; i++) await new Promise((r) => setTimeout(r, 50));
  t.ok(e.outbox.pending().length > 0 || (await f.store.find(node.systemId))?.events.some((ev) => ev.type === 'installing'), 'and queued for the region (or already delivered)');
});

