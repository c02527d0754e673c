import * as fs from 'node:fs';
import * as net from 'node:net';
import t, { type Test } from 'tap';
import { loadComponents, mergeSchemas } from '../../src/configurator/component';
import { loadConfig } from '../../src/core/config';
import { addNode, deployNode } from '../../src/region/node-ops';
import { createFileNodeStore } from '../../src/region/node-store';
import type { Paths } from '../../src/core/paths';
import { loadRoles } from '../../src/contract/roles';
import { loadAuthorizedKeys, loadProvisioningKey, startService } from '../../src/cli/serve';
import { loadServerAddress } from '../../src/core/server-address';
import { staticNetworkFacts } from '../../src/core/network-facts';
import { validateContent } from '../../src/core/validators';
import { SHIPPED_TEMPLATES, createFakeLan, memoryLog } from '../helpers/region-fixture';
import { put, scratchRoot } from '../helpers/scratch';
import * as path from 'node:path';

process.env.UEC_PROVISIONING_TEMPLATES = SHIPPED_TEMPLATES;
const KEY_FILE = '/var/lib/uec-provisioning/secrets/provisioning.key';
const network = staticNetworkFacts([{ name: 'eth0', mac: '52:54:00:00:00:01', up: true, loopback: false, virtual: false, ipv4: [{ address: '192.0.2.77', prefix: 24 }], ipv6: [] }], {
  interface: 'eth0',
  gateway: '192.0.2.1',
});

async function start(t: Test, paths: Paths, extra: { region?: boolean; clock?: { now(): Date }; host?: string } = {}) {
  const config = await loadConfig(paths, mergeSchemas(loadComponents()));
  const server = await loadServerAddress(config, network);
  const store = createFileNodeStore(paths);
  const { log, lines } = memoryLog();
  // The machines are on a fake LAN (requests name their address in a test header): loopback is never a node.
  const lan = createFakeLan();
  const running = await startService({ paths, config, server, store, log, port: 0, host: '127.0.0.1', addressing: lan.addressing, ...extra });
  t.teardown(() => running.close());
  return { running, store, lines, lan, base: `http://${extra.host ?? '127.0.0.1'}:${running.port}` };
}

t.test('one process, both sides: the key is created, and the provisioning side serves from the region\'s context', async (t) => {
  const paths = scratchRoot(t);
  put(paths, '/etc/uec-provisioning/authorized_keys', '# admins\nssh-ed25519 AAAAC3Nza admin@example\n\n');
  // No context cache here, so each step sees the region's newest state (the cache is tested in region-client.test.ts).
  put(paths, '/etc/uec-provisioning/conf.d/90-local.conf', '[provisioning]\ncontext_cache_seconds = 0\n');
  const { store, lines, base, lan } = await start(t, paths);
  lan.neighbour('10.0.0.11', '52:54:00:00:00:11');
  const from = lan.from('10.0.0.11');
  const keyFile = paths.resolve(KEY_FILE);
  t.equal(fs.statSync(keyFile).mode & 0o777, 0o600, 'the key is 0600');
  const key = fs.readFileSync(keyFile, 'utf8').trim();
  t.ok(Buffer.from(key, 'base64url').length * 8 >= 128);
  await addNode(store, { hostname: 'web1', macs: ['52:54:00:00:00:11'] });
  const node = await deployNode(store, 'web1', await loadRoles(paths));
  const script = await (await fetch(`${base}/boot/ipxe/node?mac=52:54:00:00:00:11`, from)).text();
  t.match(script, /^kernel http:\/\/192\.0\.2\.77:5248\/boot\/images\/debian\/bookworm\/amd64\/linux /m);
  const preseed = await fetch(`${base}/preseed/${node.systemId}`, from);
  t.equal(preseed.status, 200);
  const text = await preseed.text();
  t.ok(text.includes(`http://192.0.2.77:5248/metadata/latest/${node.systemId}/status/installing?token=${node.token}`));
  await validateContent('debconf', 'served preseed', text);
  // The provisioning side reported what it served to the region (in the background).
  for (let i = 0; i < 50 && (await store.find('web1'))!.events.filter((e) => e.type === 'netboot' || e.type === 'preseed').length < 2; i++) await new Promise((r) => setTimeout(r, 100));
  t.same(
    (await store.find('web1'))!.events.filter((e) => e.type === 'netboot' || e.type === 'preseed').map((e) => `${e.type}: ${e.message}`),
    ['netboot: install boot script served to 52:54:00:00:00:11', 'preseed: install preseed fetched'],
    'the region timeline shows the netboot and the preseed fetch',
  );
  t.equal((await fetch(`${base}/api/v1/nodes/${node.systemId}/context`, { headers: { Authorization: `Bearer ${key}` } })).status, 200);
  t.equal((await fetch(`${base}/api/v1/nodes/${node.systemId}/context`)).status, 401);
  // The installer's call-backs, then first boot.
  t.equal((await fetch(`${base}/metadata/latest/${node.systemId}/status/installing?token=${node.token}`, from)).status, 200);
  t.equal((await fetch(`${base}/metadata/latest/${node.systemId}/disable-netboot?token=${node.token}`, from)).status, 200);
  t.match(await (await fetch(`${base}/boot/ipxe/node?mac=52:54:00:00:00:11`, from)).text(), /netboot disabled/, 'after disable-netboot the machine boots its disk');
  t.equal((await fetch(`${base}/metadata/latest/${node.systemId}/status/deployed?token=${node.token}`, from)).status, 200);
  t.equal((await store.find('web1'))!.status, 'deployed');
  t.equal((await fetch(`${base}/nowhere`)).status, 404);
  t.notOk(lines.some((l) => l.includes(node.token) || l.includes(key)), 'no token or key in the log');
  t.ok(lines.some((l) => l.includes('token=***')), 'query tokens are logged masked');
});

