import * as net from 'node:net';
import t from 'tap';
import { createRegionClient } from '../../src/edge/region-client';
import { listen, sampleContext } from '../helpers/region-fixture';

t.test('fetches with the key, caches for cacheMs (injected clock), shares concurrent calls', async (t) => {
  const seen: string[] = [];
  const ctx = sampleContext();
  const url = await listen(t, (req, res) => {
    seen.push(`${req.url} ${req.headers.authorization}`);
    if (req.url?.includes('node-nope') || req.url?.includes('99')) {
      res.writeHead(404);
      res.end('no such node');
      return;
    }
    res.setHeader('content-type', 'application/json');
    setTimeout(() => res.end(JSON.stringify(ctx)), 20);
  });
  let now = 1000;
  const client = createRegionClient({ regionUrl: url, key: 'sekrit', cacheMs: 5000, timeoutMs: 2000, now: () => now });
  t.same(await client.fetchContext({ kind: 'node', systemId: 'node-abc123' }), ctx);
  t.same(seen, ['/api/v1/nodes/node-abc123/context Bearer sekrit']);
  now += 4999;
  await client.fetchContext({ kind: 'node', systemId: 'node-abc123' });
  t.equal(seen.length, 1, 'cached within cacheMs');
  now += 2;
  await client.fetchContext({ kind: 'node', systemId: 'node-abc123' });
  t.equal(seen.length, 2, 'fetched again after cacheMs');
  await Promise.all(Array.from({ length: 20 }, () => client.fetchContext({ kind: 'mac', mac: '52:54:00:00:00:01' })));
  t.equal(seen.length, 3, 'twenty concurrent requests for one node: one region call');
  t.equal(seen[2], '/api/v1/context?mac=52%3A54%3A00%3A00%3A00%3A01 Bearer sekrit');
  await client.fetchContext({ kind: 'mac', mac: '52:54:00:00:00:01' }, { fresh: true });
  t.equal(seen.length, 4, 'fresh: asks the region although the answer is cached');
  t.equal(await client.fetchContext({ kind: 'node', systemId: 'node-nope' }), null, '404 → null');
  t.equal(await client.fetchContext({ kind: 'node', systemId: 'node-nope' }), null);
  t.equal(seen.length, 5, '"no such node" is cached too');
  const uncached = createRegionClient({ regionUrl: url, key: 'k', cacheMs: 0, timeoutMs: 2000 });
  await uncached.fetchContext({ kind: 'node', systemId: 'node-abc123' });
  await uncached.fetchContext({ kind: 'node', systemId: 'node-abc123' });
  t.equal(seen.length, 7, 'cacheMs 0: no cache');
});

t.test('down, slow, error, garbage: UPSTREAM_FAILED with the reason, and not cached', async (t) => {
  let mode = 'error';
  const hold: (() => void)[] = [];
  t.teardown(() => hold.forEach((h) => h()));
  const url = await listen(t, (_req, res) => {
    if (mode === 'slow') return void hold.push(() => res.end());
    if (mode === 'garbage') return void res.end('{not json');
    if (mode === 'ok') return void res.end(JSON.stringify(sampleContext()));
    res.writeHead(403);
    res.end('forbidden\n');
  });
  const client = createRegionClient({ regionUrl: url, key: 'k', cacheMs: 60_000, timeoutMs: 150 });
  const get = () => client.fetchContext({ kind: 'mac', mac: '52:54:00:00:00:01' });
  await t.rejects(get(), { code: 'UPSTREAM_FAILED', message: /answered 403 for \/api\/v1\/context\?mac=…: forbidden$/ });
  mode = 'slow';
  await t.rejects(get(), { code: 'UPSTREAM_FAILED', message: 'region ' + url + ' is unavailable: no answer within 150 ms' });
  mode = 'garbage';
  await t.rejects(get(), { code: 'UPSTREAM_FAILED', message: /not JSON/ });
  mode = 'ok';
  t.equal((await get())?.system_id, 'node-abc123', 'failures are not cached: the next call reaches the region');
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise((resolve) => probe.close(resolve));
  const down = createRegionClient({ regionUrl: `http://127.0.0.1:${port}`, key: 'k', cacheMs: 0, timeoutMs: 1000 });
  await t.rejects(down.fetchContext({ kind: 'node', systemId: 'x' }), { code: 'UPSTREAM_FAILED', message: /is unavailable: .*ECONNREFUSED/ });
});

