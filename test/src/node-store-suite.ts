/**
 * The one test suite of the NodeStore interface (src/region/node-store.ts), run against every
 * backend: the embedded files (node-store.test.ts) and PostgreSQL (node-store-postgresql.test.ts).
 * A backend passes `makeStore`, which gives a store over a fresh, empty backend and a way to
 * open a second store over the same data (as another process would). Cases may be added here;
 * every backend must pass all of them.
 */
import type { Test } from 'tap';
import { NODE_STATUSES, createNode, type NewNodeInput, type Node } from '../../src/contract/node';
import type { NodeChange, NodeStore } from '../../src/region/node-store';

export interface StoreUnderTest {
  /** A store over a fresh, empty backend. */
  store: NodeStore;
  /** Another store over the same data, as another process opens it (closed by the caller's teardown or the suite). */
  open(): Promise<NodeStore>;
}

export type MakeStore = (t: Test) => Promise<StoreUnderTest>;

const NOW = new Date('2026-03-01T10:00:00.000Z');
let serial = 0;

/** A valid node with a fixed system id and token (ids: node-<6 of a-z0-9>). */
export function makeNode(hostname: string, mac: string, extra: Partial<NewNodeInput> = {}, systemId?: string): Node {
  serial++;
  const id = systemId ?? `node-${hostname.replace(/[^a-z0-9]/g, '').slice(0, 4).padEnd(4, 'x')}${String(serial % 100).padStart(2, '0')}`;
  return createNode({ hostname, macs: [mac], ...extra }, NOW, { systemId: id, token: `tok-${id}-${'x'.repeat(24)}` });
}

