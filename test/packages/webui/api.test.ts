import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { AUDIT_LOG, type AuditEntry } from '../../../src/core/audit';
import { recordStatusEvent } from '../../../src/region/node-ops';
import { createFileNodeStore } from '../../../src/region/node-store';
import { createAccountStore } from '../../../packages/webui/accounts';
import { createBmcStore } from '../../../packages/webui/power';
import { ADMIN, VIEWER, login, startHarness, type Harness } from './harness';
import { readStoreFiles } from '../../helpers/node-store-files';
import { ipmiSimUnavailableReason, startLoopbackBmc, until } from '../../helpers/ipmi-sim';

async function addNode(h: Harness, c: Awaited<ReturnType<typeof login>>, hostname: string, mac: string) {
  const r = await c.call('POST', '/api/nodes', { hostname, mac });
  if (r.status !== 201) throw new Error(`add ${hostname}: ${r.status} ${r.text}`);
  return r.json as { systemId: string };
}

t.test('unauthenticated: every API route is 401, pages redirect to the login', async (t) => {
  const h = await startHarness(t);
  for (const [method, route] of [
    ['GET', '/api/session'], ['GET', '/api/dashboard'], ['GET', '/api/nodes'], ['POST', '/api/nodes'], ['POST', '/api/nodes/import'], ['GET', '/api/nodes/x'],
    ['DELETE', '/api/nodes/x'], ['POST', '/api/nodes/x/release'], ['POST', '/api/nodes/x/power'], ['GET', '/api/nodes/x/bmc'], ['PUT', '/api/nodes/x/bmc'],
    ['GET', '/api/nodes/x/preseed'], ['GET', '/api/nodes/x/lease'], ['POST', '/api/deploy'], ['GET', '/api/events'], ['GET', '/api/roles'], ['GET', '/api/images'],
    ['POST', '/api/images/import'], ['GET', '/api/config'], ['PUT', '/api/config'], ['POST', '/api/account/password'], ['GET', '/api/users'], ['POST', '/api/users'],
    ['GET', '/api/tokens'], ['POST', '/api/tokens'], ['DELETE', '/api/tokens/0123456789ab'],
  ]) {
    const r = await fetch(`${h.base}${route}`, { method, redirect: 'manual' });
    t.equal(r.status, 401, `${method} ${route} → 401`);
  }
  const page = await fetch(`${h.base}/nodes`, { redirect: 'manual' });
  t.equal(page.status, 303);
  t.equal(page.headers.get('location'), '/uec-provisioning/login');
  const forged = await fetch(`${h.base}/api/nodes`, { headers: { Cookie: 'uecp_session=forged' } });
  t.equal(forged.status, 401, 'unknown session cookie → 401');
  const badToken = await fetch(`${h.base}/api/nodes`, { headers: { Authorization: 'Bearer uecp_0123456789ab_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' } });
  t.equal(badToken.status, 401, 'unknown API token → 401');
});

t.test('login sets an HttpOnly SameSite cookie; logout ends the session', async (t) => {
  const h = await startHarness(t);
  const res = await fetch(`${h.base}/api/session`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(ADMIN) });
  const setCookie = res.headers.get('set-cookie') ?? '';
  t.match(setCookie, /HttpOnly/);
  t.match(setCookie, /SameSite=Strict/);
  t.match(setCookie, /Path=\/uec-provisioning\//);
  const c = await login(h, ADMIN);
  t.same((await c.call('GET', '/api/session')).json, { user: 'admin', role: 'admin', csrf: c.csrf });
  t.equal((await c.call('DELETE', '/api/session')).status, 200);
  t.equal((await c.call('GET', '/api/nodes')).status, 401, 'the cookie is dead after logout');
  const formLogin = await fetch(`${h.base}/login`, { method: 'POST', redirect: 'manual', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'user=admin&password=admin-password-1' });
  t.equal(formLogin.status, 303);
  const cookie = (formLogin.headers.get('set-cookie') ?? '').split(';')[0]!;
  const logout = await fetch(`${h.base}/logout`, { method: 'POST', redirect: 'manual', headers: { Cookie: cookie, 'Content-Type': 'application/x-www-form-urlencoded' }, body: '' });
  t.equal(logout.status, 403, 'logout without the CSRF token is refused');
});

