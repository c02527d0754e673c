/**
 * The node store on PostgreSQL (Debian's postgresql-15, the `pg` client), for sites that
 * outgrow one machine. One row per node (the node as jsonb beside the columns the database
 * indexes), one row per MAC: the UNIQUE constraints on hostname, IPv4 and MAC are what keep
 * two nodes from sharing one, in any process. Every write is one transaction that holds one
 * advisory lock (writers are serialised, so change sequence numbers commit in order), writes
 * only the nodes it changes, appends them to the node_changes feed and NOTIFYs uecp_nodes;
 * each store that has onChange listeners LISTENs and hands them every committed change, its
 * own and other processes', in sequence order. The schema migrates at open (migrations.ts).
 */
import pg, { type DatabaseError, type PoolClient, type PoolConfig, type Client as PgClient } from 'pg';
import * as fs from 'node:fs';
import { UecError, describeError } from '../core/errors';
import { checkNode, describeNodeProblem, NODE_STATUSES, parseMac, type Node, type NodeStatus } from '../contract/node';
import { applyMigrations } from './migrations';
import { selectPageBounds, type ChangeBatch, type NodeChange, type NodeQuery, type NodeStore, type NodeWrites } from './node-store';

/** pg_advisory_xact_lock key every writer takes ("uecp"). */
export const WRITER_LOCK = 0x75656370;
export const NOTIFY_CHANNEL = 'uecp_nodes';

export interface PostgresNodeStoreOptions {
  /** postgresql://user@host:port/db, or a unix socket directory as host=/run/postgresql. */
  connectionString?: string;
  host?: string;
  port?: number;
  database?: string;
  user?: string;
  /** A file (mode 0600) whose first line is the password; the password never goes into the config. */
  passwordFile?: string;
  /** How many changes the feed keeps; a follower further behind is told to reset. */
  keepChanges?: number;
  /** At most this many connections (default 4). */
  maxConnections?: number;
}

interface NodeRow {
  node: Node;
}

