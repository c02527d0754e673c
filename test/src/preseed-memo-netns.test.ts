/**
 * The preseed fast path (preseed-memo.ts) on a real (namespaced) LAN, with the kernel's own
 * neighbour table: `uec-provisioning serve` from this checkout's source in a namespace of its
 * own, the deploying node in another (its veth has the node's MAC), a bystander in a third.
 * The node's repeated fetches are answered from memory (one log line); when the node has left
 * and the bystander takes its address, the bystander's connection is checked anew and refused.
 *
 * Needs root and iproute2 (skipped otherwise); nothing leaves the namespaces.
 */
import * as path from 'node:path';
import t from 'tap';
import { addNode, deployNode } from '../../src/region/node-ops';
import { createFileNodeStore } from '../../src/region/node-store';
import { loadRoles } from '../../src/contract/roles';
import { createTestNetwork, netnsUnavailableReason, type TestNetwork } from '../helpers/netns';
import { SHIPPED_TEMPLATES } from '../helpers/region-fixture';
import { REPO_ROOT, put, scratchRoot } from '../helpers/scratch';

const NODE_MAC = '52:54:00:78:00:11';
const BYSTANDER_MAC = '52:54:00:78:00:99';
const SERVER = '10.78.0.1';
const NODE_IP = '10.78.0.11';
const BASE = `http://${SERVER}:5248`;

/** curl inside a namespace: one status per URL, all on one kept-alive connection. */
async function curl(net: TestNetwork, ns: string, urls: string[]): Promise<number[]> {
  const r = await net.exec(ns, ['curl', '-s', '--max-time', '20', '-w', '%{http_code}\n', ...urls.flatMap((u) => ['-o', '/dev/null', u])], { timeoutMs: 30_000 });
  return r.stdout.trim().split('\n').map(Number);
}

t.test('repeated fetches from memory; the node\'s address taken by another MAC: refused', { skip: netnsUnavailableReason() }, async (t) => {
  const net = createTestNetwork(t, { name: 'memo' });
  const [srv, nodeNs, byNs] = [await net.ns('srv'), await net.ns('node'), await net.ns('by')];
  await net.bridge(srv, 'br0');
  await net.addr(srv, 'br0', `${SERVER}/24`);
  await net.up(srv, 'br0');
  await net.link({ ns: srv, ifname: 'v-node' }, { ns: nodeNs, ifname: 'eth0', mac: NODE_MAC, cidr: `${NODE_IP}/24` });
  await net.link({ ns: srv, ifname: 'v-by' }, { ns: byNs, ifname: 'eth0', mac: BYSTANDER_MAC });
  await net.attach(srv, 'v-node', 'br0');
  await net.attach(srv, 'v-by', 'br0');

  const paths = scratchRoot(t);
  put(paths, '/etc/uec-provisioning/conf.d/90-local.conf', `[server]\ninterface = br0\naddress = ${SERVER}\n`);
  const store = createFileNodeStore(paths);
  await addNode(store, { hostname: 'web1', macs: [NODE_MAC] });
  const node = await deployNode(store, 'web1', await loadRoles(paths, path.join(SHIPPED_TEMPLATES, 'roles')));
  await store.close();
  // This checkout's source, not a build that may be older (ts-node required in the script: tap's loader hooks would refuse a .ts entry point).
  const code = `require("ts-node/register/transpile-only"); require(${JSON.stringify(path.join(REPO_ROOT, 'src/cli.ts'))}).main(process.argv.slice(1), { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s), env: process.env }).then((c) => { process.exitCode = c; })`;
  const serve = net.spawn(srv, [process.execPath, '-e', code, 'serve', '--root', paths.root, '--port', '5248', '--listen', SERVER, '--json', '--no-apply'], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH, UEC_PROVISIONING_TEMPLATES: SHIPPED_TEMPLATES },
  });
  await serve.waitForOutput(/"port":5248/, 120_000);
  const preseed = `${BASE}/preseed/${node.systemId}`;

  t.same(await curl(net, nodeNs, [preseed, preseed, preseed]), [200, 200, 200], 'the node, one connection');
  t.same(await curl(net, nodeNs, [preseed, preseed]), [200, 200], 'the node, a new connection');
  t.same(await curl(net, nodeNs, [preseed]), [200], 'and another');
  const served = () => serve.stderr().split('\n').filter((l) => l.includes(`preseed install for web1 (${node.systemId})`));
  t.ok(served().length <= 2, `answered from memory: ${served().length} log lines for 6 answers (a second one after the preseed event's commit)`);

  // The node leaves; its neighbour entry goes (as it would expire); the bystander takes its address.
  await net.exec(nodeNs, ['ip', 'link', 'set', 'eth0', 'down']);
  await net.exec(srv, ['ip', 'neigh', 'flush', 'dev', 'br0']);
  await net.exec(byNs, ['ip', 'addr', 'add', `${NODE_IP}/24`, 'dev', 'eth0']);
  t.same(await curl(net, byNs, [preseed, preseed]), [403, 403], 'the bystander on the node\'s address: refused');
  t.ok(
    serve
      .stderr()
      .split('\n')
      .some((l) => l.includes('refused') && l.includes(NODE_IP) && l.includes(`MAC ${BYSTANDER_MAC}`)),
    'the refusal names the bystander\'s MAC',
  );
});
