/**
 * Issue 14 items 3 and 4 in one process: the region's change feed, an edge following it into
 * its cache, and the edge serving (and queueing call-backs) with the region away.
 */
import t from 'tap';
import type { ContextFeedBatch, EdgeContact } from '../../src/contract/region-api';
import { FEED_BATCH_LIMIT } from '../../src/contract/region-api';
import { createNode, newToken } from '../../src/contract/node';
import { addNode, deployNode, editNode } from '../../src/region/node-ops';
import { selectEdgeServes } from '../../src/region/edges';
import { createEdgeRegistry } from '../../src/region/edges';
import { KEY, memoryLog, startEdgeFixture, startFixture } from '../helpers/region-fixture';
import { loadEdgeCache } from '../../src/edge/edge-cache';
import { openOutbox } from '../../src/edge/outbox';
import { startFollower } from '../../src/edge/follower';

const auth = { Authorization: `Bearer ${KEY}` };

async function feed(base: string, query: string, headers: Record<string, string> = {}): Promise<{ status: number; batch: ContextFeedBatch }> {
  const res = await fetch(`${base}/api/v1/changes?${query}`, { headers: { ...auth, ...headers } });
  const body = await res.text();
  return { status: res.status, batch: (res.status === 200 ? JSON.parse(body) : { error: body }) as ContextFeedBatch };
}

async function until(what: string, check: () => boolean | Promise<boolean>, tries = 200): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

t.test('change feed: a first poll is a full set (reset); then only changes, each with its context; a long poll answers on a change', async (t) => {
  const f = await startFixture(t);
  const a = await addNode(f.store, { hostname: 'web1', macs: ['52:54:00:00:00:01'], ipv4: '10.9.0.5' }, f.clock);
  await addNode(f.store, { hostname: 'web2', macs: ['52:54:00:00:00:02'] }, f.clock);
  const first = await feed(f.regionUrl, 'since=0');
  t.equal(first.status, 200);
  t.equal(first.batch.reset, true, 'no settings digest yet: everything');
  t.same(first.batch.changes.map((c) => c.context?.hostname), ['web1', 'web2']);
  t.same(first.batch.changes[0]?.context?.macs, ['52:54:00:00:00:01'], 'the context holds the MACs');
  t.equal(first.batch.changes[0]?.context?.ipv4, '10.9.0.5', 'and the reservation');
  t.match(first.batch.settings, /^[A-Za-z0-9_-]{22}$/);
  const since = `since=${first.batch.cursor}&settings=${first.batch.settings}`;
  const quiet = await feed(f.regionUrl, `${since}&wait=0`);
  t.same([quiet.batch.reset, quiet.batch.changes, quiet.batch.cursor], [false, [], first.batch.cursor], 'nothing new: an empty answer, the same cursor');

  const polling = feed(f.regionUrl, `${since}&wait=20`);
  setTimeout(() => void editNode(f.store, a.systemId, { release: 'trixie' }, f.clock), 200);
  const woken = await polling;
  t.equal(woken.batch.reset, false);
  t.equal(woken.batch.changes.length, 1, 'the long poll answered with the change');
  t.equal(woken.batch.changes[0]?.systemId, a.systemId);
  t.ok(woken.batch.cursor > first.batch.cursor);
  t.equal(woken.batch.changes[0]?.context?.token.length, 32, 'with what the edge needs to render its preseed');
});

t.test('change feed: bad parameters are one clear 400; no key 401; the followers list shows each edge\'s cursor and lag', async (t) => {
  const f = await startFixture(t);
  for (const [q, why] of [
    ['since=abc', /since must be a whole number/],
    ['since=0&wait=31', /wait must be a whole number from 0 to 30/],
    ['since=-1', /since must be/],
  ] as const) {
    const res = await fetch(`${f.regionUrl}/api/v1/changes?${q}`, { headers: auth });
    t.equal(res.status, 400, q);
    t.match(await res.text(), why);
  }
  t.equal((await fetch(`${f.regionUrl}/api/v1/changes?since=0`)).status, 401);
  await addNode(f.store, { hostname: 'web1', macs: ['52:54:00:00:00:01'] }, f.clock);
  const first = await feed(f.regionUrl, 'since=0', { 'X-Uec-Edge': 'edge-b' });
  await addNode(f.store, { hostname: 'web2', macs: ['52:54:00:00:00:02'] }, f.clock);
  await feed(f.regionUrl, `since=${first.batch.cursor}&settings=${first.batch.settings}`, { 'X-Uec-Edge': 'edge-b' });
  const followers = (await (await fetch(`${f.regionUrl}/api/v1/changes/followers`, { headers: auth })).json()) as EdgeContact[];
  t.equal(followers.length, 1);
  t.equal(followers[0]?.name, 'edge-b');
  t.equal(followers[0]?.cursor, first.batch.cursor);
  t.equal(followers[0]?.behind, 1, 'one change it has not seen');
  t.equal(followers[0]?.last_contact, f.clock.now().toISOString());
});

