import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { UecError } from '../../src/core/errors';
import { withFsFault } from '../../src/core/fs-ops';
import { findConflict, type Node } from '../../src/contract/node';
import { addNode, editNode } from '../../src/region/node-ops';
import { NODES_FILE, NODES_JOURNAL, createFileNodeStore, getNode, selectNode } from '../../src/region/node-store';
import type { Paths } from '../../src/core/paths';
import { readStoreFiles, readStoredNodes } from '../helpers/node-store-files';
import { makeNode, runNodeStoreSuite } from './node-store-suite';
import { REPO_ROOT, put, scratchRoot } from '../helpers/scratch';

const WORKER = path.join(REPO_ROOT, 'test/helpers/store-worker.ts');
// -e, not a .ts main file: tap's loader hooks (kept in children) would take a .ts main for ESM.
// The worker's .ts is transpiled once and cached (ts-transpile-cache.js): 200 kills, 200 starts.
const TS_HOOK = path.join(REPO_ROOT, 'test/helpers/ts-transpile-cache.js');
const NODE_ARGS = ['-e', `require(${JSON.stringify(TS_HOOK)}); require(${JSON.stringify(WORKER)})`, '--'];
/** The worker runs under plain ts-node, without tap's loader hooks. */
const WORKER_ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS' && !k.startsWith('TAP') && !k.startsWith('_TAPJS')));

const readStore = (paths: Paths): Promise<Node[]> => readStoredNodes(paths);

const add = (paths: Paths, hostname: string, macEnd: string) => addNode(createFileNodeStore(paths), { hostname, macs: [`52:54:00:00:00:${macEnd}`] });

t.test('the shared store suite, embedded backend', async (t) => {
  runNodeStoreSuite(t, async (t) => {
    const paths = scratchRoot(t);
    const store = createFileNodeStore(paths);
    t.teardown(() => store.close());
    return { store, open: async () => createFileNodeStore(paths) };
  });
});

const journalOf = (paths: Paths): string => fs.readFileSync(paths.resolve(NODES_JOURNAL), 'utf8');

t.test('journal: one line per transaction; a torn last line (kill -9 mid-append) is ignored, then cut by the next writer', async (t) => {
  const paths = scratchRoot(t);
  const store = createFileNodeStore(paths);
  await store.modify([], (_f, w) => {
    w.put(makeNode('web1', '52:54:00:00:00:01'));
    w.put(makeNode('web2', '52:54:00:00:00:02'));
  });
  const lines = journalOf(paths).split('\n');
  t.equal(lines.length, 2, 'one line and the final newline');
  t.same((JSON.parse(lines[0]!) as { seq: number }[]).map((c) => c.seq), [1, 2], 'both changes on one line');
  const torn = '[{"seq":3,"systemId":"node-torn01","node":{"hostname":"web3"';
  fs.appendFileSync(paths.resolve(NODES_JOURNAL), torn);
  const reader = createFileNodeStore(paths);
  t.same((await reader.list()).map((n) => n.hostname), ['web1', 'web2'], 'a fresh reader ignores the torn line');
  t.equal(await reader.currentCursor(), 2);
  await addNode(createFileNodeStore(paths), { hostname: 'web3', macs: ['52:54:00:00:00:03'] });
  const after = journalOf(paths);
  t.notOk(after.includes(torn), 'the next writer cut the torn line');
  t.ok(after.endsWith('\n'));
  for (const line of after.trim().split('\n')) t.doesNotThrow(() => JSON.parse(line), 'every line whole');
  t.same((await reader.list()).map((n) => n.hostname), ['web1', 'web2', 'web3'], 'the reader follows from where it was');
  t.equal(await reader.currentCursor(), 3, 'seq 3 is the real one, not the torn one');
});

