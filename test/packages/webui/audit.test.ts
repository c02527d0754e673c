/**
 * The audit log from the web UI: a form post with a session records {kind: 'web'}, the API
 * with a token records {kind: 'token'} with the token's id and name; the right action,
 * target and before → after; no secret used here (passwords, token secrets, the BMC
 * password, node tokens) appears in the file; the Audit page and GET /api/audit filter and
 * page, for admins only.
 */
import * as fs from 'node:fs';
import t from 'tap';
import { AUDIT_LOG, appendAuditEntry, createAuditEntry, type AuditEntry } from '../../../src/core/audit';
import { createAccountStore } from '../../../packages/webui/accounts';
import { ADMIN, VIEWER, login, startHarness, type Harness } from './harness';

function readLog(h: Harness): AuditEntry[] {
  return fs
    .readFileSync(h.paths.resolve(AUDIT_LOG), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as AuditEntry)
    .filter((e) => e.actor.kind !== 'unix'); // the harness's own settings
}

async function api(h: Harness, secret: string, method: string, route: string, body?: unknown) {
  const r = await fetch(`${h.base}${route}`, { method, headers: { Authorization: `Bearer ${secret}`, 'Content-Type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, text, json: text ? (JSON.parse(text) as unknown) : undefined };
}

t.test('web UI and API changes: actor, action, target, before → after; no secret in the log', async (t) => {
  const h = await startHarness(t);
  const admin = await login(h, ADMIN);
  // A form post with the session, as the Nodes page sends it.
  const form = new URLSearchParams({ _csrf: admin.csrf, _back: '/uec-provisioning/nodes', hostname: 'web1', mac: '52:54:00:aa:00:01' });
  const posted = await admin.call('POST', '/api/nodes', form.toString(), { 'Content-Type': 'application/x-www-form-urlencoded' });
  t.equal(posted.status, 303, posted.text);
  const node = (await h.store.list()).find((n) => n.hostname === 'web1')!;

  // The API with a token.
  const { token, secret } = await createAccountStore(h.paths).createToken('admin', 'ci-robot');
  const bmcPassword = 'bmc-secret-Zq81';
  t.equal((await api(h, secret, 'PUT', `/api/nodes/${node.systemId}/bmc`, { address: '192.0.2.50', user: 'ipmi', password: bmcPassword, cipher_suite: '17' })).status, 200);
  const carolPassword = 'carol-password-Xy42';
  t.equal((await api(h, secret, 'POST', '/api/users', { name: 'carol', role: 'viewer', password: carolPassword })).status, 201);
  t.equal((await api(h, secret, 'PUT', '/api/config', { key: 'webui.session_hours', value: '4' })).status, 200);
  t.equal((await api(h, secret, 'POST', `/api/nodes/${node.systemId}/release`)).status, 200);
  const created = await admin.call('POST', '/api/tokens', { name: 'laptop' });
  t.equal(created.status, 201);
  const laptopSecret = String(created.json.secret);
  t.equal((await api(h, secret, 'DELETE', `/api/tokens/${String(created.json.id)}`)).status, 200);
  // The viewer changes their own password with a session.
  const viewer = await login(h, VIEWER);
  const newViewerPassword = 'viewer-password-New77';
  t.equal((await viewer.call('POST', '/api/account/password', { current: VIEWER.password, new: newViewerPassword })).status, 200);
  t.equal((await api(h, secret, 'DELETE', `/api/nodes/${node.systemId}`)).status, 200);

  const entries = readLog(h);
  t.same(
    entries.map((e) => e.action),
    ['node.add', 'bmc.set', 'user.add', 'config.set', 'token.create', 'token.revoke', 'user.passwd', 'node.remove'],
    'release of a ready node changed nothing: no line',
  );
  const byAction = (a: string) => entries.find((e) => e.action === a)!;
  const tokenActor = { kind: 'token', user: 'admin', token: token.id, name: 'ci-robot' };
  t.same(byAction('node.add').actor, { kind: 'web', user: 'admin' }, 'form post with a session');
  t.same(byAction('node.add').target, { systemId: node.systemId, hostname: 'web1' });
  t.same(byAction('node.add').changes.hostname, { before: null, after: 'web1' });
  t.notOk('token' in byAction('node.add').changes, "a node's token is never a field");
  t.same(byAction('bmc.set').actor, tokenActor, 'the API token: its id and name');
  t.same(byAction('bmc.set').changes, { address: { before: null, after: '192.0.2.50' }, cipherSuite: { before: null, after: 17 }, password: { before: null, after: '[redacted]' }, user: { before: null, after: 'ipmi' } }, 'the cipher suite is shown, the password never');
  t.same(byAction('user.add').target, { user: 'carol' });
  t.same(byAction('config.set').changes, { 'webui.session_hours': { before: 12, after: 4 } });
  t.same(byAction('config.set').actor, tokenActor);
  t.same(byAction('token.create').actor, { kind: 'web', user: 'admin' });
  t.same(byAction('token.revoke').target, { user: 'admin', token: String(created.json.id), name: 'laptop' });
  t.same(byAction('user.passwd').actor, { kind: 'web', user: 'viewer' });
  t.same(byAction('node.remove').changes.hostname, { before: 'web1', after: null });

  const log = fs.readFileSync(h.paths.resolve(AUDIT_LOG), 'utf8');
  const secrets = [ADMIN.password, VIEWER.password, newViewerPassword, carolPassword, bmcPassword, secret, secret.slice(18), laptopSecret, laptopSecret.slice(18), node.token];
  for (const s of secrets) {
    t.ok(s.length >= 12);
    t.notOk(log.includes(s), 'a secret used in this test is not in the log');
  }
});

t.test('the Audit page and GET /api/audit: admins only, filtered, newest first, paged', async (t) => {
  const h = await startHarness(t);
  const at = (i: number) => new Date(Date.UTC(2026, 11, 6, 9, i));
  const lines: AuditEntry[] = [
    createAuditEntry({ kind: 'web', user: 'admin' }, 'node.add', { systemId: 'node-aaaaaa', hostname: 'web1' }, {}, at(0)),
    createAuditEntry({ kind: 'token', user: 'admin', token: '0123456789ab', name: 'ci' }, 'node.deploy', { systemId: 'node-aaaaaa', hostname: 'web1' }, { status: { before: 'ready', after: 'deploying' } }, at(1)),
    createAuditEntry({ kind: 'debconf', package: 'uec-provisioning-dhcpd', user: 'root' }, 'config.set', { keys: 'dhcp.mode' }, { 'dhcp.mode': { before: 'proxy', after: 'full' } }, at(2)),
    createAuditEntry({ kind: 'web', user: 'admin' }, 'node.add', { systemId: 'node-bbbbbb', hostname: '<script>x</script>' }, {}, at(3)),
  ];
  for (const e of lines) t.ok(await appendAuditEntry(h.paths, e));
  const admin = await login(h, ADMIN);
  const viewer = await login(h, VIEWER);

  const targets = (r: { json: { entries: AuditEntry[] } }) => r.json.entries.map((e) => `${e.action} ${e.target.hostname ?? e.target.keys}`);
  const all = await admin.call('GET', '/api/audit?actor=' + encodeURIComponent('admin'));
  t.equal(all.status, 200);
  t.same(targets(all), ['node.add <script>x</script>', 'node.deploy web1', 'node.add web1'], 'newest first; the actor filter');
  t.same(targets(await admin.call('GET', '/api/audit?action=node.deploy')), ['node.deploy web1']);
  t.same(targets(await admin.call('GET', '/api/audit?actor=token')), ['node.deploy web1']);
  t.same(targets(await admin.call('GET', '/api/audit?target=web1&action=node')), ['node.deploy web1', 'node.add web1']);
  t.same(targets(await admin.call('GET', '/api/audit?actor=debconf')), ['config.set dhcp.mode']);
  const paged = await admin.call('GET', '/api/audit?action=node&per=2&page=2');
  t.same(targets(paged), ['node.add web1']);
  t.same([paged.json.matched, paged.json.page, paged.json.pages, paged.json.partial], [3, 2, 2, false]);
  t.equal((await admin.call('GET', '/api/audit?since=whenever')).status, 400);

  t.equal((await viewer.call('GET', '/api/audit')).status, 403, 'viewers may not read the audit log');
  t.equal((await viewer.call('GET', '/audit')).status, 403);
  t.notMatch((await viewer.call('GET', '/')).text, /href="\/uec-provisioning\/audit"/, "not in a viewer's navigation");
  t.match((await admin.call('GET', '/')).text, /href="\/uec-provisioning\/audit"/);

  const page = await admin.call('GET', '/audit?target=web1');
  t.equal(page.status, 200);
  t.match(page.text, /<h1>Audit<\/h1>/);
  t.match(page.text, /2<\/span> matching entries/);
  t.match(page.text, /admin \(API token ci, 0123456789ab\)/);
  t.match(page.text, /at most the last 8 MiB/);
  t.notMatch(page.text, /dhcp\.mode/, 'filtered out');
  const escaped = await admin.call('GET', '/audit?target=script');
  t.match(escaped.text, /&lt;script&gt;x&lt;\/script&gt;/);
  t.notMatch(escaped.text, /<script>x<\/script>/, 'a target is escaped');
});

t.test('an audit line that cannot be written: the request succeeds, the error is logged', async (t) => {
  const h = await startHarness(t);
  fs.rmSync(h.paths.resolve(AUDIT_LOG));
  fs.mkdirSync(h.paths.resolve(AUDIT_LOG)); // a directory where the file should be
  const admin = await login(h, ADMIN);
  const r = await admin.call('POST', '/api/nodes', { hostname: 'web2', mac: '52:54:00:aa:00:02' });
  t.equal(r.status, 201, r.text);
  t.ok((await h.store.list()).some((n) => n.hostname === 'web2'), 'the node was added');
  t.match(h.logs.join(''), /error: audit log \/var\/log\/uec-provisioning\/audit\.log: could not record node\.add by web:admin \(the change itself was made\)/);
});