t.test('state changes without the CSRF token are 403; API tokens need none', async (t) => {
  const h = await startHarness(t);
  const c = await login(h, ADMIN);
  const noCsrf = await c.call('POST', '/api/nodes', { hostname: 'n1', mac: '52:54:00:00:00:01' }, { 'X-CSRF-Token': '' });
  t.equal(noCsrf.status, 403);
  const wrong = await c.call('POST', '/api/nodes', { hostname: 'n1', mac: '52:54:00:00:00:01' }, { 'X-CSRF-Token': 'x'.repeat(32) });
  t.equal(wrong.status, 403);
  t.same((await h.store.list()).length, 0, 'nothing was added');
  const form = await fetch(`${h.base}/api/nodes`, { method: 'POST', redirect: 'manual', headers: { Cookie: c.cookie, 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'hostname=n1&mac=52:54:00:00:00:01' });
  t.equal(form.status, 403, 'form without _csrf');
  const withField = await fetch(`${h.base}/api/nodes`, { method: 'POST', redirect: 'manual', headers: { Cookie: c.cookie, 'Content-Type': 'application/x-www-form-urlencoded' }, body: `hostname=n1&mac=52:54:00:00:00:01&_csrf=${c.csrf}&_back=/uec-provisioning/nodes` });
  t.equal(withField.status, 303, 'form with _csrf → redirect back');
  t.match(withField.headers.get('location'), /^\/uec-provisioning\/nodes\?msg=/);
  const created = await c.call('POST', '/api/tokens', { name: 'script' });
  t.equal(created.status, 201);
  const secret = created.json.secret as string;
  t.match(secret, /^uecp_[0-9a-f]{12}_/);
  const viaToken = await fetch(`${h.base}/api/nodes`, { method: 'POST', headers: { Authorization: `Bearer ${secret}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ hostname: 'n2', mac: '52:54:00:00:00:02' }) });
  t.equal(viaToken.status, 201, 'a Bearer token needs no CSRF token');
  const listed = await c.call('GET', '/api/tokens');
  t.equal(listed.json.length, 1);
  t.notOk('digest' in listed.json[0], 'the digest is never shown');
  const stored = fs.readFileSync(h.paths.resolve('/var/lib/uec-provisioning/webui/accounts.json'), 'utf8');
  t.notOk(stored.includes(secret.split('_')[2]!), 'the token secret is not stored');
  t.equal(fs.statSync(h.paths.resolve('/var/lib/uec-provisioning/webui/accounts.json')).mode & 0o777, 0o600);
  t.equal((await c.call('DELETE', `/api/tokens/${created.json.id}`)).status, 200);
  const revoked = await fetch(`${h.base}/api/nodes`, { headers: { Authorization: `Bearer ${secret}` } });
  t.equal(revoked.status, 401, 'a revoked token → 401');
});

t.test('a viewer reads but changes nothing (403)', async (t) => {
  const h = await startHarness(t);
  const admin = await login(h, ADMIN);
  const node = await addNode(h, admin, 'n1', '52:54:00:00:00:01');
  const v = await login(h, VIEWER);
  t.equal((await v.call('GET', '/api/nodes')).status, 200);
  t.equal((await v.call('GET', `/api/nodes/${node.systemId}`)).status, 200);
  for (const [method, route, body] of [
    ['POST', '/api/nodes', { hostname: 'x', mac: '52:54:00:00:00:09' }],
    ['POST', '/api/deploy', { nodes: [node.systemId] }],
    ['POST', `/api/nodes/${node.systemId}/release`, {}],
    ['POST', `/api/nodes/${node.systemId}/power`, { action: 'on' }],
    ['PUT', `/api/nodes/${node.systemId}/bmc`, { address: '192.0.2.5', user: 'u', password: 'p' }],
    ['DELETE', `/api/nodes/${node.systemId}`, undefined],
    ['PUT', '/api/config', { 'webui.wol_repeat': '2' }],
    ['POST', '/api/users', { name: 'eve', role: 'admin', password: 'password-123' }],
    ['GET', '/api/users', undefined],
    ['POST', '/api/nodes/import', { csv: 'a,52:54:00:00:00:0a' }],
  ] as [string, string, unknown][]) {
    const r = await v.call(method, route, body);
    t.equal(r.status, 403, `viewer ${method} ${route} → 403`);
  }
  t.equal((await h.store.list())[0]?.status, 'ready', 'the node is unchanged');
  t.equal((await v.call('POST', '/api/tokens', { name: 'mine' })).status, 201, 'a viewer may make their own token');
});

t.test('bad and unknown node ids', async (t) => {
  const h = await startHarness(t);
  const c = await login(h, ADMIN);
  t.equal((await c.call('GET', '/api/nodes/%3Cscript%3E')).status, 400);
  t.equal((await c.call('GET', `/api/nodes/${'a'.repeat(65)}`)).status, 400);
  t.equal((await c.call('GET', '/api/nodes/node-zzzzzz')).status, 404);
  t.equal((await c.call('POST', '/api/nodes/node-zzzzzz/release', {})).status, 404);
  t.equal((await c.call('POST', '/api/deploy', { nodes: ['node-zzzzzz'] })).status, 404);
  t.equal((await c.call('POST', '/api/deploy', { nodes: ['../../etc'] })).status, 400);
  const page = await c.call('GET', '/nodes/node-zzzzzz');
  t.equal(page.status, 404);
  t.match(page.headers.get('content-type'), /text\/html/);
});

t.test('HTML in hostnames, role names and hardware details is shown escaped', async (t) => {
  const h = await startHarness(t);
  const c = await login(h, ADMIN);
  const bad = await c.call('POST', '/api/nodes', { hostname: '<script>alert(1)</script>', mac: '52:54:00:00:00:01' });
  t.equal(bad.status, 400, 'a hostname with HTML is refused');
  const form = await fetch(`${h.base}/api/nodes`, {
    method: 'POST',
    redirect: 'manual',
    headers: { Cookie: c.cookie, 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ hostname: '<img src=x onerror=alert(1)>', mac: '52:54:00:00:00:01', _csrf: c.csrf }).toString(),
  });
  const body = await form.text();
  t.equal(form.status, 400);
  t.notOk(body.includes('<img src=x'), 'the bad hostname does not become markup');
  t.ok(body.includes('&lt;img src=x onerror=alert(1)&gt;'), 'it is shown escaped');
  const node = await addNode(h, c, 'n1', '52:54:00:00:00:01');
  const deploy = await fetch(`${h.base}/api/deploy`, {
    method: 'POST',
    redirect: 'manual',
    headers: { Cookie: c.cookie, 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ nodes: node.systemId, role: '<b onmouseover=x>role</b>', release: 'bookworm', _csrf: c.csrf }).toString(),
  });
  const deployBody = await deploy.text();
  t.ok(deploy.status >= 400 && deploy.status < 500);
  t.notOk(deployBody.includes('<b onmouseover'), 'role name not markup');
  t.ok(deployBody.includes('&lt;b onmouseover=x&gt;'), 'role name escaped');
  // Hardware details come from the machine itself (enlistment): free text.
  await h.store.update((nodes) => {
    nodes[0]!.hardware.product = '"><script>alert(2)</script>';
  });
  const page = await c.call('GET', `/nodes/${node.systemId}`);
  t.equal(page.status, 200);
  t.notOk(page.text.includes('<script>alert(2)'));
  t.ok(page.text.includes('&quot;&gt;&lt;script&gt;alert(2)&lt;/script&gt;'));
  t.match(page.headers.get('content-security-policy'), /script-src 'self'/);
});

t.test('oversized bodies are 413 and change nothing', async (t) => {
  const h = await startHarness(t);
  const c = await login(h, ADMIN);
  const r = await c.call('POST', '/api/nodes', JSON.stringify({ hostname: 'n1', mac: '52:54:00:00:00:01', pad: 'x'.repeat(70 * 1024) }), { 'Content-Type': 'application/json' });
  t.equal(r.status, 413);
  const login2 = await fetch(`${h.base}/api/session`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ user: 'admin', password: 'x'.repeat(100 * 1024) }) });
  t.equal(login2.status, 413);
  t.equal((await h.store.list()).length, 0);
});

t.test('static files: served by name; path traversal fails', async (t) => {
  const h = await startHarness(t);
  const ok = await fetch(`${h.base}/static/app.js`);
  t.equal(ok.status, 200);
  t.match(ok.headers.get('content-type'), /javascript/);
  for (const p of ['/static/../../../../etc/passwd', '/static/%2e%2e/%2e%2e/etc/passwd', '/static/..%2f..%2fpackage.json', '/static/app.js%00.css', '/static/.hidden.js', '/static/nothere.js']) {
    const r = await fetch(`http://127.0.0.1:${h.port}/uec-provisioning${p}`);
    t.equal(r.status, 404, `${p} → 404`);
    t.notMatch(await r.text(), /root:/);
  }
});

t.test('login attempts back off per user and address; the same address may still log in as someone else', async (t) => {
  let clock = Date.now();
  const h = await startHarness(t, process.env, { now: () => clock });
  const attempt = (password: string, user = 'admin') => fetch(`${h.base}/api/session`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ user, password }) });
  for (let i = 0; i < 5; i++) t.equal((await attempt('wrong')).status, 401);
  const throttled = await attempt(ADMIN.password);
  t.equal(throttled.status, 429, 'even the right password is refused while throttled');
  t.equal(throttled.headers.get('retry-after'), '1', 'the first wait is 1 s');
  t.equal((await attempt(VIEWER.password, 'viewer')).status, 200, 'another account from the same address is not locked out');
  clock += 1000;
  t.equal((await attempt(ADMIN.password)).status, 200, 'after the wait the right password works');
  t.ok(h.logs.some((l) => /login refused/.test(l)));
  t.notOk(h.logs.some((l) => l.includes(ADMIN.password)), 'no password in the log');
});