t.test('events: the same event for a node is sent once per eventRepeatMs; a new one at once', async (t) => {
  const posted: string[] = [];
  const url = await listen(t, (req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      posted.push(`${req.method} ${req.url} ${req.headers.authorization} ${body}`);
      res.writeHead(201);
      res.end('{}');
    });
  });
  let now = 0;
  const client = createRegionClient({ regionUrl: url, key: 'sekrit', cacheMs: 0, timeoutMs: 2000, now: () => now, eventRepeatMs: 60_000 });
  await client.reportEvent('node-a', 'preseed', 'install preseed fetched');
  await client.reportEvent('node-a', 'preseed', 'install preseed fetched');
  await client.reportEvent('node-a', 'netboot', 'install boot script served');
  await client.reportEvent('node-b', 'preseed', 'install preseed fetched');
  t.same(posted, [
    'POST /api/v1/nodes/node-a/events Bearer sekrit {"type":"preseed","message":"install preseed fetched"}',
    'POST /api/v1/nodes/node-a/events Bearer sekrit {"type":"netboot","message":"install boot script served"}',
    'POST /api/v1/nodes/node-b/events Bearer sekrit {"type":"preseed","message":"install preseed fetched"}',
  ]);
  now = 60_000;
  await client.reportEvent('node-a', 'preseed', 'install preseed fetched');
  t.equal(posted.length, 4, 'after the window the same event is sent again');
});

t.test('claimAddress: POSTs the address and neighbour entry with the key, every time; 200 owned, 403/404/409 refused with the reason, anything else UPSTREAM_FAILED', async (t) => {
  const seen: string[] = [];
  const answers = [
    [200, '{"rule":"neighbour"}'],
    [200, '{"rule":"binding"}'],
    [403, 'on-link client 10.0.0.9 has MAC 52:54:00:00:00:99, not one of the node\'s'],
    [404, 'no such node'],
    [409, 'node web1 is ready'],
    [500, 'internal error'],
  ] as const;
  let i = 0;
  const url = await listen(t, (req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      seen.push(`${req.method} ${req.url} ${req.headers.authorization} ${body}`);
      const [status, text] = answers[i++]!;
      res.writeHead(status);
      res.end(text);
    });
  });
  const client = createRegionClient({ regionUrl: url, key: 'sekrit', cacheMs: 5000, timeoutMs: 2000 });
  t.same(await client.claimAddress('node-abc123', '10.0.0.5', { mac: '52:54:00:00:00:01', router: false }), { owned: true, rule: 'neighbour' });
  t.same(await client.claimAddress('node-abc123', '10.2.0.5', null), { owned: true, rule: 'binding' });
  t.same(seen, [
    'POST /api/v1/nodes/node-abc123/claim Bearer sekrit {"address":"10.0.0.5","mac":"52:54:00:00:00:01","router":false}',
    'POST /api/v1/nodes/node-abc123/claim Bearer sekrit {"address":"10.2.0.5","mac":"","router":false}',
  ], 'never from a cache');
  t.same(await client.claimAddress('node-abc123', '10.0.0.9', { mac: '52:54:00:00:00:99', router: false }), { owned: false, status: 403, reason: 'on-link client 10.0.0.9 has MAC 52:54:00:00:00:99, not one of the node\'s' });
  t.match(await client.claimAddress('node-zzzzzz', '10.0.0.9', null), { owned: false, status: 404 });
  t.match(await client.claimAddress('node-abc123', '10.0.0.9', null), { owned: false, status: 409 });
  await t.rejects(client.claimAddress('node-abc123', '10.0.0.9', null), { code: 'UPSTREAM_FAILED', message: /answered 500 to a claim for node-abc123/ });
});
