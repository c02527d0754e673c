/**
 * The route table (packages/webui/routes) walked route by route (issue 13): whatever is added
 * to the table is tried unauthenticated, without its CSRF token, as a viewer, and with a body
 * over its limit. A route added without the right `who`/`csrf` fails the policy test.
 */
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import t, { type Test } from 'tap';
import { listRoutes } from '../../../packages/webui/app';
import { allowedMethods, matchPath, selectMethod, selectRoutes } from '../../../packages/webui/routes/route';
import { ROUTES } from '../../../packages/webui/routes';
import { snapshotTree } from '../../helpers/scratch';
import { ADMIN, VIEWER, login, startHarness, type Client, type Harness } from './harness';

/** The only state-changing routes anyone may call: logging in. */
const PUBLIC_WRITES = ['POST /login', 'POST /api/session'];

t.test('policy: every state change needs a login and the CSRF token; reads carry no body', async (t) => {
  const routes = listRoutes();
  t.ok(routes.length >= 30, `the table lists every route (${routes.length})`);
  const seen = new Set<string>();
  for (const r of routes) {
    const name = `${r.method} ${r.path}`;
    t.notOk(seen.has(name), `${name} is in the table once`);
    seen.add(name);
    t.ok(r.path.startsWith('/'), `${name}: a path under /uec-provisioning`);
    if (r.method === 'GET') {
      t.equal(r.csrf, false, `${name}: a read needs no CSRF token`);
      t.equal(r.bodyLimit, 0, `${name}: a read takes no body`);
    } else if (PUBLIC_WRITES.includes(name)) {
      t.equal(r.who, 'public', `${name} is the login`);
      t.ok(r.bodyLimit > 0 && r.bodyLimit <= 64 * 1024, `${name}: a small body`);
    } else {
      t.not(r.who, 'public', `${name}: a state change needs a login`);
      t.equal(r.csrf, true, `${name}: a state change with a cookie session needs the CSRF token`);
      t.ok(r.bodyLimit > 0 && r.bodyLimit <= 1024 * 1024, `${name}: a body limit of at most 1 MiB`);
    }
    if (r.who === 'public') t.ok(r.method === 'GET' || PUBLIC_WRITES.includes(name), `${name}: public only for the login and static reads`);
  }
  // What must never be opened up by an edit of the table.
  const who = (name: string) => routes.find((r) => `${r.method} ${r.path}` === name)?.who;
  for (const name of ['POST /api/nodes', 'POST /api/nodes/import', 'DELETE /api/nodes/:ref', 'POST /api/deploy', 'PUT /api/config', 'POST /api/config', 'GET /api/users', 'POST /api/users', 'POST /api/images/import', 'PUT /api/nodes/:ref/bmc', 'POST /api/nodes/:ref/power', 'GET /edges', 'GET /api/edges', 'POST /api/edges', 'DELETE /api/edges/:name', 'POST /api/edges/:name/subnets']) {
    t.equal(who(name), 'admin', `${name} is admin only`);
  }
  t.same(routes.filter((r) => r.who === 'public').map((r) => `${r.method} ${r.path}`).sort(), ['GET /login', 'GET /static/:name', 'POST /api/session', 'POST /login']);
});

t.test('matching (pure): literal segments win, parameters are one segment, 405 lists the methods', async (t) => {
  t.same(matchPath('/api/nodes/:ref', '/api/nodes/web1'), { ref: 'web1' });
  t.equal(matchPath('/api/nodes/:ref', '/api/nodes/'), null, 'an empty parameter does not match');
  t.equal(matchPath('/api/nodes/:ref', '/api/nodes/a/b'), null);
  const imports = selectRoutes(ROUTES, '/api/nodes/import');
  t.equal(selectMethod(imports, 'POST')?.route.path, '/api/nodes/import', 'POST goes to the import');
  t.equal(selectMethod(imports, 'GET')?.route.path, '/api/nodes/:ref', 'GET is a node named "import"');
  t.same(allowedMethods(selectRoutes(ROUTES, '/api/nodes')), ['GET', 'HEAD', 'POST']);
  t.equal(selectMethod(selectRoutes(ROUTES, '/nodes'), 'HEAD')?.route.method, 'GET', 'HEAD is answered by GET');
});

interface Raw {
  status?: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  error?: string;
}

/** Any method with any body (fetch refuses a GET body). */
function rawRequest(url: string, method: string, headers: Record<string, string>, body?: Buffer): Promise<Raw> {
  return new Promise((resolve) => {
    const req = http.request(url, { method, headers: { ...headers, ...(body ? { 'Content-Length': String(body.length) } : {}) }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', (err) => resolve({ status: res.statusCode, headers: res.headers, body: '', error: err.message }));
    });
    req.on('error', (err) => resolve({ headers: {}, body: '', error: (err as NodeJS.ErrnoException).code ?? err.message }));
    req.end(body);
  });
}

