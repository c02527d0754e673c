/**
 * Issue 13, items 8 and 10: node fields pass one validator (checkNode) before anything is
 * stored; a bad node an older version stored is left out of the DHCP and boot files and
 * reported, and does not stop the other nodes' files or unrelated node commands; enlistment
 * never changes a known node and is capped.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { main, type Io } from '../../src/cli';
import { loadConfig } from '../../src/core/config';
import { loadComponents, mergeSchemas } from '../../src/configurator/component';
import { send } from '../../src/core/http-util';
import { handleRegionRequest } from '../../src/region/region';
import { buildRegionOptions } from '../../src/cli/serve';
import { staticNetworkFacts } from '../../src/core/network-facts';
import { checkNode, createNode, type Node } from '../../src/contract/node';
import { DEFAULT_MAX_NEW_NODES, addNode, editNode, enlistNode } from '../../src/region/node-ops';
import { NODES_FILE, createFileNodeStore } from '../../src/region/node-store';
import type { Paths } from '../../src/core/paths';
import { NODES } from '../packages/tftpd/nodes';
import { KEY, listen, memoryLog, startFixture } from '../helpers/region-fixture';
import { REPO_ROOT, put, scratchRoot, snapshotTree } from '../helpers/scratch';

process.env.UEC_PROVISIONING_TEMPLATES ??= path.join(REPO_ROOT, 'templates');

const network = staticNetworkFacts(
  [
    { name: 'eth0', mac: '52:54:00:00:00:fe', up: true, loopback: false, virtual: false, ipv4: [{ address: '10.20.0.5', prefix: 24 }], ipv6: [] },
    { name: 'lo', mac: '00:00:00:00:00:00', up: true, loopback: true, virtual: false, ipv4: [{ address: '127.0.0.1', prefix: 8 }], ipv6: [] },
  ],
  { interface: 'eth0', gateway: '10.20.0.1' },
);

async function cli(paths: Paths, ...args: string[]) {
  let stdout = '';
  let stderr = '';
  const io: Io = { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), env: { UEC_PROVISIONING_SERVICE_CONTROL: 'none' } };
  const code = await main(['--root', paths.root, ...args], io, { network, nodeStore: createFileNodeStore(paths) });
  return { code, stdout, stderr };
}

const BOOT = '/var/lib/uec-provisioning/boot';

t.test('nodes add --release .. is refused, one line, nothing stored', async (t) => {
  const paths = scratchRoot(t);
  const before = snapshotTree(paths.root);
  for (const [flag, value] of [['--release', '..'], ['--release', '.hidden'], ['--role', '..'], ['--os', '.x'], ['--ipv4', '0.0.0.0']]) {
    const r = await cli(paths, 'nodes', 'add', 'web1', '--mac', '52:54:00:00:00:01', flag!, value!);
    t.equal(r.code, 3, `${flag} ${value} refused`);
    t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    t.ok(r.stderr.includes(JSON.stringify(value)), `names the value: ${r.stderr}`);
  }
  t.same(snapshotTree(paths.root), before, 'nothing stored, nothing applied');
});

t.test('broadcast, zero and multicast MACs and non-unicast addresses are refused everywhere', async (t) => {
  const paths = scratchRoot(t);
  const store = createFileNodeStore(paths);
  for (const mac of ['ff:ff:ff:ff:ff:ff', '00:00:00:00:00:00', '01:00:5e:00:00:01', '33:33:00:00:00:01']) {
    await t.rejects(addNode(store, { hostname: 'web1', macs: [mac] }), { code: 'INVALID_VALUE', message: new RegExp(`MAC "${mac}"`) }, `MAC ${mac}`);
    await t.rejects(enlistNode(store, { mac }), { code: 'INVALID_VALUE' }, `enlist ${mac}`);
  }
  for (const ipv4 of ['0.0.0.0', '255.255.255.255', '127.0.0.1', '224.0.0.1', '240.0.0.1']) {
    await t.rejects(addNode(store, { hostname: 'web1', macs: ['52:54:00:00:00:01'], ipv4 }), { code: 'INVALID_VALUE', message: new RegExp(`IPv4 address "${ipv4.replace(/\./g, '\\.')}"`) }, ipv4);
  }
  t.same(await store.list(), []);
  const ok = await addNode(store, { hostname: 'web1', macs: ['52:54:00:00:00:01'], ipv4: '10.20.0.50' });
  await t.rejects(editNode(store, 'web1', { macs: ['ff:ff:ff:ff:ff:ff'] }), { code: 'INVALID_VALUE' });
  await t.rejects(editNode(store, 'web1', { release: '..' }), { code: 'INVALID_VALUE', message: /release "\.\."/ });
  t.same((await store.list())[0]?.macs, ok.macs);
});

t.test('error messages are one line: values with a newline are printed escaped', async (t) => {
  const paths = scratchRoot(t);
  for (const args of [
    ['nodes', 'add', 'web\n1', '--mac', '52:54:00:00:00:01'],
    ['nodes', 'add', 'web1', '--mac', '52:54:00:00:00:01\nx'],
    ['nodes', 'add', 'web1', '--mac', '52:54:00:00:00:01', '--release', 'a\nb'],
    ['nodes', 'add', 'web1', '--mac', '52:54:00:00:00:01', '--ipv4', '10.0.0.1\n'],
    ['nodes', 'add', 'web1', '--mac', '52:54:00:00:00:01', '--arch', 'amd\n64'],
    ['apply', 'dh\ncpd'],
    ['no\nde', 'list'],
  ]) {
    const r = await cli(paths, ...args);
    t.equal(r.code, args[0] === 'nodes' ? 3 : 2, JSON.stringify(args));
    t.equal(r.stderr.trim().split('\n').length, 1, `one line: ${JSON.stringify(r.stderr)}`);
  }
});

t.test('the store refuses a new or changed node that fails checkNode, whoever writes it (CSV import, web API, enlistment)', async (t) => {
  const paths = scratchRoot(t);
  const store = createFileNodeStore(paths);
  const bad = { ...createNode({ hostname: 'web1', macs: ['52:54:00:00:00:01'] }, new Date(), { systemId: 'node-aaaaaa', token: 'x'.repeat(32) }), release: '..' };
  t.match(checkNode(bad), { field: 'release', value: '..' });
  await t.rejects(store.update((nodes) => void nodes.push(bad)), { code: 'INVALID_VALUE', message: /web1.*release "\.\." must not start with "\."/ });
  t.notOk(fs.existsSync(paths.resolve(NODES_FILE)), 'nothing stored');
});

/** A store as an older version may have left it: one node whose release the renderers refuse. */
function writeStoreWithBadNode(paths: Paths): Node {
  const bad: Node = { ...createNode({ hostname: 'broken', macs: ['52:54:00:00:00:09'], status: 'deploying' }, new Date('2026-01-02T03:04:05Z'), { systemId: 'node-dddddd', token: 'y'.repeat(32) }), release: '..' };
  put(paths, NODES_FILE, `${JSON.stringify({ version: 1, nodes: [...NODES, bad] }, null, 1)}\n`, 0o600);
  return bad;
}

