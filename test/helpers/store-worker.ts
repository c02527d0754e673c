/**
 * A child process that writes the node store, for the crash and concurrency tests of
 * test/src/node-store.test.ts (run with node -r ts-node/register/transpile-only).
 *
 *   store-worker.ts ROOT churn           writes forever; each write adds node n-<i> and sets the
 *                                        counter node's release to r<i> in ONE update, so a half
 *                                        applied update is visible; prints "wrote <i>" per write
 *   store-worker.ts ROOT add PREFIX N    adds N nodes PREFIX-<i>, one update each, then exits
 */
import { createPaths } from '../../src/core/paths';
import { createFileNodeStore } from '../../src/region/node-store';
import { addNode } from '../../src/region/node-ops';
import { createNode, newToken } from '../../src/contract/node';

// Run as `node -e 'require(...)' -- ARGS` (argv[1] is ARGS[0]) or as a script (argv[2]).
const args = process.argv.slice(process.argv[1]?.endsWith('store-worker.ts') ? 2 : 1);
const [root, mode, prefix, count] = args;
const store = createFileNodeStore(createPaths(root!), { lockTimeoutMs: 60_000 });

function mac(a: number, i: number): string {
  const hex = (n: number) => (n & 0xff).toString(16).padStart(2, '0');
  return ['52', '54', hex(a), hex(i >> 16), hex(i >> 8), hex(i)].join(':');
}

async function churn(): Promise<void> {
  for (let i = 0; ; i++) {
    const seq = await store.update((nodes) => {
      let counter = nodes.find((n) => n.hostname === 'counter');
      if (!counter) {
        counter = createNode({ hostname: 'counter', macs: [mac(0xff, 0)], release: 'r0' }, new Date(), { systemId: 'node-counter', token: newToken() });
        nodes.push(counter);
      }
      const next = nodes.filter((n) => n.hostname.startsWith('n-')).length;
      nodes.push(createNode({ hostname: `n-${next}`, macs: [mac(0xfe, next)], role: 'x'.repeat(next % 64 + 1) }, new Date(), { systemId: `node-n${next}`, token: newToken() }));
      counter.release = `r${next}`;
      // Some writes shrink the file too, so a torn write could not pass by accident.
      if (next % 7 === 6) for (const n of nodes) if (n.hostname.startsWith('n-')) n.events = n.events.slice(-1);
      return next;
    });
    process.stdout.write(`wrote ${seq}\n`);
    void i;
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
