/**
 * Issue 14 item 6 with real processes: the region and two edges (`serve --no-region`), each in
 * a network namespace of its own, the edges on different subnets, real HTTP from namespaced
 * clients whose MACs are the nodes'. The deploy is requested; the region is killed; the node
 * still gets its boot script and preseed from edge B and calls back (200, queued); the region
 * comes back and the node's timeline holds every event once, in order. Edge A is killed, a
 * deploy is requested while it is away, and it installs that node once it is back.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { createBackbone, curlIn, startServe, until, type Launcher } from '../helpers/edges';
import { createTestNetwork, netnsUnavailableReason } from '../helpers/netns';
import { put, scratchRoot } from '../helpers/scratch';
import { SHIPPED_TEMPLATES } from '../helpers/region-fixture';
import { transpileCheckout } from '../helpers/transpile';
import { createFileNodeStore } from '../../src/region/node-store';
import { addNode, deployNode } from '../../src/region/node-ops';
import { loadRoles } from '../../src/contract/roles';
import type { Paths } from '../../src/core/paths';

const REGION = '10.60.0.1';
const EDGE_A = { backbone: '10.60.0.3', lan: '10.71.0.1', client: '10.71.0.5', mac: '52:54:00:71:00:05' };
const EDGE_B = { backbone: '10.60.0.2', lan: '10.72.0.1', client: '10.72.0.5', mac: '52:54:00:72:00:05' };
const KEY_FILE = '/var/lib/uec-provisioning/secrets/provisioning.key';

t.test('region and two edges in namespaces: the region killed after the deploy, edge B installs the node from its cache; back, the timeline holds every event once, in order', { skip: netnsUnavailableReason(), timeout: 600_000 }, async (t) => {
  const build = transpileCheckout(t.testdir(), ['src', 'packages']);
  const cli = path.join(build, 'src/cli.js');
  const net = createTestNetwork(t, { name: 'edges' });
  const [reg, ea, eb, na, nb] = [await net.ns('region'), await net.ns('edgea'), await net.ns('edgeb'), await net.ns('nodea'), await net.ns('nodeb')];
  await createBackbone(net, reg, `${REGION}/24`, [
    { ns: ea, label: 'ea', cidr: `${EDGE_A.backbone}/24` },
    { ns: eb, label: 'eb', cidr: `${EDGE_B.backbone}/24` },
  ]);
  await net.link({ ns: ea, ifname: 'lan', cidr: `${EDGE_A.lan}/24` }, { ns: na, ifname: 'eth0', mac: EDGE_A.mac, cidr: `${EDGE_A.client}/24` });
  await net.link({ ns: eb, ifname: 'lan', cidr: `${EDGE_B.lan}/24` }, { ns: nb, ifname: 'eth0', mac: EDGE_B.mac, cidr: `${EDGE_B.client}/24` });

  const launcher: Launcher = { cli, env: { PATH: process.env.PATH, UEC_PROVISIONING_TEMPLATES: SHIPPED_TEMPLATES, UEC_PROVISIONING_SERVICE_CONTROL: 'none' } };
  const serve = (ns: string, paths: Paths, args: string[]) => startServe(net, launcher, ns, paths, args);
  const curl = (ns: string, url: string) => curlIn(net, ns, url);

  const regionPaths = scratchRoot(t);
  put(regionPaths, '/etc/uec-provisioning/conf.d/90-local.conf', `[server]\ninterface = bb\naddress = ${REGION}\n`);
  let region = await serve(reg, regionPaths, ['--listen', REGION, '--no-apply']);
  const key = fs.readFileSync(regionPaths.resolve(KEY_FILE), 'utf8');
  const edgePaths = (e: typeof EDGE_A) => {
    const paths = scratchRoot(t);
    put(paths, KEY_FILE, key, 0o600);
    put(paths, '/etc/uec-provisioning/conf.d/90-local.conf', `[server]\ninterface = lan\naddress = ${e.lan}\n\n[provisioning]\nregion_url = http://${REGION}:5248\nregion_timeout_ms = 2000\n`);
    return paths;
  };
  const [pathsA, pathsB] = [edgePaths(EDGE_A), edgePaths(EDGE_B)];
  let edgeA = await serve(ea, pathsA, ['--listen', EDGE_A.lan, '--no-region']);
  const edgeB = await serve(eb, pathsB, ['--listen', EDGE_B.lan, '--no-region']);

  const store = createFileNodeStore(regionPaths);
  t.teardown(() => store.close());
  const roles = await loadRoles(regionPaths, path.join(SHIPPED_TEMPLATES, 'roles'));
  const web = await addNode(store, { hostname: 'web-b', macs: [EDGE_B.mac], ipv4: EDGE_B.client });
  await addNode(store, { hostname: 'web-a', macs: [EDGE_A.mac] });
  const node = await deployNode(store, web.systemId, roles);
  const B = `http://${EDGE_B.lan}:5248`;
  const mac = EDGE_B.mac.replace(/:/g, '-');
  await until('edge B to have the deploy in its cache', async () => /^kernel /m.test((await curl(nb, `${B}/boot/ipxe/node?mac=${mac}`)).body));
  // The configurator on the edge renders from its cache: the node's own pxelinux and GRUB files.
  const pxe = pathsB.resolve(`/var/lib/uec-provisioning/boot/pxelinux.cfg/01-${mac}`);
  // (It may first hold the local-disk entry of the node before its deploy: wait for the install one.)
  const installEntry = new RegExp(`url=${B.replace(/\./g, '\\.')}/preseed/${node.systemId}`);
  await until('edge B to write the node\'s install pxelinux file', async () => fs.existsSync(pxe) && installEntry.test(fs.readFileSync(pxe, 'utf8')));
  t.match(fs.readFileSync(pxe, 'utf8'), installEntry, 'its pxelinux file, from the cache');
  t.ok(fs.existsSync(pathsB.resolve(`/var/lib/uec-provisioning/boot/grub/grub.cfg-01-${mac}`)), 'and its GRUB file');

  region.child.kill('SIGKILL');
  await region.exited;
  t.equal((await curl(eb, `http://${REGION}:5248/api/v1/changes?since=0`)).status, 0, 'the region is gone');

  const script = await curl(nb, `${B}/boot/ipxe/node?mac=${mac}`);
  t.equal(script.status, 200, 'boot script from edge B with the region away');
  t.match(script.body, new RegExp(`^kernel .* url=${B.replace(/\./g, '\\.')}/preseed/${node.systemId} `, 'm'));
  const preseed = await curl(nb, `${B}/preseed/${node.systemId}`);
  t.equal(preseed.status, 200, 'preseed from edge B with the region away');
  t.ok(preseed.body.includes(`${B}/metadata/latest/${node.systemId}/status/installing?token=${node.token}`), 'its call-backs go to edge B');
  for (const step of ['status/installing', 'status/installed', 'disable-netboot', 'status/deployed']) {
    const r = await curl(nb, `${B}/metadata/latest/${node.systemId}/${step}?token=${node.token}`);
    t.equal(r.status, 200, `${step}: 200, queued`);
  }
  t.match((await curl(nb, `${B}/boot/ipxe/node?mac=${mac}`)).body, /local disk/, 'the next boot is the local disk, from the cache');
  t.equal((await store.find(node.systemId))!.status, 'deploying', 'the region has heard nothing yet');

  // A deploy while edge A is away reaches it when it returns.
  edgeA.child.kill('SIGKILL');
  await edgeA.exited;
  region = await serve(reg, regionPaths, ['--listen', REGION, '--no-apply']);
  const webA = await deployNode(store, 'web-a', roles);
  edgeA = await serve(ea, pathsA, ['--listen', EDGE_A.lan, '--no-region']);
  const A = `http://${EDGE_A.lan}:5248`;
  await until('edge A to serve the deploy made while it was away', async () => /^kernel /m.test((await curl(na, `${A}/boot/ipxe/node?mac=${EDGE_A.mac.replace(/:/g, '-')}`)).body));
  t.equal((await curl(na, `${A}/preseed/${webA.systemId}`)).status, 200, 'edge A serves its preseed');

  const after = await until('the queued call-backs to reach the region', async () => {
    const n = await store.find(node.systemId);
    return n?.status === 'deployed' ? n : undefined;
  });
  const kinds = ['netboot', 'preseed', 'installing', 'installed', 'netboot-disabled'];
  t.same(after.events.map((e) => e.type).filter((k) => kinds.includes(k)), kinds, 'every event once, in order');
  t.equal(after.netboot, false);
  t.notOk(edgeB.stderr().includes(node.token) || region.stderr().includes(node.token), 'the token is never logged');
  for (const p of [edgeA, edgeB, region]) await p.stop();
});
