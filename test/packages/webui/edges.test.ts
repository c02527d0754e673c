/**
 * The Edges page and /api/edges (issue 14 item 5): admins register an edge (its key shown once,
 * in the answer), list, assign subnets and revoke, from a form or with an API token; viewers
 * are refused; each change is one audit line without the key; a revoked edge's key is refused
 * by the region's registry at once.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import t from 'tap';
import { AUDIT_LOG } from '../../../src/core/audit';
import { EDGES_FILE, createEdgeRegistry } from '../../../src/region/edges';
import { selectEdgeFollowers, selectEdgesView } from '../../../packages/webui/pages';
import { ADMIN, VIEWER, login, startHarness } from './harness';

t.test('register, list, assign, revoke through the API; the key only in the answer', async (t) => {
  const h = await startHarness(t);
  const admin = await login(h, ADMIN);
  const viewer = await login(h, VIEWER);
  const created = await admin.call('POST', '/api/edges', { name: 'edge-b', subnet: ['10.2.0.0/16', '10.3.0.0/16'] });
  t.equal(created.status, 201, created.text);
  t.match(created.json, { name: 'edge-b', subnets: ['10.2.0.0/16', '10.3.0.0/16'], revoked: false, lastContact: '' });
  const key = created.json.key as string;
  t.match(key, /^uecpe\.edge-b\.[A-Za-z0-9_-]{43}$/);
  const secret = key.split('.')[2]!;
  t.equal((await createEdgeRegistry(h.paths).authenticate(key)).ok, true, 'the region accepts the key');

  const overlap = await admin.call('POST', '/api/edges', { name: 'edge-c', subnet: '10.2.5.0/24' });
  t.equal(overlap.status, 400);
  t.match(overlap.json, { error: 'edge edge-c not registered: subnet 10.2.5.0/24 overlaps 10.2.0.0/16 of edge edge-b' }, 'the refusal names the culprit');
  t.equal((await admin.call('POST', '/api/edges', { name: 'Bad Name', subnet: '10.9.0.0/16' })).status, 400);

  const listed = await admin.call('GET', '/api/edges');
  t.same(listed.json.map((e: { name: string }) => e.name), ['edge-b']);
  t.notOk(listed.text.includes('keyDigest') || listed.text.includes(secret), 'no digest, no key in the list');
  t.equal((await viewer.call('GET', '/api/edges')).status, 403, 'viewers do not see edges');

  const assigned = await admin.call('POST', '/api/edges/edge-b/subnets', { subnet: '10.4.0.0/16' });
  t.equal(assigned.status, 200, assigned.text);
  t.same(assigned.json.subnets, ['10.4.0.0/16']);
  t.equal((await admin.call('POST', '/api/edges/nobody/subnets', { subnet: '10.5.0.0/16' })).status, 404);
  t.equal((await admin.call('DELETE', '/api/edges/nobody')).status, 404);

  const revoked = await admin.call('DELETE', '/api/edges/edge-b');
  t.equal(revoked.status, 200, revoked.text);
  t.match(await createEdgeRegistry(h.paths).authenticate(key), { ok: false, reason: /revoked/ }, 'the key is refused from now on');

  const audit = fs.readFileSync(h.paths.resolve(AUDIT_LOG), 'utf8');
  const lines = audit.trim().split('\n').map((l) => JSON.parse(l) as { action: string; target: Record<string, string>; changes: Record<string, unknown> });
  t.same(
    lines.filter((l) => l.action.startsWith('edge.')).map((l) => [l.action, l.target, l.changes]),
    [
      ['edge.register', { edge: 'edge-b' }, { subnets: { before: null, after: ['10.2.0.0/16', '10.3.0.0/16'] } }],
      ['edge.assign', { edge: 'edge-b' }, { subnets: { before: ['10.2.0.0/16', '10.3.0.0/16'], after: ['10.4.0.0/16'] } }],
      ['edge.revoke', { edge: 'edge-b' }, { revoked: { before: false, after: true } }],
    ],
  );
  for (const [where, text] of [
    ['the audit log', audit],
    ['the web UI log', h.logs.join('\n')],
    ['the registry', fs.readFileSync(h.paths.resolve(EDGES_FILE), 'utf8')],
  ]) {
    t.notOk(text!.includes(secret), `the key is not in ${where}`);
  }
});

t.test('the Edges page: listed for admins, a form registers (key shown once), Revoke posts DELETE', async (t) => {
  const h = await startHarness(t);
  const admin = await login(h, ADMIN);
  const viewer = await login(h, VIEWER);
  const form = (route: string, fields: Record<string, string>) =>
    fetch(`${h.base}${route}`, { method: 'POST', redirect: 'manual', headers: { Cookie: admin.cookie, 'Content-Type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ _csrf: admin.csrf, ...fields }).toString() });
  const created = await form('/api/edges', { name: 'edge-a', subnet: '10.1.0.0/16, 10.11.0.0/16', _back: '/uec-provisioning/edges' });
  t.equal(created.status, 201);
  const shown = await created.text();
  const key = /uecpe\.edge-a\.[A-Za-z0-9_-]{43}/.exec(shown)?.[0];
  t.ok(key, 'the page shows the key');
  t.match(shown, /shown only once/);
  const page = await admin.call('GET', '/edges');
  t.equal(page.status, 200);
  t.match(page.text, /<th scope="row">edge-a<\/th><td>10\.1\.0\.0\/16, 10\.11\.0\.0\/16<\/td><td>never<\/td><td>unknown<\/td><td>live<\/td>/);
  t.notOk(page.text.includes(key!.split('.')[2]!), 'the list page does not show the key again');
  t.match(page.text, /href="\/uec-provisioning\/edges" aria-current="page">Edges/, 'in the navigation for admins');
  t.notMatch((await viewer.call('GET', '/')).text, /\/uec-provisioning\/edges/, 'not in the navigation for viewers');
  t.equal((await viewer.call('GET', '/edges')).status, 403);
  const revoked = await form('/api/edges/edge-a', { _method: 'DELETE', _back: '/uec-provisioning/edges' });
  t.equal(revoked.status, 303);
  t.match(revoked.headers.get('location'), /^\/uec-provisioning\/edges\?msg=edge%20edge-a%20revoked/);
  t.match((await admin.call('GET', '/edges')).text, /<td>revoked <time/, 'the page shows it revoked, without a Revoke button');
});

t.test('selectEdgeFollowers and selectEdgesView (pure): malformed entries dropped, latest contact wins, shared-key followers apart', async (t) => {
  t.same(selectEdgeFollowers({}), []);
  t.same(selectEdgeFollowers([{ name: 'x' }, null, { name: 'e', address: '10.0.0.2', last_contact: 'T2', behind: 3, lag_seconds: 40 }]), [{ name: 'e', address: '10.0.0.2', lastContact: 'T2', behind: 3, lagSeconds: 40 }]);
  const edge = (name: string, lastContact: string, revoked = false) => ({ name, subnets: ['10.1.0.0/16'], createdAt: '', lastContact, revoked, revokedAt: revoked ? 'T0' : '' });
  const follower = (name: string, lastContact: string, behind = 0) => ({ name, address: '10.0.0.9', lastContact, behind, lagSeconds: behind * 10 });
  const view = selectEdgesView(
    [edge('a', '2026-12-06T12:00:00.000Z'), edge('b', '2026-12-06T12:05:00.000Z'), edge('gone', '', true)],
    [follower('a', '2026-12-06T12:01:00.000Z', 2), follower('a', '2026-12-06T12:00:30.000Z'), follower('b', '2026-12-06T12:04:00.000Z'), follower('gone', '2026-12-06T12:09:00.000Z'), follower('oldbox', '2026-12-06T12:02:00.000Z')],
  );
  t.same(
    view.edges.map((e) => [e.name, e.lastContact, e.feed?.behind ?? null]),
    [
      ['a', '2026-12-06T12:01:00.000Z', 2],
      ['b', '2026-12-06T12:05:00.000Z', 0],
      ['gone', '', null],
    ],
    "the feed's newer poll wins, the registry's newer write wins, a revoked edge shows no feed",
  );
  t.same(view.sharedKey.map((f) => f.name), ['oldbox']);
});

t.test('the Edges page shows the lag the region reports, and the edges still on the shared key', async (t) => {
  let answer: unknown = [
    { name: 'edge-a', address: '10.1.0.2', last_contact: '2099-01-01T00:00:00.000Z', cursor: 5, behind: 3, lag_seconds: 42 },
    { name: 'oldbox', address: '10.7.0.2', last_contact: '2099-01-01T00:00:00.000Z', cursor: 8, behind: 0, lag_seconds: 0 },
  ];
  const region = http.createServer((req, res) => {
    res.writeHead(req.url === '/api/v1/changes/followers' ? 200 : 404, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(answer));
  });
  await new Promise<void>((resolve) => region.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => region.close(() => resolve())));
  const h = await startHarness(t, process.env, { settings: [['server.http_port', String((region.address() as { port: number }).port)]] });
  const admin = await login(h, ADMIN);
  t.equal((await admin.call('POST', '/api/edges', { name: 'edge-a', subnet: '10.1.0.0/16' })).status, 201);
  const page = (await admin.call('GET', '/edges')).text;
  t.match(page, /<th scope="row">edge-a<\/th><td>10\.1\.0\.0\/16<\/td><td><time datetime="2099-01-01T00:00:00.000Z">[^<]*<\/time><\/td><td>3 changes behind, 42 s<\/td><td>live<\/td>/);
  t.match(page, /Following with the shared key[\s\S]*<th scope="row">oldbox<\/th><td>10\.7\.0\.2<\/td>/);
  t.match((await admin.call('GET', '/api/edges')).json, [{ name: 'edge-a', lastContact: '2099-01-01T00:00:00.000Z', feed: { behind: 3, lagSeconds: 42 } }]);
  answer = 'not a list';
  const plain = (await admin.call('GET', '/edges')).text;
  t.match(plain, /<th scope="row">edge-a<\/th><td>10\.1\.0\.0\/16<\/td><td>never<\/td><td>unknown<\/td>/, 'a region that says nothing useful: last contact only');
  t.notMatch(plain, /Following with the shared key/);
});