/** The scratch root's files, hashed: "state unchanged" means not one byte or mode changed. */
function stateHash(h: Harness): string {
  return createHash('sha256').update(JSON.stringify(snapshotTree(h.paths.root))).digest('hex');
}

interface World {
  h: Harness;
  admin: Client;
  viewer: Client;
  node: string;
  token: string;
}

async function world(t: Test): Promise<World> {
  const h = await startHarness(t);
  const admin = await login(h, ADMIN);
  const viewer = await login(h, VIEWER);
  const node = (await admin.call('POST', '/api/nodes', { hostname: 'web1', mac: '52:54:00:00:00:01' })).json.systemId as string;
  const token = (await admin.call('POST', '/api/tokens', { name: 'admin-script' })).json.id as string;
  return { h, admin, viewer, node, token };
}

/** A route's path with its parameters filled in with things that exist. */
function concrete(w: World, pattern: string): string {
  const values: Record<string, string> = { ref: w.node, id: w.token, name: 'app.js' };
  return pattern.replace(/:([a-z]+)/g, (_m, name: string) => {
    const v = values[name];
    if (v === undefined) throw new Error(`routes.test.ts: no sample value for the parameter :${name} of ${pattern}; add one`);
    return v;
  });
}

/** A body each state change would accept from an admin, so a refusal is the policy's, not the input's. */
function plausibleBody(w: World, method: string, pattern: string): string | undefined {
  if (method === 'GET') return undefined;
  const bodies: Record<string, unknown> = {
    'POST /api/nodes': { hostname: 'web2', mac: '52:54:00:00:00:02' },
    'POST /api/nodes/import': { csv: 'web3,52:54:00:00:00:03' },
    'POST /api/deploy': { nodes: [w.node], power_on: 'false' },
    'POST /api/nodes/:ref/power': { action: 'on' },
    'PUT /api/nodes/:ref/bmc': { address: '192.0.2.5', user: 'u', password: 'p' },
    'POST /api/nodes/:ref/bmc': { address: '192.0.2.5', user: 'u', password: 'p' },
    'PUT /api/config': { 'webui.wol_repeat': '2' },
    'POST /api/config': { 'webui.wol_repeat': '2' },
    'POST /api/account/password': { current: ADMIN.password, new: 'changed-password-9' },
    'POST /api/users': { name: 'eve', role: 'admin', password: 'password-123' },
    'POST /api/tokens': { name: 'more' },
    'POST /api/images/import': { args: 'bookworm' },
    'POST /api/edges': { name: 'edge-z', subnet: '10.9.0.0/16' },
    'POST /api/edges/:name/subnets': { subnet: '10.9.0.0/16' },
  };
  return JSON.stringify(bodies[`${method} ${pattern}`] ?? {});
}

t.test('every route: unauthenticated → 401 (API) or 303 to the login (page GET), except public ones', async (t) => {
  const w = await world(t);
  for (const r of listRoutes()) {
    if (r.who === 'public') continue;
    const route = concrete(w, r.path);
    const before = stateHash(w.h);
    const answer = await rawRequest(`${w.h.base}${route}`, r.method, { 'Content-Type': 'application/json' }, r.method === 'GET' ? undefined : Buffer.from(plausibleBody(w, r.method, r.path) ?? ''));
    if (r.method === 'GET' && !r.path.startsWith('/api/')) {
      t.equal(answer.status, 303, `GET ${r.path} → 303`);
      t.equal(answer.headers.location, '/uec-provisioning/login', `GET ${r.path} → the login page`);
    } else {
      t.equal(answer.status, 401, `${r.method} ${r.path} → 401`);
    }
    t.equal(stateHash(w.h), before, `${r.method} ${r.path}: nothing changed`);
  }
});

