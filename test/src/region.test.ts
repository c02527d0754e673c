import t from 'tap';
import { ARCHIVE_OVERRIDE_FILE } from '../../src/core/archive';
import type { NodeContext } from '../../src/contract/context';
import { addNode, deployNode, failStuckDeployments } from '../../src/region/node-ops';
import { selectContextBootAction } from '../../src/edge/provisioning';
import { readStoreFiles } from '../helpers/node-store-files';
import { KEY, startFixture } from '../helpers/region-fixture';
import { put } from '../helpers/scratch';

const auth = { Authorization: `Bearer ${KEY}` };

/** A deploying node, on the fake LAN at ADDRESS with its MAC. */
async function deploying(f: Awaited<ReturnType<typeof startFixture>>, hostname = 'web1', mac = '52:54:00:00:00:01', address = '10.0.0.5') {
  f.lan.neighbour(address, mac);
  const node = await addNode(f.store, { hostname, macs: [mac] }, f.clock);
  return deployNode(f.store, node.systemId, await f.region.loadRoles(), {}, f.clock);
}

t.test('context view: exactly the seed items, JSON over HTTP, by id and by MAC', async (t) => {
  const f = await startFixture(t);
  const node = await deploying(f);
  const res = await fetch(`${f.regionUrl}/api/v1/nodes/${node.systemId}/context`, { headers: auth });
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /^application\/json/);
  const c = (await res.json()) as NodeContext;
  t.equal(c.metadata_url, 'http://192.0.2.10:5248/metadata/');
  t.equal(c.token, node.token, 'the node token (the provisioning server puts it in the preseed)');
  t.equal(c.status, 'deploying');
  t.equal(c.commissioning, false);
  t.equal(c.architecture, 'amd64');
  t.equal(c.enlistment_url, 'http://192.0.2.10:5248/metadata/enlist');
  t.equal(c.disable_netboot_url, `http://192.0.2.10:5248/metadata/latest/${node.systemId}/disable-netboot`);
  t.same(Object.keys(c.config).sort(), ['admin_user', 'authorized_keys', 'commissioning_distro_series', 'http_proxy', 'main_archive', 'ports_archive']);
  t.equal(c.config.commissioning_distro_series, 'bookworm');
  t.equal(c.config.main_archive, 'http://deb.debian.org/debian', 'from [archive] defaults');
  t.equal(c.config.http_proxy, '');
  t.same(c.role.packages, ['openssh-server']);
  t.same(Object.keys(c).sort(), ['architecture', 'bound_address', 'commissioning', 'config', 'disable_netboot_url', 'enlistment_url', 'hostname', 'ipv4', 'macs', 'metadata_url', 'netboot', 'os', 'release', 'role', 'status', 'status_url', 'subarchitecture', 'system_id', 'token', 'version']);
  const byMac = (await (await fetch(`${f.regionUrl}/api/v1/context?mac=52-54-00-00-00-01`, { headers: auth })).json()) as NodeContext;
  t.same(byMac, c);
  t.equal((await fetch(`${f.regionUrl}/api/v1/context?mac=52:54:00:00:00:99`, { headers: auth })).status, 404);
  t.equal((await fetch(`${f.regionUrl}/api/v1/context?mac=zz`, { headers: auth })).status, 400);
  t.equal((await fetch(`${f.regionUrl}/api/v1/nodes/node-nope/context`, { headers: auth })).status, 404);
  const list = (await (await fetch(`${f.regionUrl}/api/v1/nodes`, { headers: auth })).json()) as { token: string }[];
  t.equal(list.length, 1);
  t.notOk(JSON.stringify(list).includes(node.token), 'the node list masks tokens');
});

