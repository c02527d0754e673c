/**
 * serve's preseed fast path (preseed-memo.ts, answerFromPreseedMemo): a repeated GET of a
 * node's preseed on a connection whose ownership was checked is answered from memory, and
 * never once the answer is stale: a redeploy or a release (by this process or another one),
 * another MAC on the node's address (a new connection), another address.
 */
import * as http from 'node:http';
import t, { type Test } from 'tap';
import { loadComponents, mergeSchemas } from '../../src/configurator/component';
import { loadConfig } from '../../src/core/config';
import { addNode, deployNode, recordStatusEvent, releaseNode } from '../../src/region/node-ops';
import { createFileNodeStore } from '../../src/region/node-store';
import type { Paths } from '../../src/core/paths';
import { loadRoles } from '../../src/contract/roles';
import { startService } from '../../src/cli/serve';
import { loadServerAddress } from '../../src/core/server-address';
import { staticNetworkFacts } from '../../src/core/network-facts';
import type { ClientAddressing, NeighbourEntry } from '../../src/core/neighbours';
import { renderMetrics } from '../../src/core/metrics';
import { SHIPPED_TEMPLATES, createFakeLan, memoryLog } from '../helpers/region-fixture';
import { scratchRoot } from '../helpers/scratch';

process.env.UEC_PROVISIONING_TEMPLATES = SHIPPED_TEMPLATES;
const network = staticNetworkFacts([{ name: 'eth0', mac: '52:54:00:00:00:01', up: true, loopback: false, virtual: false, ipv4: [{ address: '192.0.2.77', prefix: 24 }], ipv6: [] }], {
  interface: 'eth0',
  gateway: '192.0.2.1',
});
const NODE_MAC = '52:54:00:00:00:11';

/**
 * A LAN whose answers are fixed per connection, as the socket and the kernel's table are:
 * every connection's peer is `peer`, its MAC what `table` says when it is asked. Counts the
 * neighbour look-ups (each one is a read of the table, done by the slow path only).
 */
function connectionBoundLan() {
  const table = new Map<string, NeighbourEntry>();
  const lan = { peer: '10.0.0.11', lookups: 0, lookupsNow: 0, table };
  const addressing: ClientAddressing = {
    clientAddress: () => lan.peer,
    neighbour: async (address) => {
      lan.lookups++;
      return table.get(address) ?? null;
    },
    connectionBound: true,
    neighbourNow: (address) => {
      lan.lookupsNow++;
      return table.get(address) ?? null;
    },
  };
  return { lan, addressing };
}

async function start(t: Test, paths: Paths, addressing: ClientAddressing) {
  const config = await loadConfig(paths, mergeSchemas(loadComponents()));
  const server = await loadServerAddress(config, network);
  const store = createFileNodeStore(paths);
  const { log, lines } = memoryLog();
  // A minute, not a second: what is answered from memory must not depend on how fast this machine is now.
  const running = await startService({ paths, config, server, store, log, port: 0, host: '127.0.0.1', addressing, preseedMemoMs: 60_000 });
  t.teardown(() => running.close());
  await addNode(store, { hostname: 'web1', macs: [NODE_MAC] });
  const node = await deployNode(store, 'web1', await loadRoles(paths));
  return { store, lines, node, url: `http://127.0.0.1:${running.port}/preseed/${node.systemId}` };
}

/** One kept-alive connection (one socket, every request on it). */
function connection(t: Test) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  return (url: string, method = 'GET') =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(url, { agent, method }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      });
      req.on('error', reject);
      req.end();
    });
}

t.test('repeated GETs on one connection: answered from memory, the same bytes; one log line; counted in the metrics', async (t) => {
  const { lan, addressing } = connectionBoundLan();
  lan.table.set('10.0.0.11', { mac: NODE_MAC, router: false });
  const { lines, node, url } = await start(t, scratchRoot(t), addressing);
  const get = connection(t);
  const before = (await renderMetrics()).body;
  const count = (m: string) => Number(new RegExp(`uecp_http_requests_total\\{service="provisioning",route="/preseed/<id>",method="GET",status="200"\\} (\\d+)`).exec(m)?.[1] ?? 0);
  const first = await get(url);
  t.equal(first.status, 200);
  t.ok(first.body.includes(`token=${node.token}`));
  const lookups = lan.lookups;
  for (let i = 0; i < 20; i++) {
    const again = await get(url);
    t.equal(again.status, 200);
    t.equal(again.body, first.body, 'the same bytes');
  }
  // Routed (and the table read) only right after a commit: the deploy's, the preseed event the first one recorded.
  t.ok(lan.lookups - lookups <= 5, `the neighbour table read for a few of the 20 at most: ${lan.lookups - lookups}`);
  t.equal(lines.filter((l) => l.includes(`preseed install for web1 (${node.systemId})`)).length, 1, 'one log line for the node in the minute');
  t.equal(count((await renderMetrics()).body) - count(before), 21, 'every answer counted, those from memory too');
  // New connections from the node: the table read once each (synchronously), then answered from memory.
  const [routed, now] = [lan.lookups, lan.lookupsNow];
  for (let i = 0; i < 3; i++) {
    const other = connection(t);
    t.equal((await other(url)).body, first.body);
    t.equal((await other(url)).body, first.body);
  }
  t.equal(lan.lookupsNow - now, 3, 'three new connections, three reads of the table');
  t.equal(lan.lookups - routed, 0, 'none routed');
  t.equal((await get(url, 'HEAD')).status, 200, 'HEAD: routed');
  t.equal((await get(`${url}?type=install`)).status, 200, 'a query: routed');
});

