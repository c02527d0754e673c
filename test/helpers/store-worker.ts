/**
 * A child process that writes the node store, for the crash and concurrency tests of
 * test/src/node-store.test.ts (run with node -r ts-node/register/transpile-only).
 *
 *   store-worker.ts ROOT churn           writes forever; each write adds node n-<i> and sets the
 *                                        counter node's release to r<i> in ONE transaction, so a
 *                                        half applied one is visible; prints "wrote <i>" per write;
 *                                        compacts every few KiB of journal
 *   store-worker.ts ROOT add PREFIX N    adds N nodes PREFIX-<i>, one update each, then exits
 */
import { createPaths } from '../../src/core/paths';
import { createFileNodeStore } from '../../src/region/node-store';
import { addNode } from '../../src/region/node-ops';
import { createNode, newToken } from '../../src/contract/node';

// Run as `node -e 'require(...)' -- ARGS` (argv[1] is ARGS[0]) or as a script (argv[2]).
const args = process.argv.slice(process.argv[1]?.endsWith('store-worker.ts') ? 2 : 1);
const [root, mode, prefix, count] = args;
// A small compaction threshold: the kills land inside compactions too.
const store = createFileNodeStore(createPaths(root!), { lockTimeoutMs: 60_000, compactMinBytes: mode === 'churn' ? 8 * 1024 : undefined });

function mac(a: number, i: number): string {
  const hex = (n: number) => (n & 0xff).toString(16).padStart(2, '0');
  return ['52', '54', hex(a), hex(i >> 16), hex(i >> 8), hex(i)].join(':');
}

async function churn(): Promise<void> {
  for (;;) {
    // One transaction of two nodes: the counter and a new n-<i>, so a half-applied one shows.
    const seq = await store.modify(['counter'], ([found], writes) => {
      const counter = found ?? createNode({ hostname: 'counter', macs: [mac(0xff, 0)], release: 'r0' }, new Date(), { systemId: 'node-counter', token: newToken() });
      const next = found ? Number(found.release.slice(1)) + 1 : 0;
      writes.put(createNode({ hostname: `n-${next}`, macs: [mac(0xfe, next)], role: 'x'.repeat(next % 64 + 1) }, new Date(), { systemId: `node-n${next}`, token: newToken() }));
      counter.release = `r${next}`;
      writes.put(counter);
      return next;
    });
    process.stdout.write(`wrote ${seq}\n`);
  }
}

async function add(): Promise<void> {
  const n = Number(count);
  const a = Number.parseInt(prefix!.replace(/\D/g, ''), 10) || 0;
  for (let i = 0; i < n; i++) await addNode(store, { hostname: `${prefix}-${i}`, macs: [mac(a, i)] });
  process.stdout.write('done\n');
}

(mode === 'churn' ? churn() : add()).catch((err: unknown) => {
  process.stderr.write(`${String((err as Error).stack ?? err)}\n`);
  process.exit(1);
});
