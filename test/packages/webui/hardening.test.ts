/**
 * Hostile requests to the web UI (issue 13): a chunked body over the limit before login,
 * malformed percent-encoding in a node path, a JSON body that is not an object. Each gets a
 * short 4xx, changes nothing, and the service keeps answering.
 */
import * as fs from 'node:fs';
import t, { type Test } from 'tap';
import { readStoreFiles } from '../../helpers/node-store-files';
import { postRaw } from '../../helpers/raw-http';
import { ADMIN, login, startHarness, type Harness } from './harness';

const MANAGED = '/etc/uec-provisioning/conf.d/50-managed.conf';

async function stillAnswers(t: Test, h: Harness, what: string): Promise<void> {
  t.equal((await fetch(`${h.base}/login`)).status, 200, `the service still answers after ${what}`);
}

/** The node store and the managed settings, byte for byte. */
function state(h: Harness): string {
  const read = (p: string) => (fs.existsSync(h.paths.resolve(p)) ? fs.readFileSync(h.paths.resolve(p), 'utf8') : '<none>');
  return `${readStoreFiles(h.paths)}\n---\n${read(MANAGED)}`;
}

t.test('before login: a body over 64 KiB → 413, chunked or with Content-Length; the service stays up', async (t) => {
  const h = await startHarness(t);
  const big = Buffer.from(JSON.stringify({ user: 'admin', password: 'x'.repeat(64 * 1024) }));
  for (const chunked of [true, false]) {
    const how = chunked ? 'chunked' : 'with Content-Length';
    const answer = await postRaw(`${h.base}/api/session`, big, { chunked, headers: { 'Content-Type': 'application/json' } });
    t.equal(answer.status, 413, `${big.length} bytes ${how} → 413 (${answer.error ?? ''})`);
    t.match(answer.body ?? '', /request body over 65536 bytes/);
    await stillAnswers(t, h, `a body over the limit ${how}`);
  }
  const form = await postRaw(`${h.base}/login`, Buffer.from(`user=admin&password=${'x'.repeat(70 * 1024)}`), { chunked: true, headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
  t.equal(form.status, 413, 'the login form too');
  const huge = await postRaw(`${h.base}/api/session`, Buffer.alloc(4 * 1024 * 1024, 'x'), { chunked: true, headers: { 'Content-Type': 'application/json' } });
  t.ok(huge.status === 413 || huge.error !== undefined, `4 MiB chunked → 413 or a closed connection (${huge.status ?? huge.error})`);
  await stillAnswers(t, h, 'a 4 MiB body');
  t.ok(h.logs.some((l) => / 413 /.test(l) && l.includes('/api/session')), 'the refusal is in the access log');
  await login(h, ADMIN); // logging in still works
});

t.test('malformed percent-encoding in a node path → 400 with a one-line message, nothing changed', async (t) => {
  const h = await startHarness(t);
  const c = await login(h, ADMIN);
  t.equal((await c.call('POST', '/api/nodes', { hostname: 'web1', mac: '52:54:00:00:00:01' })).status, 201);
  const before = state(h);
  for (const [method, route] of [
    ['GET', '/api/nodes/%ZZ'],
    ['DELETE', '/api/nodes/web1%E0%A4%A'],
    ['POST', '/api/nodes/web1%/release'],
    ['PUT', '/api/nodes/%ZZ/bmc'],
  ] as const) {
    const r = await c.call(method, route, method === 'GET' || method === 'DELETE' ? undefined : { address: '192.0.2.9', user: 'u', password: 'p' });
    t.equal(r.status, 400, `${method} ${route} → 400`);
    t.match(r.json, { error: /percent-encoding/ }, 'a short message naming the problem');
  }
  const deploy = await c.call('POST', '/api/deploy', { nodes: ['web1', '%ZZ'], power_on: 'false' });
  t.equal(deploy.status, 400, 'a malformed node reference in a deploy body → 400');
  const page = await c.call('GET', '/nodes/%ZZ');
  t.equal(page.status, 400, 'the node page too (where a form post with such a _back lands after saving)');
  t.match(page.text, /percent-encoding/);
  t.equal(state(h), before, 'the node store and settings are unchanged');
  t.equal((await c.call('GET', '/api/nodes/web1')).status, 200, 'well-formed references still work');
  await stillAnswers(t, h, 'malformed paths');
});

t.test('a JSON body that is null or not an object → 400 before anything is changed', async (t) => {
  const h = await startHarness(t);
  const c = await login(h, ADMIN);
  const node = (await c.call('POST', '/api/nodes', { hostname: 'web1', mac: '52:54:00:00:00:01' })).json as { systemId: string };
  const before = state(h);
  for (const body of ['null', '[]', '"x"', '42']) {
    for (const [method, route] of [
      ['PUT', '/api/config'],
      ['POST', '/api/nodes'],
      ['POST', '/api/deploy'],
      ['POST', `/api/nodes/${node.systemId}/release`],
      ['PUT', `/api/nodes/${node.systemId}/bmc`],
      ['DELETE', `/api/nodes/${node.systemId}`],
      ['POST', '/api/tokens'],
    ] as const) {
      const r = await c.call(method, route, body, { 'Content-Type': 'application/json' });
      t.equal(r.status, 400, `${method} ${route} with ${body} → 400`);
      t.match(r.json, { error: 'the body must be a JSON object' });
    }
    const anonymous = await fetch(`${h.base}/api/session`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });
    t.equal(anonymous.status, 400, `POST /api/session with ${body} → 400`);
  }
  t.equal(state(h), before, 'the node store and settings are unchanged');
  t.same((await c.call('GET', '/api/tokens')).json, [], 'no token was created');
  await stillAnswers(t, h, 'bad JSON bodies');
});
