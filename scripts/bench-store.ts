/**
 * Node store benchmark (part of `npm run bench`), issue 14 item 2: at 1,000 / 10,000 / 100,000
 * nodes (BENCH_STORE_SIZES=1000,10000 to choose), for both backends (BENCH_STORE_BACKENDS,
 * default embedded,postgresql):
 *   open (first read: snapshot load, or connect and schema check), node add (one commit, median
 *   of 20), find, page (middle page, status page, search), countByStatus; the whole `nodes add`
 *   command (compiled CLI) with and without its apply; the web UI's dashboard and nodes page over
 *   HTTP (p50 of one wrk connection, BENCH_SECONDS, default 3) and the web UI process's RSS.
 * Each size and backend gets a fresh root seeded with a version 1 nodes.json (the embedded store
 * migrates it at its first write, so that migration is timed too). For PostgreSQL the bench
 * starts its own server (test/helpers/postgresql.ts: initdb/pg_ctl as nobody in a temporary
 * directory, unix socket only, fsync and synchronous_commit on as a site runs it), a database
 * per size, and moves the seeded nodes into it with `uec-provisioning region migrate --to
 * postgresql` (timed: the way a site fills it), which sets region.store = postgresql for the CLI
 * and the web UI. Prints markdown tables and the load average before and after each size.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { createNode, type Node } from '../src/contract/node';
import { createPaths } from '../src/core/paths';
import { addNode } from '../src/region/node-ops';
import { NODES_FILE, createFileNodeStore, type NodeStore } from '../src/region/node-store';
import { createPostgresNodeStore } from '../src/region/node-store-postgresql';
import { checkPostgresAvailable, startPostgres, type TestPostgres } from '../test/helpers/postgresql';
import { CLI, startBenchWebui } from './bench-webui-server';
import { runWrk, wrkAvailable } from './wrk';

const REPO = path.resolve(__dirname, '..');
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const SIZES = (process.env.BENCH_STORE_SIZES ?? '1000,10000,100000').split(',').map(Number);
const BACKENDS = (process.env.BENCH_STORE_BACKENDS ?? 'embedded,postgresql').split(',');
const run = promisify(execFile);

function makeNodes(count: number): Node[] {
  const at = new Date('2026-01-01T00:00:00Z');
  const nodes: Node[] = [];
  for (let i = 0; i < count; i++) {
    const mac = `52:54:${[(i >> 24) & 255, (i >> 16) & 255, (i >> 8) & 255, i & 255].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;
    const node = createNode({ hostname: `node${String(i).padStart(6, '0')}`, macs: [mac], status: i % 3 === 0 ? 'deploying' : 'ready', ipv4: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${(i & 255) || 1}` }, at, {
      systemId: `node-${String(i).padStart(7, '0')}`,
      token: 'x'.repeat(32),
    });
    if ((i & 255) === 0) node.ipv4 = '';
    for (let e = 0; e < 5; e++) node.events.push({ at: at.toISOString(), type: 'edited', message: `event ${e}` });
    nodes.push(node);
  }
  return nodes;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function timeEach(times: number, action: (i: number) => Promise<unknown>): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < times; i++) {
    const t0 = performance.now();
    await action(i);
    xs.push(performance.now() - t0);
  }
  return median(xs);
}

const newMac = (i: number): string => `52:55:00:${[(i >> 16) & 255, (i >> 8) & 255, i & 255].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;

/** The store operations, through the interface only. */
async function measureStore(label: string, store: NodeStore, count: number, rows: string[]): Promise<void> {
  let t0 = performance.now();
  await store.countByStatus();
  const open = performance.now() - t0;
  t0 = performance.now();
  await addNode(store, { hostname: 'first-write', macs: [newMac(0)] });
  const first = performance.now() - t0;
  const add = await timeEach(20, (i) => addNode(store, { hostname: `added${i}`, macs: [newMac(i + 1)] }));
  const find = await timeEach(200, (i) => store.find(`node${String((i * 7919) % count).padStart(6, '0')}`));
  const findMac = await timeEach(200, (i) => store.find(`52:54:00:00:${(((i * 31) % count) >> 8 & 255).toString(16).padStart(2, '0')}:${((i * 31) % count & 255).toString(16).padStart(2, '0')}`));
  const middle = await timeEach(20, () => store.page({ offset: Math.floor(count / 2), limit: 100 }));
  const byStatus = await timeEach(20, () => store.page({ status: 'deploying', offset: Math.floor(count / 6), limit: 100 }));
  const search = await timeEach(10, () => store.page({ search: '00:00:0', limit: 100 }));
  const counts = await timeEach(200, () => store.countByStatus());
  const f = (ms: number) => (ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : `${ms.toFixed(1)} ms`);
  rows.push(`| ${label} | ${count.toLocaleString('en')} | ${f(open)} | ${f(first)} | ${f(add)} | ${f(find)} / ${f(findMac)} | ${f(middle)} / ${f(byStatus)} / ${f(search)} | ${f(counts)} |`);
}

