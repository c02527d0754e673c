/**
 * `serve` with the region in its own process: the provisioning side asks it in-process
 * (src/region/local-region-client.ts), not over loopback HTTP, and stays exactly as strict: a
 * bystander gets nothing, a new deploy's token is in the very next preseed even with a long
 * context cache configured, a node no longer deploying gets 409. With region_url set it asks
 * over HTTP as before.
 */
import t, { type Test } from 'tap';
import { loadComponents, mergeSchemas } from '../../src/configurator/component';
import { loadConfig } from '../../src/core/config';
import { staticNetworkFacts } from '../../src/core/network-facts';
import { addNode, deployNode, recordStatusEvent, releaseNode } from '../../src/region/node-ops';
import { createFileNodeStore } from '../../src/region/node-store';
import type { Paths } from '../../src/core/paths';
import { loadRoles } from '../../src/contract/roles';
import { startService } from '../../src/cli/serve';
import { loadServerAddress } from '../../src/core/server-address';
import { SHIPPED_TEMPLATES, createFakeLan, memoryLog } from '../helpers/region-fixture';
import { put, scratchRoot } from '../helpers/scratch';

process.env.UEC_PROVISIONING_TEMPLATES = SHIPPED_TEMPLATES;
const network = staticNetworkFacts([{ name: 'eth0', mac: '52:54:00:00:00:01', up: true, loopback: false, virtual: false, ipv4: [{ address: '192.0.2.77', prefix: 24 }], ipv6: [] }], {
  interface: 'eth0',
  gateway: '192.0.2.1',
});

async function start(t: Test, paths: Paths) {
  const config = await loadConfig(paths, mergeSchemas(loadComponents()));
  const server = await loadServerAddress(config, network);
  const store = createFileNodeStore(paths);
  const { log, lines } = memoryLog();
  const lan = createFakeLan();
  const running = await startService({ paths, config, server, store, log, port: 0, host: '127.0.0.1', addressing: lan.addressing });
  t.teardown(() => running.close());
  return { store, lines, lan, base: `http://127.0.0.1:${running.port}` };
}

async function get(url: string, init: RequestInit): Promise<{ status: number; body: string }> {
  const res = await fetch(url, init);
  return { status: res.status, body: await res.text() };
}

t.test('region in this process: asked in-process; bystander 403, the new token at once, 409 once deployed', async (t) => {
  const paths = scratchRoot(t);
  put(paths, '/etc/uec-provisioning/conf.d/90-local.conf', '[provisioning]\ncontext_cache_seconds = 300\n');
  const { store, lines, lan, base } = await start(t, paths);
  lan.neighbour('10.0.0.11', '52:54:00:00:00:11');
  lan.neighbour('10.0.0.66', '52:54:00:00:00:66');
  await addNode(store, { hostname: 'web1', macs: ['52:54:00:00:00:11'] });
  const roles = await loadRoles(paths);
  const first = await deployNode(store, 'web1', roles);
  const preseed = `${base}/preseed/${first.systemId}`;
  t.equal((await get(preseed, lan.from('10.0.0.66'))).status, 403, 'bystander');
  t.equal((await get(preseed, lan.from('127.0.0.1'))).status, 403, 'loopback');
  const a = await get(preseed, lan.from('10.0.0.11'));
  t.equal(a.status, 200);
  t.ok(a.body.includes(`token=${first.token}`));
  t.equal((await get(preseed, lan.from('10.0.0.66'))).status, 403, 'bystander, after the node was served');
  await releaseNode(store, first.systemId);
  const second = await deployNode(store, first.systemId, roles);
  const b = await get(preseed, lan.from('10.0.0.11'));
  t.ok(b.body.includes(`token=${second.token}`) && !b.body.includes(first.token), 'the new deploy\'s token in the next preseed');
  await recordStatusEvent(store, first.systemId, 'deployed', '');
  t.equal((await get(preseed, lan.from('10.0.0.11'))).status, 409, 'deployed: no preseed');
  t.notOk(lines.some((l) => /\/api\/v1\/nodes\/[^ ]+\/(context|claim)/.test(l)), 'no region route was called over HTTP');
  t.ok(lines.some((l) => l.includes(`refused the install material of node web1 (${first.systemId}) to "10.0.0.66"`)), 'the region logged its refusal');
});

t.test('region_url set: the provisioning side asks that region over HTTP', async (t) => {
  const paths = scratchRoot(t);
  // This process's own region, named by URL: reached over HTTP like any other region.
  const config = await loadConfig(paths, mergeSchemas(loadComponents()));
  const server = await loadServerAddress(config, network);
  const store = createFileNodeStore(paths);
  const { log, lines } = memoryLog();
  const lan = createFakeLan();
  const running = await startService({ paths, config, server, store, log, port: 0, host: '127.0.0.1', addressing: lan.addressing });
  const port = running.port;
  await running.close();
  put(paths, '/etc/uec-provisioning/conf.d/90-local.conf', `[provisioning]\nregion_url = http://127.0.0.1:${port}\ncontext_cache_seconds = 0\n`);
  const again = await startService({ paths, config: await loadConfig(paths, mergeSchemas(loadComponents())), server, store, log, port, host: '127.0.0.1', addressing: lan.addressing });
  t.teardown(() => again.close());
  lan.neighbour('10.0.0.11', '52:54:00:00:00:11');
  await addNode(store, { hostname: 'web1', macs: ['52:54:00:00:00:11'] });
  const node = await deployNode(store, 'web1', await loadRoles(paths));
  t.equal((await get(`http://127.0.0.1:${port}/preseed/${node.systemId}`, lan.from('10.0.0.11'))).status, 200);
  t.ok(lines.some((l) => l.includes(`/api/v1/nodes/${node.systemId}/claim`)), 'the claim went over HTTP');
});