t.test('every CSRF route: a cookie session without or with a wrong token → 403, nothing changed', async (t) => {
  const w = await world(t);
  for (const r of listRoutes()) {
    if (!r.csrf) continue;
    const route = concrete(w, r.path);
    const body = plausibleBody(w, r.method, r.path);
    for (const [how, headers] of [
      ['no token', { 'X-CSRF-Token': '' }],
      ['a wrong token', { 'X-CSRF-Token': 'x'.repeat(w.admin.csrf.length) }],
      ["the viewer's token", { 'X-CSRF-Token': w.viewer.csrf }],
    ] as const) {
      const before = stateHash(w.h);
      const answer = await w.admin.call(r.method, route, body === undefined ? undefined : JSON.parse(body), headers);
      t.equal(answer.status, 403, `${r.method} ${r.path} with ${how} → 403`);
      t.match(answer.text, /CSRF/, 'the answer says why');
      t.equal(stateHash(w.h), before, `${r.method} ${r.path} with ${how}: nothing changed`);
    }
    const formBefore = stateHash(w.h);
    const form = await rawRequest(`${w.h.base}${route}`, r.method, { Cookie: w.admin.cookie, 'Content-Type': 'application/x-www-form-urlencoded' }, Buffer.from(`_csrf=${'y'.repeat(w.admin.csrf.length)}&name=x`));
    t.equal(form.status, 403, `${r.method} ${r.path} as a form with a wrong _csrf → 403`);
    t.equal(stateHash(w.h), formBefore, `${r.method} ${r.path} as a form: nothing changed`);
  }
  t.equal((await w.admin.call('GET', '/api/session')).status, 200, 'the admin session is still alive (DELETE /api/session and /logout were refused)');
  t.equal((await w.admin.call('GET', `/api/nodes/${w.node}`)).status, 200, 'the node is still there');
});

t.test('every admin route: a logged-in viewer (with a valid CSRF token) → 403, nothing changed', async (t) => {
  const w = await world(t);
  for (const r of listRoutes()) {
    if (r.who !== 'admin') continue;
    const before = stateHash(w.h);
    const body = plausibleBody(w, r.method, r.path);
    const answer = await w.viewer.call(r.method, concrete(w, r.path), body === undefined ? undefined : JSON.parse(body));
    t.equal(answer.status, 403, `viewer ${r.method} ${r.path} → 403`);
    // The API answers JSON; a page (the Audit page) answers the HTML error page with the same message.
    t.match(r.path.startsWith('/api/') ? answer.json : answer.text, r.path.startsWith('/api/') ? { error: /needs admin/ } : /needs admin/);
    t.equal(stateHash(w.h), before, `viewer ${r.method} ${r.path}: nothing changed`);
  }
  const before = stateHash(w.h);
  t.equal((await w.viewer.call('DELETE', `/api/tokens/${w.token}`)).status, 403, "a viewer cannot revoke the admin's token");
  t.equal(stateHash(w.h), before, 'the token is kept');
});

t.test("every route: a body one byte over the route's limit → 413; the service still answers", async (t) => {
  const w = await world(t);
  for (const r of listRoutes()) {
    const before = stateHash(w.h);
    const headers: Record<string, string> = { 'Content-Type': 'application/json', ...(r.who === 'public' ? {} : { Cookie: w.admin.cookie, 'X-CSRF-Token': w.admin.csrf }) };
    const answer = await rawRequest(`${w.h.base}${concrete(w, r.path)}`, r.method, headers, Buffer.alloc(r.bodyLimit + 1, 'x'));
    t.equal(answer.status, 413, `${r.method} ${r.path} with ${r.bodyLimit + 1} bytes → 413 (${answer.error ?? ''})`);
    t.equal(stateHash(w.h), before, `${r.method} ${r.path}: nothing changed`);
    t.equal((await fetch(`${w.h.base}/login`)).status, 200, `the service answers after ${r.method} ${r.path}`);
  }
  t.equal((await w.admin.call('GET', '/api/session')).status, 200, 'the admin session still works');
});

t.test('404 for an unknown path, 405 with Allow for a known path and another method', async (t) => {
  const w = await world(t);
  const nowhere = await w.admin.call('GET', '/api/nowhere');
  t.equal(nowhere.status, 404);
  const patch = await w.admin.call('PATCH', '/api/nodes', {});
  t.equal(patch.status, 405);
  t.equal(patch.headers.get('allow'), 'GET, HEAD, POST');
  const put = await w.admin.call('PUT', `/api/nodes/${w.node}`, {});
  t.equal(put.status, 405);
  t.equal(put.headers.get('allow'), 'DELETE, GET, HEAD');
  t.equal((await rawRequest(`${w.h.base}/api/nowhere`, 'GET', {})).status, 401, 'an unknown API path without a login is still 401 (no map of the API for strangers)');
  const removed = await rawRequest(`${w.h.base}/api/nodes/${w.node}`, 'POST', { Cookie: w.admin.cookie, 'Content-Type': 'application/x-www-form-urlencoded' }, Buffer.from(`_method=DELETE&_csrf=${w.admin.csrf}`));
  t.equal(removed.status, 303, 'a form can still DELETE with _method');
  t.equal(removed.headers.location, '/uec-provisioning/nodes');
  t.equal((await w.admin.call('GET', `/api/nodes/${w.node}`)).status, 404, 'the node is gone');
});
