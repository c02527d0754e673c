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
import { REPO_ROOT, put, scratchRoot } from '../helpers/scratch';

const WORKER = path.join(REPO_ROOT, 'test/helpers/store-worker.ts');
// -e, not a .ts main file: tap's loader hooks (kept in children) would take a .ts main for ESM.
const NODE_ARGS = ['-e', `require('ts-node/register/transpile-only'); require(${JSON.stringify(WORKER)})`, '--'];
/** The worker runs under plain ts-node, without tap's loader hooks. */
const WORKER_ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS' && !k.startsWith('TAP') && !k.startsWith('_TAPJS')));

const readStore = (paths: Paths): Promise<Node[]> => readStoredNodes(paths);

const add = (paths: Paths, hostname: string, macEnd: string) => addNode(createFileNodeStore(paths), { hostname, macs: [`52:54:00:00:00:${macEnd}`] });

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

t.test('kill -9 in the middle of writes, many times: the store stays readable and consistent', async (t) => {
  const paths = scratchRoot(t);
  const iterations = Number(process.env.STORE_CRASH_ITERATIONS ?? 20);
  let lastSeen = -1;
  for (let round = 0; round < iterations; round++) {
    const child = spawn(process.execPath, [...NODE_ARGS, paths.root, 'churn'], { cwd: REPO_ROOT, env: WORKER_ENV, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // Kill at a random point: after a random number (1-12) of completed writes, plus a random
    // few event-loop turns, so the kill lands anywhere inside a write (temp file, rename, lock).
    const wanted = 1 + Math.floor(Math.random() * 12);
    let acked = -1;
    await new Promise<void>((resolve, reject) => {
      let lines = 0;
      let buffered = '';
      child.stdout.on('data', (d: Buffer) => {
        buffered += d.toString();
        const parts = buffered.split('\n');
        buffered = parts.pop()!;
        for (const line of parts) {
          acked = Number(line.split(' ')[1]);
          if (++lines === wanted) {
            const spin = Math.floor(Math.random() * 40);
            const kill = (n: number): void => {
              if (n <= 0) {
                child.kill('SIGKILL');
                return;
              }
              setImmediate(() => kill(n - 1));
            };
            kill(spin);
          }
        }
      });
      child.once('exit', (code, signal) => (signal === 'SIGKILL' ? resolve() : reject(new Error(`worker exited ${code}: ${stderr}`))));
    });
    // Readable, a version 1 store, no broken invariant, and no half-applied update: the counter
    // node's release names the newest n-<i> node, which exist without gaps.
    const nodes = (await readStore(paths));
    t.equal(findConflict(nodes), null);
    const numbered = nodes.filter((n) => n.hostname.startsWith('n-')).map((n) => Number(n.hostname.slice(2))).sort((a, b) => a - b);
    const counter = nodes.find((n) => n.hostname === 'counter');
    t.ok(counter, `round ${round}: counter node present`);
    t.same(numbered, numbered.map((_, i) => i), `round ${round}: no gap`);
    t.equal(counter?.release, `r${numbered.length - 1}`, `round ${round}: the counter and the nodes agree`);
    t.ok(numbered.length - 1 >= acked, `round ${round}: every acknowledged write (${acked}) is on disk`);
    t.ok(numbered.length - 1 >= lastSeen, `round ${round}: nothing went backwards`);
    lastSeen = numbered.length - 1;
    // The next process (the parent, through a fresh store) can read and write at once.
    t.same((await createFileNodeStore(paths).list()).length, nodes.length);
  }
  // One more write sweeps any temp file a killed writer left and takes over its lock.
  await addNode(createFileNodeStore(paths), { hostname: 'final', macs: ['52:54:00:aa:aa:aa'] });
  const dir = path.dirname(paths.resolve(NODES_FILE));
  t.same(fs.readdirSync(dir).filter((n) => n !== 'nodes.json' && n !== 'nodes.journal'), [], 'no temp or lock file left');
  t.ok(lastSeen >= iterations - 1, 'writes happened in every round');
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
