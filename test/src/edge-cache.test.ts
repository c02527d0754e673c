import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { loadEdgeCache, readEdgeContexts } from '../../src/edge/edge-cache';
import { openOutbox } from '../../src/edge/outbox';
import { selectContextNode } from '../../src/contract/context';
import { checkNode } from '../../src/contract/node';
import { sampleContext } from '../helpers/region-fixture';

function ctx(id: string, mac: string, over: { hostname?: string; status?: 'deploying' | 'deployed' | 'ready' } = {}) {
  return { ...sampleContext({ systemId: id, hostname: over.hostname ?? id.replace('node-', 'h'), macs: [mac], status: over.status ?? 'deploying' }) };
}

t.test('edge cache: batches stored, found by id and MAC, and a restart continues from the stored cursor', async (t) => {
  const dir = t.testdir();
  const cache = await loadEdgeCache(dir);
  t.equal(cache.cursor(), 0);
  t.notOk(cache.synced(), 'nothing stored yet: not synced');
  await cache.applyBatch({ cursor: 2, reset: false, settings: 's1', changes: [{ seq: 1, systemId: 'node-a', context: ctx('node-a', '52:54:00:00:00:0a') }, { seq: 2, systemId: 'node-b', context: ctx('node-b', '52:54:00:00:00:0b') }] });
  await cache.applyBatch({ cursor: 3, reset: false, changes: [{ seq: 3, systemId: 'node-a', context: null }] });
  t.equal(cache.get('node-a'), undefined, 'a removal removes');
  t.equal(cache.byMac('52:54:00:00:00:0b')?.system_id, 'node-b');
  t.equal(cache.byMac('52:54:00:00:00:0a'), undefined, 'and its MAC no longer finds it');
  await cache.close();
  const again = await loadEdgeCache(dir);
  t.equal(again.cursor(), 3, 'the cursor was stored with the data');
  t.ok(again.synced());
  t.equal(again.settings(), 's1');
  t.same(again.list().map((c) => c.system_id), ['node-b']);
  await again.close();
});

t.test('edge cache: a reset replaces everything; a local change is kept across a restart and compaction', async (t) => {
  const dir = t.testdir();
  const cache = await loadEdgeCache(dir, { compactEvery: 3 });
  await cache.applyBatch({ cursor: 5, reset: false, changes: [{ seq: 5, systemId: 'node-a', context: ctx('node-a', '52:54:00:00:00:0a') }] });
  await cache.applyBatch({ cursor: 9, reset: true, changes: [{ seq: 9, systemId: 'node-c', context: ctx('node-c', '52:54:00:00:00:0c') }] });
  t.same(cache.list().map((c) => c.system_id), ['node-c'], 'node-a is gone after the reset');
  const changed = await cache.applyLocal('node-c', (c) => ({ ...c, netboot: false }));
  t.equal(changed?.netboot, false);
  t.equal(await cache.applyLocal('node-x', (c) => c), undefined, 'an unknown node: nothing');
  for (let i = 10; i < 16; i++) await cache.applyBatch({ cursor: i, reset: false, changes: [{ seq: i, systemId: `node-n${i}`, context: ctx(`node-n${i}`, `52:54:00:00:01:${i}`) }] });
  await cache.close();
  t.ok(fs.readFileSync(path.join(dir, 'journal.jsonl'), 'utf8').split('\n').length <= 4, 'the journal was compacted into the snapshot');
  const again = await loadEdgeCache(dir);
  t.equal(again.cursor(), 15);
  t.equal(again.get('node-c')?.netboot, false, 'the local change survived');
  t.equal(again.list().length, 7);
  await again.close();
});