t.test('an old store with one bad node: apply tftpd writes every other node and reports that one', async (t) => {
  const paths = scratchRoot(t);
  writeStoreWithBadNode(paths);
  const r = await cli(paths, 'apply', 'tftpd');
  t.equal(r.code, 3, 'non-zero: a node was left out');
  t.match(r.stderr, /broken \(node-dddddd\): release "\.\." must not start with "\."/);
  t.equal(r.stderr.trim().split('\n').filter((l) => /error/.test(l)).length, 1, `one error line: ${r.stderr}`);
  for (const node of NODES) {
    for (const mac of node.macs) {
      const name = `01-${mac.replace(/:/g, '-')}`;
      t.ok(fs.existsSync(paths.resolve(`${BOOT}/pxelinux.cfg/${name}`)), `${node.hostname}: pxelinux file`);
      t.ok(fs.existsSync(paths.resolve(`${BOOT}/grub/grub.cfg-${name}`)), `${node.hostname}: GRUB file`);
    }
  }
  t.notOk(fs.existsSync(paths.resolve(`${BOOT}/pxelinux.cfg/01-52-54-00-00-00-09`)), 'no file for the bad node');
  // Unrelated node commands still work, and apply their node's files.
  const added = await cli(paths, 'nodes', 'add', 'web7', '--mac', '52:54:00:00:00:07');
  t.equal(added.code, 0, added.stderr);
  t.notMatch(added.stderr, /broken/, 'the bad node is not even read: the apply after a node change renders that node alone');
  t.ok(fs.existsSync(paths.resolve(`${BOOT}/pxelinux.cfg/01-52-54-00-00-00-07`)), 'the new node got its boot file');
  // Fixing the bad node makes apply clean again.
  const fixed = await cli(paths, 'nodes', 'edit', 'broken', '--release', 'bookworm');
  t.equal(fixed.code, 0, fixed.stderr);
  const again = await cli(paths, 'apply', 'tftpd');
  t.equal(again.code, 0, again.stderr);
  t.ok(fs.existsSync(paths.resolve(`${BOOT}/pxelinux.cfg/01-52-54-00-00-00-09`)));
});

