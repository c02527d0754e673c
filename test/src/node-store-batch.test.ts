/**
 * The embedded store's group commit: writers queued in one process while a commit is in
 * progress are stored with one lock, one append and one fdatasync, each transaction still
 * all-or-none on its own.
 */
import * as fs from 'node:fs';
import t from 'tap';
import { withFsFault } from '../../src/core/fs-ops';
import type { Node } from '../../src/contract/node';
import { NODES_JOURNAL, createFileNodeStore, type NodeChange } from '../../src/region/node-store';
import { readStoreFiles, readStoredNodes } from '../helpers/node-store-files';
import { scratchRoot } from '../helpers/scratch';
import { makeNode } from './node-store-suite';

const mac = (i: number): string => `52:54:00:00:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;

/** Run `body` counting the fdatasyncs of files the store opens through fsOps. */
async function countingSyncs<T>(body: () => Promise<T>): Promise<{ result: T; syncs: number }> {
  let syncs = 0;
  const result = await withFsFault(
    {
      open: async (p, flags, mode) => {
        const handle = await fs.promises.open(p, flags, mode);
        const datasync = handle.datasync.bind(handle);
        handle.datasync = async () => {
          syncs++;
          await datasync();
        };
        return handle;
      },
    },
    body,
  );
  return { result, syncs };
}

const journalLines = (root: string): string[] => fs.readFileSync(root, 'utf8').trim().split('\n');

t.test('N concurrent writers: fewer fdatasyncs than N, every write stored, each writer gets its own result', async (t) => {
  const paths = scratchRoot(t);
  const store = createFileNodeStore(paths);
  const n = 40;
  const { result, syncs } = await countingSyncs(() =>
    Promise.all(
      Array.from({ length: n }, (_, i) =>
        store.modify([], (_found, writes) => {
          writes.put(makeNode(`b${i}`, mac(i), {}, `node-b${String(i).padStart(4, '0')}`));
          return `writer ${i}`;
        }),
      ),
    ),
  );
  t.same(result, Array.from({ length: n }, (_, i) => `writer ${i}`), 'each writer answered with its own result');
  t.ok(syncs >= 1 && syncs < n, `${syncs} fdatasyncs for ${n} writers`);
  t.equal(journalLines(paths.resolve(NODES_JOURNAL)).length, n, 'still one journal line per transaction');
  t.equal((await readStoredNodes(paths)).length, n, 'all stored (read again from disk)');
  t.equal(await createFileNodeStore(paths).currentCursor(), n);
});

t.test('in a batch each transaction sees the earlier ones; listeners get each one’s changes in order', async (t) => {
  const paths = scratchRoot(t);
  const store = createFileNodeStore(paths);
  await store.modify([], (_f, w) => w.put(makeNode('web1', mac(1), {}, 'node-web1')));
  const seen: number[][] = [];
  store.onChange((changes: readonly NodeChange[]) => {
    seen.push(changes.map((c) => c.seq));
  });
  const edits = 10;
  const { result, syncs } = await countingSyncs(() =>
    Promise.all(
      Array.from({ length: edits }, (_, i) =>
        store.modify(['web1'], ([node], writes) => {
          const before = node!.events.length;
          node!.events.push({ at: '2026-01-01T00:00:00.000Z', type: 'edited', message: `edit ${i}` });
          writes.put(node!);
          return before;
        }),
      ),
    ),
  );
  const start = result[0]!;
  t.same(result, Array.from({ length: edits }, (_, i) => start + i), 'each edit saw the previous ones');
  t.ok(syncs < edits, `${syncs} fdatasyncs for ${edits} edits`);
  const stored = (await readStoredNodes(paths)).find((n) => n.hostname === 'web1')!;
  t.same(stored.events.slice(-edits).map((e) => e.message), Array.from({ length: edits }, (_, i) => `edit ${i}`), 'every edit stored, in order');
  t.same(seen, Array.from({ length: edits }, (_, i) => [i + 2]), 'one listener call per transaction, in order');
});

t.test('a failing transaction in a batch fails alone and leaves no trace; the others commit', async (t) => {
  const paths = scratchRoot(t);
  const store = createFileNodeStore(paths);
  await store.modify([], (_f, w) => w.put(makeNode('old1', mac(9), {}, 'node-old1')));
  const results = await Promise.allSettled([
    store.modify([], (_f, w) => w.put(makeNode('web1', mac(1), {}, 'node-web1'))),
    // Its MAC is web1's, which is only pending in this same batch: still a conflict.
    store.modify([], (_f, w) => w.put(makeNode('web2', mac(1), {}, 'node-web2'))),
    // Throws after a put: its put must not be seen by the next one nor stored.
    store.modify([], (_f, w) => {
      w.put(makeNode('web3', mac(3), {}, 'node-web3'));
      throw new Error('changed my mind');
    }),
    store.modify(['web3'], ([found]) => found),
    // Breaks a rule (checkNode).
    store.modify([], (_f, w) => w.put({ ...makeNode('web4', mac(4), {}, 'node-web4'), hostname: 'Not A Hostname!' } as Node)),
    // Removes old1 and reuses its hostname and MAC in the same batch.
    store.modify(['old1'], ([old], w) => w.remove(old!.systemId)),
    store.modify([], (_f, w) => w.put(makeNode('old1', mac(9), {}, 'node-new1'))),
    store.modify(['web1'], ([found]) => found?.systemId),
  ]);
  t.same(
    results.map((r) => r.status),
    ['fulfilled', 'rejected', 'rejected', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled'],
  );
  t.match((results[1] as PromiseRejectedResult).reason, { code: 'NODE_CONFLICT', message: /MAC 52:54:00:00:00:01 is already used by web1 \(node-web1\)/ });
  t.match((results[2] as PromiseRejectedResult).reason, { message: 'changed my mind' });
  t.equal((results[3] as PromiseFulfilledResult<unknown>).value, undefined, 'a failed transaction’s put is not seen by the next');
  t.match((results[4] as PromiseRejectedResult).reason, { code: 'INVALID_VALUE' });
  t.equal((results[7] as PromiseFulfilledResult<unknown>).value, 'node-web1', 'a later transaction sees an earlier one’s put');
  const stored = await readStoredNodes(paths);
  t.same(stored.map((n) => `${n.hostname} ${n.systemId}`).sort(), ['old1 node-new1', 'web1 node-web1']);
  const fresh = createFileNodeStore(paths);
  t.same((await fresh.list()).map((n) => n.systemId).sort(), ['node-new1', 'node-web1']);
  t.same((await store.list()).map((n) => n.systemId).sort(), ['node-new1', 'node-web1'], 'the writer’s own index agrees');
});

t.test('a failed append fails the whole batch: nothing stored, the store as it was, the next write works', async (t) => {
  const paths = scratchRoot(t);
  const store = createFileNodeStore(paths);
  await store.modify([], (_f, w) => w.put(makeNode('web1', mac(1), {}, 'node-web1')));
  const before = readStoreFiles(paths);
  const heard: string[] = [];
  store.onChange((changes) => {
    for (const c of changes) heard.push(c.systemId);
  });
  const failing = async (p: string, flags: string, mode: number): Promise<fs.promises.FileHandle> => {
    const handle = await fs.promises.open(p, flags, mode);
    handle.datasync = () => Promise.reject(Object.assign(new Error('input/output error'), { code: 'EIO' }));
    return handle;
  };
  const results = await withFsFault({ open: failing }, () =>
    Promise.allSettled([
      store.modify([], (_f, w) => w.put(makeNode('web2', mac(2), {}, 'node-web2'))),
      store.modify(['web1'], ([node], w) => w.put({ ...node!, release: 'r1' })),
      store.modify([], (_f, w) => w.put(makeNode('web3', mac(3), {}, 'node-web3'))),
      store.modify([], (_f, w) => w.put(makeNode('web4', mac(2), {}, 'node-web4'))),
    ]),
  );
  for (const r of results.slice(0, 3)) t.match(r, { status: 'rejected', reason: { code: 'STORE_FAILED', message: /EIO.*it is unchanged/ } });
  t.match(results[3], { status: 'rejected', reason: { code: 'NODE_CONFLICT' } }, 'one that failed on its own keeps its own error');
  t.equal(readStoreFiles(paths), before, 'the files are as they were (the appended lines cut back)');
  t.same((await createFileNodeStore(paths).list()).map((n) => n.hostname), ['web1'], 'read again from disk: none of them');
  t.same((await store.list()).map((n) => n.hostname), ['web1'], 'nor in the writer’s index');
  t.notOk((await store.find('web1'))!.release === 'r1');
  t.same(heard, [], 'no listener heard of them');
  await store.modify([], (_f, w) => w.put(makeNode('web2', mac(2), {}, 'node-web2')));
  t.same((await createFileNodeStore(paths).list()).map((n) => n.hostname), ['web1', 'web2']);
  t.equal(await store.currentCursor(), 2, 'seq continues from what was stored');
  t.same(heard, ['node-web2']);
});

t.test('update() (whole store) runs alone and in order with the batched writers around it', async (t) => {
  const paths = scratchRoot(t);
  const store = createFileNodeStore(paths);
  const order: string[] = [];
  await Promise.all([
    store.modify([], (_f, w) => {
      order.push('a');
      w.put(makeNode('a', mac(1), {}, 'node-a'));
    }),
    store.update((nodes) => {
      order.push(`update saw ${nodes.map((n) => n.hostname).join(',')}`);
      nodes.push(makeNode('u', mac(2), {}, 'node-u'));
    }),
    store.modify(['u'], ([u], w) => {
      order.push(`b saw ${u?.hostname}`);
      w.put(makeNode('b', mac(3), {}, 'node-b'));
    }),
  ]);
  t.same(order, ['a', 'update saw a', 'b saw u']);
  t.same((await readStoredNodes(paths)).map((n) => n.hostname).sort(), ['a', 'b', 'u']);
});