t.test('a session cookie from before a password change stops working', async (t) => {
  const h = await startHarness(t);
  const old = await login(h, ADMIN);
  const other = await login(h, ADMIN);
  const r = await other.call('POST', '/api/account/password', { current: 'wrong', new: 'new-password-2' });
  t.equal(r.status, 403, 'the current password is checked');
  const changed = await other.call('POST', '/api/account/password', { current: ADMIN.password, new: 'new-password-2' });
  t.equal(changed.status, 200);
  t.equal((await old.call('GET', '/api/nodes')).status, 401, 'old session rejected');
  t.equal((await other.call('GET', '/api/nodes')).status, 401, 'the changing session cookie is replaced too');
  other.cookie = (changed.headers.get('set-cookie') ?? '').split(';')[0]!;
  other.csrf = changed.json.csrf;
  t.equal((await other.call('GET', '/api/nodes')).status, 200, 'the new cookie works');
  // A change made by another process (the CLI) is seen too.
  const fresh = await login(h, { user: 'admin', password: 'new-password-2' });
  await createAccountStore(h.paths).setPassword('admin', 'third-password-3');
  t.equal((await fresh.call('GET', '/api/nodes')).status, 401, 'a password set from the CLI ends sessions');
});

t.test('deploy is all or nothing; release; no BMC: only Wake-on-LAN power on; events stream live', async (t) => {
  const h = await startHarness(t);
  const c = await login(h, ADMIN);
  const a = await addNode(h, c, 'alpha', '52:54:00:00:00:01');
  const b = await addNode(h, c, 'beta', '52:54:00:00:00:02');
  t.equal((await c.call('POST', '/api/deploy', { nodes: [b.systemId], power_on: false })).status, 200);
  const before = readStoreFiles(h.paths);
  const failed = await c.call('POST', '/api/deploy', { nodes: [a.systemId, b.systemId], power_on: false });
  t.equal(failed.status, 409, 'beta is deploying already');
  t.match(failed.json.error, /beta/);
  t.same(readStoreFiles(h.paths), before, 'the store files are byte for byte the same');
  t.equal((await c.call('POST', '/api/deploy', { nodes: [a.systemId], role: 'no-such-role', power_on: false })).status, 409);
  t.equal((await c.call('POST', '/api/deploy', { nodes: [a.systemId], release: 'bad release', power_on: false })).status, 400);
  t.equal((await c.call('POST', '/api/deploy', { nodes: [] })).status, 400);
  t.same(readStoreFiles(h.paths), before, 'still unchanged');

  t.equal((await c.call('POST', `/api/nodes/${b.systemId}/power`, { action: 'off' })).status, 502, 'no BMC: power off is POWER_FAILED');
  t.equal((await c.call('POST', `/api/nodes/${b.systemId}/power`, { action: 'explode' })).status, 400);
  const bEvents = (await c.call('GET', `/api/nodes/${b.systemId}`)).json.events as { type: string; message: string }[];
  t.ok(bEvents.some((e) => e.type === 'power' && /power off failed .*no BMC details/.test(e.message)), 'a failed power action is an event too');

  // Live: a status call-back recorded by another process reaches the SSE stream.
  const controller = new AbortController();
  const stream = await fetch(`${h.base}/api/events`, { headers: { Cookie: c.cookie }, signal: controller.signal });
  t.equal(stream.status, 200);
  t.match(stream.headers.get('content-type'), /text\/event-stream/);
  const reader = stream.body!.getReader();
  const other = createFileNodeStore(h.paths);
  await recordStatusEvent(other, b.systemId, 'installing', 'partitioning');
  let seen = '';
  while (!/"stage":"installing"/.test(seen)) {
    const { value, done } = await reader.read();
    if (done) break;
    seen += Buffer.from(value).toString('utf8');
  }
  t.match(seen, /event: node\ndata: \{"systemId":"[^"]+","hostname":"beta"/);
  controller.abort();

  // Release back to ready.
  const released = await c.call('POST', `/api/nodes/${b.systemId}/release`, {});
  t.equal(released.json.status, 'ready');
  // Deploy with power-on: Wake-on-LAN on loopback (127.255.255.255), recorded on the node.
  const deployed = await c.call('POST', '/api/deploy', { nodes: [b.systemId], role: 'server', release: 'bookworm' });
  t.equal(deployed.status, 200);
  t.equal(deployed.json.deployed[0].status, 'deploying');
  let wol: { type: string; message: string } | undefined;
  for (let i = 0; i < 100 && !wol; i++) {
    wol = ((await c.call('GET', `/api/nodes/${b.systemId}`)).json.events as { type: string; message: string }[]).find((e) => e.type === 'power' && /on by Wake-on-LAN/.test(e.message));
    if (!wol) await new Promise((r) => setTimeout(r, 50));
  }
  t.match(wol?.message, /power on by Wake-on-LAN: 1 packet\(s\) for 52:54:00:00:00:02 to 127\.255\.255\.255 on lo/);
});

t.test('BMC cipher suite: PUT stores and answers auto, 3 or 17; anything else is 400 naming it and changes nothing; the node page shows and submits it', async (t) => {
  const h = await startHarness(t);
  const c = await login(h, ADMIN);
  const a = await addNode(h, c, 'alpha', '52:54:00:00:00:01');
  const bmcs = createBmcStore(h.paths);
  const bmcFile = h.paths.resolve('/var/lib/uec-provisioning/bmc.json');
  const details = { address: '192.0.2.5', user: 'ADMIN', password: 's3cret' };
  const route = `/api/nodes/${a.systemId}/bmc`;

  // Not given: auto, nothing pinned in the store.
  const unset = await c.call('PUT', route, details);
  t.same([unset.status, unset.json], [200, { address: '192.0.2.5', user: 'ADMIN', cipher_suite: 'auto' }], unset.text);
  t.same((await c.call('GET', route)).json, { address: '192.0.2.5', user: 'ADMIN', cipher_suite: 'auto' }, 'GET shows auto when unset');
  t.same(await bmcs.get(a.systemId), details);

  for (const [given, stored] of [[3, 3], ['17', 17], [' 3 ', 3]] as const) {
    const put = await c.call('PUT', route, { ...details, cipher_suite: given });
    t.same([put.status, put.json], [200, { address: '192.0.2.5', user: 'ADMIN', cipher_suite: stored }], `cipher_suite ${JSON.stringify(given)}: answered`);
    t.same((await c.call('GET', route)).json, { address: '192.0.2.5', user: 'ADMIN', cipher_suite: stored }, 'and read back');
    t.same(await bmcs.get(a.systemId), { ...details, cipherSuite: stored }, 'and stored');
  }

  const before = fs.readFileSync(bmcFile, 'utf8');
  for (const bad of ['5', '0', '1', '03x', 'AES', '-3']) {
    const r = await c.call('PUT', route, { address: '192.0.2.6', user: 'other', password: 'other', cipher_suite: bad });
    t.equal(r.status, 400, `cipher_suite ${bad}: 400`);
    t.same(r.json, { error: `BMC cipher suite "${bad}" is not "auto", 3 or 17`, code: 'INVALID_VALUE' }, 'one line naming the value');
    t.equal(fs.readFileSync(bmcFile, 'utf8'), before, 'nothing stored');
  }
  t.equal((await c.call('GET', route)).json.cipher_suite, 3, 'the pinned suite is kept');
  const edits = ((await c.call('GET', `/api/nodes/${a.systemId}`)).json.events as { type: string; message: string }[]).filter((e) => e.type === 'edited').map((e) => e.message);
  t.same(edits, ['auto', '3', '17', '3'].map((suite) => `BMC details set (192.0.2.5, cipher suite ${suite}) by admin`), 'each change is a node event naming the suite');

  // The node page shows the suite beside the BMC line and selects it in the form.
  const selected = (text: string) => [...text.matchAll(/<option value="([^"]*)" selected>/g)].map((m) => m[1]);
  const shown = await c.call('GET', `/nodes/${a.systemId}`);
  t.equal(shown.status, 200);
  t.match(shown.text, /IPMI through BMC 192\.0\.2\.5 \(user ADMIN, cipher suite 3\)\./);
  const select = /<select id="b-suite" name="cipher_suite">(.*?)<\/select>/s.exec(shown.text)?.[1] ?? '';
  t.same([...select.matchAll(/<option value="([^"]*)"/g)].map((m) => m[1]), ['auto', '3', '17'], 'auto, 3 and 17 offered');
  t.same(selected(select), ['3'], 'the current suite is selected');

  // The form posts it, as a browser does.
  const post = (suite: string) =>
    c.call('POST', route, new URLSearchParams({ _csrf: c.csrf, _back: `/uec-provisioning/nodes/${a.systemId}`, ...details, cipher_suite: suite }).toString(), { 'Content-Type': 'application/x-www-form-urlencoded' });
  const posted = await post('17');
  t.equal(posted.status, 303, posted.text);
  t.match(posted.headers.get('location'), new RegExp(`^/uec-provisioning/nodes/${a.systemId}`));
  t.equal((await bmcs.get(a.systemId))?.cipherSuite, 17, 'the form set 17');
  const page17 = await c.call('GET', `/nodes/${a.systemId}`);
  t.match(page17.text, /\(user ADMIN, cipher suite 17\)/);
  t.same(selected(page17.text), ['17']);
  const formBad = await post('5');
  t.equal(formBad.status, 400);
  t.ok(formBad.text.includes('BMC cipher suite &quot;5&quot; is not &quot;auto&quot;, 3 or 17'), 'the form gets the same line');
  t.equal((await bmcs.get(a.systemId))?.cipherSuite, 17, 'nothing changed');
  t.equal((await post('auto')).status, 303);
  t.same(await bmcs.get(a.systemId), details, 'auto unpins it');
  const audit = fs.readFileSync(h.paths.resolve(AUDIT_LOG), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as AuditEntry);
  const last = audit.filter((e) => e.action === 'bmc.set').at(-1);
  t.same(last?.changes, { cipherSuite: { before: 17, after: 'auto' } }, 'the audit line shows the suite change (and no password: it did not change)');
  t.notOk(audit.some((e) => JSON.stringify(e).includes('s3cret')), 'no audit line holds the password');
  const pageAuto = await c.call('GET', `/nodes/${a.systemId}`);
  t.match(pageAuto.text, /\(user ADMIN, cipher suite auto\)/);
  t.same(selected(pageAuto.text), ['auto']);
});

t.test('power by IPMI through a real BMC (ipmi_sim on loopback): on, cycle, off read back from the BMC; the pinned cipher suite is used; failures are POWER_FAILED', { skip: ipmiSimUnavailableReason(), timeout: 120_000 }, async (t) => {
  const bmc = await startLoopbackBmc(t, { user: 'ADMIN', password: 's3cret' });
  const h = await startHarness(t);
  const c = await login(h, ADMIN);
  const a = await addNode(h, c, 'alpha', '52:54:00:00:00:01');
  const b = await addNode(h, c, 'beta', '52:54:00:00:00:02');

  // BMC details: root-only file, password never shown.
  t.equal((await c.call('PUT', `/api/nodes/${a.systemId}/bmc`, { address: bmc.address, user: 'ADMIN', password: 's3cret' })).status, 200);
  t.same((await c.call('GET', `/api/nodes/${a.systemId}/bmc`)).json, { address: bmc.address, user: 'ADMIN', cipher_suite: 'auto' });
  t.equal(fs.statSync(h.paths.resolve('/var/lib/uec-provisioning/bmc.json')).mode & 0o777, 0o600);
  t.equal((await c.call('PUT', `/api/nodes/${a.systemId}/bmc`, { address: 'x\ny', user: 'u', password: 'p' })).status, 400);
  // ipmi_sim offers no cipher suite 17 and does not answer "Get Channel Cipher Suites": pinned
  // to 3 through the API, every call is quick.
  const pinned = await c.call('PUT', `/api/nodes/${a.systemId}/bmc`, { address: bmc.address, user: 'ADMIN', password: 's3cret', cipher_suite: '3' });
  t.same([pinned.status, pinned.json], [200, { address: bmc.address, user: 'ADMIN', cipher_suite: 3 }]);
  const bmcs = createBmcStore(h.paths);
  t.equal(await bmc.powerStatus(), 'off', 'the machine starts powered off');
  t.equal(bmc.machinePid(), undefined);

  const on = await c.call('POST', `/api/nodes/${a.systemId}/power`, { action: 'on' });
  t.equal(on.status, 200, on.text);
  t.equal(on.json.message, `power on by IPMI (${bmc.address}): Chassis Power Control: Up/On`);
  await until('the BMC to report power on', async () => (await bmc.powerStatus()) === 'on', 20_000);
  await until('the machine to run', () => bmc.machinePid() !== undefined, 20_000);
  const first = bmc.machinePid()!;
  t.pass(`the BMC reports power on and runs the machine (pid ${first})`);

  const cycle = await c.call('POST', `/api/nodes/${a.systemId}/power`, { action: 'cycle' });
  t.equal(cycle.status, 200, cycle.text);
  t.equal(cycle.json.message, `power cycle by IPMI (${bmc.address}): Chassis Power Control: Cycle`);
  await until('the machine to be restarted by the cycle', () => ![undefined, first].includes(bmc.machinePid()), 30_000);
  t.equal(await bmc.powerStatus(), 'on', 'after the cycle the BMC reports power on, with a new machine process');

  const off = await c.call('POST', `/api/nodes/${a.systemId}/power`, { action: 'off' });
  t.equal(off.status, 200, off.text);
  t.equal(off.json.message, `power off by IPMI (${bmc.address}): Chassis Power Control: Down/Off`);
  await until('the BMC to report power off', async () => (await bmc.powerStatus()) === 'off', 30_000);
  await until('the machine to stop', () => bmc.machinePid() === undefined, 20_000);
  t.pass('the BMC reports power off and the machine has stopped');

  // The pinned suite reaches ipmitool: 17, which ipmi_sim does not offer, fails at once (without
  // -C, ipmitool would have fallen back to 3 and switched the machine on).
  t.equal((await c.call('PUT', `/api/nodes/${a.systemId}/bmc`, { address: bmc.address, user: 'ADMIN', password: 's3cret', cipher_suite: 17 })).status, 200);
  const suite17 = await c.call('POST', `/api/nodes/${a.systemId}/power`, { action: 'on' });
  t.equal(suite17.status, 502);
  t.equal(suite17.json.code, 'POWER_FAILED');
  t.match(suite17.json.error, new RegExp(`^ipmitool power on on ${bmc.address.replace(/\./g, '\\.')} \\(cipher suite 17\\) failed \\(exit 1\\): `));
  t.equal(await bmc.powerStatus(), 'off', 'and the machine stays off');

  // A wrong password: POWER_FAILED, the machine stays off, the attempt is on the timeline.
  t.equal((await c.call('PUT', `/api/nodes/${b.systemId}/bmc`, { address: bmc.address, user: 'ADMIN', password: 'wrong-password', cipher_suite: 3 })).status, 200);
  const broken = await c.call('POST', `/api/nodes/${b.systemId}/power`, { action: 'on' });
  t.equal(broken.status, 502);
  t.equal(broken.json.code, 'POWER_FAILED');
  t.notOk(broken.text.includes('wrong-password'), 'the password is not in the answer');
  t.equal(await bmc.powerStatus(), 'off', 'the machine stays off');
  t.equal(bmc.machinePid(), undefined);

  const events = (await c.call('GET', `/api/nodes/${a.systemId}`)).json.events as { type: string; message: string }[];
  t.same(events.filter((e) => e.type === 'power').map((e) => e.message.replace(/: Chassis.*| failed.*/, '')), [
    `power on by IPMI (${bmc.address})`, `power cycle by IPMI (${bmc.address})`, `power off by IPMI (${bmc.address})`, 'power on',
  ], 'every power action is a node event');
  const bEvents = (await c.call('GET', `/api/nodes/${b.systemId}`)).json.events as { type: string; message: string }[];
  t.ok(bEvents.some((e) => e.type === 'power' && /^power on failed \(by admin\): ipmitool power on on .* \(cipher suite 3\) failed/.test(e.message)), 'a failed power action is an event too');
  t.equal((await c.call('DELETE', `/api/nodes/${b.systemId}/bmc`)).status, 200);
  t.equal(await bmcs.get(b.systemId), undefined);
});

t.test('every other route: nodes, CSV import, dashboard, roles, images, config, preseed, lease, users, pages', async (t) => {
  const h = await startHarness(t);
  const c = await login(h, ADMIN);
  const imp = await c.call('POST', '/api/nodes/import', 'hostname,mac,arch,role\nweb1,52:54:00:00:01:01,amd64,server\nweb2,52:54:00:00:01:02 52:54:00:00:01:03\n', { 'Content-Type': 'text/csv' });
  t.equal(imp.status, 201);
  t.equal(imp.json.imported, 2);
  const dup = await c.call('POST', '/api/nodes/import', { csv: 'web3,52:54:00:00:01:04\nweb4,52:54:00:00:01:01' });
  t.equal(dup.status, 409, 'a duplicate MAC in the CSV');
  t.match(dup.json.error, /nothing was imported/);
  const badLine = await c.call('POST', '/api/nodes/import', { csv: 'web3,52:54:00:00:01:04\nweb 4,zz' });
  t.equal(badLine.status, 400);
  t.match(badLine.json.error, /CSV line 2/);
  t.equal((await h.store.list()).length, 2, 'failed imports added nothing');
  const listed = await c.call('GET', '/api/nodes?q=web2&sort=hostname&dir=desc');
  t.equal(listed.json.matched, 1);
  t.same(listed.json.nodes[0].macs, ['52:54:00:00:01:02', '52:54:00:00:01:03']);
  t.equal((await c.call('GET', '/api/nodes?status=deployed')).json.matched, 0);
  const web1 = (await c.call('GET', '/api/nodes/web1')).json;
  t.match(web1.token, /…$/, 'the node token is masked');
  const dash = await c.call('GET', '/api/dashboard');
  t.equal(dash.json.total, 2);
  t.equal(dash.json.counts.ready, 2);
  t.same(dash.json.health.map((x: { name: string }) => x.name), ['dnsmasq', 'DHCP', 'Images', 'Mirror', 'Free disk']);
  t.match(dash.json.health[0].detail, /not installed/);
  t.ok((await c.call('GET', '/api/roles')).json.some((r: { name: string }) => r.name === 'server'));
  t.same((await c.call('GET', '/api/images')).json, { images: [], importAvailable: false });
  t.equal((await c.call('POST', '/api/images/import', { args: 'bookworm' })).status, 404);
  const preseed = await c.call('GET', `/api/nodes/${web1.systemId}/preseed`);
  t.equal(preseed.status, 200);
  const full = (await h.store.find('web1'))!.token;
  t.notOk(preseed.json.text.includes(full), 'the token is masked in the preview');
  t.match(preseed.json.text, /\(masked\)/);
  t.same((await c.call('GET', `/api/nodes/${web1.systemId}/lease`)).json, { leases: null, leaseFile: false });
  const leaseFile = h.paths.resolve('/var/lib/misc/dnsmasq.leases');
  fs.mkdirSync(path.dirname(leaseFile), { recursive: true });
  fs.writeFileSync(leaseFile, '1900000000 52:54:00:00:01:01 10.0.0.50 web1 *\n');
  t.same((await c.call('GET', `/api/nodes/${web1.systemId}/lease`)).json.leases[0].ipv4, '10.0.0.50');
  const config = await c.call('GET', '/api/config');
  t.same(config.json.find((s: { key: string }) => s.key === 'server.interface').origin, '/etc/uec-provisioning/conf.d/50-managed.conf');
  const managed = h.paths.resolve('/etc/uec-provisioning/conf.d/50-managed.conf');
  const beforeConfig = fs.readFileSync(managed, 'utf8');
  t.equal((await c.call('PUT', '/api/config', { 'webui.wol_repeat': '99' })).status, 400, 'validated like config set');
  t.equal((await c.call('PUT', '/api/config', { 'boot.kernel_args': 'a\n[x]' })).status, 400, 'no newline injection');
  t.equal((await c.call('PUT', '/api/config', { 'nope.key': '1' })).status, 400);
  t.equal(fs.readFileSync(managed, 'utf8'), beforeConfig, 'the drop-in is unchanged');
  t.equal((await c.call('PUT', '/api/config', { 'webui.wol_repeat': '2' })).status, 200);
  t.match(fs.readFileSync(managed, 'utf8'), /wol_repeat = 2/);
  t.equal((await c.call('POST', '/api/users', { name: 'ops', role: 'viewer', password: 'short' })).status, 400);
  t.equal((await c.call('POST', '/api/users', { name: 'ops', role: 'viewer', password: 'long-enough-1' })).status, 201);
  t.same((await c.call('GET', '/api/users')).json.map((u: { name: string }) => u.name), ['admin', 'viewer', 'ops']);
  for (const p of ['/', '/nodes', '/nodes?sort=last&dir=desc&status=ready', `/nodes/${web1.systemId}`, '/deploy', '/images', '/settings', '/account']) {
    const r = await c.call('GET', p);
    t.equal(r.status, 200, `page ${p}`);
    t.match(r.text, /<meta name="viewport"/);
  }
  t.equal((await c.call('DELETE', `/api/nodes/${web1.systemId}`)).status, 200);
  t.equal((await c.call('GET', '/api/nowhere')).status, 404);
  t.equal((await c.call('PATCH', '/api/nodes', {})).status, 405);
});