t.test('change feed: a reset comes a page at a time; the follower stores the whole set once', async (t) => {
  const f = await startFixture(t);
  const count = FEED_BATCH_LIMIT + 20;
  await f.store.update((nodes) => {
    for (let i = 0; i < count; i++) {
      const mac = `52:54:00:01:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
      nodes.push(createNode({ hostname: `n${String(i).padStart(4, '0')}`, macs: [mac] }, f.clock.now(), { systemId: `node-p${i}`, token: newToken() }));
    }
  });
  const first = await feed(f.regionUrl, 'since=0');
  t.equal(first.batch.changes.length, FEED_BATCH_LIMIT, 'bounded');
  t.equal(first.batch.next_offset, FEED_BATCH_LIMIT);
  const second = await feed(f.regionUrl, `reset=${first.batch.cursor}&offset=${FEED_BATCH_LIMIT}`);
  t.equal(second.batch.changes.length, 20);
  t.equal(second.batch.next_offset, undefined, 'the last page');
  const edge = await startEdgeFixture(t, f, t.testdir());
  await edge.follower.caughtUp(first.batch.cursor);
  t.equal(edge.cache.list().length, count, 'every page reached the cache');
});

t.test('an edge with the region away: boot script, preseed, call-backs (queued, 200) and enlistment from its cache; delivered once, in order, when the region returns', async (t) => {
  const f = await startFixture(t);
  const roles = await f.region.loadRoles();
  const node = await deployNode(f.store, (await addNode(f.store, { hostname: 'web1', macs: ['52:54:00:00:00:01'] }, f.clock)).systemId, roles, {}, f.clock);
  const edge = await startEdgeFixture(t, f, t.testdir());
  await edge.follower.caughtUp(await f.store.currentCursor());
  f.lan.neighbour('10.0.0.5', '52:54:00:00:00:01');
  const from = f.lan.from('10.0.0.5');

  edge.region.down();
  const script = await fetch(`${edge.edgeUrl}/boot/ipxe/node?mac=52:54:00:00:00:01`, from);
  t.equal(script.status, 200, 'the install script, with the region away');
  t.match(await script.text(), /^kernel http:\/\/192\.0\.2\.20:5248\/boot\/images\/debian\/bookworm\/amd64\/linux .*url=http:\/\/192\.0\.2\.20:5248\/preseed\//m);
  const preseed = await fetch(`${edge.edgeUrl}/preseed/${node.systemId}`, from);
  t.equal(preseed.status, 200, 'the preseed');
  const text = await preseed.text();
  t.ok(text.includes(`http://192.0.2.20:5248/metadata/latest/${node.systemId}/status/installing?token=${node.token}`), 'its call-backs point at the edge');
  t.equal((await fetch(`${edge.edgeUrl}/preseed/${node.systemId}`, f.lan.from('127.0.0.1'))).status, 403, 'loopback does not own the node, region away or not');
  const stranger = await fetch(`${edge.edgeUrl}/metadata/latest/${node.systemId}/status/installing?token=${'x'.repeat(32)}`, from);
  t.equal(stranger.status, 403, 'a wrong token is refused by the edge');
  for (const event of ['installing', 'installed']) {
    t.equal((await fetch(`${edge.edgeUrl}/metadata/latest/${node.systemId}/status/${event}?token=${node.token}`, from)).status, 200, `${event}: queued, 200`);
  }
  t.equal((await fetch(`${edge.edgeUrl}/metadata/latest/${node.systemId}/disable-netboot?token=${node.token}`, from)).status, 200);
  t.match(await (await fetch(`${edge.edgeUrl}/boot/ipxe/node?mac=52:54:00:00:00:01`, from)).text(), /netboot disabled/, 'the next boot is the local disk, from the cache');
  const enlist = await fetch(`${edge.edgeUrl}/enlist?mac=52:54:00:00:00:77&buildarch=x86_64&platform=pcbios`);
  t.equal(enlist.status, 202, 'enlistment queued');
  t.equal((await fetch(`${edge.edgeUrl}/enlist?mac=52-54-00-00-00-77&buildarch=x86_64&platform=pcbios`)).status, 202, 'again: queued once');
  t.equal((await fetch(`${edge.edgeUrl}/enlist?mac=ff:ff:ff:ff:ff:ff`)).status, 400, 'not a machine\'s MAC: nothing queued');
  t.same(edge.outbox.pending().map((e) => e.type), ['netboot', 'preseed', 'installing', 'installed', 'disable-netboot', 'enlist']);
  t.equal((await f.store.find('web1'))!.netboot, true, 'the region knows nothing yet');

  edge.region.up();
  await until('the outbox to drain', () => edge.outbox.pending().length === 0);
  const after = (await f.store.find('web1'))!;
  t.same(
    after.events.filter((e) => ['netboot', 'preseed', 'installing', 'installed', 'netboot-disabled'].includes(e.type)).map((e) => e.type),
    ['netboot', 'preseed', 'installing', 'installed', 'netboot-disabled'],
    'every event once, in order',
  );
  t.equal(after.netboot, false);
  t.ok(await f.store.find('52:54:00:00:00:77'), 'the queued enlistment created the node');
  await until('the edge to see the region\'s view', () => edge.cache.get(node.systemId)?.netboot === false && edge.outbox.pending().length === 0);
});

t.test('the region ignores an event id it has already recorded', async (t) => {
  const f = await startFixture(t);
  const node = await addNode(f.store, { hostname: 'web1', macs: ['52:54:00:00:00:01'] }, f.clock);
  const send = () => fetch(`${f.regionUrl}/api/v1/nodes/${node.systemId}/events`, { method: 'POST', headers: { ...auth, 'Content-Type': 'application/json' }, body: JSON.stringify({ id: 'evt-0123456789', type: 'netboot', message: 'served' }) });
  t.equal((await send()).status, 201);
  t.equal((await send()).status, 201, 'the repeat is answered as taken');
  t.equal((await f.store.find('web1'))!.events.filter((e) => e.type === 'netboot').length, 1, 'and recorded once');
  const bad = await fetch(`${f.regionUrl}/api/v1/nodes/${node.systemId}/events`, { method: 'POST', headers: { ...auth, 'Content-Type': 'application/json' }, body: JSON.stringify({ id: 'a b', type: 'netboot' }) });
  t.equal(bad.status, 400);
  t.match(await bad.text(), /id must be 8 to 64/);
  const post = (body: object) => fetch(`${f.regionUrl}/api/v1/nodes/${node.systemId}/events`, { method: 'POST', headers: { ...auth, 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  t.equal((await post({ id: 'evt-late-0001', type: 'preseed', message: 'queued', at: '2026-03-01T09:30:00.000Z' })).status, 201);
  t.equal((await f.store.find('web1'))!.events.find((e) => e.type === 'preseed')?.at, '2026-03-01T09:30:00.000Z', 'a queued event keeps the time the edge took it');
  t.equal((await post({ id: 'evt-late-0002', type: 'preseed', message: 'x', at: '2099-01-01T00:00:00.000Z' })).status, 201);
  t.equal((await f.store.find('web1'))!.events.at(-1)?.at, f.clock.now().toISOString(), 'never later than the region\'s now');
  const badAt = await post({ id: 'evt-late-0003', type: 'preseed', at: 'yesterday' });
  t.equal(badAt.status, 400);
  t.match(await badAt.text(), /at must be an ISO 8601 UTC time/);
  t.equal((await post({ id: 'evt-late-0004', type: 'reboot' })).status, 400, 'an unknown type');
});

t.test('an edge with its own key is sent the nodes of its subnets; a node that leaves them comes as null', async (t) => {
  const f = await startFixture(t);
  const edges = createEdgeRegistry(f.paths);
  f.region.edges = edges;
  const key = (await edges.add('edge-b', ['10.72.0.0/24'])).key;
  const mine = await addNode(f.store, { hostname: 'mine', macs: ['52:54:00:00:00:01'], ipv4: '10.72.0.5' }, f.clock);
  await addNode(f.store, { hostname: 'other', macs: ['52:54:00:00:00:02'], ipv4: '10.71.0.5' }, f.clock);
  await addNode(f.store, { hostname: 'pool', macs: ['52:54:00:00:00:03'] }, f.clock);
  const first = await feed(f.regionUrl, 'since=0', { Authorization: `Bearer ${key}` });
  t.same(first.batch.changes.map((c) => c.context?.hostname), ['mine', 'pool'], 'its subnet, and the node with no address yet');
  await editNode(f.store, mine.systemId, { ipv4: '10.71.0.6' }, f.clock);
  const next = await feed(f.regionUrl, `since=${first.batch.cursor}&settings=${first.batch.settings}`, { Authorization: `Bearer ${key}` });
  t.same(next.batch.changes.map((c) => [c.systemId, c.context]), [[mine.systemId, null]], 'moved out of its subnets: gone for this edge');
  const shared = await feed(f.regionUrl, 'since=0');
  t.equal(shared.batch.changes.length, 3, 'the shared key: every node');
});

t.test('which nodes an edge with subnets is sent (pure)', async (t) => {
  t.ok(selectEdgeServes(undefined, { ipv4: '10.1.0.5' }), 'the shared key: every node');
  t.ok(selectEdgeServes(['10.1.0.0/16'], { ipv4: '10.1.0.5' }));
  t.notOk(selectEdgeServes(['10.2.0.0/16'], { ipv4: '10.1.0.5' }));
  t.ok(selectEdgeServes(['10.2.0.0/16'], { ipv4: '', boundAddress: '10.2.3.4' }), 'the bound address when no reservation');
  t.ok(selectEdgeServes(['10.2.0.0/16'], { ipv4: '' }), 'no address yet: every edge');
});

t.test('follower: a delivery the region cannot take now stops the line (order kept) and the feed waits; a refusal for good is logged and dropped', async (t) => {
  const dir = t.testdir();
  const cache = await loadEdgeCache(dir);
  const outbox = await openOutbox(dir);
  const { log, lines } = memoryLog();
  const sent: string[] = [];
  let regionUp = false;
  let polls = 0;
  const first = await outbox.append({ type: 'installing', systemId: 'node-a', message: 'one' });
  await outbox.append({ type: 'failed', systemId: 'node-gone', message: 'two' });
  await outbox.append({ type: 'installed', systemId: 'node-a', message: 'three' });
  const follower = startFollower({
    cache,
    outbox,
    log,
    waitSeconds: 0,
    retryMs: 20,
    feed: {
      fetchChanges: async (since) => {
        polls++;
        return { cursor: since + 1, reset: false, changes: [] };
      },
      fetchResetPage: async () => ({ cursor: 0, reset: true, changes: [] }),
      deliver: async (event) => {
        if (!regionUp) return { outcome: 'retry', status: 503, reason: 'starting' };
        sent.push(event.message);
        return event.systemId === 'node-gone' ? { outcome: 'done', status: 404, reason: 'no such node' } : { outcome: 'done', status: 201, reason: '' };
      },
    },
  });
  t.teardown(async () => {
    await follower.stop();
    await cache.close();
    await outbox.close();
  });
  await new Promise((r) => setTimeout(r, 200));
  t.same(sent, [], 'nothing taken while the region cannot');
  t.equal(polls, 0, 'and the feed is not polled while call-backs wait');
  t.equal(outbox.pending()[0]?.id, first.id, 'the first event still heads the line');
  regionUp = true;
  await until('the outbox to drain', () => outbox.pending().length === 0);
  t.same(sent, ['one', 'two', 'three'], 'delivered in order');
  t.ok(lines.some((l) => l.includes('refused the queued failed of node-gone (404 no such node); dropped')), 'the refusal is logged');
  t.ok(lines.some((l) => l.includes('region unavailable')) && lines.some((l) => l.includes('the region answers again')), 'going and coming back logged once each');
  await until('the feed to be polled', () => polls > 0);
  t.equal(follower.status().pending, 0);
});
