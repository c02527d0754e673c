/**
 * The in-process region client (src/region/local-region-client.ts): the same answers as the region's
 * HTTP routes through the HTTP client, a context reused only while the node store is the same
 * version (a new deploy's token and a status change are seen by the very next request), the
 * rest of a context read again after settingsMs, events once per window.
 */
import * as fs from 'node:fs';
import t from 'tap';
import { createLocalRegionClient, readFileVersion } from '../../src/region/local-region-client';
import { addNode, deployNode, recordStatusEvent, releaseNode } from '../../src/region/node-ops';
import { createFileNodeStore, readStoreVersion } from '../../src/region/node-store';
import { createRegionClient } from '../../src/edge/region-client';
import { KEY, startFixture, type Fixture } from '../helpers/region-fixture';

function clients(f: Fixture, settingsMs = 60_000) {
  let now = 5_000_000;
  let versionReads = 0;
  const local = createLocalRegionClient({
    region: () => f.region,
    storeVersion: () => {
      versionReads++;
      return readStoreVersion(f.paths);
    },
    settingsMs,
    now: () => now,
  });
  const http = createRegionClient({ regionUrl: f.regionUrl, key: KEY, cacheMs: 0, timeoutMs: 3000 });
  return { local, http, advance: (ms: number) => void (now += ms), versionReads: () => versionReads };
}

t.test('the same context, claim answers and "no such node" as the HTTP client', async (t) => {
  const f = await startFixture(t);
  const { local, http } = clients(f);
  const node = await deployNode(f.store, (await addNode(f.store, { hostname: 'web1', macs: ['52:54:00:00:00:01'] }, f.clock)).systemId, await f.region.loadRoles(), {}, f.clock);
  await addNode(f.store, { hostname: 'idle1', macs: ['52:54:00:00:00:02'] }, f.clock);
  for (const lookup of [{ kind: 'node', systemId: node.systemId }, { kind: 'mac', mac: '52:54:00:00:00:01' }, { kind: 'node', systemId: 'node-nope' }, { kind: 'mac', mac: '52:54:00:00:00:99' }] as const) {
    t.same(await local.fetchContext(lookup, { fresh: true }), await http.fetchContext(lookup, { fresh: true }), JSON.stringify(lookup));
  }
  const idle = (await f.store.find('idle1'))!;
  const cases: [string, string, { mac: string; router: boolean } | null][] = [
    ['another MAC on the LAN', node.systemId, { mac: '52:54:00:00:00:66', router: false }],
    ['no such node', 'node-nope', null],
    ['not deploying', idle.systemId, { mac: '52:54:00:00:00:02', router: false }],
    ['loopback', node.systemId, null],
  ];
  for (const [what, id, neighbour] of cases) {
    const address = what === 'loopback' ? '127.0.0.1' : '10.0.0.66';
    const [a, b] = [await local.claimAddress(id, address, neighbour), await http.claimAddress(id, address, neighbour)];
    t.same({ ...a, reason: '' }, { ...b, reason: '' }, `${what}: same answer`);
    t.equal(a.owned, false, `${what}: refused`);
  }
  t.same(await local.claimAddress(node.systemId, '10.0.0.5', { mac: '52:54:00:00:00:01', router: false }), { owned: true, rule: 'neighbour' }, 'the node');
  t.equal((await f.store.find('web1'))!.boundAddress, '10.0.0.5', 'and its first claim binds, as over HTTP');
});

t.test('a context is reused while the store is unchanged; a new deploy, or the node deployed, is seen by the next request', async (t) => {
  const f = await startFixture(t);
  const { local, advance, versionReads } = clients(f, 60_000);
  const roles = await f.region.loadRoles();
  const first = await deployNode(f.store, (await addNode(f.store, { hostname: 'web1', macs: ['52:54:00:00:00:01'] }, f.clock)).systemId, roles, {}, f.clock);
  const lookup = { kind: 'node', systemId: first.systemId } as const;
  const a = await local.fetchContext(lookup, { fresh: true });
  const b = await local.fetchContext(lookup, { fresh: true });
  t.equal(a, b, 'the same object: the preseed render cache can hit');
  t.equal(versionReads(), 2, 'the store version is checked on every request');
  await releaseNode(f.store, first.systemId, f.clock);
  const second = await deployNode(f.store, first.systemId, roles, {}, f.clock);
  const c = await local.fetchContext(lookup, { fresh: true });
  t.equal(c?.token, second.token, 'the new deploy\'s token, at once (settingsMs is 60 s)');
  await recordStatusEvent(f.store, first.systemId, 'deployed', '', f.clock);
  t.equal((await local.fetchContext(lookup, { fresh: true }))?.status, 'deployed', 'deployed, at once');
  const d = await local.fetchContext(lookup);
  advance(60_001);
  t.not(await local.fetchContext(lookup), d, 'built again after settingsMs (roles, archive, keys)');
});

t.test('the store written by another process (the CLI) is seen too: the version is the file\'s', async (t) => {
  const f = await startFixture(t);
  const { local } = clients(f, 60_000);
  const first = await deployNode(f.store, (await addNode(f.store, { hostname: 'web1', macs: ['52:54:00:00:00:01'] }, f.clock)).systemId, await f.region.loadRoles(), {}, f.clock);
  const lookup = { kind: 'node', systemId: first.systemId } as const;
  t.equal((await local.fetchContext(lookup))?.token, first.token);
  // Another writer (the CLI: a store of its own over the same files) changes the token.
  const other = createFileNodeStore(f.paths);
  await other.modify([first.systemId], ([node], writes) => writes.put({ ...node!, token: 'Z'.repeat(32) }));
  await other.close();
  t.equal((await local.fetchContext(lookup))?.token, 'Z'.repeat(32), 'the other writer\'s token');
});

t.test('boot events: recorded in the node\'s timeline once per window; an unknown node → UPSTREAM_FAILED', async (t) => {
  const f = await startFixture(t);
  const { local, advance } = clients(f);
  const node = await addNode(f.store, { hostname: 'web1', macs: ['52:54:00:00:00:01'] }, f.clock);
  await local.reportEvent(node.systemId, 'preseed', 'install preseed fetched');
  await local.reportEvent(node.systemId, 'preseed', 'install preseed fetched');
  const events = async () => (await f.store.find('web1'))!.events.filter((e) => e.type === 'preseed').length;
  t.equal(await events(), 1, 'once');
  advance(60_001);
  await local.reportEvent(node.systemId, 'preseed', 'install preseed fetched');
  t.equal(await events(), 2, 'again after the window');
  await t.rejects(local.reportEvent('node-nope', 'netboot', 'x'), { code: 'UPSTREAM_FAILED' });
  await local.settle();
});

t.test('readFileVersion: changes when the file is replaced; "none" when it is missing', async (t) => {
  const f = await startFixture(t);
  const file = f.paths.resolve('/tmp-version-test');
  t.equal(readFileVersion(file), 'none');
  fs.writeFileSync(`${file}.a`, 'same');
  fs.renameSync(`${file}.a`, file);
  const v1 = readFileVersion(file);
  fs.writeFileSync(`${file}.b`, 'same');
  fs.renameSync(`${file}.b`, file);
  t.not(readFileVersion(file), v1, 'same bytes, replaced: another version');
});
