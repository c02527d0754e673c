/**
 * Node store benchmark, both backends (issue 14 item 2's store column): with N nodes stored
 * (BENCH_SIZES, default 1000,10000,100000), the median time of the operations the request
 * paths use: change one node (modify), find by MAC, the first page of 50, a page filtered by
 * status, a search, countByStatus, and changesSince from the latest cursor. PostgreSQL is a
 * throw-away server started here (test/helpers/postgresql.ts: initdb/pg_ctl as nobody, unix
 * socket only); the embedded store is a temporary directory. Prints one markdown table.
 *   node -r ts-node/register/transpile-only scripts/bench-node-store.ts
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createNode, type Node } from '../src/contract/node';
import { createPaths } from '../src/core/paths';
import { createFileNodeStore, type NodeStore } from '../src/region/node-store';
import { createPostgresNodeStore } from '../src/region/node-store-postgresql';
import { checkPostgresAvailable, startPostgres } from '../test/helpers/postgresql';

const SIZES = (process.env.BENCH_SIZES ?? '1000,10000,100000').split(',').map(Number);
const RUNS = Number(process.env.BENCH_RUNS ?? 21);

function makeNodes(count: number): Node[] {
  const at = new Date('2026-01-01T00:00:00Z');
  return Array.from({ length: count }, (_, i) => {
    const mac = `52:54:${[(i >> 24) & 255, (i >> 16) & 255, (i >> 8) & 255, i & 255].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;
    const node = createNode({ hostname: `node${String(i).padStart(6, '0')}`, macs: [mac], status: i % 3 === 0 ? 'deployed' : 'ready' }, at, { systemId: `node-${String(i).padStart(6, '0')}`, token: 'x'.repeat(32) });
    for (let e = 0; e < 5; e++) node.events.push({ at: at.toISOString(), type: 'edited', message: `event ${e}` });
    return node;
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function timeIt(fn: (i: number) => Promise<unknown>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const start = process.hrtime.bigint();
    await fn(i);
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return median(times);
}

async function measure(store: NodeStore, nodes: Node[]): Promise<Record<string, number>> {
  const fillStart = process.hrtime.bigint();
  await store.update((draft) => void draft.push(...nodes));
  const fill = Number(process.hrtime.bigint() - fillStart) / 1e6;
  const n = nodes.length;
  const out: Record<string, number> = { 'fill (one update)': fill };
  out['modify one node'] = await timeIt((i) => store.modify([nodes[(i * 7919) % n]!.systemId], ([node], w) => w.put({ ...node!, release: `r${i}` })));
  out['find by MAC'] = await timeIt((i) => store.find(nodes[(i * 104729) % n]!.macs[0]!));
  out['page 50'] = await timeIt(() => store.page({ limit: 50 }));
  out['page 50, status'] = await timeIt(() => store.page({ limit: 50, status: 'deployed' }));
  out['page 50, search'] = await timeIt(() => store.page({ limit: 50, search: '00:01' }));
  out['countByStatus'] = await timeIt(() => store.countByStatus());
  const cursor = await store.currentCursor();
  out['changesSince latest'] = await timeIt(() => store.changesSince(cursor, 100));
  return out;
}

async function main(): Promise<void> {
  const cleanups: (() => unknown)[] = [];
  const host = { teardown: (fn: () => unknown) => void cleanups.push(fn) };
  const columns: string[] = [];
  const rows = new Map<string, string[]>();
  const unavailable = checkPostgresAvailable();
  const server = unavailable ? undefined : await startPostgres(host);
  try {
    for (const size of SIZES) {
      const nodes = makeNodes(size);
      const backends: [string, () => Promise<NodeStore>][] = [
        ['embedded', async () => {
          const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uecp-bench-store-'));
          cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
          return createFileNodeStore(createPaths(dir));
        }],
      ];
      if (server) backends.push(['postgresql', async () => createPostgresNodeStore(await server.createDatabase())]);
      for (const [name, open] of backends) {
        const store = await open();
        try {
          const result = await measure(store, nodes);
          columns.push(`${name} ${size.toLocaleString('en')}`);
          for (const [op, ms] of Object.entries(result)) {
            const row = rows.get(op) ?? [];
            row.push(ms < 10 ? ms.toFixed(2) : ms.toFixed(0));
            rows.set(op, row);
          }
        } finally {
          await store.close();
        }
      }
    }
  } finally {
    for (const fn of cleanups.reverse()) await fn();
  }
  process.stdout.write(`| ms (median of ${RUNS}) | ${columns.join(' | ')} |\n| --- |${columns.map(() => ' ---: |').join('')}\n`);
  for (const [op, values] of rows) process.stdout.write(`| ${op} | ${values.join(' | ')} |\n`);
  if (unavailable) process.stdout.write(`PostgreSQL left out: ${unavailable}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${String((err as Error).stack ?? err)}\n`);
  process.exit(1);
});