/** JSON with object keys sorted: jsonb does not keep key order, so equality compares this. */
export function renderCanonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : renderCanonicalJson(v))).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${renderCanonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** The searchable text of a node: what `page({ search })` matches, lower case, fields apart. */
export function renderSearchText(node: Node): string {
  return [node.hostname, node.systemId, ...node.macs, node.ipv4].join('\u0001').toLowerCase();
}

/** Rows per bulk statement: big enough to save round trips, small enough to keep each parameter small. */
const BATCH = 2000;

/** `items` in slices of at most `size` (pure). */
export function selectBatches<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** `%`, `_` and `\` taken literally in a LIKE pattern. */
function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/** Where the store connects, for messages: never the password. */
export function describePostgresTarget(options: PostgresNodeStoreOptions): string {
  if (options.connectionString) {
    try {
      const url = new URL(options.connectionString);
      url.password = '';
      return url.toString();
    } catch {
      return 'the configured database_url';
    }
  }
  return `database ${options.database ?? 'uec-provisioning'} on ${options.host ?? 'localhost'}${options.port ? `:${options.port}` : ''}`;
}

function readPasswordFile(file: string): string {
  let text: string;
  try {
    const stat = fs.statSync(file);
    if ((stat.mode & 0o077) !== 0) throw new UecError('STORE_FAILED', `password file ${file} is readable by group or others (mode ${(stat.mode & 0o777).toString(8)}); chmod 600 it`);
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof UecError) throw err;
    throw new UecError('STORE_FAILED', `cannot read the PostgreSQL password file ${file}: ${describeError(err)}`, { cause: err });
  }
  return text.split('\n')[0] ?? '';
}

function storeFailed(what: string, target: string, err: unknown): UecError {
  if (err instanceof UecError) return err;
  return new UecError('STORE_FAILED', `${what} (${target}): ${describeError(err)}; the node store is unchanged`, { cause: err });
}

interface Tx {
  query<R = Record<string, unknown>>(text: string, values?: unknown[]): Promise<{ rows: R[] }>;
}

const UNIQUE_VIOLATION = '23505';

export interface PostgresNodeStore extends NodeStore {
  /** Tests and `region migrate`: the schema version now. */
  schemaVersion(): Promise<number>;
  /**
   * `region migrate`: make every cursor up to `cursor` (and any below the store's own
   * current cursor) answer reset, so followers of the old store reload.
   */
  resetFollowers(cursor: number): Promise<void>;
}

export function createPostgresNodeStore(options: PostgresNodeStoreOptions): PostgresNodeStore {
  const target = describePostgresTarget(options);
  const keepChanges = options.keepChanges ?? 100_000;
  const config: PoolConfig = {
    connectionString: options.connectionString,
    host: options.host,
    port: options.port,
    database: options.database,
    user: options.user,
    application_name: 'uec-provisioning',
    connectionTimeoutMillis: 10_000,
  };
  if (options.passwordFile) config.password = readPasswordFile(options.passwordFile);
  const pool = new pg.Pool({ ...config, max: options.maxConnections ?? 4, idleTimeoutMillis: 10_000, allowExitOnIdle: true });
  // An idle connection the server drops is replaced on next use; it must not crash the process.
  pool.on('error', () => undefined);
  const listeners: ((changes: readonly NodeChange[]) => void | Promise<void>)[] = [];
  let ready: Promise<void> | undefined;
  let listener: PgClient | undefined;
  let listening: Promise<void> | undefined;
  let delivered = 0;
  let delivering: Promise<void> = Promise.resolve();
  let closed = false;

  function open(): Promise<void> {
    ready ??= (async () => {
      const client = await pool.connect().catch((err: unknown) => {
        throw storeFailed('cannot connect to PostgreSQL', target, err);
      });
      try {
        await applyMigrations(client);
      } finally {
        client.release();
      }
    })();
    ready.catch(() => {
      ready = undefined; // the next call tries again
    });
    return ready;
  }

  async function read<R>(what: string, sql: string, values: unknown[] = []): Promise<R[]> {
    if (closed) throw new UecError('STORE_FAILED', `node store ${target} is closed`);
    await open();
    try {
      return (await pool.query<R>(sql, values)).rows;
    } catch (err) {
      throw storeFailed(what, target, err);
    }
  }

  async function feedState(tx: Tx): Promise<{ floor: number; current: number; oldest: number }> {
    const { rows } = await tx.query<{ floor: string; current: string | null; oldest: string | null }>(
      'SELECT f.floor, (SELECT max(seq) FROM node_changes) AS current, (SELECT min(seq) FROM node_changes) AS oldest FROM node_feed f WHERE f.id = 1',
    );
    const row = rows[0];
    const floor = Number(row?.floor ?? 0);
    return { floor, current: Math.max(floor, Number(row?.current ?? 0)), oldest: Number(row?.oldest ?? 0) };
  }

  async function changesSince(tx: Tx, cursor: number, limit: number): Promise<ChangeBatch> {
    const { floor, current } = await feedState(tx);
    if (!Number.isInteger(cursor) || cursor < floor || cursor > current) return { changes: [], cursor: current, reset: true };
    const { rows } = await tx.query<{ seq: string; system_id: string; node: Node | null }>(
      'SELECT seq, system_id, node FROM node_changes WHERE seq > $1 ORDER BY seq LIMIT $2',
      [cursor, Math.max(1, Math.min(limit, 10_000))],
    );
    const changes = rows.map((r) => ({ seq: Number(r.seq), systemId: r.system_id, node: r.node }));
    return { changes, cursor: changes.length > 0 ? changes[changes.length - 1]!.seq : cursor, reset: false };
  }

  /** Hand listeners every committed change after `delivered`, in order, once. */
  function deliver(): Promise<void> {
    const run = delivering.then(async () => {
      if (listeners.length === 0 || closed) return;
      for (;;) {
        const batch = await changesSince(pool, delivered, 1000);
        delivered = batch.cursor;
        if (batch.changes.length > 0) for (const l of listeners) await l(batch.changes);
        if (batch.reset || batch.changes.length < 1000) return;
      }
    });
    delivering = run.catch(() => undefined);
    return run;
  }

  async function startListening(): Promise<void> {
    await open();
    // close() may come at any await here: it waits for this, and a LISTEN connection made
    // after it would keep the process alive (a service that never stops on SIGTERM).
    if (closed) return;
    const client = new pg.Client(config);
    listener = client;
    client.on('error', () => undefined);
    client.on('notification', () => {
      deliver().catch(() => undefined);
    });
    await client.connect();
    if (closed) return;
    await client.query(`LISTEN ${NOTIFY_CHANNEL}`);
    // From now on: what is committed after this point reaches the listeners.
    const { current } = await feedState(pool);
    if (delivered === 0) delivered = current;
    await deliver(); // a commit between LISTEN and the read above
  }

  /** The stored conflict for a unique violation, as one line naming the value and the other node. */
  async function describeConflict(tx: Tx, node: Node, constraint: string | undefined): Promise<string> {
    const owner = async (sql: string, value: string): Promise<string> => {
      const { rows } = await tx.query<NodeRow>(sql, [value]);
      const other = rows[0]?.node;
      return other ? `${other.hostname} (${other.systemId})` : `${node.hostname} (${node.systemId})`;
    };
    if (constraint === 'nodes_hostname_key') return `hostname ${node.hostname} is already used by ${await owner('SELECT node FROM nodes WHERE hostname = $1', node.hostname)}`;
    if (constraint === 'nodes_ipv4_key') return `address ${node.ipv4} is already used by ${await owner('SELECT node FROM nodes WHERE ipv4 = $1', node.ipv4)}`;
    if (constraint === 'node_macs_mac_key') {
      for (const mac of node.macs) {
        const { rows } = await tx.query<NodeRow>('SELECT n.node FROM node_macs m JOIN nodes n USING (system_id) WHERE m.mac = $1', [mac]);
        if (rows[0]) return `MAC ${mac} is already used by ${rows[0].node.hostname} (${rows[0].node.systemId})`;
      }
      const twice = node.macs.find((m, i) => node.macs.indexOf(m) !== i);
      if (twice) return `MAC ${twice} is already used by ${node.hostname} (${node.systemId})`;
    }
    if (constraint === 'nodes_pkey') return `id ${node.systemId} is already used by ${await owner('SELECT node FROM nodes WHERE system_id = $1', node.systemId)}`;
    return `node ${node.hostname} (${node.systemId}) breaks ${constraint ?? 'a unique constraint'}`;
  }

  /**
   * After a unique violation of a bulk insert: which value, of which put, and whose it is, in a
   * few set queries (the puts among themselves, then against the stored nodes).
   */
  async function findBulkConflict(tx: Tx, puts: readonly Node[]): Promise<string | null> {
    const seen = new Map<string, Node>();
    for (const node of puts) {
      const keys = [`hostname ${node.hostname}`, ...node.macs.map((m) => `MAC ${m}`), ...(node.ipv4 ? [`address ${node.ipv4}`] : [])];
      for (const key of keys) {
        const owner = seen.get(key);
        if (owner) return `${key} is already used by ${owner.hostname} (${owner.systemId})`;
        seen.set(key, node);
      }
    }
    const stored = async (sql: string, values: string[], what: string): Promise<string | null> => {
      const { rows } = await tx.query<{ key: string; node: Node }>(sql, [values]);
      const row = rows[0];
      return row ? `${what} ${row.key} is already used by ${row.node.hostname} (${row.node.systemId})` : null;
    };
    return (
      (await stored('SELECT hostname AS key, node FROM nodes WHERE hostname = ANY($1) LIMIT 1', puts.map((n) => n.hostname), 'hostname')) ??
      (await stored('SELECT m.mac AS key, n.node FROM node_macs m JOIN nodes n USING (system_id) WHERE m.mac = ANY($1) LIMIT 1', puts.flatMap((n) => n.macs), 'MAC')) ??
      (await stored('SELECT ipv4 AS key, node FROM nodes WHERE ipv4 = ANY($1) LIMIT 1', puts.flatMap((n) => (n.ipv4 ? [n.ipv4] : [])), 'address'))
    );
  }

  /** The slow path after a unique violation: row by row, so the one that breaks the rule is named. */
  async function insertOneByOne(tx: Tx, puts: readonly Node[]): Promise<void> {
    for (const node of puts) {
      await tx.query('SAVEPOINT put');
      try {
        await tx.query('INSERT INTO nodes (system_id, hostname, ipv4, status, search, node) VALUES ($1, $2, $3, $4, $5, $6)', [
          node.systemId,
          node.hostname,
          node.ipv4 === '' ? null : node.ipv4,
          node.status,
          renderSearchText(node),
          JSON.stringify(node),
        ]);
        await tx.query('INSERT INTO node_macs (mac, system_id) SELECT unnest($1::text[]), $2', [node.macs, node.systemId]);
      } catch (err) {
        if ((err as DatabaseError).code !== UNIQUE_VIOLATION) throw err;
        await tx.query('ROLLBACK TO SAVEPOINT put');
        throw new UecError('NODE_CONFLICT', await describeConflict(tx, node, (err as DatabaseError).constraint));
      }
    }
  }

  /**
   * Write `writes` (system id → node, or null to remove) in `tx`: only what differs from what
   * is stored. Returns the changes appended to the feed.
   */
  async function writeChanges(tx: Tx, writes: Map<string, Node | null>): Promise<NodeChange[]> {
    if (writes.size === 0) return [];
    const ids = [...writes.keys()];
    const { rows } = await tx.query<{ system_id: string; node: Node }>('SELECT system_id, node FROM nodes WHERE system_id = ANY($1)', [ids]);
    const stored = new Map(rows.map((r) => [r.system_id, renderCanonicalJson(r.node)]));
    const changed: [string, Node | null][] = [];
    for (const [id, node] of writes) {
      if (node === null) {
        if (stored.has(id)) changed.push([id, null]);
        continue;
      }
      if (stored.get(id) === renderCanonicalJson(node)) continue;
      const problem = checkNode(node);
      if (problem) throw new UecError('INVALID_VALUE', `${describeNodeProblem(node, problem)}; nothing was stored`);
      changed.push([id, node]);
    }
    if (changed.length === 0) return [];
    // Out with every old row first, so nodes may swap a MAC, hostname or address in one transaction.
    await tx.query('DELETE FROM nodes WHERE system_id = ANY($1)', [changed.map(([id]) => id)]);
    const puts = changed.flatMap(([, node]) => (node ? [node] : []));
    await tx.query('SAVEPOINT puts');
    try {
      // Rows in batches of a few statements; a unique violation is then found again row by row, to name it.
      for (const batch of selectBatches(puts, BATCH)) {
        await tx.query(
          'INSERT INTO nodes (system_id, hostname, ipv4, status, search, node) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[])',
          [batch.map((n) => n.systemId), batch.map((n) => n.hostname), batch.map((n) => (n.ipv4 === '' ? null : n.ipv4)), batch.map((n) => n.status), batch.map(renderSearchText), batch.map((n) => JSON.stringify(n))],
        );
        await tx.query('INSERT INTO node_macs (mac, system_id) SELECT * FROM unnest($1::text[], $2::text[])', [batch.flatMap((n) => n.macs), batch.flatMap((n) => n.macs.map(() => n.systemId))]);
      }
    } catch (err) {
      if ((err as DatabaseError).code !== UNIQUE_VIOLATION) throw err;
      await tx.query('ROLLBACK TO SAVEPOINT puts');
      const conflict = await findBulkConflict(tx, puts);
      if (conflict) throw new UecError('NODE_CONFLICT', conflict);
      await insertOneByOne(tx, puts);
      throw err; // not reached: insertOneByOne meets the same violation
    }
    const seqRows: { seq: string }[] = [];
    for (const batch of selectBatches(changed, BATCH)) {
      const { rows: batchRows } = await tx.query<{ seq: string }>(
        'INSERT INTO node_changes (system_id, node) SELECT c.system_id, c.node FROM unnest($1::text[], $2::jsonb[]) WITH ORDINALITY AS c(system_id, node, i) ORDER BY c.i RETURNING seq',
        [batch.map(([id]) => id), batch.map(([, node]) => (node === null ? null : JSON.stringify(node)))],
      );
      seqRows.push(...batchRows);
    }
    const seqs = seqRows.map((r) => Number(r.seq)).sort((a, b) => a - b);
    const out: NodeChange[] = changed.map(([id, node], i) => ({ seq: seqs[i]!, systemId: id, node: node === null ? null : structuredClone(node) }));
    const last = out[out.length - 1]!.seq;
    if (last % 1000 < out.length || keepChanges < 1000) {
      // Now and then, forget what no follower within keepChanges needs; they reset instead.
      const below = last - keepChanges;
      if (below > 0) {
        await tx.query('DELETE FROM node_changes WHERE seq <= $1', [below]);
        await tx.query('UPDATE node_feed SET floor = GREATEST(floor, $1) WHERE id = 1', [below]);
      }
    }
    await tx.query('SELECT pg_notify($1, $2)', [NOTIFY_CHANNEL, String(last)]);
    return out;
  }

  /** One write transaction under the writers' lock; the changes reach the listeners after commit. */
  async function transaction<T>(body: (tx: Tx) => Promise<{ result: T; writes: Map<string, Node | null> }>): Promise<T> {
    if (closed) throw new UecError('STORE_FAILED', `node store ${target} is closed`);
    await open();
    let client: PoolClient;
    try {
      client = await pool.connect();
    } catch (err) {
      throw storeFailed('cannot connect to PostgreSQL', target, err);
    }
    let changes: NodeChange[] = [];
    let result: T;
    try {
      try {
        await client.query('BEGIN');
        await client.query('SELECT pg_advisory_xact_lock($1)', [WRITER_LOCK]);
      } catch (err) {
        throw storeFailed('cannot start a node store transaction', target, err);
      }
      const out = await body(client);
      result = out.result;
      try {
        changes = await writeChanges(client, out.writes);
        await client.query('COMMIT');
      } catch (err) {
        throw storeFailed('cannot write the node store', target, err);
      }
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      client.release();
      throw err;
    }
    client.release();
    if (changes.length > 0 && listeners.length > 0) await deliver();
    return result;
  }

  function collector(): { writes: Map<string, Node | null>; api: NodeWrites } {
    const writes = new Map<string, Node | null>();
    return {
      writes,
      api: {
        put(node) {
          writes.set(node.systemId, structuredClone(node));
        },
        remove(systemId) {
          writes.set(systemId, null);
        },
      },
    };
  }

  async function findIn(tx: Tx, ref: string): Promise<Node | undefined> {
    const { rows } = await tx.query<NodeRow>('SELECT node FROM nodes WHERE system_id = $1 OR hostname = $2 ORDER BY system_id = $1 DESC LIMIT 1', [ref, ref.toLowerCase()]);
    if (rows[0]) return rows[0].node;
    let mac: string;
    try {
      mac = parseMac(ref);
    } catch {
      return undefined;
    }
    const byMac = await tx.query<NodeRow>('SELECT n.node FROM node_macs m JOIN nodes n USING (system_id) WHERE m.mac = $1', [mac]);
    return byMac.rows[0]?.node;
  }

  const readTx: Tx = {
    query: async <R>(sql: string, values?: unknown[]) => ({ rows: await read<R>('cannot read the node store', sql, values) }),
  };

  return {
    async list() {
      const rows = await read<NodeRow>('cannot read the node store', 'SELECT node FROM nodes ORDER BY hostname'); // hostname is UNIQUE: no sort step
      return rows.map((r) => r.node);
    },
    async find(ref) {
      return findIn(readTx, ref);
    },
    async page(query: NodeQuery) {
      const { offset, limit } = selectPageBounds(query);
      const where: string[] = [];
      const values: unknown[] = [];
      if (query.status !== undefined) {
        values.push(query.status);
        where.push(`status = $${values.length}`);
      }
      const needle = query.search?.trim().toLowerCase();
      if (needle) {
        values.push(`%${escapeLike(needle)}%`);
        where.push(`search LIKE $${values.length}`);
      }
      const clause = where.length > 0 ? `WHERE ${where.join(' AND ')}` : '';
      // Totals without a search come from node_status_counts (kept by a trigger): no scan.
      const totalSql = needle
        ? `SELECT count(*) FROM nodes ${clause}`
        : `SELECT coalesce(sum(n), 0) FROM node_status_counts ${query.status !== undefined ? 'WHERE status = $1' : ''}`;
      const filters = values.length;
      values.push(limit, offset);
      // The page's keys first, then its nodes: the rows skipped by OFFSET are walked through the
      // hostname index without carrying their jsonb (9 times faster at offset 50,000 of 100,000).
      // hostname is UNIQUE, so ORDER BY hostname alone is the store's order (hostname, system id)
      // and needs no sort step; (hostname, system_id) made the planner sort every skipped row.
      const rows = await read<{ node: Node; total: string }>(
        'cannot read the node store',
        `SELECT n.node, (${totalSql}) AS total FROM (SELECT system_id, hostname FROM nodes ${clause} ORDER BY hostname LIMIT $${filters + 1} OFFSET $${filters + 2}) k JOIN nodes n USING (system_id) ORDER BY k.hostname`,
        values,
      );
      let total = Number(rows[0]?.total ?? 0);
      if (rows.length === 0) {
        // Past the last page there is no row to carry the total: ask for it alone.
        const counted = await read<{ total: string }>('cannot read the node store', `SELECT (${totalSql}) AS total`, values.slice(0, filters));
        total = Number(counted[0]?.total ?? 0);
      }
      return { nodes: rows.map((r) => r.node), total };
    },
    async countByStatus() {
      const rows = await read<{ status: string; n: string }>('cannot read the node store', 'SELECT status, n FROM node_status_counts');
      const counts = Object.fromEntries(NODE_STATUSES.map((s) => [s, 0])) as Record<NodeStatus, number>;
      for (const r of rows) if ((NODE_STATUSES as readonly string[]).includes(r.status)) counts[r.status as NodeStatus] = Number(r.n);
      return counts;
    },
    modify(refs, change) {
      return transaction(async (tx) => {
        const found: (Node | undefined)[] = [];
        for (const ref of refs) found.push(await findIn(tx, ref));
        const { writes, api } = collector();
        const result = await change(found, api);
        return { result, writes };
      });
    },
    update(change) {
      return transaction(async (tx) => {
        const { rows } = await tx.query<NodeRow>('SELECT node FROM nodes ORDER BY hostname');
        const before = rows.map((r) => r.node);
        const draft = structuredClone(before);
        const result = await change(draft);
        const writes = new Map<string, Node | null>();
        const kept = new Set<string>();
        for (const node of draft) {
          writes.set(node.systemId, node);
          kept.add(node.systemId);
        }
        for (const node of before) if (!kept.has(node.systemId)) writes.set(node.systemId, null);
        // Two drafts with one system id: the store keeps one, so say so instead of losing one.
        if (kept.size !== draft.length) {
          const twice = draft.find((n, i) => draft.findIndex((m) => m.systemId === n.systemId) !== i)!;
          throw new UecError('NODE_CONFLICT', `id ${twice.systemId} is already used by ${twice.hostname} (${twice.systemId})`);
        }
        return { result, writes };
      });
    },
    async changesSince(cursor, limit) {
      return changesSince(readTx, cursor, limit);
    },
    async currentCursor() {
      return (await feedState(readTx)).current;
    },
    onChange(fn) {
      listeners.push(fn);
      if (!listening && !closed) listening = startListening().catch(() => undefined);
    },
    async schemaVersion() {
      const rows = await read<{ version: number }>('cannot read the schema version', 'SELECT version FROM schema_version WHERE id = 1');
      return rows[0]?.version ?? 0;
    },
    async resetFollowers(cursor) {
      await transaction(async (tx) => {
        const { current } = await feedState(tx);
        const floor = Math.max(current, cursor) + 1;
        // The next change gets a number above the floor; every older cursor resets.
        await tx.query("SELECT setval(pg_get_serial_sequence('node_changes', 'seq'), $1)", [floor]);
        await tx.query('UPDATE node_feed SET floor = $1 WHERE id = 1', [floor]);
        return { result: undefined, writes: new Map() };
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      await listening;
      await delivering;
      if (listener) await listener.end().catch(() => undefined);
      await pool.end().catch(() => undefined);
    },
  };
}