t.test('the key survives a restart; an unusable key file is a clear error; no region: no key created', async (t) => {
  const paths = scratchRoot(t);
  const first = await loadProvisioningKey(paths, KEY_FILE, true);
  t.equal(await loadProvisioningKey(paths, KEY_FILE, true), first);
  put(paths, KEY_FILE, 'short\n', 0o600);
  await t.rejects(loadProvisioningKey(paths, KEY_FILE, true), { code: 'CONFIG_INVALID_VALUE', message: /holds no usable key/ });
  const other = scratchRoot(t);
  await t.rejects(loadProvisioningKey(other, KEY_FILE, false), { code: 'CONFIG_UNREADABLE', message: /cannot read the provisioning key/ });
  t.notOk(fs.existsSync(other.resolve(KEY_FILE)));
});

t.test('authorized keys: comments dropped, a quote or control character refused', async (t) => {
  const paths = scratchRoot(t);
  t.same(await loadAuthorizedKeys(paths, '/etc/uec-provisioning/authorized_keys'), []);
  put(paths, '/etc/uec-provisioning/authorized_keys', '# c\nssh-ed25519 AAAA a@b\n');
  t.same(await loadAuthorizedKeys(paths, '/etc/uec-provisioning/authorized_keys'), ['ssh-ed25519 AAAA a@b']);
  put(paths, '/etc/uec-provisioning/authorized_keys', "ssh-ed25519 AAAA a@b'; reboot\n");
  await t.rejects(loadAuthorizedKeys(paths, '/etc/uec-provisioning/authorized_keys'), { code: 'CONFIG_INVALID_VALUE', message: /key 1 contains a quote/ });
});

t.test('the deploy timeout sweep runs at start: a node deploying past [region] deploy_timeout becomes failed', async (t) => {
  const paths = scratchRoot(t);
  put(paths, '/etc/uec-provisioning/conf.d/90-local.conf', '[region]\ndeploy_timeout = 600\n');
  const store = createFileNodeStore(paths);
  await addNode(store, { hostname: 'web1', macs: ['52:54:00:00:00:21'] });
  await deployNode(store, 'web1', await loadRoles(paths, path.join(SHIPPED_TEMPLATES, 'roles')));
  const later = new Date(Date.now() + 601_000);
  await start(t, paths, { clock: { now: () => later } });
  for (let i = 0; i < 500 && (await store.find('web1'))!.status !== 'failed'; i++) await new Promise((r) => setTimeout(r, 10));
  const node = (await store.find('web1'))!;
  t.equal(node.status, 'failed');
  t.equal(node.statusReason, 'no deployed report within 600 s of the deploy');
});

t.test('--no-region with an unreachable region_url: 503 with Retry-After; the region paths are not served', async (t) => {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise((resolve) => probe.close(resolve));
  const paths = scratchRoot(t);
  put(paths, KEY_FILE, `${'k'.repeat(43)}\n`, 0o600);
  put(paths, '/etc/uec-provisioning/conf.d/90-local.conf', `[provisioning]\nregion_url = http://127.0.0.1:${port}\nregion_timeout_ms = 500\n`);
  const { base } = await start(t, paths, { region: false });
  const r = await fetch(`${base}/boot/ipxe/node?mac=52:54:00:00:00:31`);
  t.equal(r.status, 503);
  t.equal(r.headers.get('retry-after'), '5');
  t.equal((await fetch(`${base}/metadata/enlist?mac=52:54:00:00:00:31`)).status, 404, 'no region here');
  t.equal((await fetch(`${base}/boot/ipxe`)).status, 200, 'what needs no region still works');
});

t.test('with the context cache on (the default 5 s), the boot right after disable-netboot is the local disk', async (t) => {
  const paths = scratchRoot(t);
  const { store, base, lan } = await start(t, paths);
  lan.neighbour('10.0.0.44', '52:54:00:00:00:44');
  const from = lan.from('10.0.0.44');
  await addNode(store, { hostname: 'web4', macs: ['52:54:00:00:00:44'] });
  const node = await deployNode(store, 'web4', await loadRoles(paths));
  t.match(await (await fetch(`${base}/boot/ipxe/node?mac=52:54:00:00:00:44`, from)).text(), /^kernel /m, 'install');
  t.equal((await fetch(`${base}/preseed/${node.systemId}`, from)).status, 200);
  t.equal((await fetch(`${base}/metadata/latest/${node.systemId}/disable-netboot?token=${node.token}`, from)).status, 200);
  t.match(await (await fetch(`${base}/boot/ipxe/node?mac=52:54:00:00:00:44`, from)).text(), /netboot disabled/, 'not the cached install answer');
});