t.test('context view: commissioning status and the mirror override file (ARCHIVE_OVERRIDE_FILE)', async (t) => {
  const f = await startFixture(t);
  const node = await addNode(f.store, { hostname: 'web1', macs: ['52:54:00:00:00:01'], status: 'new' }, f.clock);
  await f.store.update((nodes) => void (nodes[0]!.status = 'commissioning'));
  put(f.paths, ARCHIVE_OVERRIDE_FILE, JSON.stringify({ main_archive: 'http://192.0.2.10/debian', ports_archive: 'http://192.0.2.10/ports', http_proxy: 'http://192.0.2.10:3142', source: 'mirror' }));
  const c = (await (await fetch(`${f.regionUrl}/api/v1/nodes/${node.systemId}/context`, { headers: auth })).json()) as NodeContext;
  t.equal(c.status, 'commissioning');
  t.equal(c.commissioning, true);
  t.same([c.config.main_archive, c.config.ports_archive, c.config.http_proxy], ['http://192.0.2.10/debian', 'http://192.0.2.10/ports', 'http://192.0.2.10:3142']);
  put(f.paths, ARCHIVE_OVERRIDE_FILE, '{"main_archive": "ftp://x"}');
  const bad = await fetch(`${f.regionUrl}/api/v1/nodes/${node.systemId}/context`, { headers: auth });
  t.equal(bad.status, 500, 'a broken override file is an operator problem, not a client one');
  t.equal(await bad.text(), 'internal error\n');
  t.ok(f.lines.some((l) => l.includes('archive-settings.json is not valid')), 'the log names the file');
});

t.test('context view auth: missing key → 401, wrong key → 403, only GET', async (t) => {
  const f = await startFixture(t);
  const node = await deploying(f);
  const url = `${f.regionUrl}/api/v1/nodes/${node.systemId}/context`;
  const missing = await fetch(url);
  t.equal(missing.status, 401);
  t.equal(missing.headers.get('www-authenticate'), 'Bearer');
  for (const key of ['wrong', `${KEY}x`, KEY.slice(1), node.token]) {
    const res = await fetch(url, { headers: { Authorization: `Bearer ${key}` } });
    t.equal(res.status, 403, `key ${key.slice(0, 6)}…`);
    t.equal(await res.text(), 'forbidden\n');
  }
  t.equal((await fetch(`${f.regionUrl}/api/v1/nodes`)).status, 401);
  t.equal((await fetch(url, { method: 'POST', headers: auth })).status, 405);
  t.notOk(f.lines.some((l) => l.includes(KEY) || l.includes(node.token)), 'no key or token in the log');
});

t.test('boot events from a provisioning server: netboot and preseed on the timeline; bad ones refused, nothing recorded', async (t) => {
  const f = await startFixture(t);
  const node = await deploying(f);
  const url = `${f.regionUrl}/api/v1/nodes/${node.systemId}/events`;
  const post = (body: string, headers: Record<string, string> = auth) => fetch(url, { method: 'POST', headers: { ...headers, 'Content-Type': 'application/json' }, body });
  t.equal((await post(JSON.stringify({ type: 'netboot', message: 'install boot script served' }))).status, 201);
  t.equal((await post(JSON.stringify({ type: 'preseed', message: 'install preseed fetched' }))).status, 201);
  const before = (await f.store.find('web1'))!.events.length;
  t.same((await f.store.find('web1'))!.events.slice(-2).map((e) => [e.type, e.message]), [['netboot', 'install boot script served'], ['preseed', 'install preseed fetched']]);
  t.equal((await post(JSON.stringify({ type: 'rebooted', message: 'x' }))).status, 400, 'not an event an edge reports (netboot, preseed or a relayed call-back)');
  t.equal((await post(JSON.stringify({ type: 'preseed', message: 'two\nlines' }))).status, 400, 'a newline in the message');
  t.equal((await post('not json')).status, 400);
  t.equal((await post(JSON.stringify({ type: 'preseed', message: 'x'.repeat(20000) }))).status, 413, 'a body over the limit');
  t.equal((await post(JSON.stringify({ type: 'preseed' }), {})).status, 401, 'no key');
  t.equal((await post(JSON.stringify({ type: 'preseed' }), { Authorization: `Bearer ${node.token}` })).status, 403, 'a node token is not the provisioning key');
  t.equal((await fetch(`${f.regionUrl}/api/v1/nodes/node-nope/events`, { method: 'POST', headers: auth, body: JSON.stringify({ type: 'preseed' }) })).status, 404);
  t.equal((await fetch(url, { headers: auth })).status, 405, 'events are POST only');
  t.equal((await f.store.find('web1'))!.events.length, before, 'the refused events recorded nothing');
  await t.resolves(f.provisioning.region.reportEvent(node.systemId, 'netboot', 'via the client'));
  await t.rejects(f.provisioning.region.reportEvent('node-nope', 'netboot', 'x'), { code: 'UPSTREAM_FAILED', message: /answered 404/ });
});