t.test('edge cache: a journal line cut short by a kill is cut off; the next line starts on its own', async (t) => {
  const dir = t.testdir();
  const cache = await loadEdgeCache(dir);
  await cache.applyBatch({ cursor: 1, reset: false, changes: [{ seq: 1, systemId: 'node-a', context: ctx('node-a', '52:54:00:00:00:0a') }] });
  await cache.close();
  fs.appendFileSync(path.join(dir, 'journal.jsonl'), '{"n":2,"cursor":2,"reset":false,"changes":[{"seq":2,"systemId":"node-b","con');
  const again = await loadEdgeCache(dir);
  t.equal(again.cursor(), 1, 'the torn line was never stored: the follower asks from 1 again');
  await again.applyBatch({ cursor: 2, reset: false, changes: [{ seq: 2, systemId: 'node-b', context: ctx('node-b', '52:54:00:00:00:0b') }] });
  await again.close();
  const third = await loadEdgeCache(dir);
  t.equal(third.cursor(), 2);
  t.same(third.list().map((c) => c.system_id), ['node-a', 'node-b']);
  await third.close();
});

t.test('readEdgeContexts: what a running edge stored, read without touching its files (a line being written is left out)', async (t) => {
  const dir = t.testdir();
  const cache = await loadEdgeCache(dir);
  await cache.applyBatch({ cursor: 1, reset: false, changes: [{ seq: 1, systemId: 'node-b', context: ctx('node-b', '52:54:00:00:00:0b', { hostname: 'b' }) }, { seq: 1, systemId: 'node-a', context: ctx('node-a', '52:54:00:00:00:0a', { hostname: 'a' }) }] });
  fs.appendFileSync(path.join(dir, 'journal.jsonl'), '{"n":2,"cur');
  const before = fs.readFileSync(path.join(dir, 'journal.jsonl'), 'utf8');
  t.same((await readEdgeContexts(dir)).map((c) => c.hostname), ['a', 'b']);
  t.equal(fs.readFileSync(path.join(dir, 'journal.jsonl'), 'utf8'), before, 'nothing cut: the writer owns the file');
  await cache.close();
});

t.test('edge cache: a journal line that is not JSON is one clear error naming the file and line', async (t) => {
  const dir = t.testdir({ 'journal.jsonl': '{"n":1,"cursor":1,"reset":false,"changes":[]}\nnot json\n' });
  await t.rejects(loadEdgeCache(dir), { code: 'STORE_FAILED', message: /journal\.jsonl line 2 is not JSON/ });
});

t.test('a cached context renders as a node the configurator accepts (checkNode)', async (t) => {
  const node = selectContextNode({ ...ctx('node-a', '52:54:00:00:00:0a'), ipv4: '10.9.0.5', bound_address: '10.9.0.5' });
  t.equal(checkNode(node), null);
  t.same([node.macs, node.ipv4, node.boundAddress, node.netboot, node.arch, node.subarch], [['52:54:00:00:00:0a'], '10.9.0.5', '10.9.0.5', true, 'amd64', 'bios']);
});

t.test('outbox: appended events are pending in order across a restart until done; a torn line is cut off', async (t) => {
  const dir = t.testdir();
  const outbox = await openOutbox(dir);
  const a = await outbox.append({ type: 'installing', systemId: 'node-a', message: '' });
  const b = await outbox.append({ type: 'deployed', systemId: 'node-a', message: 'first boot' });
  const c = await outbox.append({ type: 'enlist', systemId: '', message: 'enlistment', query: 'mac=52:54:00:00:00:0c' });
  t.not(a.id, b.id, 'unique ids');
  t.match(a.id, /^[A-Za-z0-9_-]{22}$/);
  await outbox.done(a.id);
  await outbox.close();
  fs.appendFileSync(path.join(dir, 'outbox.jsonl'), '{"event":{"id":"torn');
  const again = await openOutbox(dir);
  t.same(again.pending().map((e) => e.id), [b.id, c.id], 'the delivered one is gone, the torn one never was');
  t.equal(again.pending()[1]?.query, 'mac=52:54:00:00:00:0c');
  const d = await again.append({ type: 'failed', systemId: 'node-a', message: '' });
  await again.close();
  const third = await openOutbox(dir);
  t.same(third.pending().map((e) => e.id), [b.id, c.id, d.id], 'the line after the cut is whole');
  await third.close();
});