t.test('an old store with one bad node: apply dhcpd reserves every other node and reports that one', async (t) => {
  const paths = scratchRoot(t);
  const bad = writeStoreWithBadNode(paths);
  const store = JSON.parse(fs.readFileSync(paths.resolve(NODES_FILE), 'utf8')) as { version: 1; nodes: Node[] };
  store.nodes = store.nodes.map((n) => (n.systemId === bad.systemId ? { ...n, release: 'bookworm', macs: ['ff:ff:ff:ff:ff:ff'] } : n));
  put(paths, NODES_FILE, JSON.stringify(store), 0o600);
  t.equal((await cli(paths, 'config', 'set', 'dhcp.mode=full', 'dhcp.interface=eth0', 'dhcp.dns_servers=10.20.0.1')).code, 0);
  const r = await cli(paths, 'apply', 'dhcpd');
  t.equal(r.code, 3, r.stderr);
  t.match(r.stderr, /broken \(node-dddddd\): MAC "ff:ff:ff:ff:ff:ff" is the broadcast MAC/);
  const hostsDir = paths.resolve('/var/lib/uec-provisioning/dhcpd/hosts.d');
  t.same(fs.readdirSync(hostsDir).sort(), NODES.map((n) => n.systemId).sort(), 'a reservation file for every other node, none for the bad one');
  const files = fs.readdirSync(hostsDir).map((f) => fs.readFileSync(path.join(hostsDir, f), 'utf8')).join('\n');
  for (const node of NODES) for (const mac of node.macs) t.match(files, mac, `${node.hostname} reserved`);
  t.notMatch(files, /ff:ff:ff:ff:ff:ff/);
});

t.test('a node reserved outside the DHCP subnet: apply dhcpd reserves every other node and reports that one', async (t) => {
  const paths = scratchRoot(t);
  const bad = writeStoreWithBadNode(paths);
  const store = JSON.parse(fs.readFileSync(paths.resolve(NODES_FILE), 'utf8')) as { version: 1; nodes: Node[] };
  // A valid node (checkNode accepts it) whose address is not in this server's subnet.
  store.nodes = store.nodes.map((n) => (n.systemId === bad.systemId ? { ...n, release: 'bookworm', ipv4: '10.99.0.5' } : n));
  put(paths, NODES_FILE, JSON.stringify(store), 0o600);
  t.equal((await cli(paths, 'config', 'set', 'dhcp.mode=full', 'dhcp.interface=eth0', 'dhcp.dns_servers=10.20.0.1')).code, 0);
  const r = await cli(paths, 'apply', 'dhcpd');
  t.equal(r.code, 3, r.stderr);
  t.match(r.stderr, /broken \(node-dddddd\): address 10\.99\.0\.5 is not a host address of 10\.20\.0\.0\/24; its DHCP reservation is left out/);
  const hostsDir = paths.resolve('/var/lib/uec-provisioning/dhcpd/hosts.d');
  t.same(fs.readdirSync(hostsDir).sort(), NODES.map((n) => n.systemId).sort(), 'a reservation file for every other node, none for that one');
  t.match(fs.readFileSync(paths.resolve('/etc/uec-provisioning/dnsmasq-dhcpd.conf'), 'utf8'), /dhcp-range=/, 'the DHCP configuration was written');
});

t.test('enlistment with an existing node\'s MAC keeps the node\'s details and records the report once', async (t) => {
  const f = await startFixture(t);
  const node = await addNode(f.store, { hostname: 'web1', macs: ['52:54:00:00:00:01'], arch: 'arm64', hardware: { manufacturer: 'Real', serial: 'S1' } });
  const before = (await f.store.list())[0]!;
  for (let i = 0; i < 3; i++) {
    const r = await fetch(`${f.regionUrl}/metadata/enlist?mac=52:54:00:00:00:01&buildarch=x86_64&platform=efi&manufacturer=Evil&serial=S2`);
    t.equal(r.status, 200);
    t.equal(((await r.json()) as { system_id: string }).system_id, node.systemId);
  }
  const after = (await f.store.list())[0]!;
  t.same([after.hardware, after.arch, after.subarch, after.hostname, after.status], [before.hardware, 'arm64', 'generic', 'web1', 'ready'], 'details kept');
  const reports = after.events.filter((e) => e.type === 'enlisted');
  t.equal(reports.length, 1, 'one event for the same report repeated');
  t.match(reports[0]?.message, /manufacturer "Evil", serial "S2".*recorded details kept/);
});

