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
import { addNode, deployNode, releaseNode } from '../../src/region/node-ops';
import { createFileNodeStore } from '../../src/region/node-store';
import { readStoreFiles } from '../helpers/node-store-files';
import { loadRoles } from '../../src/contract/roles';
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

/** `uec-provisioning serve` (the build, else ts-node) inside `ns`, on SERVER:5248. */
async function startServe(net: TestNetwork, ns: string, root: string) {
  const cli = fs.existsSync(DIST_CLI) ? [DIST_CLI] : ['-r', require.resolve('ts-node/register/transpile-only'), path.join(REPO_ROOT, 'src/cli.ts')];
  const serve = net.spawn(ns, [process.execPath, ...cli, 'serve', '--root', root, '--port', '5248', '--listen', SERVER, '--json', '--no-apply'], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH, UEC_PROVISIONING_TEMPLATES: SHIPPED_TEMPLATES },
  });
  await serve.waitForOutput(/"port":5248/, 60_000);
  return serve;
}

const LOCAL_CONF = `[server]\ninterface = br0\naddress = ${SERVER}\n\n[provisioning]\ncontext_cache_seconds = 0\n`;

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
  put(paths, '/etc/uec-provisioning/conf.d/90-local.conf', LOCAL_CONF);
  const store = createFileNodeStore(paths);
  const roles = await loadRoles(paths, path.join(SHIPPED_TEMPLATES, 'roles'));
  await addNode(store, { hostname: 'web1', macs: [NODE_MAC] });
  const node = await deployNode(store, 'web1', roles);

  const serve = await startServe(net, srv, paths.root);

  const hash = () => crypto.createHash('sha256').update(readStoreFiles(paths)).digest('hex');
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

t.test('routed nodes (behind a router, no neighbour entry): the reservation, or the address of the first request', { skip: netnsUnavailableReason() }, async (t) => {
  const net = createTestNetwork(t, { name: 'routed' });
  const [srv, rtr, far] = [await net.ns('srv'), await net.ns('rtr'), await net.ns('far')];
  await net.bridge(srv, 'br0');
  await net.addr(srv, 'br0', `${SERVER}/24`);
  await net.up(srv, 'br0');
  // The router: one leg on the server's LAN, one on the far subnet; forwarding only inside its namespace.
  await net.link({ ns: srv, ifname: 'v-rtr' }, { ns: rtr, ifname: 'lan', mac: '02:00:00:77:00:fe', cidr: '10.77.0.254/24' });
  await net.attach(srv, 'v-rtr', 'br0');
  await net.link({ ns: rtr, ifname: 'far' }, { ns: far, ifname: 'eth0', mac: '52:54:00:78:00:11', cidr: '10.78.0.11/24' });
  await net.exec(rtr, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
  await net.addr(far, 'eth0', '10.78.0.12/24');
  await net.addr(far, 'eth0', '10.78.0.20/24');
  await net.ip(far, ['route', 'add', 'default', 'via', '10.78.0.1']);
  await net.addr(rtr, 'far', '10.78.0.1/24');
  await net.ip(srv, ['route', 'add', '10.78.0.0/24', 'via', '10.77.0.254']);

  const paths = scratchRoot(t);
  put(paths, '/etc/uec-provisioning/conf.d/90-local.conf', LOCAL_CONF);
  const store = createFileNodeStore(paths);
  const roles = await loadRoles(paths, path.join(SHIPPED_TEMPLATES, 'roles'));
  await addNode(store, { hostname: 'far1', macs: ['52:54:00:78:00:11'] });
  await addNode(store, { hostname: 'far2', macs: ['52:54:00:78:00:22'], ipv4: '10.78.0.20' });
  const far1 = await deployNode(store, 'far1', roles);
  const far2 = await deployNode(store, 'far2', roles);
  const serve = await startServe(net, srv, paths.root);

  const status = async (url: string, from: string) => (await curl(net, far, url, from)).status;
  // far1, no reservation: the first request binds its address for this deploy.
  t.equal(await status(`${BASE}/preseed/${far1.systemId}`, '10.78.0.11'), 200, 'far1: the first request (its preseed) is served');
  t.equal((await store.find('far1'))!.boundAddress, '10.78.0.11', 'and binds its address');
  t.equal(await status(`${BASE}/preseed/${far1.systemId}`, '10.78.0.12'), 403, 'far1: another routed address → 403');
  t.equal(await status(`${BASE}/metadata/latest/${far1.systemId}/status/failed?token=${far1.token}`, '10.78.0.12'), 403, 'far1: a call-back with the real token from another routed address → 403');
  t.equal(await status(`${BASE}/metadata/latest/${far1.systemId}/status/installing?token=${far1.token}`, '10.78.0.11'), 200, 'far1: its call-back from the bound address');
  // far2, reserved 10.78.0.20: nothing from another address, even as the first request.
  t.equal(await status(`${BASE}/preseed/${far2.systemId}`, '10.78.0.12'), 403, 'far2: not its reservation → 403, nothing bound');
  t.equal((await store.find('far2'))!.boundAddress, undefined);
  t.equal(await status(`${BASE}/preseed/${far2.systemId}`, '10.78.0.20'), 200, 'far2: from its reservation');
  t.equal(await status(`${BASE}/metadata/latest/${far2.systemId}/status/installing?token=${far2.token}`, '10.78.0.20'), 200);
  t.equal((await store.find('far1'))!.status, 'deploying', 'the refused failed call-back changed nothing');
  t.ok(serve.stderr().split('\n').some((l) => l.includes('from 10.78.0.12 (no neighbour entry)') && l.includes('this deploy is bound to 10.78.0.11')), 'the refusal says the client was routed and what the deploy is bound to');
  await serve.stop();
});