t.test('status call-backs with the node token: installing, installed, deployed', async (t) => {
  const f = await startFixture(t);
  const node = await deploying(f);
  const base = `${f.regionUrl}/metadata/latest/${node.systemId}`;
  const from = f.lan.from('10.0.0.5');
  let res = await fetch(`${base}/status/installing?token=${node.token}`, from);
  t.equal(res.status, 200);
  res = await fetch(`${base}/status/installed`, { method: 'POST', ...f.lan.from('10.0.0.5', { Authorization: `Bearer ${node.token}` }), body: 'late_command done' });
  t.equal(res.status, 200);
  let stored = (await f.store.find(node.systemId))!;
  t.equal(stored.status, 'deploying');
  t.same(stored.events.slice(-2).map((e) => [e.type, e.message]), [['installing', 'installing'], ['installed', 'late_command done']]);
  t.equal((await fetch(`${base}/status/rebooting?token=${node.token}`, from)).status, 404);
  res = await fetch(`${base}/status/deployed?token=${node.token}`, from);
  t.equal(res.status, 200);
  stored = (await f.store.find(node.systemId))!;
  t.equal(stored.status, 'deployed');
  t.equal(stored.events.at(-1)!.type, 'status');
  // Deployed: the token has done its work. Any call-back with it is refused, nothing changes.
  for (const event of ['deployed', 'installing', 'failed']) t.equal((await fetch(`${base}/status/${event}?token=${node.token}`, from)).status, 403, `${event} after deployed`);
  t.equal((await fetch(`${base}/disable-netboot?token=${node.token}`, from)).status, 403, 'disable-netboot after deployed');
  t.same(await f.store.find(node.systemId), stored);
  t.ok(f.lines.some((l) => l.includes(`the token of node web1 (${node.systemId}) expired, the node is deployed`)), 'the refusal is logged with the reason');
  t.notOk(f.lines.some((l) => l.includes(node.token)), 'the token is never logged');
});

t.test('failed call-back: status failed with the message as reason', async (t) => {
  const f = await startFixture(t);
  const node = await deploying(f);
  t.equal((await fetch(`${f.regionUrl}/metadata/latest/${node.systemId}/status/failed?token=${node.token}&message=${encodeURIComponent('partman: no disk')}`, f.lan.from('10.0.0.5'))).status, 200);
  const stored = (await f.store.find(node.systemId))!;
  t.equal(stored.status, 'failed');
  t.equal(stored.statusReason, 'partman: no disk');
});