t.test('compaction: a new snapshot when the journal outgrows it; seq continues; older cursors → reset; other processes follow', async (t) => {
  const paths = scratchRoot(t);
  const store = createFileNodeStore(paths, { compactMinBytes: 2048 });
  const follower = createFileNodeStore(paths);
  const early = await follower.currentCursor();
  for (let i = 0; i < 30; i++) await addNode(store, { hostname: `n${i}`, macs: [`52:54:00:00:01:${i.toString(16).padStart(2, '0')}`] });
  const snapshot = fs.readFileSync(paths.resolve(NODES_FILE), 'utf8');
  const header = /^\{"version":2,"seq":(\d+),"nodes":\[\n/.exec(snapshot);
  t.ok(header, 'a version 2 snapshot, one node per line');
  const snapshotSeq = Number(header![1]);
  t.ok(snapshotSeq > 0 && snapshotSeq <= 30, `snapshot at seq ${snapshotSeq}`);
  t.ok(fs.statSync(paths.resolve(NODES_JOURNAL)).size <= Math.max(2048, Buffer.byteLength(snapshot)), 'the journal was restarted');
  t.equal((JSON.parse(snapshot) as { nodes: unknown[] }).nodes.length, snapshotSeq, 'the snapshot is one JSON document too');
  t.equal(fs.statSync(paths.resolve(NODES_FILE)).mode & 0o777, 0o600);
  t.equal(await store.currentCursor(), 30, 'seq continues across compactions');
  t.equal(await follower.currentCursor(), 30, 'a store opened before follows');
  t.equal((await follower.list()).length, 30);
  const old = await follower.changesSince(early, 100);
  t.same([old.reset, old.cursor, old.changes], [true, 30, []], 'a cursor older than the snapshot → reset, continue from the current cursor');
  const recent = await follower.changesSince(snapshotSeq, 100);
  t.equal(recent.reset, false);
  t.same(recent.changes.map((c) => c.seq), Array.from({ length: 30 - snapshotSeq }, (_, i) => snapshotSeq + 1 + i), 'changes after the snapshot are still there');
  t.equal((await readStoredNodes(paths)).length, 30, 'a fresh store reads snapshot + journal');
  t.same(fs.readdirSync(path.dirname(paths.resolve(NODES_FILE))).sort(), ['nodes.journal', 'nodes.json'], 'no temp file left');
});

t.test('migration: a version 1 nodes.json is read as it is (seq 1), rewritten as version 2 by the first writer, once', async (t) => {
  const paths = scratchRoot(t);
  const a = makeNode('web1', '52:54:00:00:00:01');
  const b = makeNode('web2', '52:54:00:00:00:02');
  const v1 = `${JSON.stringify({ version: 1, nodes: [b, a] }, null, 1)}\n`;
  put(paths, NODES_FILE, v1, 0o600);
  const store = createFileNodeStore(paths);
  t.same(await store.list(), [a, b], 'read as it is');
  t.equal(await store.currentCursor(), 1);
  t.equal((await store.changesSince(0, 10)).reset, true, 'cursor 0 is older than the migrated nodes: reload');
  t.equal(fs.readFileSync(paths.resolve(NODES_FILE), 'utf8'), v1, 'reads write nothing');
  t.notOk(fs.existsSync(paths.resolve(NODES_JOURNAL)));
  await addNode(store, { hostname: 'web3', macs: ['52:54:00:00:00:03'] });
  const migrated = fs.readFileSync(paths.resolve(NODES_FILE), 'utf8');
  t.match(migrated, /^\{"version":2,"seq":1,"nodes":\[\n/, 'version 2 now');
  t.same((JSON.parse(migrated) as { nodes: Node[] }).nodes, [a, b], 'with the same nodes');
  t.same((JSON.parse(journalOf(paths).trim()) as { seq: number }[]).map((c) => c.seq), [2]);
  t.same((await readStoredNodes(paths)).map((n) => n.hostname), ['web1', 'web2', 'web3']);
  await addNode(createFileNodeStore(paths), { hostname: 'web4', macs: ['52:54:00:00:00:04'] });
  t.equal(fs.readFileSync(paths.resolve(NODES_FILE), 'utf8'), migrated, 'migrated once: later writers only append');
  t.equal(await createFileNodeStore(paths).currentCursor(), 3);
});

t.test('empty store: list is empty, find is undefined, getNode → NODE_UNKNOWN; nothing written by reads', async (t) => {
  const paths = scratchRoot(t);
  const store = createFileNodeStore(paths);
  t.same(await store.list(), []);
  t.equal(await store.find('web1'), undefined);
  await t.rejects(getNode(store, 'web1'), { code: 'NODE_UNKNOWN', message: /no node "web1"/ });
  t.notOk(fs.existsSync(paths.resolve(NODES_FILE)));
  t.notOk(fs.existsSync(paths.resolve(NODES_JOURNAL)));
});

t.test('find by system id, hostname (any case) or any MAC spelling; list sorted by hostname', async (t) => {
  const paths = scratchRoot(t);
  const store = createFileNodeStore(paths);
  const b = await addNode(store, { hostname: 'web2', macs: ['52:54:00:00:00:02', '52:54:00:00:01:02'] });
  const a = await addNode(store, { hostname: 'web1', macs: ['52:54:00:00:00:01'] });
  t.same((await store.list()).map((n) => n.hostname), ['web1', 'web2']);
  t.equal((await store.find(b.systemId))?.hostname, 'web2');
  t.equal((await store.find('WEB1'))?.systemId, a.systemId);
  t.equal((await store.find('52-54-00-00-01-02'))?.systemId, b.systemId);
  t.equal((await store.find('525400000102'))?.systemId, b.systemId);
  t.equal(selectNode(await store.list(), 'nothing'), undefined);
  const found = (await store.find('web1'))!;
  found.hostname = 'changed';
  t.equal((await store.find('web1'))?.hostname, 'web1', 'callers get copies');
  const st = fs.statSync(paths.resolve(NODES_JOURNAL));
  t.equal(st.mode & 0o777, 0o600, 'the store holds tokens: mode 0600');
});

t.test('a change that breaks an invariant → NODE_CONFLICT, nothing written; no change → no write', async (t) => {
  const paths = scratchRoot(t);
  const store = createFileNodeStore(paths);
  await add(paths, 'web1', '01');
  await add(paths, 'web2', '02');
  const before = readStoreFiles(paths);
  const mtime = fs.statSync(paths.resolve(NODES_JOURNAL)).mtimeMs;
  await t.rejects(addNode(store, { hostname: 'web3', macs: ['52:54:00:00:00:01'] }), { code: 'NODE_CONFLICT', message: 'MAC 52:54:00:00:00:01 is already used by web1' });
  await t.rejects(editNode(store, 'web2', { hostname: 'web1' }), { code: 'NODE_CONFLICT', message: /hostname web1 is already used/ });
  await t.rejects(store.update(() => { throw new UecError('INVALID_VALUE', 'no'); }), { code: 'INVALID_VALUE' });
  t.equal(await store.update(() => 42), 42);
  t.same(readStoreFiles(paths), before);
  t.equal(fs.statSync(paths.resolve(NODES_JOURNAL)).mtimeMs, mtime, 'not rewritten');
  t.notOk(fs.existsSync(`${paths.resolve(NODES_FILE)}.lock`), 'the lock is released after a failed change');
});

t.test('onChange listeners run after writes that changed something', async (t) => {
  const paths = scratchRoot(t);
  const store = createFileNodeStore(paths);
  const seen: (string | undefined)[][] = [];
  store.onChange((changes) => void seen.push(changes.map((c) => c.node?.hostname)));
  await addNode(store, { hostname: 'a', macs: ['52:54:00:00:00:01'] });
  await store.update(() => undefined);
  await addNode(store, { hostname: 'b', macs: ['52:54:00:00:00:02'] });
  t.same(seen, [['a'], ['b']], 'each listener call gets what changed');
});

t.test('broken store file → STORE_FAILED naming the file, nothing overwritten', async (t) => {
  for (const [label, content] of [
    ['not JSON', '{"version": 1, "nodes": ['],
    ['wrong version', '{"version": 2, "nodes": []}'],
    ['no node list', '{"version": 1}'],
    ['null', 'null'],
  ] as const) {
    const paths = scratchRoot(t);
    const file = put(paths, NODES_FILE, content, 0o600);
    const store = createFileNodeStore(paths);
    await t.rejects(store.list(), { code: 'STORE_FAILED', message: /node store \/var\/lib\/uec-provisioning\/nodes\.json is not/ }, label);
    await t.rejects(store.find('x'), { code: 'STORE_FAILED' }, label);
    await t.rejects(addNode(store, { hostname: 'web1', macs: ['52:54:00:00:00:01'] }), { code: 'STORE_FAILED' }, label);
    t.equal(fs.readFileSync(file, 'utf8'), content, `${label}: unchanged`);
    t.same(fs.readdirSync(path.dirname(file)).sort(), ['nodes.json'], `${label}: no lock or temp file left`);
  }
});

t.test('a failed write (ENOSPC) → STORE_FAILED, the old store intact, no temp file left', async (t) => {
  const paths = scratchRoot(t);
  const store = createFileNodeStore(paths);
  await add(paths, 'web1', '01');
  const before = readStoreFiles(paths);
  const enospc = () => Promise.reject(Object.assign(new Error('no space left on device'), { code: 'ENOSPC' }));
  await withFsFault({ open: enospc }, async () => {
    await t.rejects(addNode(store, { hostname: 'web2', macs: ['52:54:00:00:00:02'] }), { code: 'STORE_FAILED', message: /cannot write node store .*ENOSPC.*it is unchanged/ });
  });
  t.equal(readStoreFiles(paths), before);
  t.same(fs.readdirSync(path.dirname(paths.resolve(NODES_FILE))).sort(), ['nodes.journal']);
  t.same((await store.list()).map((n) => n.hostname), ['web1']);
});

t.test('a stale lock of a dead process is taken over; a live holder makes writers wait, then STORE_FAILED', async (t) => {
  const paths = scratchRoot(t);
  await add(paths, 'web1', '01');
  const lock = `${paths.resolve(NODES_FILE)}.lock`;
  const dead = spawnSync('true');
  t.equal(dead.status, 0);
  fs.writeFileSync(lock, `${dead.pid}\n`);
  await add(paths, 'web2', '02');
  t.same((await readStore(paths)).map((n) => n.hostname), ['web1', 'web2']);
  t.notOk(fs.existsSync(lock));

  // A live holder (another process): the writer waits and gives up with a clear error.
  const holder = spawn('sleep', ['60']);
  t.teardown(() => holder.kill('SIGKILL'));
  fs.writeFileSync(lock, `${holder.pid}\n`);
  const store = createFileNodeStore(paths, { lockTimeoutMs: 300 });
  await t.rejects(addNode(store, { hostname: 'web3', macs: ['52:54:00:00:00:03'] }), { code: 'STORE_FAILED', message: new RegExp(`locked by process ${holder.pid} for over 300 ms`) });
  t.equal(fs.readFileSync(lock, 'utf8'), `${holder.pid}\n`, 'a live lock is left alone');
  // The holder dies: the next writer takes over.
  holder.kill('SIGKILL');
  await new Promise((resolve) => holder.once('exit', resolve));
  await addNode(store, { hostname: 'web3', macs: ['52:54:00:00:00:03'] });
  t.same((await readStore(paths)).map((n) => n.hostname), ['web1', 'web2', 'web3']);
});

t.test('two writers find the same stale lock: the second does not remove the lock the first took', async (t) => {
  const paths = scratchRoot(t);
  await add(paths, 'web1', '01');
  const lock = `${paths.resolve(NODES_FILE)}.lock`;
  const dead = spawnSync('true');
  fs.writeFileSync(lock, `${dead.pid}\n`);
  let inside = 0;
  let overlapped = false;
  const critical = async () => {
    inside++;
    if (inside > 1) overlapped = true;
    await new Promise((r) => setTimeout(r, 100));
    inside--;
  };
  // B judges the lock stale, then pauses until A has taken it over and is writing.
  let aWriting!: () => void;
  const aIsWriting = new Promise<void>((resolve) => (aWriting = resolve));
  const storeA = createFileNodeStore(paths);
  const storeB = createFileNodeStore(paths, { lockTimeoutMs: 5000, beforeTakeover: () => aIsWriting });
  const b = storeB.update(async () => critical());
  await new Promise((r) => setTimeout(r, 20)); // B is waiting in beforeTakeover now
  const a = storeA.update(async () => {
    aWriting();
    await critical();
  });
  await Promise.all([a, b]);
  t.notOk(overlapped, 'the two writers never held the lock at the same time');
  t.notOk(fs.existsSync(lock), 'lock released');
  t.notOk(fs.existsSync(`${lock}.takeover`), 'takeover file removed');
  // A takeover file its writer left (killed between its few steps) does not block for ever.
  fs.writeFileSync(lock, `${dead.pid}\n`);
  fs.writeFileSync(`${lock}.takeover`, `${dead.pid}\n`);
  await add(paths, 'web2', '02');
  t.same((await readStore(paths)).map((n) => n.hostname), ['web1', 'web2']);
  t.notOk(fs.existsSync(`${lock}.takeover`));
});

t.test('several processes add nodes at once through the lock: no update lost', async (t) => {
  const paths = scratchRoot(t);
  const workers = 4;
  const each = 25;
  await Promise.all(
    Array.from({ length: workers }, (_, w) => {
      const child = spawn(process.execPath, [...NODE_ARGS, paths.root, 'add', `p${w + 1}`, String(each)], { cwd: REPO_ROOT, env: WORKER_ENV, stdio: ['ignore', 'pipe', 'pipe'] });
      let err = '';
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      return new Promise<void>((resolve, reject) => child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(err)))));
    }),
  );
  const nodes = (await readStore(paths));
  t.equal(nodes.length, workers * each);
  for (let w = 1; w <= workers; w++) for (let i = 0; i < each; i++) t.ok(nodes.some((n) => n.hostname === `p${w}-${i}`), `p${w}-${i}`);
  t.equal(findConflict(nodes), null);
  t.notOk(fs.existsSync(`${paths.resolve(NODES_FILE)}.lock`));
});

t.test('concurrent requests in one process, through one store and through two: no update lost', async (t) => {
  const paths = scratchRoot(t);
  const one = createFileNodeStore(paths);
  const two = createFileNodeStore(paths);
  const hex = (i: number) => i.toString(16).padStart(2, '0');
  await Promise.all(Array.from({ length: 60 }, (_, i) => addNode(i % 2 ? one : two, { hostname: `c${i}`, macs: [`52:54:00:00:01:${hex(i)}`] })));
  t.equal((await one.list()).length, 60);
  t.equal((await two.list()).length, 60);
  // Edits of the same node from both: every event kept.
  const before = (await one.find('c0'))!.events.length;
  await Promise.all(Array.from({ length: 20 }, (_, i) => editNode(i % 2 ? one : two, 'c0', { release: `r${i}` })));
  t.equal((await one.find('c0'))!.events.length, before + 20);
});
