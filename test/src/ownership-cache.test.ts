import t from 'tap';
import { createOwnershipCache, selectOwnershipKey } from '../../src/edge/ownership-cache';

t.test('selectOwnershipKey: node, token, address, MAC and router flag each change the key', async (t) => {
  const base = selectOwnershipKey('node-a', 'tok1', '10.0.0.5', { mac: '52:54:00:00:00:01', router: false });
  const variants = [
    selectOwnershipKey('node-b', 'tok1', '10.0.0.5', { mac: '52:54:00:00:00:01', router: false }),
    selectOwnershipKey('node-a', 'tok2', '10.0.0.5', { mac: '52:54:00:00:00:01', router: false }),
    selectOwnershipKey('node-a', 'tok1', '10.0.0.6', { mac: '52:54:00:00:00:01', router: false }),
    selectOwnershipKey('node-a', 'tok1', '10.0.0.5', { mac: '52:54:00:00:00:66', router: false }),
    selectOwnershipKey('node-a', 'tok1', '10.0.0.5', { mac: '52:54:00:00:00:01', router: true }),
    selectOwnershipKey('node-a', 'tok1', '10.0.0.5', null),
  ];
  t.equal(new Set([base, ...variants]).size, 7, 'all different');
  t.equal(selectOwnershipKey('node-a', 'tok1', '10.0.0.5', { mac: '52:54:00:00:00:01', router: false }), base, 'same inputs, same key');
  t.not(selectOwnershipKey('a', 'b\u0000c', 'd', null), selectOwnershipKey('a\u0000b', 'c', 'd', null), 'unambiguous: no separator to forge');
});

t.test('createOwnershipCache: remembered for ttlMs (injected clock), then asked again; ttl 0 remembers nothing; bounded', async (t) => {
  let now = 0;
  const cache = createOwnershipCache({ ttlMs: 1000, now: () => now, maxEntries: 3 });
  t.notOk(cache.owns('k'), 'nothing yet');
  cache.remember('k');
  now = 999;
  t.ok(cache.owns('k'), 'within the TTL');
  now = 1000;
  t.notOk(cache.owns('k'), 'expired');
  t.notOk(cache.owns('k'), 'and forgotten');
  for (const k of ['a', 'b', 'c', 'd']) cache.remember(k);
  t.notOk(cache.owns('a'), 'full: cleared before the fourth');
  t.ok(cache.owns('d'));
  const off = createOwnershipCache({ ttlMs: 0, now: () => now });
  off.remember('k');
  t.notOk(off.owns('k'), 'ttl 0: never');
});
