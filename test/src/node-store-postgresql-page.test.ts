/**
 * The PostgreSQL store's page() at depth, against a real PostgreSQL (test/helpers/postgresql.ts):
 * the rows an OFFSET skips are walked through an index without their jsonb node and without a
 * sort step (issue 14 item 2: at 100,000 nodes the middle page took 104 ms when every skipped
 * row carried its node through an incremental sort). Checked on the plan PostgreSQL runs for
 * the SQL the store sends (EXPLAIN ANALYZE VERBOSE), never on a time.
 */
import t from 'tap';
import pg from 'pg';
import { createNode, type Node } from '../../src/contract/node';
import { createPostgresNodeStore } from '../../src/region/node-store-postgresql';
import { checkPostgresAvailable, startPostgres } from '../helpers/postgresql';

interface PlanNode {
  'Node Type': string;
  'Actual Rows': number;
  'Actual Loops': number;
  Output?: string[];
  Plans?: PlanNode[];
}

/** Every plan node, depth first (pure). */
function selectPlanNodes(plan: PlanNode): PlanNode[] {
  return [plan, ...(plan.Plans ?? []).flatMap(selectPlanNodes)];
}

const COUNT = 10_000;

function makeNodes(): Node[] {
  const at = new Date('2026-01-01T00:00:00Z');
  return Array.from({ length: COUNT }, (_, i) => {
    const hex = (n: number) => (n & 0xff).toString(16).padStart(2, '0');
    const n = createNode({ hostname: `node${String(i).padStart(6, '0')}`, macs: [`52:54:00:02:${hex(i >> 8)}:${hex(i)}`], status: i % 3 === 0 ? 'deploying' : 'ready' }, at, {
      systemId: `node-${String(i).padStart(7, '0')}`,
      token: 'x'.repeat(32),
    });
    for (let e = 0; e < 5; e++) n.events.push({ at: at.toISOString(), type: 'edited', message: `event ${e}` });
    return n;
  });
}

const unavailable = checkPostgresAvailable();
if (unavailable) {
  t.plan(0, `PostgreSQL tests: ${unavailable}`);
} else {
  t.test('page(): skipped rows carry no node and are not sorted, whole table or one status', async (t) => {
    const server = await startPostgres(t);
    const db = await server.createDatabase();
    const store = createPostgresNodeStore(db);
    t.teardown(() => store.close());
    const nodes = makeNodes();
    await store.update((draft) => void draft.push(...nodes));
    const client = new pg.Client(db);
    await client.connect();
    t.teardown(() => client.end());
    await client.query('VACUUM ANALYZE nodes');

    // The SQL page() sends, as the pool is asked it.
    const sent: { text: string; values: unknown[] }[] = [];
    const original = pg.Pool.prototype.query;
    pg.Pool.prototype.query = function (this: unknown, text: unknown, values?: unknown) {
      if (typeof text === 'string' && text.includes('OFFSET')) sent.push({ text, values: values as unknown[] });
      return (original as (...a: unknown[]) => unknown).call(this, text, values);
    } as typeof original;
    t.teardown(() => {
      pg.Pool.prototype.query = original;
    });

    const sorted = [...nodes].sort((a, b) => (a.hostname < b.hostname ? -1 : 1));
    const deploying = sorted.filter((n) => n.status === 'deploying');
    const cases = [
      { query: { offset: COUNT / 2, limit: 100 }, expected: sorted.slice(COUNT / 2, COUNT / 2 + 100) },
      { query: { status: 'deploying' as const, offset: 1500, limit: 100 }, expected: deploying.slice(1500, 1600) },
    ];
    for (const { query, expected } of cases) {
      sent.length = 0;
      const page = await store.page(query);
      t.same(page.nodes.map((n) => n.hostname), expected.map((n) => n.hostname), `page ${JSON.stringify(query)}: the right nodes, in order`);
      t.equal(sent.length, 1, 'one query');
      const { rows } = await client.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(`EXPLAIN (ANALYZE, VERBOSE, FORMAT JSON) ${sent[0]!.text}`, sent[0]!.values);
      const plan = selectPlanNodes(rows[0]!['QUERY PLAN'][0].Plan);
      const carrying = plan.filter((p) => (p.Output ?? []).some((o) => /(^|\.)node$/.test(o)) && p['Actual Rows'] * p['Actual Loops'] > query.limit);
      t.same(carrying.map((p) => `${p['Node Type']}: ${p['Actual Rows'] * p['Actual Loops']} rows`), [], `${JSON.stringify(query)}: no plan step passes more than the page's ${query.limit} nodes`);
      const sorts = plan.filter((p) => /Sort/.test(p['Node Type']) && p['Actual Rows'] > query.limit);
      t.same(sorts.map((p) => `${p['Node Type']}: ${p['Actual Rows']} rows`), [], `${JSON.stringify(query)}: the skipped rows are not sorted (the index gives the order)`);
    }
  });
}
