/**
 * The embedded node store under kill -9 (test/helpers/store-worker.ts churns: one transaction
 * of two nodes per write, compactions every few KiB): 60 kills at random points in CI (200 took
 * 206 s of a CI run beside the VM tests; STORE_CRASH_ITERATIONS=200 or more for a longer run).
 * Its own file and timeout: worker starts take minutes on a loaded machine.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { findConflict, type Node } from '../../src/contract/node';
import { addNode } from '../../src/region/node-ops';
import { NODES_FILE, NODES_JOURNAL, createFileNodeStore } from '../../src/region/node-store';
import type { Paths } from '../../src/core/paths';
import { readStoredNodes } from '../helpers/node-store-files';
import { REPO_ROOT, scratchRoot } from '../helpers/scratch';

const WORKER = path.join(REPO_ROOT, 'test/helpers/store-worker.ts');
// -e, not a .ts main file: tap's loader hooks (kept in children) would take a .ts main for ESM.
// The worker's .ts is transpiled once and cached (ts-transpile-cache.js): 200 kills, 200 starts.
const TS_HOOK = path.join(REPO_ROOT, 'test/helpers/ts-transpile-cache.js');
const NODE_ARGS = ['-e', `require(${JSON.stringify(TS_HOOK)}); require(${JSON.stringify(WORKER)})`, '--'];
/** The worker runs under plain ts-node, without tap's loader hooks. */
const WORKER_ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS' && !k.startsWith('TAP') && !k.startsWith('_TAPJS')));

const readStore = (paths: Paths): Promise<Node[]> => readStoredNodes(paths);
const journalOf = (paths: Paths): string => fs.readFileSync(paths.resolve(NODES_JOURNAL), 'utf8');

t.setTimeout(30 * 60_000);

t.test('kill -9 in the middle of writes (journal appends, compactions, lock), 60 times (STORE_CRASH_ITERATIONS): nothing lost, nothing torn', async (t) => {
  const paths = scratchRoot(t);
  const iterations = Number(process.env.STORE_CRASH_ITERATIONS ?? 60);
  let lastSeen = -1;
  for (let round = 0; round < iterations; round++) {
    const child = spawn(process.execPath, [...NODE_ARGS, paths.root, 'churn'], { cwd: REPO_ROOT, env: WORKER_ENV, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // Kill at a random point: after a random number (1-6) of completed writes, plus a random
    // few event-loop turns, so the kill lands anywhere inside a write (temp file, rename, lock).
    const wanted = 1 + Math.floor(Math.random() * 6);
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
    // Nothing torn: every complete journal line is whole JSON (a tail without its newline is
    // the only thing a kill may leave, and readers skip it).
    const journal = fs.existsSync(paths.resolve(NODES_JOURNAL)) ? journalOf(paths) : '';
    const broken = journal.slice(0, journal.lastIndexOf('\n') + 1).split('\n').filter((line) => {
      if (line === '') return false;
      try {
        JSON.parse(line);
        return false;
      } catch {
        return true;
      }
    });
    t.same(broken, [], `round ${round}: every complete journal line is whole`);
    // The next process (the parent, through a fresh store) can read and write at once.
    t.same((await createFileNodeStore(paths).list()).length, nodes.length);
  }
  // One more write sweeps any temp file a killed writer left and takes over its lock.
  await addNode(createFileNodeStore(paths), { hostname: 'final', macs: ['52:54:00:aa:aa:aa'] });
  const dir = path.dirname(paths.resolve(NODES_FILE));
  t.same(fs.readdirSync(dir).filter((n) => n !== 'nodes.json' && n !== 'nodes.journal'), [], 'no temp or lock file left');
  const journal = journalOf(paths);
  t.ok(journal === '' || journal.endsWith('\n'), 'the torn tail a kill left was cut by the last writer');
  t.ok(lastSeen >= iterations - 1, 'writes happened in every round');
});