async function cli(root: string, args: string[]): Promise<number> {
  const t0 = performance.now();
  await run(process.execPath, [CLI, ...args, '--root', root], { env: { PATH: process.env.PATH, UEC_PROVISIONING_TEMPLATES: path.join(REPO, 'templates') } });
  return performance.now() - t0;
}

async function measureWebui(label: string, root: string, count: number, rows: string[]): Promise<void> {
  if (!wrkAvailable()) {
    rows.push(`| ${label} | ${count.toLocaleString('en')} | wrk not installed | | | |`);
    return;
  }
  const webui = await startBenchWebui(root);
  try {
    const { base, cookie } = webui;
    const get = async (url: string): Promise<number> => {
      const r = await fetch(url, { headers: { Cookie: cookie } });
      await r.arrayBuffer();
      if (r.status !== 200) throw new Error(`${url}: ${r.status}`);
      const load = await runWrk({ url, connections: 1, seconds: SECONDS, headers: [`Cookie: ${cookie}`] });
      if (load.non2xx > 0 || load.socketErrors > 0) throw new Error(`${url}: ${load.non2xx} non-2xx, socket errors ${load.socketErrorDetail}`);
      return load.p50;
    };
    const dash = await get(`${base}/`);
    const table = await get(`${base}/nodes`);
    // A third of the nodes are deploying: the middle one of their pages of 200.
    const page = await get(`${base}/nodes?page=${Math.max(1, Math.floor(count / 3 / 200 / 2))}&status=deploying`);
    rows.push(`| ${label} | ${count.toLocaleString('en')} | ${dash.toFixed(1)} ms | ${table.toFixed(1)} ms | ${page.toFixed(1)} ms | ${webui.rssMiB().toFixed(0)} MiB |`);
  } finally {
    await webui.stop();
  }
}

/** A root with `count` nodes in a version 1 nodes.json, the server on lo, and for PostgreSQL its database keys. */
function seedRoot(count: number, database?: { host: string; port: number; user: string; database: string }): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'uec-bench-store-'));
  const paths = createPaths(root);
  fs.mkdirSync(path.dirname(paths.resolve(NODES_FILE)), { recursive: true });
  fs.writeFileSync(paths.resolve(NODES_FILE), JSON.stringify({ version: 1, nodes: makeNodes(count) }), { mode: 0o600 });
  fs.mkdirSync(paths.resolve('/etc/uec-provisioning/conf.d'), { recursive: true });
  fs.writeFileSync(paths.resolve('/etc/uec-provisioning/conf.d/50-managed.conf'), '[server]\ninterface = lo\naddress = 127.0.0.1\n');
  if (database) {
    fs.writeFileSync(
      paths.resolve('/etc/uec-provisioning/uec-provisioning.conf'),
      `[region]\ndatabase_host = ${database.host}\ndatabase_port = ${database.port}\ndatabase_name = ${database.database}\ndatabase_user = ${database.user}\n`,
    );
  }
  return root;
}

