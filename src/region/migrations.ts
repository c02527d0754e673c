/**
 * The PostgreSQL node store's schema, as numbered steps, each with its up and its down. The
 * store applies every step up to the newest when it opens; `applyMigrations` also goes down
 * (tests, and an admin leaving PostgreSQL for good). Each run is one transaction holding an
 * advisory lock, so two processes opening at once migrate once and a failed step changes
 * nothing. schema_version holds one row: the number of the last step applied.
 */
import { UecError, describeError } from '../core/errors';

export interface Migration {
  version: number;
  summary: string;
  up: string[];
  down: string[];
}

/** pg_advisory_xact_lock key of migrations ("uecq"); the writers use "uecp". */
export const MIGRATION_LOCK = 0x75656371;

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    summary: 'nodes with unique hostname, IPv4 and MACs; the change feed',
    up: [
      // COLLATE "C": hostnames are ASCII; byte order is the same on every server and locale.
      `CREATE TABLE nodes (
         system_id text COLLATE "C" PRIMARY KEY,
         hostname text COLLATE "C" NOT NULL CONSTRAINT nodes_hostname_key UNIQUE,
         ipv4 text COLLATE "C" CONSTRAINT nodes_ipv4_key UNIQUE,
         status text NOT NULL,
         search text COLLATE "C" NOT NULL,
         node jsonb NOT NULL)`,
      'CREATE INDEX nodes_status_order ON nodes (status, hostname, system_id)',
      `CREATE TABLE node_macs (
         mac text COLLATE "C" CONSTRAINT node_macs_mac_key PRIMARY KEY,
         system_id text COLLATE "C" NOT NULL REFERENCES nodes (system_id) ON DELETE CASCADE)`,
      'CREATE INDEX node_macs_system_id ON node_macs (system_id)',
      `CREATE TABLE node_changes (
         seq bigserial PRIMARY KEY,
         system_id text COLLATE "C" NOT NULL,
         node jsonb)`,
      // floor: a cursor below it is answered with reset (changes pruned, or the store was filled by `region migrate`).
      `CREATE TABLE node_feed (
         id integer PRIMARY KEY CHECK (id = 1),
         floor bigint NOT NULL)`,
      'INSERT INTO node_feed (id, floor) VALUES (1, 0)',
    ],
    down: ['DROP TABLE node_feed', 'DROP TABLE node_changes', 'DROP TABLE node_macs', 'DROP TABLE nodes'],
  },
  {
    version: 2,
    summary: 'nodes per status kept by a trigger (dashboard counts and page totals without a scan)',
    up: [
      'CREATE TABLE node_status_counts (status text PRIMARY KEY, n bigint NOT NULL)',
      'INSERT INTO node_status_counts (status, n) SELECT status, count(*) FROM nodes GROUP BY status',
      // Per statement, from the transition tables: a bulk insert of N nodes is one update per
      // status, not N updates of one row.
      `CREATE FUNCTION uecp_count_status() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF TG_OP IN ('DELETE', 'UPDATE') THEN
           UPDATE node_status_counts c SET n = c.n - o.k
             FROM (SELECT status, count(*) AS k FROM old_rows GROUP BY status) o WHERE c.status = o.status;
         END IF;
         IF TG_OP IN ('INSERT', 'UPDATE') THEN
           INSERT INTO node_status_counts (status, n) SELECT status, count(*) FROM new_rows GROUP BY status
             ON CONFLICT (status) DO UPDATE SET n = node_status_counts.n + excluded.n;
         END IF;
         RETURN NULL;
       END $$`,
      'CREATE TRIGGER nodes_count_insert AFTER INSERT ON nodes REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION uecp_count_status()',
      'CREATE TRIGGER nodes_count_delete AFTER DELETE ON nodes REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION uecp_count_status()',
      'CREATE TRIGGER nodes_count_update AFTER UPDATE ON nodes REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION uecp_count_status()',
    ],
    down: ['DROP TRIGGER nodes_count_update ON nodes', 'DROP TRIGGER nodes_count_delete ON nodes', 'DROP TRIGGER nodes_count_insert ON nodes', 'DROP FUNCTION uecp_count_status()', 'DROP TABLE node_status_counts'],
  },
];

export const LATEST_VERSION = MIGRATIONS.length;

/** The steps to run, in order, to go from `from` to `to` (pure). */
export function selectMigrationSteps(from: number, to: number): { migration: Migration; direction: 'up' | 'down' }[] {
  if (to < 0 || to > LATEST_VERSION || !Number.isInteger(to)) {
    throw new UecError('STORE_FAILED', `schema version ${to} does not exist (0 to ${LATEST_VERSION})`);
  }
  if (from > LATEST_VERSION) {
    throw new UecError('STORE_FAILED', `the database schema is version ${from}, newer than this uec-provisioning knows (${LATEST_VERSION}); upgrade uec-provisioning`);
  }
  if (from <= to) return MIGRATIONS.filter((m) => m.version > from && m.version <= to).map((migration) => ({ migration, direction: 'up' as const }));
  return MIGRATIONS.filter((m) => m.version <= from && m.version > to)
    .reverse()
    .map((migration) => ({ migration, direction: 'down' as const }));
}

export interface SqlClient {
  query<R = Record<string, unknown>>(text: string, values?: unknown[]): Promise<{ rows: R[] }>;
}

/**
 * Bring the schema to version `to` (default: the newest) in one transaction, under the
 * migration lock. Returns the versions before and after. On any failure: rolled back, STORE_FAILED.
 */
export async function applyMigrations(client: SqlClient, to: number = LATEST_VERSION): Promise<{ from: number; to: number }> {
  let step = 'begin';
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    step = 'schema_version';
    await client.query('CREATE TABLE IF NOT EXISTS schema_version (id integer PRIMARY KEY CHECK (id = 1), version integer NOT NULL)');
    const found = await client.query<{ version: number }>('SELECT version FROM schema_version WHERE id = 1');
    const from = found.rows[0]?.version ?? 0;
    for (const { migration, direction } of selectMigrationSteps(from, to)) {
      step = `${direction} ${migration.version} (${migration.summary})`;
      for (const sql of migration[direction]) await client.query(sql);
    }
    if (to === 0) await client.query('DROP TABLE schema_version');
    else await client.query('INSERT INTO schema_version (id, version) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET version = $1', [to]);
    await client.query('COMMIT');
    return { from, to };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    if (err instanceof UecError) throw err;
    throw new UecError('STORE_FAILED', `PostgreSQL schema migration, step ${step}: ${describeError(err)}; the schema is unchanged`, { cause: err });
  }
}
