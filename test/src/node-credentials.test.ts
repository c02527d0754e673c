/**
 * Issue 13, item 3, on a real (namespaced) LAN: `uec-provisioning serve` in a namespace of its
 * own on a bridge, the deploying "node" in another namespace whose veth has the node's MAC,
 * and a "bystander" with another MAC. The bystander gets nothing of the node's install (no
 * boot script, no preseed, no first-boot script, no call-back with the node's real token),
 * each refusal is logged and the node store does not change; the node gets all of it, from
 * a second address on the same NIC too (its installed system's new DHCP lease); after
 * `deployed` its token is refused, and a second deploy gives a new one.
 *
 * The service reads the kernel neighbour table of its own namespace: no fakes here.
 * Needs root and iproute2 (skipped otherwise); nothing leaves the namespaces.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { addNode, deployNode, releaseNode } from '../../src/node-ops';
import { NODES_FILE, createFileNodeStore } from '../../src/node-store';
import { loadRoles } from '../../src/roles';
import { createTestNetwork, netnsUnavailableReason, type TestNetwork } from '../helpers/netns';
import { SHIPPED_TEMPLATES } from '../helpers/region-fixture';
import { REPO_ROOT, put, scratchRoot } from '../helpers/scratch';

const NODE_MAC = '52:54:00:77:00:11';
const BYSTANDER_MAC = '52:54:00:77:00:99';
const SERVER = '10.77.0.1';
const NODE_IP = '10.77.0.11';
const NODE_IP2 = '10.77.0.12';
const BYSTANDER_IP = '10.77.0.66';
const BASE = `http://${SERVER}:5248`;
const DIST_CLI = path.join(REPO_ROOT, 'dist/src/cli.js');

/** curl inside a namespace (optionally from one of its addresses): the status and body. */
async function curl(net: TestNetwork, ns: string, url: string, from?: string): Promise<{ status: number; body: string }> {
  const r = await net.exec(ns, ['curl', '-s', '--max-time', '20', ...(from ? ['--interface', from] : []), '-w', '\n%{http_code}', url], { timeoutMs: 30_000 });
  const lines = r.stdout.split('\n');
  const status = Number(lines.pop());
  return { status, body: lines.join('\n') };
}