t.test('unauthenticated enlistment is capped: beyond DEFAULT_MAX_NEW_NODES new nodes → 429, logged', async (t) => {
  const f = await startFixture(t);
  const statuses: number[] = [];
  for (let batch = 0; batch < 10; batch++) {
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => fetch(`${f.regionUrl}/metadata/enlist?mac=52:54:00:01:${batch.toString(16).padStart(2, '0')}:${i.toString(16).padStart(2, '0')}`)));
    for (const r of replies) {
      statuses.push(r.status);
      if (r.status === 429) t.equal(r.headers.get('retry-after'), '300');
      await r.arrayBuffer();
    }
  }
  t.equal(statuses.filter((s) => s === 201).length, DEFAULT_MAX_NEW_NODES, `${DEFAULT_MAX_NEW_NODES} enlisted`);
  t.equal(statuses.filter((s) => s === 429).length, 200 - DEFAULT_MAX_NEW_NODES, 'the rest refused');
  t.equal((await f.store.list()).length, DEFAULT_MAX_NEW_NODES);
  t.ok(f.lines.some((l) => /enlistment refused: 100 nodes are already new/.test(l)), 'logged');
  // A known machine enlisting again is still answered; accepting one makes room for one more.
  t.equal((await fetch(`${f.regionUrl}/metadata/enlist?mac=52:54:00:01:00:00`)).status, 200);
  const first = (await f.store.list())[0]!;
  await f.store.update((nodes) => void (nodes.find((n) => n.systemId === first.systemId)!.status = 'ready'));
  t.equal((await fetch(`${f.regionUrl}/metadata/enlist?mac=52:54:00:02:00:00`)).status, 201);
  t.equal((await fetch(`${f.regionUrl}/metadata/enlist?mac=52:54:00:02:00:01`)).status, 429);
});

t.test('region.max_new_nodes sets the enlistment cap; 0 turns enlistment off', async (t) => {
  for (const [limit, created] of [[3, 3], [0, 0]] as const) {
    const paths = scratchRoot(t);
    put(paths, '/etc/uec-provisioning/uec-provisioning.conf', `[region]\nmax_new_nodes = ${limit}\n`);
    const config = await loadConfig(paths, mergeSchemas(loadComponents()));
    const region = buildRegionOptions({ paths, config, store: createFileNodeStore(paths), base: 'http://10.20.0.5:5248', key: KEY, log: memoryLog().log });
    const url = await listen(t, (req, res) => {
      void handleRegionRequest(region, req, new URL(req.url ?? '/', 'http://localhost')).then((reply) => send(res, reply ?? { status: 404, body: '' }));
    });
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await fetch(`${url}/metadata/enlist?mac=52:54:00:02:00:${i.toString(16).padStart(2, '0')}`);
      await r.arrayBuffer();
      statuses.push(r.status);
    }
    t.same(statuses, [...Array<number>(created).fill(201), ...Array<number>(5 - created).fill(429)], `max_new_nodes = ${limit}`);
  }
});

t.test('nodes remove|release|deploy A B with B unknown (or named twice): refused, A unchanged', async (t) => {
  const paths = scratchRoot(t);
  t.equal((await cli(paths, 'nodes', 'add', 'web1', '--mac', '52:54:00:00:00:01', '--no-apply')).code, 0);
  t.equal((await cli(paths, 'nodes', 'add', 'web2', '--mac', '52:54:00:00:00:02', '--no-apply')).code, 0);
  const store = createFileNodeStore(paths);
  const before = JSON.stringify(await store.list());
  for (const args of [
    ['remove', 'web1', 'nosuch'],
    ['release', 'web1', 'nosuch'],
    ['deploy', 'web1', 'nosuch'],
    ['remove', 'web1', 'web1'],
    ['deploy', 'web1', 'web2', '--role', 'nosuch-role'],
  ]) {
    const r = await cli(paths, 'nodes', ...args, '--no-apply');
    t.not(r.code, 0, `nodes ${args.join(' ')} refused`);
    t.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr.trim()}`);
    t.equal(JSON.stringify(await store.list()), before, `nodes ${args.join(' ')}: no node changed`);
  }
  const ok = await cli(paths, 'nodes', 'remove', 'web1', 'web2', '--no-apply');
  t.equal(ok.code, 0, ok.stderr);
  t.same(await store.list(), [], 'both removed in one command');
});
