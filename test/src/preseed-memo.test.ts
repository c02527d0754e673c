import * as net from 'node:net';
import t from 'tap';
import { createPreseedMemo, sameNeighbour, type RememberedPreseed } from '../../src/edge/preseed-memo';

const OPTIONS = {};

function entry(generation: number, over: Partial<RememberedPreseed> = {}): RememberedPreseed {
  const body = Buffer.from('d-i preseed/late_command string true\n');
  return { systemId: 'node-1', body, length: String(body.length), client: '10.0.0.5', neighbour: { mac: '52:54:00:00:00:01', router: false }, generation, options: OPTIONS, ...over };
}

function setup() {
  let generation = 7;
  let now = 1000;
  const memo = createPreseedMemo({ generation: () => generation, now: () => now, ttlMs: 1000 });
  return { memo, bump: () => void generation++, advance: (ms: number) => void (now += ms) };
}

t.test('recalled on a bound connection, for the same client and neighbour, while the store and options are unchanged', async (t) => {
  const { memo } = setup();
  const socket = new net.Socket();
  memo.remember(entry(7));
  t.equal(memo.recall('node-1', socket, '10.0.0.5', OPTIONS), null, 'a connection no request of which was checked: never');
  memo.bindConnection(socket, '10.0.0.5', { mac: '52:54:00:00:00:01', router: false });
  t.equal(memo.recall('node-1', socket, '10.0.0.5', OPTIONS)?.systemId, 'node-1');
  t.equal(memo.recall('node-2', socket, '10.0.0.5', OPTIONS), null, 'another node');
  t.equal(memo.recall('node-1', socket, '10.0.0.6', OPTIONS), null, 'another client address');
  t.equal(memo.recall('node-1', new net.Socket(), '10.0.0.5', OPTIONS), null, 'another connection');
  t.equal(memo.recall('node-1', socket, '10.0.0.5', {}), null, 'another configuration');
  t.equal(memo.takeRecalled('node-1'), 1, 'one answer from memory');
  t.equal(memo.takeRecalled('node-1'), 0, 'counted since the last take');
});

t.test('a connection bound with another MAC (or the router flag) than the answer was served to: not recalled', async (t) => {
  const { memo } = setup();
  const socket = new net.Socket();
  memo.remember(entry(7));
  memo.bindConnection(socket, '10.0.0.5', { mac: '52:54:00:00:00:66', router: false });
  t.equal(memo.recall('node-1', socket, '10.0.0.5', OPTIONS), null);
  memo.bindConnection(socket, '10.0.0.5', { mac: '52:54:00:00:00:01', router: true });
  t.equal(memo.recall('node-1', socket, '10.0.0.5', OPTIONS), null);
  memo.bindConnection(socket, '10.0.0.5', null);
  t.equal(memo.recall('node-1', socket, '10.0.0.5', OPTIONS), null);
});

t.test('a commit to the store (a new generation) or the time limit drops the answer', async (t) => {
  const { memo, bump, advance } = setup();
  const socket = new net.Socket();
  memo.bindConnection(socket, '10.0.0.5', { mac: '52:54:00:00:00:01', router: false });
  memo.remember(entry(7));
  bump();
  t.equal(memo.recall('node-1', socket, '10.0.0.5', OPTIONS), null, 'a commit after the context was read');
  memo.remember(entry(8));
  advance(499);
  t.ok(memo.recall('node-1', socket, '10.0.0.5', OPTIONS));
  advance(1);
  t.equal(memo.recall('node-1', socket, '10.0.0.5', OPTIONS), null, 'half a second old: one request is routed to make a fresh answer');
  t.ok(memo.recall('node-1', socket, '10.0.0.5', OPTIONS), 'the others still recall it meanwhile');
  advance(499);
  t.ok(memo.recall('node-1', socket, '10.0.0.5', OPTIONS));
  advance(1);
  t.equal(memo.recall('node-1', socket, '10.0.0.5', OPTIONS), null, 'one second old: never');
  t.equal(memo.recall('node-1', socket, '10.0.0.5', OPTIONS), null, 'and dropped');
  memo.remember(entry(8));
  advance(600);
  t.equal(memo.recall('node-1', socket, '10.0.0.5', OPTIONS), null, 'routed to refresh');
  memo.remember(entry(8));
  t.ok(memo.recall('node-1', socket, '10.0.0.5', OPTIONS), 'the fresh answer');
  memo.remember(entry(7));
  t.equal(memo.recall('node-1', socket, '10.0.0.5', OPTIONS), null, 'remembered with the generation read before a commit: stale at once');
});

t.test('the log filter says a key is news once a minute', async (t) => {
  const { memo, advance } = setup();
  t.ok(memo.isNews('node-1 install 10.0.0.5'));
  t.notOk(memo.isNews('node-1 install 10.0.0.5'));
  t.ok(memo.isNews('node-1 install 10.0.0.6'));
  advance(60_000);
  t.ok(memo.isNews('node-1 install 10.0.0.5'));
});

t.test('sameNeighbour', async (t) => {
  t.ok(sameNeighbour(null, null));
  t.notOk(sameNeighbour(null, { mac: 'a', router: false }));
  t.notOk(sameNeighbour({ mac: 'a', router: false }, null));
  t.ok(sameNeighbour({ mac: 'a', router: false }, { mac: 'a', router: false }));
  t.notOk(sameNeighbour({ mac: 'a', router: false }, { mac: 'b', router: false }));
  t.notOk(sameNeighbour({ mac: 'a', router: false }, { mac: 'a', router: true }));
});

t.test('a new connection: bound when the table read now gives the entry the answer was served with, for the same client', async (t) => {
  const { memo } = setup();
  memo.remember(entry(7));
  const reads: string[] = [];
  const table = (mac: string | null, router = false) => (client: string) => {
    reads.push(client);
    return mac === null ? null : { mac, router };
  };
  const other = new net.Socket();
  t.equal(memo.recall('node-1', other, '10.0.0.5', OPTIONS, table('52:54:00:00:00:66')), null, 'another MAC on the address');
  t.equal(memo.recall('node-1', other, '10.0.0.5', OPTIONS, table('52:54:00:00:00:01', true)), null, 'the MAC, a router\'s now');
  t.equal(memo.recall('node-1', other, '10.0.0.5', OPTIONS, table(null)), null, 'no entry');
  t.equal(memo.recall('node-1', other, '10.0.0.6', OPTIONS, table('52:54:00:00:00:01')), null, 'another address');
  t.same(reads, ['10.0.0.5', '10.0.0.5', '10.0.0.5'], 'another address is not even looked up');
  const socket = new net.Socket();
  t.ok(memo.recall('node-1', socket, '10.0.0.5', OPTIONS, table('52:54:00:00:00:01')), 'the node\'s MAC: recalled');
  t.ok(memo.recall('node-1', socket, '10.0.0.5', OPTIONS, table('52:54:00:00:00:66')), 'and the connection bound: not read again');
  t.equal(reads.length, 4);
});