t.test('a bystander on the LAN cannot act as the deploying node; the node can', { skip: netnsUnavailableReason() }, async (t) => {
  const net = createTestNetwork(t, { name: 'creds' });
  const [srv, nodeNs, byNs] = [await net.ns('srv'), await net.ns('node'), await net.ns('by')];
  await net.bridge(srv, 'br0');
  await net.addr(srv, 'br0', `${SERVER}/24`);
  await net.up(srv, 'br0');
  await net.link({ ns: srv, ifname: 'v-node' }, { ns: nodeNs, ifname: 'eth0', mac: NODE_MAC, cidr: `${NODE_IP}/24` });
  await net.link({ ns: srv, ifname: 'v-by' }, { ns: byNs, ifname: 'eth0', mac: BYSTANDER_MAC, cidr: `${BYSTANDER_IP}/24` });
  await net.attach(srv, 'v-node', 'br0');
  await net.attach(srv, 'v-by', 'br0');
  await net.addr(nodeNs, 'eth0', `${NODE_IP2}/24`);

  const paths = scratchRoot(t);
  put(paths, '/etc/uec-provisioning/conf.d/90-local.conf', `[server]\ninterface = br0\naddress = ${SERVER}\n\n[provisioning]\ncontext_cache_seconds = 0\n`);
  const store = createFileNodeStore(paths);
  const roles = await loadRoles(paths, path.join(SHIPPED_TEMPLATES, 'roles'));
  await addNode(store, { hostname: 'web1', macs: [NODE_MAC] });
  const node = await deployNode(store, 'web1', roles);

  const cli = fs.existsSync(DIST_CLI) ? [DIST_CLI] : ['-r', require.resolve('ts-node/register/transpile-only'), path.join(REPO_ROOT, 'src/cli.ts')];
  const serve = net.spawn(srv, [process.execPath, ...cli, 'serve', '--root', paths.root, '--port', '5248', '--listen', SERVER, '--json', '--no-apply'], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH, UEC_PROVISIONING_TEMPLATES: SHIPPED_TEMPLATES },
  });
  await serve.waitForOutput(/"port":5248/, 60_000);

  const nodesFile = paths.resolve(NODES_FILE);
  const hash = () => crypto.createHash('sha256').update(fs.readFileSync(nodesFile)).digest('hex');
  const before = hash();
  const id = node.systemId;
  const stolen = [
    ['install boot script', `${BASE}/boot/ipxe/node?mac=${NODE_MAC.replace(/:/g, '-')}`],
    ['preseed', `${BASE}/preseed/${id}`],
    ['first-boot script with the real token', `${BASE}/preseed/${id}/firstboot?token=${node.token}`],
    ['status call-back failed with the real token', `${BASE}/metadata/latest/${id}/status/failed?token=${node.token}`],
    ['disable-netboot with the real token', `${BASE}/metadata/latest/${id}/disable-netboot?token=${node.token}`],
  ];
  for (const [what, url] of stolen) {
    const r = await curl(net, byNs, url!);
    t.equal(r.status, 403, `bystander: ${what} → 403`);
    t.notOk(r.body.includes(id) || r.body.includes(node.token), `bystander: ${what}: nothing of the node in the answer`);
  }
  t.equal(hash(), before, 'the refused requests changed nothing in the node store');
  const refusals = serve.stderr().split('\n').filter((l) => l.includes(BYSTANDER_IP) && l.includes('refused'));
  for (const logged of ['the install boot script', 'the preseed of', 'the first-boot script of', `/metadata/latest/${id}/status/failed`, `/metadata/latest/${id}/disable-netboot`]) {
    t.ok(refusals.some((l) => l.includes(logged)), `the refusal of ${logged} is logged with the address`);
  }
  t.ok(refusals.every((l) => l.includes('web1') && l.includes(id)), 'each names the node');
  t.ok(refusals.some((l) => l.includes(`MAC ${BYSTANDER_MAC}`)), 'and what the neighbour table said');
  t.notOk(serve.stderr().includes(node.token), 'the token is never logged');

  // The node itself: its script, its preseed (with its token), its call-backs.
  const script = await curl(net, nodeNs, `${BASE}/boot/ipxe/node?mac=${NODE_MAC.replace(/:/g, '-')}`);
  t.equal(script.status, 200);
  t.match(script.body, new RegExp(`^kernel .* url=${BASE.replace(/\./g, '\\.')}/preseed/${id} `, 'm'));
  const preseed = await curl(net, nodeNs, `${BASE}/preseed/${id}`);
  t.equal(preseed.status, 200);
  t.ok(preseed.body.includes(`${BASE}/metadata/latest/${id}/status/installing?token=${node.token}`), 'the preseed carries the call-back URLs with the token');
  t.equal((await curl(net, nodeNs, `${BASE}/metadata/latest/${id}/status/installing?token=${node.token}`)).status, 200, 'installing');
  t.equal((await curl(net, nodeNs, `${BASE}/metadata/latest/${id}/status/installed?token=${node.token}`)).status, 200, 'installed');
  t.equal((await curl(net, nodeNs, `${BASE}/preseed/${id}/firstboot?token=${node.token}`)).status, 200, 'first-boot script');
  t.equal((await curl(net, nodeNs, `${BASE}/metadata/latest/${id}/disable-netboot?token=${node.token}`)).status, 200, 'disable-netboot');
  t.equal((await store.find(id))!.boundAddress, NODE_IP, 'the deploy is bound to the address of its first request');
  // First boot of the installed system, with another DHCP lease on the same NIC: accepted by its MAC.
  t.equal((await curl(net, nodeNs, `${BASE}/metadata/latest/${id}/status/deployed?token=${node.token}`, NODE_IP2)).status, 200, 'deployed, from a second address');
  t.equal((await store.find(id))!.status, 'deployed');

  // Deployed: the token is worth nothing now, even from the node.
  const deployed = hash();
  for (const event of ['installing', 'failed', 'deployed']) {
    t.equal((await curl(net, nodeNs, `${BASE}/metadata/latest/${id}/status/${event}?token=${node.token}`)).status, 403, `after deployed: ${event} → 403`);
  }
  t.equal((await curl(net, nodeNs, `${BASE}/preseed/${id}/firstboot?token=${node.token}`)).status, 403, 'after deployed: first-boot script → 403');
  t.equal(hash(), deployed, 'nothing changed');

  // A second deploy: a new token; the old one is refused, the new one accepted.
  await releaseNode(store, id);
  const again = await deployNode(store, id, roles);
  t.not(again.token, node.token, 'a second deploy has a new token');
  t.equal((await store.find(id))!.boundAddress, undefined, 'and no binding yet');
  t.equal((await curl(net, nodeNs, `${BASE}/metadata/latest/${id}/status/installing?token=${node.token}`)).status, 403, 'the old token → 403');
  t.equal((await curl(net, byNs, `${BASE}/metadata/latest/${id}/status/installing?token=${again.token}`)).status, 403, 'the new token from the bystander → 403');
  t.equal((await curl(net, nodeNs, `${BASE}/metadata/latest/${id}/status/installing?token=${again.token}`)).status, 200, 'the new token from the node → 200');
  await serve.stop();
});