t.test('wrong token, another node\'s token, unknown node: the same 403, nothing changed', async (t) => {
  const f = await startFixture(t);
  const a = await deploying(f, 'web1', '52:54:00:00:00:01');
  const b = await deploying(f, 'web2', '52:54:00:00:00:02', '10.0.0.6');
  const before = readStoreFiles(f.paths);
  const answers = new Set<string>();
  for (const target of [
    `/metadata/latest/${a.systemId}/status/deployed?token=wrong`,
    `/metadata/latest/${a.systemId}/status/deployed?token=${b.token}`,
    `/metadata/latest/${a.systemId}/status/deployed`,
    `/metadata/latest/node-zzzzzz/status/deployed?token=${a.token}`,
    `/metadata/latest/node-zzzzzz/disable-netboot?token=${a.token}`,
    `/metadata/latest/${a.systemId}/disable-netboot?token=${b.token}`,
    `/metadata/latest/${a.systemId}/status/nosuchevent?token=wrong`,
  ]) {
    const res = await fetch(`${f.regionUrl}${target}`, f.lan.from('10.0.0.5'));
    const headers = [...res.headers.entries()].filter(([k]) => k !== 'date').sort();
    answers.add(JSON.stringify([res.status, await res.text(), headers]));
  }
  // The right token from another machine's address: web2's (on-link, another MAC), loopback.
  for (const [from, why] of [['10.0.0.6', 'another on-link MAC'], ['127.0.0.1', 'loopback']]) {
    const res = await fetch(`${f.regionUrl}/metadata/latest/${a.systemId}/status/failed?token=${a.token}`, f.lan.from(from!));
    const headers = [...res.headers.entries()].filter(([k]) => k !== 'date').sort();
    answers.add(JSON.stringify([res.status, await res.text(), headers]));
    t.ok(f.lines.some((l) => l.includes(`for node web1 (${a.systemId}) from ${from}`)), `${why}: the refusal is logged naming node and address`);
  }
  t.equal(answers.size, 1, 'one identical answer: no hint whether the node exists');
  t.match([...answers][0], /^\[403,"forbidden\\n"/);
  t.equal(readStoreFiles(f.paths), before);
});

t.test('disable-netboot: the next boot action is the local disk', async (t) => {
  const f = await startFixture(t);
  const node = await deploying(f);
  const ctx = async () => (await (await fetch(`${f.regionUrl}/api/v1/nodes/${node.systemId}/context`, { headers: auth })).json()) as NodeContext;
  t.equal(selectContextBootAction(await ctx()), 'install');
  t.equal((await fetch(`${f.regionUrl}/metadata/latest/${node.systemId}/disable-netboot?token=${node.token}`, { method: 'POST', ...f.lan.from('10.0.0.5') })).status, 200);
  const c = await ctx();
  t.equal(c.netboot, false);
  t.equal(c.status, 'deploying', 'still deploying until first boot reports');
  t.equal(selectContextBootAction(c), 'local');
  t.equal((await f.store.find(node.systemId))!.events.at(-1)!.type, 'netboot-disabled');
});

t.test('deploy timeout sweep: a node deploying too long becomes failed with the reason', async (t) => {
  const f = await startFixture(t);
  const node = await deploying(f);
  const other = await addNode(f.store, { hostname: 'idle', macs: ['52:54:00:00:00:09'] }, f.clock);
  f.clock.set(new Date(Date.parse('2026-03-01T10:00:00.000Z') + 3600_000));
  t.same(await failStuckDeployments(f.store, 7200, f.clock), [], 'not yet');
  f.clock.set(new Date(Date.parse('2026-03-01T10:00:00.000Z') + 7201_000));
  const failed = await failStuckDeployments(f.store, 7200, f.clock);
  t.same(failed.map((n) => n.systemId), [node.systemId]);
  const stored = (await f.store.find(node.systemId))!;
  t.equal(stored.status, 'failed');
  t.equal(stored.statusReason, 'no deployed report within 7200 s of the deploy');
  t.equal((await f.store.find(other.systemId))!.status, 'ready');
  t.same(await failStuckDeployments(f.store, 7200, f.clock), [], 'a second sweep changes nothing');
});

t.test('enlistment with the iPXE variables: new node with arch and hardware; twice → no duplicate; bad params → 400', async (t) => {
  const f = await startFixture(t);
  const q = 'mac=52-54-00-aa-bb-cc&buildarch=x86_64&platform=efi&manufacturer=QEMU&product=Standard%20PC&serial=S123&uuid=6f1e0c3a-0000-4000-8000-000000000001';
  let res = await fetch(`${f.regionUrl}/metadata/enlist?${q}`);
  t.equal(res.status, 201);
  const body = (await res.json()) as { system_id: string; status: string; hostname: string };
  t.equal(body.status, 'new');
  let nodes = await f.store.list();
  t.equal(nodes.length, 1);
  t.same([nodes[0]!.macs, nodes[0]!.arch, nodes[0]!.subarch, nodes[0]!.status], [['52:54:00:aa:bb:cc'], 'amd64', 'uefi', 'new']);
  t.same(nodes[0]!.hardware, { manufacturer: 'QEMU', product: 'Standard PC', serial: 'S123', uuid: '6f1e0c3a-0000-4000-8000-000000000001', platform: 'efi' });
  res = await fetch(`${f.regionUrl}/metadata/enlist?${q.replace('52-54-00-aa-bb-cc', '52:54:00:AA:BB:CC')}`, { method: 'POST' });
  t.equal(res.status, 200);
  t.equal(((await res.json()) as { system_id: string }).system_id, body.system_id);
  nodes = await f.store.list();
  t.equal(nodes.length, 1, 'no duplicate');
  // arm64 and a BIOS i386 build.
  await fetch(`${f.regionUrl}/metadata/enlist?mac=52:54:00:aa:bb:01&buildarch=arm64&platform=efi`);
  await fetch(`${f.regionUrl}/metadata/enlist?mac=52:54:00:aa:bb:02&buildarch=i386&platform=pcbios`);
  nodes = await f.store.list();
  t.same(nodes.map((n) => `${n.macs[0]} ${n.arch}/${n.subarch}`).sort(), ['52:54:00:aa:bb:01 arm64/uefi', '52:54:00:aa:bb:02 i386/bios', '52:54:00:aa:bb:cc amd64/uefi']);
  const before = readStoreFiles(f.paths);
  for (const bad of ['', 'mac=', 'mac=zz:zz', 'mac=52:54:00:aa:bb:cc:dd', 'mac=52:54:00:aa:bb:0%0A']) {
    const r = await fetch(`${f.regionUrl}/metadata/enlist?${bad}`);
    t.equal(r.status, 400, bad || '(no params)');
  }
  t.equal(readStoreFiles(f.paths), before, 'bad enlistments change nothing');
  // Many enlistments of one machine at once: still one node.
  await Promise.all(Array.from({ length: 20 }, () => fetch(`${f.regionUrl}/metadata/enlist?mac=52:54:00:cc:cc:cc&buildarch=x86_64`)));
  t.equal((await f.store.list()).filter((n) => n.macs.includes('52:54:00:cc:cc:cc')).length, 1);
});

t.test('a body over the limit → 413; unknown paths → 404; other methods → 405', async (t) => {
  const f = await startFixture(t);
  const node = await deploying(f);
  t.equal((await fetch(`${f.regionUrl}/metadata/latest/${node.systemId}/status/installed?token=${node.token}`, { method: 'POST', body: 'x'.repeat(20000) })).status, 413);
  t.equal((await fetch(`${f.regionUrl}/metadata/other`)).status, 404);
  t.equal((await fetch(`${f.regionUrl}/metadata/enlist?mac=52:54:00:00:00:05`, { method: 'DELETE' })).status, 405);
});

t.test('claim (provisioning key): 200 with the rule and a first routed claim binds; 403 with the reason, logged; 404, 409, 400; refusals write nothing', async (t) => {
  const f = await startFixture(t);
  const node = await deploying(f);
  const url = `${f.regionUrl}/api/v1/nodes/${node.systemId}/claim`;
  const claim = async (body: unknown, headers: Record<string, string> = auth, target = url) => {
    const res = await fetch(target, { method: 'POST', headers: { ...headers, 'Content-Type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
    return { status: res.status, text: await res.text() };
  };
  const file = () => readStoreFiles(f.paths);
  const before = file();
  t.equal((await claim({ address: '10.0.0.9', mac: '52:54:00:00:00:99' }, {})).status, 401, 'no key');
  t.equal((await claim({ address: '10.0.0.9', mac: '52:54:00:00:00:99' }, { Authorization: `Bearer ${node.token}` })).status, 403, 'a node token is not the key');
  const other = await claim({ address: '10.0.0.9', mac: '52:54:00:00:00:99' });
  t.equal(other.status, 403);
  t.match(other.text, /on-link client 10\.0\.0\.9 has MAC 52:54:00:00:00:99, not one of the node's/);
  t.ok(f.lines.some((l) => l.includes(`refused the install material of node web1 (${node.systemId}) to "10.0.0.9" (neighbour MAC 52:54:00:00:00:99)`)), 'logged with node, address and neighbour entry');
  t.equal((await claim({ address: '127.0.0.1', mac: '' })).status, 403, 'loopback');
  for (const bad of ['not json', '{}', JSON.stringify({ address: 5 }), JSON.stringify({ address: '10.0.0.9', mac: 'zz' }), JSON.stringify({ address: '10.0.0.9', mac: 7 }), JSON.stringify({ address: '10.0.0.9', router: 'yes' })]) {
    t.equal((await claim(bad)).status, 400, bad);
  }
  t.equal((await claim({ address: '10.0.0.9' }, auth, `${f.regionUrl}/api/v1/nodes/node-zzzzzz/claim`)).status, 404);
  t.equal(file(), before, 'refusals and bad claims wrote nothing');
  // A routed client (behind a router's MAC): the first claim binds, another address is refused.
  const first = await claim({ address: '10.2.0.5', mac: '02:00:00:00:00:fe', router: true });
  t.same([first.status, JSON.parse(first.text)], [200, { rule: 'binding' }]);
  t.equal((await f.store.find('web1'))!.boundAddress, '10.2.0.5');
  const second = await claim({ address: '10.2.0.6', mac: '' });
  t.equal(second.status, 403);
  t.match(second.text, /this deploy is bound to 10\.2\.0\.5/);
  t.same(JSON.parse((await claim({ address: '10.0.0.5', mac: '52:54:00:00:00:01' })).text), { rule: 'neighbour' }, 'the node on-link, by MAC');
  // Not deploying: 409, nothing bound.
  await f.store.update((nodes) => void (nodes[0]!.status = 'ready'));
  t.equal((await claim({ address: '10.2.0.5', mac: '' })).status, 409);
});

t.test('call-backs of a routed node: its reservation, or the address bound by its first request', async (t) => {
  const f = await startFixture(t);
  const roles = await f.region.loadRoles();
  const reserved = await addNode(f.store, { hostname: 'far1', macs: ['52:54:00:00:10:01'], ipv4: '10.3.0.5' }, f.clock);
  const r = await deployNode(f.store, reserved.systemId, roles, {}, f.clock);
  const unreserved = await addNode(f.store, { hostname: 'far2', macs: ['52:54:00:00:10:02'] }, f.clock);
  const u = await deployNode(f.store, unreserved.systemId, roles, {}, f.clock);
  const call = async (id: string, token: string, from: string) => (await fetch(`${f.regionUrl}/metadata/latest/${id}/status/installing?token=${token}`, f.lan.from(from))).status;
  t.equal(await call(r.systemId, r.token, '10.3.0.6'), 403, 'reserved: another routed address');
  t.equal(await call(r.systemId, r.token, '10.3.0.5'), 200, 'reserved: its address');
  t.equal(await call(u.systemId, u.token, '10.4.0.7'), 200, 'unreserved: the first address binds');
  t.equal(await call(u.systemId, u.token, '10.4.0.8'), 403, 'unreserved: another address afterwards');
  t.equal(await call(u.systemId, u.token, '10.4.0.7'), 200, 'unreserved: the bound address again');
  t.ok(f.lines.some((l) => l.includes(`for node far2 (${u.systemId}) from 10.4.0.8 (no neighbour entry): routed client 10.4.0.8 (no neighbour entry): this deploy is bound to 10.4.0.7`)), 'the refusal says why');
});
