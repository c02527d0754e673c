/**
 * The provisioning server's memory of accepted claims (src/edge/ownership-cache.ts) on the preseed
 * and install-script paths: an owner's repeated fetches within one deploy skip the region's
 * claim; a refusal is never remembered; a new deploy (new token), another MAC on the same
 * address, or another address each ask the region again.
 */
import t, { type Test } from 'tap';
import { addNode, deployNode, releaseNode } from '../../src/region/node-ops';
import { createOwnershipCache } from '../../src/edge/ownership-cache';
import type { RegionClient } from '../../src/edge/region-client';
import { startFixture, type Fixture } from '../helpers/region-fixture';

/** The fixture with the cache on (clock injected) and the region's claims counted. */
async function withCache(t: Test): Promise<{ f: Fixture; claims: string[]; advance(ms: number): void }> {
  const f = await startFixture(t);
  let now = 1_000_000;
  f.provisioning.ownership = createOwnershipCache({ ttlMs: 10_000, now: () => now });
  const region: RegionClient = f.provisioning.region;
  const claims: string[] = [];
  f.provisioning.region = {
    ...region,
    fetchContext: (lookup, how) => region.fetchContext(lookup, how),
    reportEvent: (...a) => region.reportEvent(...a),
    settle: () => region.settle(),
    claimAddress: async (systemId, address, neighbour) => {
      const answer = await region.claimAddress(systemId, address, neighbour);
      claims.push(`${address} ${neighbour?.mac ?? '-'} ${answer.owned ? 'owned' : answer.status}`);
      return answer;
    },
  };
  return { f, claims, advance: (ms) => void (now += ms) };
}

async function status(url: string, init: RequestInit): Promise<number> {
  const res = await fetch(url, init);
  await res.arrayBuffer();
  return res.status;
}

t.test('the owner fetching its preseed again within the TTL: one claim; after the TTL, the region is asked again', async (t) => {
  const { f, claims, advance } = await withCache(t);
  const node = await deployNode(f.store, (await addNode(f.store, { hostname: 'web1', macs: ['52:54:00:00:00:01'] }, f.clock)).systemId, await f.region.loadRoles(), {}, f.clock);
  f.lan.neighbour('10.0.0.5', '52:54:00:00:00:01');
  const preseed = `${f.provisioningUrl}/preseed/${node.systemId}`;
  for (let i = 0; i < 3; i++) t.equal(await status(preseed, f.lan.from('10.0.0.5')), 200);
  t.same(claims, ['10.0.0.5 52:54:00:00:00:01 owned'], 'three fetches, one claim');
  t.equal(await status(`${f.provisioningUrl}/boot/ipxe/node?mac=52:54:00:00:00:01`, f.lan.from('10.0.0.5')), 200, 'its install script too');
  t.equal(claims.length, 1, 'from the same memory');
  advance(10_001);
  t.equal(await status(preseed, f.lan.from('10.0.0.5')), 200);
  t.equal(claims.length, 2, 'after the TTL: asked again');
});

t.test('a refusal is never remembered: each refused request asks the region, and stays refused', async (t) => {
  const { f, claims } = await withCache(t);
  const node = await deployNode(f.store, (await addNode(f.store, { hostname: 'web1', macs: ['52:54:00:00:00:01'] }, f.clock)).systemId, await f.region.loadRoles(), {}, f.clock);
  f.lan.neighbour('10.0.0.66', '52:54:00:00:00:66');
  const preseed = `${f.provisioningUrl}/preseed/${node.systemId}`;
  t.equal(await status(preseed, f.lan.from('10.0.0.66')), 403);
  t.equal(await status(preseed, f.lan.from('10.0.0.66')), 403);
  t.same(claims, ['10.0.0.66 52:54:00:00:00:66 403', '10.0.0.66 52:54:00:00:00:66 403'], 'two refusals, two claims');
});

t.test('another MAC on the owner\'s address misses the memory and is refused', async (t) => {
  const { f, claims } = await withCache(t);
  const node = await deployNode(f.store, (await addNode(f.store, { hostname: 'web1', macs: ['52:54:00:00:00:01'] }, f.clock)).systemId, await f.region.loadRoles(), {}, f.clock);
  const preseed = `${f.provisioningUrl}/preseed/${node.systemId}`;
  f.lan.neighbour('10.0.0.5', '52:54:00:00:00:01');
  t.equal(await status(preseed, f.lan.from('10.0.0.5')), 200, 'the node');
  f.lan.neighbour('10.0.0.5', '52:54:00:00:00:66');
  t.equal(await status(preseed, f.lan.from('10.0.0.5')), 403, 'a bystander that took its address');
  t.same(claims, ['10.0.0.5 52:54:00:00:00:01 owned', '10.0.0.5 52:54:00:00:00:66 403']);
  f.lan.neighbour('10.0.0.5', '52:54:00:00:00:01', true);
  t.equal(await status(preseed, f.lan.from('10.0.0.5')), 200, 'the same MAC, now a router\'s: routed, and the deploy is bound to 10.0.0.5');
  t.same(claims[2], '10.0.0.5 52:54:00:00:00:01 owned', 'the router flag is part of the key: the region was asked');
});

t.test('a new deploy (new token) misses the memory; a node no longer deploying is refused before it', async (t) => {
  const { f, claims } = await withCache(t);
  const roles = await f.region.loadRoles();
  const first = await deployNode(f.store, (await addNode(f.store, { hostname: 'web1', macs: ['52:54:00:00:00:01'] }, f.clock)).systemId, roles, {}, f.clock);
  f.lan.neighbour('10.0.0.5', '52:54:00:00:00:01');
  const preseed = `${f.provisioningUrl}/preseed/${first.systemId}`;
  t.equal(await status(preseed, f.lan.from('10.0.0.5')), 200);
  await releaseNode(f.store, first.systemId, f.clock);
  t.equal(await status(preseed, f.lan.from('10.0.0.5')), 409, 'released: the fresh context says so, whatever is remembered');
  const second = await deployNode(f.store, first.systemId, roles, {}, f.clock);
  t.not(second.token, first.token);
  const res = await fetch(preseed, f.lan.from('10.0.0.5'));
  t.ok((await res.text()).includes(`token=${second.token}`), 'the new deploy\'s preseed');
  t.same(claims, ['10.0.0.5 52:54:00:00:00:01 owned', '10.0.0.5 52:54:00:00:00:01 owned'], 'the new token asked the region again');
});