/** The whole `nodes add` command, median of 3, without and with its apply. */
async function measureCli(label: string, root: string, count: number, seeded: string, rows: string[]): Promise<void> {
  const noApply = median([await cli(root, ['nodes', 'add', 'cli-a', '--mac', newMac(900), '--no-apply']), await cli(root, ['nodes', 'add', 'cli-b', '--mac', newMac(901), '--no-apply']), await cli(root, ['nodes', 'add', 'cli-c', '--mac', newMac(902), '--no-apply'])]);
  let withApply = 'failed';
  try {
    withApply = `${median([await cli(root, ['nodes', 'add', 'cli-d', '--mac', newMac(903)]), await cli(root, ['nodes', 'add', 'cli-e', '--mac', newMac(904)]), await cli(root, ['nodes', 'add', 'cli-f', '--mac', newMac(905)])]).toFixed(0)} ms`;
  } catch (err) {
    withApply = `failed: ${String((err as Error).message).split('\n')[0]}`;
  }
  rows.push(`| ${label} | ${count.toLocaleString('en')} | ${seeded} | ${noApply.toFixed(0)} ms | ${withApply} |`);
}

const loadAverage = (): string => os.loadavg().map((l) => l.toFixed(2)).join(' ');

async function main(): Promise<void> {
  if (!fs.existsSync(CLI)) throw new Error('run npm run build first');
  const storeRows: string[] = [];
  const cliRows: string[] = [];
  const webRows: string[] = [];
  const notes: string[] = [];
  const cleanups: (() => unknown)[] = [];
  let server: TestPostgres | undefined;
  // Interrupted: exit, so the PostgreSQL helper's exit hook stops the server and removes its directory.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
  if (BACKENDS.includes('postgresql')) {
    const unavailable = checkPostgresAvailable();
    if (unavailable) notes.push(`PostgreSQL left out: ${unavailable}`);
    else server = await startPostgres({ teardown: (fn) => void cleanups.push(fn) }, { durable: true });
  }
  try {
    for (const count of SIZES) {
      const before = loadAverage();
      if (BACKENDS.includes('embedded')) {
        const root = seedRoot(count);
        try {
          const store = createFileNodeStore(createPaths(root));
          await measureStore('embedded', store, count, storeRows);
          await store.close();
          await measureCli('embedded', root, count, '—', cliRows);
          await measureWebui('embedded', root, count, webRows);
        } finally {
          fs.rmSync(root, { recursive: true, force: true });
        }
      }
      if (server) {
        const database = await server.createDatabase(`bench_${count}`);
        const root = seedRoot(count, database);
        try {
          const seed = await cli(root, ['region', 'migrate', '--to', 'postgresql']);
          const store = createPostgresNodeStore(database);
          await measureStore('postgresql', store, count, storeRows);
          await store.close();
          await measureCli('postgresql', root, count, `${(seed / 1000).toFixed(1)} s`, cliRows);
          await measureWebui('postgresql', root, count, webRows);
        } finally {
          fs.rmSync(root, { recursive: true, force: true });
        }
      }
      notes.push(`${count.toLocaleString('en')} nodes: load average ${before} before, ${loadAverage()} after`);
    }
  } finally {
    for (const fn of cleanups.reverse()) await fn();
  }
  process.stdout.write(
    [
      '',
      '### node store',
      '',
      '| backend | nodes | open (first read) | first write (embedded: v1 → v2 migration) | node add (commit, median of 20) | find by hostname / MAC | page: middle / status / search | countByStatus |',
      '|---|---|---|---|---|---|---|---|',
      ...storeRows,
      '',
      '| backend | nodes | seeded by `region migrate --to postgresql` (whole command) | `nodes add --no-apply` (whole command) | `nodes add` with apply |',
      '|---|---|---|---|---|',
      ...cliRows,
      '',
      '| backend | nodes | web UI dashboard | nodes page (first 200) | nodes page (status filter, a middle page) | web UI RSS |',
      '|---|---|---|---|---|---|',
      ...webRows,
      '',
      ...notes,
      '',
    ].join('\n'),
  );
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