t.test('node changes are applied one apply at a time; close() runs the apply still waiting and waits for it', async (t) => {
  const paths = scratchRoot(t);
  const config = await loadConfig(paths, mergeSchemas(loadComponents()));
  const server = await loadServerAddress(config, network);
  const store = createFileNodeStore(paths);
  const applies: string[] = [];
  let inside = 0;
  const running = await startService({
    paths, config, server, store, log: memoryLog().log, port: 0, host: '127.0.0.1',
    onNodesChanged: async () => {
      inside++;
      applies.push(`apply of ${(await store.list()).length} node(s)${inside > 1 ? ' (overlapping)' : ''}`);
      await new Promise((r) => setTimeout(r, 300));
      inside--;
    },
  });
  t.teardown(() => running.close());
  for (let i = 1; i <= 5; i++) await addNode(store, { hostname: `burst${i}`, macs: [`52:54:00:00:01:0${i}`] });
  await new Promise((r) => setTimeout(r, 350)); // the burst's apply is running now
  await addNode(store, { hostname: 'late', macs: ['52:54:00:00:01:10'] });
  await running.close(); // before the 200 ms debounce: close runs it, after the running one
  // (How many applies the burst makes depends on this machine's speed; what follows does not.)
  t.notOk(applies.some((a) => a.includes('overlapping')), `never two applies at once: ${applies.join(', ')}`);
  t.equal(applies.at(-1), 'apply of 6 node(s)', 'the last change was applied before close() returned');
  t.ok(applies.length >= 1 && applies.length <= 6);
  const count = applies.length;
  await addNode(store, { hostname: 'after', macs: ['52:54:00:00:01:11'] });
  await new Promise((r) => setTimeout(r, 300));
  t.equal(applies.length, count, 'no apply after close');
});

t.test('--listen on one address: the in-process provisioning side reaches the region on that address', async (t) => {
  const paths = scratchRoot(t);
  const { running, store, base, lan } = await start(t, paths, { host: '127.0.0.2' });
  lan.neighbour('10.0.0.22', '52:54:00:00:00:22');
  await addNode(store, { hostname: 'web2', macs: ['52:54:00:00:00:22'] });
  await deployNode(store, 'web2', await loadRoles(paths));
  const reply = await fetch(`${base}/boot/ipxe/node?mac=52:54:00:00:00:22`, lan.from('10.0.0.22'));
  t.equal(reply.status, 200, 'not 503: the region is not looked for on 127.0.0.1');
  t.match(await reply.text(), /^kernel /m);
  // Stopping waits for the report under way (no store write outlives the service).
  await running.close();
  t.same((await store.find('web2'))!.events.filter((e) => e.type === 'netboot').map((e) => e.message), ['install boot script served to 52:54:00:00:00:22'], 'the netboot report was stored before close() returned');
});

t.test('config set while running: boot scripts follow within a second; a broken edit keeps the last good settings', async (t) => {
  const paths = scratchRoot(t);
  put(paths, '/etc/uec-provisioning/conf.d/90-local.conf', '[provisioning]\ncontext_cache_seconds = 0\n');
  const config = await loadConfig(paths, mergeSchemas(loadComponents()));
  const server = await loadServerAddress(config, network);
  const store = createFileNodeStore(paths);
  const { log, lines } = memoryLog();
  const reloadConfig = () => loadConfig(paths, mergeSchemas(loadComponents()));
  const lan = createFakeLan();
  lan.neighbour('10.0.0.21', '52:54:00:00:00:21');
  const running = await startService({ paths, config, server, store, log, port: 0, host: '127.0.0.1', reloadConfig, addressing: lan.addressing });
  t.teardown(() => running.close());
  const base = `http://127.0.0.1:${running.port}`;
  await addNode(store, { hostname: 'web1', macs: ['52:54:00:00:00:21'] });
  await deployNode(store, 'web1', await loadRoles(paths));
  const script = async () => (await fetch(`${base}/boot/ipxe/node?mac=52:54:00:00:00:21`, lan.from('10.0.0.21'))).text();
  t.notMatch(await script(), /console=ttyS0/);
  put(paths, '/etc/uec-provisioning/conf.d/50-managed.conf', '[boot]\nkernel_args = console=ttyS0,115200\n');
  await new Promise((r) => setTimeout(r, 1100));
  t.match(await script(), /^kernel .* console=ttyS0,115200$/m, 'the new kernel arguments, without a restart');
  put(paths, '/etc/uec-provisioning/conf.d/50-managed.conf', '[boot]\nbios_loader = floppy\n');
  await new Promise((r) => setTimeout(r, 1100));
  t.match(await script(), /console=ttyS0,115200$/m, 'a broken file: the last good settings stay');
  t.ok(lines.some((l) => /configuration not reloaded/.test(l)), 'and the error is logged');
});