t.test('a redeploy or a release in this process: the next GET on the same connection has the new token, or 409', async (t) => {
  const { lan, addressing } = connectionBoundLan();
  lan.table.set('10.0.0.11', { mac: NODE_MAC, router: false });
  const paths = scratchRoot(t);
  const { store, node, url } = await start(t, paths, addressing);
  const get = connection(t);
  await get(url);
  await get(url);
  t.ok((await get(url)).body.includes(`token=${node.token}`));
  await releaseNode(store, node.systemId);
  t.equal((await get(url)).status, 409, 'released');
  const again = await deployNode(store, node.systemId, await loadRoles(paths));
  const served = await get(url);
  t.ok(served.body.includes(`token=${again.token}`) && !served.body.includes(node.token), 'the new token');
  await get(url);
  await recordStatusEvent(store, node.systemId, 'deployed', '');
  t.equal((await get(url)).status, 409, 'deployed');
});

t.test('a redeploy by another process (the web UI, the CLI): the next GET on the same connection has the new token', async (t) => {
  const { lan, addressing } = connectionBoundLan();
  lan.table.set('10.0.0.11', { mac: NODE_MAC, router: false });
  const paths = scratchRoot(t);
  const { node, url } = await start(t, paths, addressing);
  const get = connection(t);
  await get(url);
  await get(url);
  t.ok((await get(url)).body.includes(`token=${node.token}`));
  // Another store on the same files, as another process has: its commits reach serve only through the files.
  const other = createFileNodeStore(paths);
  t.teardown(() => other.close());
  await releaseNode(other, node.systemId);
  const again = await deployNode(other, node.systemId, await loadRoles(paths));
  const served = await get(url);
  t.equal(served.status, 200);
  t.ok(served.body.includes(`token=${again.token}`) && !served.body.includes(node.token), 'the new token');
  await get(url);
  await releaseNode(other, node.systemId);
  t.equal((await get(url)).status, 409, 'released by the other process');
});

t.test('another MAC on the node\'s address: its connection is checked anew and refused; another address is refused', async (t) => {
  const { lan, addressing } = connectionBoundLan();
  lan.table.set('10.0.0.11', { mac: NODE_MAC, router: false });
  const { url } = await start(t, scratchRoot(t), addressing);
  const node = connection(t);
  t.equal((await node(url)).status, 200);
  t.equal((await node(url)).status, 200);
  // The node is gone from the LAN; a bystander answers ARP for its address.
  lan.table.set('10.0.0.11', { mac: '52:54:00:00:00:66', router: false });
  const bystander = connection(t);
  const routed = lan.lookups;
  t.equal((await bystander(url)).status, 403, 'a new connection from the address: the table is read, the MAC is not the node\'s');
  t.equal((await bystander(url)).status, 403, 'and again');
  t.equal(lan.lookups - routed, 2, 'both routed, the region asked');
  lan.table.set('10.0.0.11', { mac: NODE_MAC, router: true });
  t.equal((await connection(t)(url)).status, 200, 'the node\'s MAC, now a router\'s: routed, and bound to the address by the region');
  lan.table.set('10.0.0.11', { mac: NODE_MAC, router: false });
  lan.peer = '10.0.0.12';
  t.equal((await node(url)).status, 403, 'another peer address than the one checked: routed, refused');
});

t.test('a fake LAN whose client can change within a connection (not connection-bound): every request is checked', async (t) => {
  const lan = createFakeLan();
  lan.neighbour('10.0.0.11', NODE_MAC);
  const { url } = await start(t, scratchRoot(t), lan.addressing);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const status = (from: string) =>
    new Promise<number>((resolve, reject) => {
      http
        .get(url, { agent, headers: { 'X-Fake-Client': from } }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        })
        .on('error', reject);
    });
  t.equal(await status('10.0.0.11'), 200);
  t.equal(await status('10.0.0.11'), 200);
  lan.neighbour('10.0.0.11', '52:54:00:00:00:66');
  t.equal(await status('10.0.0.11'), 403, 'the same connection, the table changed: refused');
});
