/**
 * The PostgreSQL node store against a real PostgreSQL this file starts (test/helpers/postgresql.ts):
 * indexes and unique constraints, the change feed, LISTEN/NOTIFY between two store instances,
 * races between two writer processes, schema migrations up and down.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import pg from 'pg';
import { createNode, type Node } from '../../src/contract/node';
import { LATEST_VERSION, applyMigrations, selectMigrationSteps } from '../../src/region/migrations';
import type { NodeChange } from '../../src/region/node-store';
import { createPostgresNodeStore, describePostgresTarget, renderCanonicalJson, selectBatches, type PostgresNodeStoreOptions } from '../../src/region/node-store-postgresql';
import { checkPostgresAvailable, startPostgres, type TestPostgres } from '../helpers/postgresql';
import { REPO_ROOT } from '../helpers/scratch';
import { runNodeStoreSuite } from './node-store-suite';

const unavailable = checkPostgresAvailable();
if (unavailable) {
  t.plan(0, `PostgreSQL tests: ${unavailable}`);
} else {
  void main();
}

function node(hostname: string, i: number, extra: Partial<Node> = {}): Node {
  const hex = (n: number) => (n & 0xff).toString(16).padStart(2, '0');
  return { ...createNode({ hostname, macs: [`52:54:00:01:${hex(i >> 8)}:${hex(i)}`] }, new Date('2026-01-01T00:00:00Z'), { systemId: `node-${hostname}`, token: `token-${i}-abcdefghijklmnopqrstuvwxyz` }), ...extra };
}

async function main(): Promise<void> {
  let server: TestPostgres;
  t.before(async () => {
    server = await startPostgres(t);
  });

  async function openStore(t: { teardown(fn: () => unknown): void }, options: Partial<PostgresNodeStoreOptions> = {}): Promise<{ store: ReturnType<typeof createPostgresNodeStore>; db: PostgresNodeStoreOptions }> {
    const db = await server.createDatabase();
    const store = createPostgresNodeStore({ ...db, ...options });
    t.teardown(() => store.close());
    return { store, db };
  }

  async function sql<R>(db: PostgresNodeStoreOptions, text: string, values: unknown[] = []): Promise<R[]> {
    const client = new pg.Client({ host: db.host, port: db.port, user: db.user, database: db.database });
    await client.connect();
    try {
      return (await client.query<R>(text, values)).rows;
    } finally {
      await client.end();
    }
  }

  t.test('the shared NodeStore suite (test/src/node-store-suite.ts) on PostgreSQL', async (t) => {
    runNodeStoreSuite(t, async (t) => {
      const db = await server.createDatabase();
      const store = createPostgresNodeStore(db);
      t.teardown(() => store.close());
      return {
        store,
        async open() {
          const other = createPostgresNodeStore(db);
          t.teardown(() => other.close());
          return other;
        },
      };
    });
  });

  t.test('put, find by system id, hostname (any case) or any MAC spelling; list, page and counts by SQL', async (t) => {
    const { store } = await openStore(t);
    t.same(await store.list(), []);
    t.equal(await store.currentCursor(), 0);
    const web2 = node('web2', 2, { macs: ['52:54:00:01:00:02', '52:54:00:01:01:02'], ipv4: '10.0.0.2', status: 'deployed' });
    const web1 = node('web1', 1);
    const db1 = node('db1', 3, { status: 'new' });
    await store.modify([], (_found, w) => {
      w.put(web2);
      w.put(web1);
      w.put(db1);
    });
    t.same((await store.list()).map((n) => n.hostname), ['db1', 'web1', 'web2']);
    t.same(await store.find('node-web2'), web2, 'stored as given (jsonb round trip)');
    t.equal((await store.find('WEB1'))?.systemId, 'node-web1');
    t.equal((await store.find('52-54-00-01-01-02'))?.systemId, 'node-web2');
    t.equal((await store.find('525400010102'))?.systemId, 'node-web2');
    t.equal(await store.find('nothing'), undefined);
    t.same(await store.countByStatus(), { new: 1, commissioning: 0, ready: 1, deploying: 0, deployed: 1, failed: 0 });
    const page = await store.page({ offset: 1, limit: 1 });
    t.same([page.nodes.map((n) => n.hostname), page.total], [['web1'], 3]);
    t.same((await store.page({ status: 'deployed' })).nodes.map((n) => n.hostname), ['web2']);
    t.same((await store.page({ search: '01:01:0' })).nodes.map((n) => n.hostname), ['web2'], 'search: a MAC substring');
    t.same((await store.page({ search: 'WEB' })).total, 2, 'search: case-insensitive');
    t.same((await store.page({ search: '10.0.0' })).nodes.map((n) => n.hostname), ['web2'], 'search: IPv4');
    t.same((await store.page({ search: '%' })).total, 0, 'LIKE wildcards are taken literally');
    t.same(await store.page({ offset: 10 }), { nodes: [], total: 3 }, 'past the end: no nodes, the total still');
    t.same(await store.page({ offset: 10, status: 'deployed' }), { nodes: [], total: 1 });
    t.same(await store.page({ offset: 10, search: 'web' }), { nodes: [], total: 2 });
    await store.modify(['db1'], (_f, w) => w.remove('node-db1'));
    t.same(await store.countByStatus(), { new: 0, commissioning: 0, ready: 1, deploying: 0, deployed: 1, failed: 0 }, 'counts follow removals');
    t.equal((await store.page({})).total, 2);
    await store.modify(['db1'], (_f, w) => w.put(db1));
    const found = (await store.modify(['web1', 'nothing', '52:54:00:01:00:03'], (f) => f.map((n) => n?.hostname)));
    t.same(found, ['web1', undefined, 'db1'], 'modify gets the nodes its refs name');
  });

  t.test('MAC, hostname or IPv4 of another node → NODE_CONFLICT naming the value and the other node; nothing stored', async (t) => {
    const { store, db } = await openStore(t);
    await store.modify([], (_f, w) => {
      w.put(node('web1', 1, { ipv4: '10.0.0.1' }));
      w.put(node('web2', 2));
    });
    const cursor = await store.currentCursor();
    const fresh = node('web3', 3);
    await t.rejects(
      store.modify([], (_f, w) => {
        w.put(fresh);
        w.put({ ...node('web4', 4), macs: ['52:54:00:01:00:01'] });
      }),
      { code: 'NODE_CONFLICT', message: 'MAC 52:54:00:01:00:01 is already used by web1 (node-web1)' },
    );
    await t.rejects(store.modify([], (_f, w) => w.put({ ...node('x', 5), hostname: 'web2' })), { code: 'NODE_CONFLICT', message: 'hostname web2 is already used by web2 (node-web2)' });
    await t.rejects(store.modify([], (_f, w) => w.put(node('web5', 5, { ipv4: '10.0.0.1' }))), { code: 'NODE_CONFLICT', message: 'address 10.0.0.1 is already used by web1 (node-web1)' });
    await t.rejects(store.modify([], (_f, w) => w.put(node('web6', 6, { macs: ['52:54:00:01:00:06', '52:54:00:01:00:06'] }))), { code: 'NODE_CONFLICT', message: /MAC 52:54:00:01:00:06 is already used by web6/ });
    await t.rejects(store.modify([], (_f, w) => w.put(node('web7', 7, { release: '..' }))), { code: 'INVALID_VALUE', message: /release "\.\." must not start with "\."; nothing was stored/ });
    await t.rejects(store.modify([], (_f, w) => {
      w.put(fresh);
      throw new Error('change failed');
    }), { message: 'change failed' });
    t.equal(await store.find('web3'), undefined, 'the good put of a failed transaction is not stored');
    t.equal(await store.currentCursor(), cursor, 'no change in the feed');
    t.same((await sql<{ n: string }>(db, 'SELECT count(*) AS n FROM node_macs'))[0]?.n, '2');
    // The database itself refuses, whoever writes: a second MAC row for another node.
    await t.rejects(sql(db, "INSERT INTO node_macs (mac, system_id) VALUES ('52:54:00:01:00:01', 'node-web2')"), { code: '23505' });
  });

  t.test('nodes may swap a MAC and hostnames in one transaction; unchanged puts are no change', async (t) => {
    const { store } = await openStore(t);
    const a = node('a', 1);
    const b = node('b', 2);
    await store.modify([], (_f, w) => {
      w.put(a);
      w.put(b);
    });
    const cursor = await store.currentCursor();
    await store.modify(['a', 'b'], (found, w) => {
      for (const n of found) w.put(n!);
    });
    t.equal(await store.currentCursor(), cursor, 'equal puts write nothing');
    await store.modify(['a', 'b'], ([x, y], w) => {
      w.put({ ...x!, hostname: 'b', macs: y!.macs });
      w.put({ ...y!, hostname: 'a', macs: x!.macs });
    });
    t.equal((await store.find('a'))?.systemId, 'node-b');
    t.equal((await store.find('52:54:00:01:00:01'))?.systemId, 'node-b');
    t.equal(await store.currentCursor(), cursor + 2, 'one change per node written');
  });

  t.test('change feed: seq increasing, removals as null, cursor from another store or pruned → reset', async (t) => {
    const { store } = await openStore(t, { keepChanges: 5 });
    await store.modify([], (_f, w) => w.put(node('n1', 1)));
    await store.modify([], (_f, w) => w.put(node('n2', 2)));
    await store.modify(['n1'], (_f, w) => w.remove('node-n1'));
    await store.modify([], (_f, w) => w.remove('node-none'));
    const batch = await store.changesSince(0, 10);
    t.same(batch.changes.map((c) => [c.seq, c.systemId, c.node?.hostname ?? null]), [[1, 'node-n1', 'n1'], [2, 'node-n2', 'n2'], [3, 'node-n1', null]]);
    t.same([batch.cursor, batch.reset], [3, false]);
    t.same(await store.changesSince(1, 1), { changes: [batch.changes[1]], cursor: 2, reset: false });
    t.same(await store.changesSince(3, 10), { changes: [], cursor: 3, reset: false });
    t.same(await store.changesSince(99, 10), { changes: [], cursor: 3, reset: true }, 'a cursor ahead of the store: another store');
    for (let i = 10; i < 20; i++) await store.modify([], (_f, w) => w.put(node(`m${i}`, i)));
    t.equal(await store.currentCursor(), 13);
    t.same(await store.changesSince(0, 10), { changes: [], cursor: 13, reset: true }, 'changes no longer kept → reset');
    const tail = await store.changesSince(10, 10);
    t.same([tail.changes.length, tail.reset], [3, false], 'recent cursors are still answered');
    const before = await store.currentCursor();
    await store.resetFollowers(500);
    const after = await store.currentCursor();
    t.ok(after > 500, 'the cursor moves past the other store\'s');
    t.same((await store.changesSince(before, 10)).reset, true, 'a follower of before the migration resets');
    await store.modify([], (_f, w) => w.put(node('late', 99)));
    t.same((await store.changesSince(after, 10)).changes.map((c) => [c.seq, c.systemId]), [[after + 1, 'node-late']], 'seq continues above');
  });

  t.test('LISTEN/NOTIFY: a second store instance sees the first one\'s commits in order, once', async (t) => {
    const { store, db } = await openStore(t);
    const other = createPostgresNodeStore(db);
    t.teardown(() => other.close());
    const seen: NodeChange[] = [];
    let wake: () => void = () => undefined;
    other.onChange((changes) => {
      seen.push(...changes);
      wake();
    });
    const local: NodeChange[] = [];
    store.onChange((changes) => {
      local.push(...changes);
    });
    await other.currentCursor();
    // Give the listener's LISTEN time to be issued: poll until it is (no wall-clock assert).
    for (let i = 0; i < 200 && (await sql<{ n: string }>(db, "SELECT count(*) AS n FROM pg_stat_activity WHERE query LIKE 'LISTEN%'"))[0]?.n !== '2'; i++) await new Promise((r) => setTimeout(r, 25));
    const arrived = new Promise<void>((resolve) => {
      wake = () => {
        if (seen.length >= 3) resolve();
      };
    });
    await store.modify([], (_f, w) => w.put(node('n1', 1)));
    await store.modify([], (_f, w) => {
      w.put(node('n2', 2));
      w.remove('node-n1');
    });
    await arrived;
    t.same(seen.map((c) => [c.seq, c.systemId, c.node?.hostname ?? null]), [[1, 'node-n1', 'n1'], [2, 'node-n2', 'n2'], [3, 'node-n1', null]]);
    t.same(local.map((c) => c.seq), [1, 2, 3], 'the writer\'s own listeners got its changes by the time modify returned');
  });

  t.test('two writer processes racing for the same hostnames, MACs and addresses: each value stored once', async (t) => {
    const db = await server.createDatabase();
    const store = createPostgresNodeStore(db);
    t.teardown(() => store.close());
    await store.list(); // migrate before the race
    const worker = path.join(REPO_ROOT, 'test/helpers/pg-store-worker.ts');
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS' && !k.startsWith('TAP') && !k.startsWith('_TAPJS')));
    const n = 60;
    const runWorker = (name: string) =>
      new Promise<{ stored: number; conflicts: number; other: string[] }>((resolve, reject) => {
        const child = spawn(process.execPath, ['-e', `require('ts-node/register/transpile-only'); require(${JSON.stringify(worker)})`, '--', JSON.stringify(db), name, String(n)], { cwd: REPO_ROOT, env });
        let out = '';
        let err = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.stderr.on('data', (d: Buffer) => (err += d.toString()));
        child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out) as { stored: number; conflicts: number; other: string[] }) : reject(new Error(`worker ${name}: ${code} ${err}`))));
      });
    const [a, b] = await Promise.all([runWorker('a'), runWorker('b')]);
    t.same([a.other, b.other], [[], []]);
    t.equal(a.stored + b.stored, n, 'each value won by one writer');
    t.equal(a.conflicts + b.conflicts, n, 'the other got NODE_CONFLICT');
    const nodes = await store.list();
    t.equal(nodes.length, n);
    t.equal(new Set(nodes.map((x) => x.macs[0])).size, n);
    const feed = await store.changesSince(0, 1000);
    t.same(feed.changes.map((c) => c.seq), Array.from({ length: n }, (_, i) => i + 1), 'one feed entry per stored node, numbered without gaps from conflicts');
  });

  t.test('migrations: up from empty, down to empty, up again; schema_version; a newer schema is refused', async (t) => {
    const db = await server.createDatabase();
    const tables = async () => (await sql<{ t: string }>(db, "SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")).map((r) => r.t);
    const client = new pg.Client({ host: db.host, port: db.port, user: db.user, database: db.database });
    await client.connect();
    t.teardown(() => client.end());
    t.same(await applyMigrations(client), { from: 0, to: LATEST_VERSION });
    t.same(await tables(), ['node_changes', 'node_feed', 'node_macs', 'node_status_counts', 'nodes', 'schema_version']);
    t.same(await sql(db, 'SELECT version FROM schema_version'), [{ version: LATEST_VERSION }]);
    t.same(await applyMigrations(client), { from: LATEST_VERSION, to: LATEST_VERSION }, 'again: nothing to do');
    t.same(await applyMigrations(client, 0), { from: LATEST_VERSION, to: 0 });
    t.same(await tables(), [], 'down to empty');
    t.same(await applyMigrations(client), { from: 0, to: LATEST_VERSION });
    const store = createPostgresNodeStore(db);
    t.teardown(() => store.close());
    await store.modify([], (_f, w) => w.put(node('after', 1)));
    t.equal(await store.schemaVersion(), LATEST_VERSION);
    await store.modify([], (_f, w) => w.put(node('second', 2, { status: 'deployed' })));
    t.same(await applyMigrations(client, 1), { from: LATEST_VERSION, to: 1 }, 'one step down');
    t.notOk((await tables()).includes('node_status_counts'));
    await sql(db, "INSERT INTO nodes (system_id, hostname, status, search, node) SELECT 'node-third', 'third', 'new', 'third', node FROM nodes WHERE system_id = 'node-after'");
    t.same(await applyMigrations(client), { from: 1, to: LATEST_VERSION }, 'and up again');
    t.same(await store.countByStatus(), { new: 1, commissioning: 0, ready: 1, deploying: 0, deployed: 1, failed: 0 }, 'counts built from the rows already there');
    await sql(db, "DELETE FROM nodes WHERE system_id = 'node-third'");
    await sql(db, "UPDATE nodes SET status = 'failed' WHERE system_id IN ('node-after', 'node-second')");
    t.same(await store.countByStatus(), { new: 0, commissioning: 0, ready: 0, deploying: 0, deployed: 0, failed: 2 }, 'the trigger follows deletes and updates too');
    await sql(db, 'UPDATE schema_version SET version = 99');
    await t.rejects(applyMigrations(client), { code: 'STORE_FAILED', message: /schema is version 99, newer than this uec-provisioning knows/ });
    t.throws(() => selectMigrationSteps(0, LATEST_VERSION + 1), { code: 'STORE_FAILED' });
    t.same(selectMigrationSteps(LATEST_VERSION, 0).map((s) => s.direction), Array(LATEST_VERSION).fill('down'));
  });

  t.test('two stores opening an empty database at once migrate once', async (t) => {
    const db = await server.createDatabase();
    const stores = [createPostgresNodeStore(db), createPostgresNodeStore(db)];
    t.teardown(() => Promise.all(stores.map((s) => s.close())));
    await Promise.all(stores.map((s) => s.list()));
    t.same(await sql(db, 'SELECT version FROM schema_version'), [{ version: LATEST_VERSION }]);
  });

  t.test('password file: must be 0600; the password never appears in messages', async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uecp-pw-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'pw');
    fs.writeFileSync(file, 'sekrit\n', { mode: 0o644 });
    fs.chmodSync(file, 0o644);
    t.throws(() => createPostgresNodeStore({ host: '/nonexistent', passwordFile: file }), { code: 'STORE_FAILED', message: /readable by group or others \(mode 644\); chmod 600 it/ });
    fs.chmodSync(file, 0o600);
    const store = createPostgresNodeStore({ host: path.join(dir, 'no-socket'), database: 'x', user: 'u', passwordFile: file });
    t.teardown(() => store.close());
    const err = (await store.list().catch((e: unknown) => e)) as Error & { code: string };
    t.equal(err.code, 'STORE_FAILED');
    t.match(err.message, /^cannot connect to PostgreSQL \(database x on .*no-socket\)/);
    t.notMatch(err.message, /sekrit/);
    t.equal(describePostgresTarget({ connectionString: 'postgresql://u:sekrit@db.example:5433/uecp' }), 'postgresql://u@db.example:5433/uecp');
  });

  t.test('one transaction of 4,500 puts (three bulk batches): all stored, one feed entry each in order; a conflict in the last batch stores none', async (t) => {
    const { store } = await openStore(t);
    const many = Array.from({ length: 4500 }, (_, i) => node(`b${i}`, i, { status: i % 2 ? 'ready' : 'new' }));
    await store.modify([], (_f, w) => many.forEach((n) => w.put(n)));
    t.equal((await store.page({})).total, 4500);
    t.same(await store.countByStatus(), { new: 2250, commissioning: 0, ready: 2250, deploying: 0, deployed: 0, failed: 0 });
    const feed = await store.changesSince(4490, 100);
    t.same(feed.changes.map((c) => [c.seq, c.systemId]), many.slice(4490).map((n, i) => [4491 + i, n.systemId]), 'seqs follow the order of the puts');
    const more = Array.from({ length: 4200 }, (_, i) => node(`c${i}`, 5000 + i));
    more.push({ ...node('clash', 9999), macs: [many[0]!.macs[0]!] });
    await t.rejects(store.modify([], (_f, w) => more.forEach((n) => w.put(n))), { code: 'NODE_CONFLICT', message: `MAC ${many[0]!.macs[0]} is already used by b0 (node-b0)` });
    t.equal((await store.page({})).total, 4500, 'nothing of the failed transaction');
    t.equal(await store.currentCursor(), 4500);
  });

  t.test('selectBatches: slices of at most the size, in order', async (t) => {
    t.same(selectBatches([1, 2, 3, 4, 5], 2), [[1, 2], [3, 4], [5]]);
    t.same(selectBatches([], 2), []);
  });

  t.test('canonical JSON: key order does not matter, undefined keys are left out', async (t) => {
    t.equal(renderCanonicalJson({ b: 1, a: [1, { d: undefined, c: 'x' }] }), renderCanonicalJson({ a: [1, { c: 'x' }], b: 1 }));
    t.not(renderCanonicalJson({ a: 1 }), renderCanonicalJson({ a: '1' }));
  });
}