const mac = (i: number): string => `52:54:00:00:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;

async function putAll(store: NodeStore, nodes: Node[]): Promise<void> {
  await store.modify([], (_found, writes) => {
    for (const node of nodes) writes.put(node);
  });
}

export function runNodeStoreSuite(t: Test, makeStore: MakeStore): void {
  t.test('empty store: nothing listed or found, zero counts, cursor 0, no changes', async (t) => {
    const { store } = await makeStore(t);
    t.same(await store.list(), []);
    t.equal(await store.find('web1'), undefined);
    t.same(await store.page({}), { nodes: [], total: 0 });
    t.same(await store.countByStatus(), Object.fromEntries(NODE_STATUSES.map((s) => [s, 0])));
    t.equal(await store.currentCursor(), 0);
    t.same(await store.changesSince(0, 10), { changes: [], cursor: 0, reset: false });
  });

  t.test('find by system id, hostname (any case) or MAC (any spelling); copies; tokens kept whole', async (t) => {
    const { store } = await makeStore(t);
    const a = makeNode('web1', '52:54:00:00:00:01');
    const b = createNode({ hostname: 'web2', macs: ['52:54:00:00:00:02', '52:54:00:00:01:02'], ipv4: '10.0.0.2' }, NOW, { systemId: 'node-bbbbbb', token: 'T'.repeat(32) });
    await putAll(store, [a, b]);
    t.equal((await store.find(a.systemId))?.hostname, 'web1');
    t.equal((await store.find('WEB2'))?.systemId, b.systemId);
    t.equal((await store.find('52-54-00-00-01-02'))?.systemId, b.systemId);
    t.equal((await store.find('525400000102'))?.systemId, b.systemId);
    t.equal((await store.find('10.0.0.2')), undefined, 'an address is not a reference');
    t.equal(await store.find('nothing'), undefined);
    t.same(await store.find(b.systemId), b, 'stored as put, token included');
    const copy = (await store.find('web1'))!;
    copy.hostname = 'changed';
    copy.macs.push('52:54:00:00:00:99');
    t.same(await store.find('web1'), a, 'callers get copies');
  });

  t.test('list and page: sorted by hostname (code-unit order) then system id; offset, limit, status, search, total', async (t) => {
    const { store } = await makeStore(t);
    const names = ['web2', 'web10', 'alpha', 'web-2', 'web1', 'db.x'];
    const nodes = names.map((h, i) => makeNode(h, mac(i + 1), { status: i % 2 ? 'new' : 'ready', ipv4: `10.1.0.${i + 1}` }));
    await putAll(store, nodes);
    const sorted = ['alpha', 'db.x', 'web-2', 'web1', 'web10', 'web2'];
    t.same((await store.list()).map((n) => n.hostname), sorted);
    t.same(await store.page({}), { nodes: await store.list(), total: 6 });
    const second = await store.page({ offset: 2, limit: 2 });
    t.same([second.nodes.map((n) => n.hostname), second.total], [['web-2', 'web1'], 6]);
    t.same((await store.page({ offset: 10 })).nodes, [], 'past the end: an empty page, the total still');
    const fresh = await store.page({ status: 'new' });
    t.same([fresh.nodes.map((n) => n.hostname), fresh.total], [['db.x', 'web-2', 'web10'], 3]);
    const webNew = await store.page({ status: 'new', search: 'WEB1' });
    t.same([webNew.nodes.map((n) => n.hostname), webNew.total], [['web10'], 1], 'search is case-insensitive, with the status too');
    t.same((await store.page({ search: '00:00:03' })).nodes.map((n) => n.hostname), ['alpha'], 'search by part of a MAC');
    t.same((await store.page({ search: '10.1.0.5' })).nodes.map((n) => n.hostname), ['web1'], 'search by IPv4');
    t.same((await store.page({ search: nodes[5]!.systemId })).nodes.map((n) => n.hostname), ['db.x'], 'search by system id');
    t.same(await store.page({ search: 'nomatch' }), { nodes: [], total: 0 });
    const many = Array.from({ length: 1005 }, (_, i) => makeNode(`n${String(i).padStart(4, '0')}`, mac(100 + i), {}, `node-m${String(i).padStart(5, '0')}`));
    await putAll(store, many);
    t.equal((await store.page({})).nodes.length, 100, 'default limit 100');
    const max = await store.page({ limit: 5000 });
    t.same([max.nodes.length, max.total], [1000, 1011], 'limit at most 1000');
  });

  t.test('countByStatus: every status, zeros included, following every change', async (t) => {
    const { store } = await makeStore(t);
    await putAll(store, [makeNode('a', mac(1), { status: 'new' }), makeNode('b', mac(2), { status: 'new' }), makeNode('c', mac(3))]);
    t.same(await store.countByStatus(), { new: 2, commissioning: 0, ready: 1, deploying: 0, deployed: 0, failed: 0 });
    await store.modify(['a', 'c'], ([a, c], writes) => {
      writes.put({ ...a!, status: 'ready' });
      writes.remove(c!.systemId);
    });
    t.same(await store.countByStatus(), { new: 1, commissioning: 0, ready: 1, deploying: 0, deployed: 0, failed: 0 });
  });

  t.test('modify: copies of the named nodes (undefined for none), any puts and removes, the result returned', async (t) => {
    const { store } = await makeStore(t);
    const a = makeNode('web1', mac(1));
    await putAll(store, [a]);
    const result = await store.modify(['web1', 'nobody', mac(1)], (found, writes) => {
      t.equal(found.length, 3);
      t.equal(found[0]?.systemId, a.systemId);
      t.equal(found[1], undefined);
      t.equal(found[2]?.systemId, a.systemId);
      found[0]!.release = 'trixie';
      writes.put(found[0]!);
      writes.put(makeNode('web2', mac(2)));
      return 'done';
    });
    t.equal(result, 'done');
    t.equal((await store.find('web1'))?.release, 'trixie');
    t.ok(await store.find('web2'));
    await store.modify(['web2'], ([n], writes) => writes.remove(n!.systemId));
    t.equal(await store.find('web2'), undefined);
    t.equal(await store.find(mac(2)), undefined, 'a removed node\'s MAC is free');
    await putAll(store, [makeNode('web3', mac(2))]);
    t.equal((await store.find(mac(2)))?.hostname, 'web3', 'and can be used again');
  });

  t.test('all or none: a throwing change, a bad node or a taken MAC, hostname or address stores nothing', async (t) => {
    const { store } = await makeStore(t);
    await putAll(store, [makeNode('web1', mac(1), { ipv4: '10.0.0.1' }), makeNode('web2', mac(2))]);
    const before = await store.list();
    const cursor = await store.currentCursor();
    const extra = makeNode('extra', mac(50));
    await t.rejects(store.modify(['web1'], ([n], writes) => {
      writes.put({ ...n!, release: 'x' });
      throw new Error('changed my mind');
    }), { message: 'changed my mind' });
    await t.rejects(store.modify([], (_f, writes) => {
      writes.put(extra);
      writes.put({ ...makeNode('bad', mac(51)), hostname: 'Not A Hostname' });
    }), { code: 'INVALID_VALUE', message: /nothing was stored/ });
    for (const [what, node, pattern] of [
      ['MAC', makeNode('web3', mac(1)), /MAC 52:54:00:00:00:01 is already used by web1/],
      ['hostname', makeNode('web1', mac(3)), /hostname web1 is already used by web1/],
      ['address', makeNode('web3', mac(3), { ipv4: '10.0.0.1' }), /address 10\.0\.0\.1 is already used by web1/],
    ] as const) {
      await t.rejects(store.modify([], (_f, writes) => {
        writes.put(extra);
        writes.put(node);
      }), { code: 'NODE_CONFLICT', message: pattern }, `${what} taken → NODE_CONFLICT`);
    }
    await t.rejects(store.modify(['web2'], ([n], writes) => writes.put({ ...n!, macs: [mac(1)] })), { code: 'NODE_CONFLICT' }, 'an edit onto another node\'s MAC');
    await t.rejects(store.modify([], (_f, writes) => {
      writes.put(makeNode('twin', mac(60)));
      writes.put(makeNode('twin2', mac(60)));
    }), { code: 'NODE_CONFLICT', message: /MAC 52:54:00:00:00:3c/ }, 'two new nodes with one MAC');
    await t.rejects(store.update((nodes) => void nodes.push(makeNode('web9', mac(2)))), { code: 'NODE_CONFLICT' }, 'update: the same rules');
    t.same(await store.list(), before, 'nothing stored');
    t.equal(await store.currentCursor(), cursor, 'no change committed');
    t.equal(await store.find('extra'), undefined);
  });

  t.test('keys move between nodes inside one transaction (swap of hostnames and MACs)', async (t) => {
    const { store } = await makeStore(t);
    await putAll(store, [makeNode('a', mac(1)), makeNode('b', mac(2))]);
    await store.modify(['a', 'b'], ([a, b], writes) => {
      writes.put({ ...a!, hostname: 'b', macs: [mac(2)] });
      writes.put({ ...b!, hostname: 'a', macs: [mac(1)] });
    });
    const [first, second] = await store.list();
    t.same([first!.hostname, first!.macs, second!.hostname, second!.macs], ['a', [mac(1)], 'b', [mac(2)]]);
    t.not(first!.systemId, second!.systemId);
    t.equal((await store.find(mac(1)))?.hostname, 'a', 'the index follows');
  });

  t.test('puts equal to what is stored are no change: no seq, no listener call', async (t) => {
    const { store } = await makeStore(t);
    const seen: NodeChange[][] = [];
    store.onChange((changes) => void seen.push([...changes]));
    await putAll(store, [makeNode('a', mac(1))]);
    const cursor = await store.currentCursor();
    await store.modify(['a'], ([a], writes) => writes.put(a!));
    t.equal(await store.update(() => 7), 7);
    t.equal(await store.currentCursor(), cursor);
    t.equal(seen.length, 1, 'one call: the first put');
    t.equal(seen[0]![0]!.node?.hostname, 'a');
  });

  t.test('changesSince: strictly increasing seqs, oldest first, limit, cursor, removals as null, reset', async (t) => {
    const { store } = await makeStore(t);
    const start = await store.currentCursor();
    await putAll(store, [makeNode('a', mac(1)), makeNode('b', mac(2))]);
    await store.modify(['a'], ([a], writes) => writes.put({ ...a!, release: 'trixie' }));
    await store.modify(['b'], ([b], writes) => writes.remove(b!.systemId));
    const all = await store.changesSince(start, 100);
    t.equal(all.reset, false);
    t.same(all.changes.map((c) => [c.node?.hostname ?? null, c.node?.release ?? null]), [['a', 'bookworm'], ['b', 'bookworm'], ['a', 'trixie'], [null, null]]);
    const seqs = all.changes.map((c) => c.seq);
    t.ok(seqs.every((s, i) => i === 0 || s > seqs[i - 1]!), 'strictly increasing');
    t.equal(all.cursor, seqs.at(-1));
    t.equal(await store.currentCursor(), all.cursor);
    t.equal(all.changes[3]!.systemId, all.changes[1]!.systemId, 'the removal names the node');
    const two = await store.changesSince(start, 2);
    t.same(two.changes.map((c) => c.seq), seqs.slice(0, 2), 'at most limit');
    const rest = await store.changesSince(two.cursor, 100);
    t.same(rest.changes.map((c) => c.seq), seqs.slice(2), 'continues from the cursor');
    t.same(await store.changesSince(all.cursor, 100), { changes: [], cursor: all.cursor, reset: false }, 'up to date');
    const ahead = await store.changesSince(all.cursor + 1000, 100);
    t.equal(ahead.reset, true, 'a cursor the store never gave → reset');
    t.equal(ahead.cursor, all.cursor);
    t.equal(all.changes[0]!.node?.token, `tok-${all.changes[0]!.systemId}-${'x'.repeat(24)}`, 'the node whole (followers render from it)');
  });

  t.test('resetFollowers: every cursor up to max(the store\'s, the given one) resets, also in another process; later changes follow it', async (t) => {
    const { store, open } = await makeStore(t);
    await putAll(store, [makeNode('a', mac(1)), makeNode('b', mac(2))]);
    const mine = await store.currentCursor();
    // A follower of another store (region migrate) holds a cursor beyond this one's.
    const theirs = mine + 500;
    await store.resetFollowers(theirs);
    const floor = await store.currentCursor();
    t.ok(floor > theirs, `the cursor moved past both (${mine}, ${theirs} → ${floor})`);
    const other = await open();
    t.teardown(() => other.close());
    for (const [who, s] of [['this store', store], ['another process', other]] as const) {
      for (const cursor of [0, mine - 1, mine, theirs - 1, theirs]) {
        t.equal((await s.changesSince(cursor, 10)).reset, true, `${who}: cursor ${cursor} resets`);
      }
    }
    t.same((await store.list()).map((n) => n.hostname), ['a', 'b'], 'the nodes are unchanged');
    await store.modify(['a'], ([a], writes) => writes.put({ ...a!, release: 'trixie' }));
    const next = await other.changesSince(floor, 10);
    t.same([next.reset, next.changes.map((c) => c.node?.release)], [false, ['trixie']], 'a follower at the new cursor gets the next change');
    t.ok(next.cursor > floor);
  });

  t.test('onChange: after each commit, in this process, with what changed', async (t) => {
    const { store } = await makeStore(t);
    const seen: string[][] = [];
    store.onChange((changes) => void seen.push(changes.map((c) => `${c.systemId}:${c.node ? c.node.hostname : 'removed'}`)));
    const a = makeNode('a', mac(1));
    await putAll(store, [a]);
    await store.modify(['a'], ([n], writes) => writes.remove(n!.systemId));
    t.same(seen, [[`${a.systemId}:a`], [`${a.systemId}:removed`]]);
  });

  t.test('another store over the same data (another process) sees each commit at once; writers from both are serialised', async (t) => {
    const { store, open } = await makeStore(t);
    const other = await open();
    t.teardown(() => other.close());
    await putAll(store, [makeNode('a', mac(1))]);
    t.equal((await other.find('a'))?.hostname, 'a', 'find');
    t.equal((await other.page({ search: 'a' })).total, 1, 'page');
    t.equal((await other.countByStatus()).ready, 1, 'countByStatus');
    t.equal(await other.currentCursor(), await store.currentCursor(), 'the same cursor');
    await other.modify(['a'], ([n], writes) => writes.put({ ...n!, release: 'trixie' }));
    t.equal((await store.find('a'))?.release, 'trixie', 'and back');
    const batch = await store.changesSince(0, 100);
    t.same(batch.reset ? 'reset' : batch.changes.map((c) => c.node?.release), ['bookworm', 'trixie'], 'the other store\'s commit is in the change list');
    // 40 read-modify-writes of one node from both stores at once: none lost.
    await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? store : other).modify(['a'], ([n], writes) => {
      n!.events.push({ at: NOW.toISOString(), type: 'note', message: `n${i}` });
      writes.put(n!);
    })));
    t.equal((await store.find('a'))!.events.length, 41);
    t.equal((await other.find('a'))!.events.length, 41);
  });

  t.test('update (legacy, whole store): add, edit and remove in one transaction', async (t) => {
    const { store } = await makeStore(t);
    await putAll(store, [makeNode('a', mac(1)), makeNode('b', mac(2))]);
    const out = await store.update((nodes) => {
      nodes.splice(nodes.findIndex((n) => n.hostname === 'a'), 1);
      nodes.find((n) => n.hostname === 'b')!.role = 'walrus';
      nodes.push(makeNode('c', mac(3)));
      return nodes.length;
    });
    t.equal(out, 2);
    t.same((await store.list()).map((n) => [n.hostname, n.role]), [['b', 'walrus'], ['c', 'server']]);
  });
}
