/**
 * Where the region keeps its nodes: the NodeStore interface (issue 14), which the embedded
 * backend below and the PostgreSQL backend implement and test/src/node-store-suite.ts checks.
 *
 * The embedded backend keeps two files under /var/lib/uec-provisioning (docs/node-store.md):
 *   nodes.json     a snapshot: {"version":2,"seq":S,"nodes":[ one node per line ]}, replaced
 *                  atomically (temp file, fsync, rename) at compaction only;
 *   nodes.journal  one JSON line per committed transaction, appended and fsynced: an array of
 *                  changes {seq, systemId, node or null}. Lines with seq <= S are skipped.
 * Each process keeps an index in memory (system id, hostname, MAC, IPv4 → node, a list sorted by
 * hostname, counts per status) built once from the snapshot and advanced by reading only the
 * journal's new bytes (one stat per read), so a commit of another process is seen at once and
 * no read parses or copies the whole store. Writers take the lock file (file-lock.ts) and append
 * one line per transaction; the writers of one process that queue while a commit is in progress
 * are committed together (one lock, one append, one fdatasync: see runBatch). A line without
 * its newline (kill -9 mid-append) is ignored by readers and cut by the next writer, so a
 * transaction is stored whole or not at all. When the journal outgrows the
 * snapshot, the writer writes a new snapshot and starts an empty journal; seq continues. A
 * version 1 nodes.json (one JSON document, rewritten on every change) is read as the snapshot
 * of seq 1 and rewritten as version 2 by the first writer.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { StringDecoder } from 'node:string_decoder';
import { atomicWrite } from '../core/atomic-write';
import { UecError, describeError } from '../core/errors';
import { createFileLock } from '../core/file-lock';
import { fsOps } from '../core/fs-ops';
import { NODE_STATUSES, checkNode, describeNodeProblem, parseMac, type Node, type NodeStatus } from '../contract/node';
import type { Paths } from '../core/paths';

export const NODES_FILE = '/var/lib/uec-provisioning/nodes.json';
export const NODES_JOURNAL = '/var/lib/uec-provisioning/nodes.journal';

/** One committed change: the node as it now is, or null when it was removed. */
export interface NodeChange { seq: number; systemId: string; node: Node | null }

/** What `changesSince` answers. `reset`: the cursor is older than what the store keeps (or from
 *  another store): the follower must reload everything (`list()`) and continue from `cursor`. */
export interface ChangeBatch { changes: NodeChange[]; cursor: number; reset: boolean }

export interface NodeQuery {
  /** Default 0. */
  offset?: number;
  /** Default 100, at most 1000. */
  limit?: number;
  status?: NodeStatus;
  /** Case-insensitive substring of hostname, system id, MAC or IPv4. */
  search?: string;
}

/** Inside one `modify`: the writes of one transaction. */
export interface NodeWrites {
  /** Insert or replace by systemId. */
  put(node: Node): void;
  remove(systemId: string): void;
}

export interface NodeStore {
  /** Every node, sorted by hostname. O(N): for export and a full apply, never a request path. */
  list(): Promise<Node[]>;
  /** A node by system id, hostname or MAC (any spelling); indexed, O(1)/O(log N). */
  find(ref: string): Promise<Node | undefined>;
  /** One page, sorted by hostname then system id, and the total matching. */
  page(query: NodeQuery): Promise<{ nodes: Node[]; total: number }>;
  /** Nodes per status, every status present (zeros included). */
  countByStatus(): Promise<Record<NodeStatus, number>>;
  /**
   * One transaction over the named nodes only: `change` gets copies of the nodes the refs
   * name (undefined for a ref that names none) and a NodeWrites; it may put/remove any nodes.
   * All or none: if `change` throws, or a put breaks a rule (checkNode → INVALID_VALUE; a MAC,
   * hostname or IPv4 already another node's → NODE_CONFLICT, enforced by the store's indexes /
   * the database's unique constraints, not by scanning), nothing is stored. Writes only the
   * nodes put/removed; puts equal to what is stored are no change. Serialised with every other
   * writer in any process.
   */
  modify<T>(refs: readonly string[], change: (found: (Node | undefined)[], writes: NodeWrites) => T | Promise<T>): Promise<T>;
  /** Legacy whole-store read-modify-write (bulk import); O(N). Same rules as modify. */
  update<T>(change: (nodes: Node[]) => T | Promise<T>): Promise<T>;
  /** Committed changes after `cursor` (0 = from the start), oldest first, at most `limit`. */
  changesSince(cursor: number, limit: number): Promise<ChangeBatch>;
  /** The cursor of the latest committed change. */
  currentCursor(): Promise<number>;
  /** Called after each commit that changed something, in this process, with what changed. */
  onChange(listener: (changes: readonly NodeChange[]) => void | Promise<void>): void;
  /**
   * Make every cursor up to max(this store's, `cursor`) reset: the next change gets a higher
   * number, and followers of another store's feed (`region migrate`) or of this store's past
   * reload everything instead of reading changes they never saw.
   */
  resetFollowers(cursor: number): Promise<void>;
  /** Release files, connections, listeners. */
  close(): Promise<void>;
}

/**
 * The embedded store's on-disk version, read synchronously (two stats): it changes whenever any
 * process commits (the journal grows) or compacts (the snapshot is replaced). For caches keyed
 * on "the store is unchanged".
 */
export function readStoreVersion(paths: Paths): string {
  const version = (file: string): string => {
    try {
      const s = fs.statSync(file);
      return `${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
    } catch {
      return 'none';
    }
  };
  return `${version(paths.resolve(NODES_FILE))} ${version(paths.resolve(NODES_JOURNAL))}`;
}

export const PAGE_LIMIT_DEFAULT = 100;
export const PAGE_LIMIT_MAX = 1000;

/** A node by reference, or NODE_UNKNOWN. */
export async function getNode(store: NodeStore, ref: string): Promise<Node> {
  const node = await store.find(ref);
  if (!node) throw new UecError('NODE_UNKNOWN', `no node ${JSON.stringify(ref)} (give a system id, hostname or MAC)`);
  return node;
}

/** Match a reference against a list: system id, hostname, then MAC. */
export function selectNode(nodes: readonly Node[], ref: string): Node | undefined {
  const byId = nodes.find((n) => n.systemId === ref || n.hostname === ref.toLowerCase());
  if (byId) return byId;
  const mac = selectMac(ref);
  return mac === undefined ? undefined : nodes.find((n) => n.macs.includes(mac));
}

/** The MAC a reference spells, or undefined when it is not one. */
function selectMac(ref: string): string | undefined {
  try {
    return parseMac(ref);
  } catch {
    return undefined;
  }
}

/** The order of list() and page(): hostname, then system id, by code unit (as COLLATE "C"). */
export function compareNodes(a: Pick<Node, 'hostname' | 'systemId'>, b: Pick<Node, 'hostname' | 'systemId'>): number {
  if (a.hostname !== b.hostname) return a.hostname < b.hostname ? -1 : 1;
  if (a.systemId !== b.systemId) return a.systemId < b.systemId ? -1 : 1;
  return 0;
}

/** The page bounds a query asks for, clamped: offset >= 0, 1 <= limit <= 1000. */
export function selectPageBounds(query: NodeQuery): { offset: number; limit: number } {
  const offset = Math.max(0, Math.floor(query.offset ?? 0)) || 0;
  const limit = Math.min(PAGE_LIMIT_MAX, Math.max(1, Math.floor(query.limit ?? PAGE_LIMIT_DEFAULT) || PAGE_LIMIT_DEFAULT));
  return { offset, limit };
}

/** Does a node match a query's status and search (pure; both backends' meaning of search). */
export function selectQueryMatch(node: Pick<Node, 'hostname' | 'systemId' | 'macs' | 'ipv4' | 'status'>, query: NodeQuery): boolean {
  if (query.status && node.status !== query.status) return false;
  const needle = query.search?.trim().toLowerCase();
  if (!needle) return true;
  return node.hostname.includes(needle) || node.systemId.toLowerCase().includes(needle) || node.macs.some((m) => m.includes(needle)) || (node.ipv4 !== '' && node.ipv4.includes(needle));
}

export interface FileNodeStoreOptions {
  /** How long a writer waits for the lock before STORE_FAILED. */
  lockTimeoutMs?: number;
  /** Tests only: runs after a writer judged the lock stale, before it takes it over. */
  beforeTakeover?: () => Promise<void>;
  /** Compact when the journal is larger than the snapshot and than this (default 64 KiB). */
  compactMinBytes?: number;
}

/** What the index keeps of a node: the keys, and the node as JSON (parsed only when asked for). */
interface Entry {
  systemId: string;
  hostname: string;
  macs: string[];
  ipv4: string;
  status: NodeStatus;
  json: string;
}

/** The file identity a process last read. */
interface FileMark { ino: number; size: number; mtimeMs: number }

interface JournalLine { first: number; last: number; offset: number; length: number }

interface State {
  seq: number;
  snapshotSeq: number;
  /** The snapshot is version 1 (migrated by the first writer). */
  snapshotV1: boolean;
  snapshot: FileMark | null;
  journal: FileMark | null;
  /** Bytes of the journal applied (the end of its last complete line). */
  journalOffset: number;
  lines: JournalLine[];
  byId: Map<string, Entry>;
  byHostname: Map<string, Entry>;
  byMac: Map<string, Entry>;
  byIPv4: Map<string, Entry>;
  sorted: Entry[];
  counts: Record<NodeStatus, number>;
}

function emptyState(): State {
  return {
    seq: 0,
    snapshotSeq: 0,
    snapshotV1: false,
    snapshot: null,
    journal: null,
    journalOffset: 0,
    lines: [],
    byId: new Map(),
    byHostname: new Map(),
    byMac: new Map(),
    byIPv4: new Map(),
    sorted: [],
    counts: Object.fromEntries(NODE_STATUSES.map((s) => [s, 0])) as Record<NodeStatus, number>,
  };
}

function entryOf(node: Node): Entry {
  const json = JSON.stringify(node);
  return {
    systemId: String(node.systemId),
    hostname: String(node.hostname),
    macs: Array.isArray(node.macs) ? node.macs.map(String) : [],
    ipv4: typeof node.ipv4 === 'string' ? node.ipv4 : '',
    status: node.status,
    json,
  };
}

/** Index of the first entry not before `key` in the sorted list. */
function lowerBound(sorted: readonly Entry[], key: Pick<Node, 'hostname' | 'systemId'>): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareNodes(sorted[mid]!, key) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function unindex(state: State, entry: Entry): void {
  state.byId.delete(entry.systemId);
  if (state.byHostname.get(entry.hostname) === entry) state.byHostname.delete(entry.hostname);
  for (const mac of entry.macs) if (state.byMac.get(mac) === entry) state.byMac.delete(mac);
  if (entry.ipv4 && state.byIPv4.get(entry.ipv4) === entry) state.byIPv4.delete(entry.ipv4);
  state.counts[entry.status] = (state.counts[entry.status] ?? 1) - 1;
}

function index(state: State, entry: Entry): void {
  state.byId.set(entry.systemId, entry);
  state.byHostname.set(entry.hostname, entry);
  for (const mac of entry.macs) state.byMac.set(mac, entry);
  if (entry.ipv4) state.byIPv4.set(entry.ipv4, entry);
  state.counts[entry.status] = (state.counts[entry.status] ?? 0) + 1;
}

/** Apply one change to the index (and the sorted list). */
function applyChange(state: State, systemId: string, node: Node | null): void {
  const old = state.byId.get(systemId);
  if (old) {
    unindex(state, old);
    const at = lowerBound(state.sorted, old);
    if (state.sorted[at] === old) state.sorted.splice(at, 1);
  }
  if (node) {
    const entry = entryOf(node);
    index(state, entry);
    state.sorted.splice(lowerBound(state.sorted, entry), 0, entry);
  }
}

/** At most this many transactions in one batch: the lock is held while their bodies run. */
const BATCH_MAX = 500;

const V2_HEADER = /^\{"version":2,"seq":(\d+),"nodes":\[$/;

export function createFileNodeStore(paths: Paths, options: FileNodeStoreOptions = {}): NodeStore {
  const file = paths.resolve(NODES_FILE);
  const journalFile = paths.resolve(NODES_JOURNAL);
  const dir = path.dirname(file);
  const where = paths.systemPathOf(file);
  const journalWhere = paths.systemPathOf(journalFile);
  const compactMinBytes = options.compactMinBytes ?? 64 * 1024;
  const fileLock = createFileLock(file, {
    what: `node store ${where}`,
    fail: (message, cause) => new UecError('STORE_FAILED', message, { cause }),
    timeoutMs: options.lockTimeoutMs,
    beforeTakeover: options.beforeTakeover,
  });
  let listeners: ((changes: readonly NodeChange[]) => void | Promise<void>)[] = [];
  let state: State | null = null;
  let writers: Promise<unknown> = Promise.resolve();
  let readers: Promise<unknown> = Promise.resolve();
  let closed = false;

  const failRead = (err: unknown, what = where): UecError =>
    err instanceof UecError ? err : new UecError('STORE_FAILED', `cannot read node store ${what}: ${describeError(err)}`, { cause: err });

  /** One at a time per store: refreshing and committing change the index. */
  function exclusive<T>(action: () => Promise<T>): Promise<T> {
    const run = readers.then(action);
    readers = run.catch(() => undefined);
    return run;
  }

  async function statMark(target: string): Promise<FileMark | null> {
    try {
      const st = await fs.promises.stat(target);
      return { ino: st.ino, size: st.size, mtimeMs: st.mtimeMs };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw failRead(err);
    }
  }

  const sameMark = (a: FileMark | null, b: FileMark | null): boolean =>
    a === b || (a !== null && b !== null && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs);

  /** Read the snapshot into a fresh state (version 2 streamed line by line; version 1 whole). */
  async function loadSnapshot(): Promise<State> {
    const fresh = emptyState();
    let handle: fs.promises.FileHandle;
    try {
      handle = await fs.promises.open(file, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return fresh;
      throw failRead(err);
    }
    // Each node is indexed as soon as it is parsed, so the parsed objects do not pile up.
    const load = (node: Node): void => {
      if (!node || typeof node !== 'object' || typeof node.systemId !== 'string') throw new UecError('STORE_FAILED', `node store ${where} holds an entry that is not a node`);
      const entry = entryOf(node);
      const old = fresh.byId.get(entry.systemId);
      if (old) unindex(fresh, old);
      index(fresh, entry);
    };
    try {
      const st = await handle.stat();
      fresh.snapshot = { ino: st.ino, size: st.size, mtimeMs: st.mtimeMs };
      const decoder = new StringDecoder('utf8');
      const buffer = Buffer.alloc(1024 * 1024);
      let pending = '';
      let header: RegExpExecArray | null | undefined;
      let ended = false;
      let whole: string | null = null;
      for (;;) {
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
        const text = bytesRead > 0 ? decoder.write(buffer.subarray(0, bytesRead)) : decoder.end();
        if (whole !== null) {
          whole += text;
          if (bytesRead === 0) break;
          continue;
        }
        if (header === undefined && !(pending + text).startsWith('{"version":2,"seq":'.slice(0, (pending + text).length))) {
          // Not a streamed version 2 snapshot (a version 1 store, often one long line): read it whole.
          whole = pending + text;
          pending = '';
          header = null;
          if (bytesRead === 0) break;
          continue;
        }
        pending += text;
        const lines = pending.split('\n');
        pending = bytesRead > 0 ? lines.pop()! : '';
        for (const line of lines) {
          if (header === undefined) {
            header = V2_HEADER.exec(line);
            if (!header) break;
            fresh.snapshotSeq = Number(header[1]);
            continue;
          }
          if (ended) {
            if (line.trim() !== '') throw new UecError('STORE_FAILED', `node store ${where} has data after its end`);
            continue;
          }
          if (line === ']}') {
            ended = true;
            continue;
          }
          load(JSON.parse(line.endsWith(',') ? line.slice(0, -1) : line) as Node);
        }
        if (header === null) {
          // Not a streamed version 2 snapshot: one JSON document (version 1, or 2 written by hand).
          whole = lines.join('\n') + (bytesRead > 0 ? `\n${pending}` : pending);
          pending = '';
          if (bytesRead === 0) break;
          continue;
        }
        if (bytesRead === 0) break;
      }
      if (whole !== null || header === undefined) {
        const parsed = parseStoreDocument(whole ?? '');
        whole = null;
        for (const node of parsed.nodes) load(node);
        fresh.snapshotSeq = parsed.seq;
        fresh.snapshotV1 = parsed.version === 1;
      } else if (!ended) {
        throw new UecError('STORE_FAILED', `node store ${where} is cut short (no closing "]}")`);
      }
    } catch (err) {
      if (err instanceof SyntaxError) throw new UecError('STORE_FAILED', `node store ${where} is not valid JSON: ${describeError(err)}`, { cause: err });
      throw failRead(err);
    } finally {
      await handle.close();
    }
    fresh.sorted = [...fresh.byId.values()].sort(compareNodes);
    fresh.seq = fresh.snapshotSeq;
    return fresh;
  }

  function parseStoreDocument(text: string): { version: 1 | 2; seq: number; nodes: Node[] } {
    let data: { version?: unknown; seq?: unknown; nodes?: unknown };
    try {
      data = JSON.parse(text) as typeof data;
    } catch (err) {
      throw new UecError('STORE_FAILED', `node store ${where} is not valid JSON: ${describeError(err)}`, { cause: err });
    }
    if (!data || !Array.isArray(data.nodes) || (data.version !== 1 && !(data.version === 2 && Number.isSafeInteger(data.seq) && (data.seq as number) >= 0))) {
      throw new UecError('STORE_FAILED', `node store ${where} is not a version 1 or 2 node store`);
    }
    const nodes = data.nodes as Node[];
    // A version 1 store is the snapshot of seq 1 (0 when empty), so cursor 0 is older than it.
    return data.version === 1 ? { version: 1, seq: nodes.length > 0 ? 1 : 0, nodes } : { version: 2, seq: data.seq as number, nodes };
  }

  /** Bring the index up to date with the files: new journal bytes only, unless a snapshot was written. */
  async function refresh(): Promise<State> {
    if (closed) throw new UecError('STORE_FAILED', `node store ${where} is closed`);
    for (let attempt = 0; ; attempt++) {
      const snapshot = await statMark(file);
      if (!state || !sameMark(snapshot, state.snapshot)) state = await loadSnapshot();
      const current: State = state;
      const journal = await statMark(journalFile);
      const seen = current.journal;
      if (journal === null ? current.journalOffset > 0 : seen !== null && (journal.ino !== seen.ino || journal.size < current.journalOffset || (journal.size === seen.size && journal.mtimeMs !== seen.mtimeMs))) {
        // The journal was replaced or rewritten under the same snapshot (by hand, or a restore):
        // read everything again. (A compaction replaces the snapshot first.)
        state = null;
        if (attempt < 3) continue;
        throw new UecError('STORE_FAILED', `node store ${where}: the journal ${journalWhere} keeps changing under its snapshot`);
      }
      if (journal === null || (seen && sameMark(journal, seen))) return current;
      const gap = await readJournal(current, journal);
      if (!gap) return current;
      // A compaction happened between our two stats: the snapshot holds what we missed.
      state = null;
      if (attempt >= 3) throw new UecError('STORE_FAILED', `node store ${where}: the journal ${journalWhere} does not follow its snapshot (seq ${current.seq})`);
    }
  }

  /** Apply the journal's complete lines after the offset; true when a seq is missing (reload). */
  async function readJournal(current: State, mark: FileMark): Promise<boolean> {
    let handle: fs.promises.FileHandle;
    try {
      handle = await fs.promises.open(journalFile, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return current.journalOffset > 0;
      throw failRead(err, journalWhere);
    }
    try {
      const st = await handle.stat();
      if (st.ino !== mark.ino) return true;
      const length = st.size - current.journalOffset;
      const bytes = Buffer.alloc(Math.max(0, length));
      let got = 0;
      while (got < length) {
        const { bytesRead } = await handle.read(bytes, got, length - got, current.journalOffset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      let start = 0;
      for (;;) {
        const end = bytes.indexOf(10, start);
        if (end < 0 || end >= got) break;
        const offset = current.journalOffset + start;
        let changes: NodeChange[];
        try {
          changes = JSON.parse(bytes.toString('utf8', start, end)) as NodeChange[];
          if (!Array.isArray(changes) || changes.length === 0) throw new Error('not a list of changes');
        } catch (err) {
          throw new UecError('STORE_FAILED', `node store journal ${journalWhere} has a broken line at byte ${offset}: ${describeError(err)}`, { cause: err });
        }
        const first = changes[0]!.seq;
        const last = changes[changes.length - 1]!.seq;
        if (last > current.seq) {
          if (first > current.seq + 1) return true;
          for (const change of changes) {
            if (change.seq <= current.seq) continue;
            applyChange(current, change.systemId, change.node);
            current.seq = change.seq;
          }
        }
        current.lines.push({ first, last, offset, length: end + 1 - start });
        start = end + 1;
      }
      current.journalOffset += start;
      // The mark remembers the size seen; a torn tail (no newline yet) is read again next time.
      current.journal = { ino: st.ino, size: current.journalOffset === st.size ? st.size : -1, mtimeMs: st.mtimeMs };
      return false;
    } finally {
      await handle.close();
    }
  }

  /** Pending changes of one batch's earlier transactions, overlaid on the index (not stored yet). */
  interface Overlay {
    byId: Map<string, Entry | null>;
    byHostname: Map<string, Entry>;
    byMac: Map<string, Entry>;
    byIPv4: Map<string, Entry>;
  }

  const emptyOverlay = (): Overlay => ({ byId: new Map(), byHostname: new Map(), byMac: new Map(), byIPv4: new Map() });

  /** A node by system id as the batch sees it: its pending version, else the stored one. */
  function overlaidById(current: State, overlay: Overlay, systemId: string): Entry | undefined {
    return overlay.byId.has(systemId) ? (overlay.byId.get(systemId) ?? undefined) : current.byId.get(systemId);
  }

  /** The owner of a key as the batch sees it: a pending node that has it, else the stored owner unless it is pending. */
  function overlaidByKey(current: State, overlay: Overlay, kind: 'byHostname' | 'byMac' | 'byIPv4', key: string): Entry | undefined {
    const pending = overlay[kind].get(key);
    if (pending) return pending;
    const owner = current[kind].get(key);
    return owner && !overlay.byId.has(owner.systemId) ? owner : undefined;
  }

  function selectEntry(current: State, ref: string, overlay: Overlay = emptyOverlay()): Entry | undefined {
    const byId = overlaidById(current, overlay, ref) ?? overlaidByKey(current, overlay, 'byHostname', ref.toLowerCase());
    if (byId) return byId;
    const mac = selectMac(ref);
    return mac === undefined ? undefined : overlaidByKey(current, overlay, 'byMac', mac);
  }

  const parseEntry = (entry: Entry): Node => JSON.parse(entry.json) as Node;

  /**
   * Check a transaction's writes against the index and the batch's earlier transactions, and
   * add them to the overlay. Returns the changes to store, [] when nothing changed; throws
   * (and leaves the overlay as it was) when a put breaks a rule.
   */
  function stage(current: State, overlay: Overlay, writes: Map<string, Node | null>, seq: number): NodeChange[] {
    const changed: { systemId: string; node: Node | null; json: string | null }[] = [];
    for (const [systemId, node] of writes) {
      const old = overlaidById(current, overlay, systemId);
      if (node === null) {
        if (old) changed.push({ systemId, node: null, json: null });
        continue;
      }
      const json = JSON.stringify(node);
      if (old && old.json === json) continue;
      // The one validator, for every new or changed node: whoever wrote it (CLI, CSV import,
      // web API, enlistment), nothing a renderer would refuse is stored.
      const problem = checkNode(node);
      if (problem) throw new UecError('INVALID_VALUE', `${describeNodeProblem(node, problem)}; nothing was stored`);
      changed.push({ systemId, node, json });
    }
    if (changed.length === 0) return [];
    // Uniqueness through the indexes: a key is free when nobody has it, or when its owner is
    // changed by this same transaction (then its new keys are checked here instead).
    const touched = new Set(changed.map((c) => c.systemId));
    const claimed = new Map<string, string>();
    for (const { node } of changed) {
      if (!node) continue;
      const label = `${node.hostname} (${node.systemId})`;
      const keys: [string, Entry | undefined][] = [[`hostname ${node.hostname}`, overlaidByKey(current, overlay, 'byHostname', node.hostname)]];
      for (const mac of node.macs) keys.push([`MAC ${mac}`, overlaidByKey(current, overlay, 'byMac', mac)]);
      if (node.ipv4) keys.push([`address ${node.ipv4}`, overlaidByKey(current, overlay, 'byIPv4', node.ipv4)]);
      for (const [key, owner] of keys) {
        if (owner && !touched.has(owner.systemId)) throw new UecError('NODE_CONFLICT', `${key} is already used by ${owner.hostname} (${owner.systemId})`);
        const other = claimed.get(key);
        if (other !== undefined) throw new UecError('NODE_CONFLICT', `${key} is already used by ${other}`);
        claimed.set(key, label);
      }
    }
    for (const c of changed) {
      const before = overlaidById(current, overlay, c.systemId);
      if (before && overlay.byId.get(c.systemId) === before) {
        if (overlay.byHostname.get(before.hostname) === before) overlay.byHostname.delete(before.hostname);
        for (const mac of before.macs) if (overlay.byMac.get(mac) === before) overlay.byMac.delete(mac);
        if (before.ipv4 && overlay.byIPv4.get(before.ipv4) === before) overlay.byIPv4.delete(before.ipv4);
      }
      const entry = c.node ? entryOf(c.node) : null;
      overlay.byId.set(c.systemId, entry);
      if (entry) {
        overlay.byHostname.set(entry.hostname, entry);
        for (const mac of entry.macs) overlay.byMac.set(mac, entry);
        if (entry.ipv4) overlay.byIPv4.set(entry.ipv4, entry);
      }
    }
    return changed.map((c) => ({ seq: ++seq, systemId: c.systemId, node: c.node }));
  }

  /** A transaction's journal line. */
  const renderLine = (changes: readonly NodeChange[]): string =>
    `[${changes.map((c) => `{"seq":${c.seq},"systemId":${JSON.stringify(c.systemId)},"node":${c.node ? JSON.stringify(c.node) : 'null'}}`).join(',')}]\n`;

  /**
   * Store a batch's transactions (holding the lock, index up to date): one append of their
   * lines, one fdatasync, then the index advanced. On failure nothing is stored or indexed.
   */
  async function commit(current: State, staged: readonly NodeChange[][]): Promise<void> {
    if (current.snapshotV1) await writeSnapshot(current, current.seq, current.sorted);
    const lines = staged.map(renderLine);
    await appendJournal(current, lines.join(''));
    staged.forEach((stored, i) => {
      const length = Buffer.byteLength(lines[i]!);
      for (const c of stored) applyChange(current, c.systemId, c.node);
      current.seq = stored[stored.length - 1]!.seq;
      current.lines.push({ first: stored[0]!.seq, last: current.seq, offset: current.journalOffset, length });
      current.journalOffset += length;
    });
    const mark = await statMark(journalFile);
    current.journal = mark && mark.size === current.journalOffset ? mark : null;
    if (current.journalOffset > Math.max(compactMinBytes, current.snapshot?.size ?? 0)) {
      // Committed already: a failed compaction leaves a longer journal; the next writer tries again.
      await writeSnapshot(current, current.seq, current.sorted).catch(() => undefined);
    }
  }

  /** Append one line, fsynced; a torn tail a killed writer left is cut first. On failure, cut back. */
  async function appendJournal(current: State, line: string): Promise<void> {
    const ops = fsOps();
    let created = false;
    let handle: fs.promises.FileHandle | undefined;
    try {
      await ops.mkdir(dir, 0o755);
      await fileLock.sweepTemps();
      for (const name of await fs.promises.readdir(dir)) {
        if (name.startsWith(`.${path.basename(journalFile)}.`) && name.endsWith('.tmp')) await fs.promises.rm(path.join(dir, name), { force: true });
      }
      const existing = await statMark(journalFile);
      created = existing === null;
      handle = await ops.open(journalFile, 'a', 0o600);
      if (existing && existing.size !== current.journalOffset) await handle.truncate(current.journalOffset);
      await handle.writeFile(line);
      await handle.datasync();
      await handle.close();
      handle = undefined;
      if (created) await ops.fsyncDir(dir);
    } catch (err) {
      await handle?.close().catch(() => undefined);
      await fs.promises.truncate(journalFile, current.journalOffset).catch(() => undefined);
      throw new UecError('STORE_FAILED', `cannot write node store ${where} (journal ${journalWhere}): ${describeError(err)}; it is unchanged`, { cause: err });
    }
  }

  /** A new snapshot at `seq`, then an empty journal (readers skip journal lines the snapshot holds). */
  async function writeSnapshot(current: State, seq: number, entries: readonly Entry[]): Promise<void> {
    const ops = fsOps();
    await ops.mkdir(dir, 0o755);
    const temp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
    let renamed = false;
    try {
      const handle = await ops.open(temp, 'wx', 0o600);
      try {
        await handle.chmod(0o600);
        let chunk = `{"version":2,"seq":${seq},"nodes":[\n`;
        for (let i = 0; i < entries.length; i++) {
          chunk += entries[i]!.json + (i + 1 < entries.length ? ',\n' : '\n');
          if (chunk.length > 1024 * 1024) {
            await handle.write(chunk);
            chunk = '';
          }
        }
        await handle.write(`${chunk}]}\n`);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await ops.rename(temp, file);
      renamed = true;
      await ops.fsyncDir(dir);
    } catch (err) {
      throw new UecError('STORE_FAILED', `cannot write node store ${where}: ${describeError(err)}; it is unchanged`, { cause: err });
    } finally {
      if (!renamed) await ops.unlink(temp).catch(() => undefined);
    }
    const st = await fs.promises.stat(file);
    current.snapshot = { ino: st.ino, size: st.size, mtimeMs: st.mtimeMs };
    current.snapshotSeq = seq;
    current.snapshotV1 = false;
    if (current.journalOffset > 0 || (await statMark(journalFile)) !== null) {
      await atomicWrite(journalFile, '', { mode: 0o600 });
      current.journal = await statMark(journalFile);
    }
    current.journalOffset = 0;
    current.lines = [];
  }

  /** A transaction waiting for its batch. `solo`: it reads the whole index, so it runs in a batch of its own. */
  interface Transaction {
    body: (current: State, overlay: Overlay) => Promise<{ result: unknown; writes: Map<string, Node | null> }>;
    solo: boolean;
    resolve: (result: unknown) => void;
    reject: (err: unknown) => void;
  }

  /** The batch that writers join until it starts (null: the next writer opens one). */
  let open: Transaction[] | null = null;

  /**
   * Group commit: the transactions queued in this process while a batch is being written form
   * the next batch, which takes the lock once, runs each body in order (each sees the earlier
   * ones' writes; one that throws or breaks a rule fails alone and leaves no trace), appends all
   * their lines with one fdatasync, then runs each one's listeners and answers it, in order.
   * A failed append fails the whole batch and stores none of it.
   */
  async function runBatch(batch: readonly Transaction[]): Promise<void> {
    if (open === batch) open = null;
    const outcomes: ({ ok: true; result: unknown; changes: NodeChange[] } | { ok: false; err: unknown })[] = [];
    try {
      await fileLock.withLock(async () => {
        const current = await exclusive(refresh);
        const seq = current.seq;
        const overlay = emptyOverlay();
        const staged: NodeChange[][] = [];
        let next = seq;
        for (const tx of batch) {
          try {
            const out = await tx.body(current, overlay);
            const changes = stage(current, overlay, out.writes, next);
            if (changes.length > 0) {
              staged.push(changes);
              next = changes[changes.length - 1]!.seq;
            }
            outcomes.push({ ok: true, result: out.result, changes });
          } catch (err) {
            outcomes.push({ ok: false, err });
          }
        }
        if (staged.length === 0) return;
        await exclusive(async () => {
          const now = await refresh();
          if (now !== current || now.seq !== seq) throw new UecError('STORE_FAILED', `node store ${where} changed while this process held its lock; nothing was stored`);
          await commit(current, staged);
        });
      });
    } catch (err) {
      // The lock or the append failed: every transaction of the batch fails (one that had
      // failed on its own, with its own error), none was stored.
      for (const [i, tx] of batch.entries()) {
        const outcome = outcomes[i];
        tx.reject(outcome && !outcome.ok ? outcome.err : err);
      }
      return;
    }
    for (const [i, tx] of batch.entries()) {
      const outcome = outcomes[i]!;
      if (!outcome.ok) {
        tx.reject(outcome.err);
        continue;
      }
      try {
        if (outcome.changes.length > 0) {
          const copies = outcome.changes.map((c) => ({ ...c, node: c.node ? (JSON.parse(JSON.stringify(c.node)) as Node) : null }));
          for (const listener of listeners) await listener(copies);
        }
        tx.resolve(outcome.result);
      } catch (err) {
        tx.reject(err);
      }
    }
  }

  /** Queue a transaction for the next batch (one writer at a time across processes: the lock). */
  function write<T>(solo: boolean, body: Transaction['body']): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const tx: Transaction = { body, solo, resolve: resolve as (result: unknown) => void, reject };
      if (!solo && open !== null && open.length < BATCH_MAX) {
        open.push(tx);
        return;
      }
      const batch = [tx];
      open = solo ? null : batch;
      writers = writers.then(() => runBatch(batch)).catch(() => undefined);
    });
  }

  const read = (): Promise<State> => exclusive(refresh);

  return {
    async list() {
      return (await read()).sorted.map(parseEntry);
    },
    async find(ref) {
      const entry = selectEntry(await read(), ref);
      return entry ? parseEntry(entry) : undefined;
    },
    async page(query) {
      const current = await read();
      const { offset, limit } = selectPageBounds(query);
      if (!query.status && !query.search?.trim()) {
        return { nodes: current.sorted.slice(offset, offset + limit).map(parseEntry), total: current.sorted.length };
      }
      const nodes: Node[] = [];
      let total = 0;
      for (const entry of current.sorted) {
        if (!selectQueryMatch(entry, query)) continue;
        if (total >= offset && nodes.length < limit) nodes.push(parseEntry(entry));
        total++;
      }
      return { nodes, total };
    },
    async countByStatus() {
      const counts = (await read()).counts;
      return Object.fromEntries(NODE_STATUSES.map((s) => [s, counts[s] ?? 0])) as Record<NodeStatus, number>;
    },
    modify<T>(refs: readonly string[], change: (found: (Node | undefined)[], writes: NodeWrites) => T | Promise<T>) {
      return write<T>(false, async (current, overlay) => {
        const found = refs.map((ref) => {
          const entry = selectEntry(current, ref, overlay);
          return entry ? parseEntry(entry) : undefined;
        });
        const writes = new Map<string, Node | null>();
        const result = await change(found, {
          put(node) {
            writes.delete(node.systemId);
            writes.set(node.systemId, JSON.parse(JSON.stringify(node)) as Node);
          },
          remove(systemId) {
            writes.delete(systemId);
            writes.set(systemId, null);
          },
        });
        return { result, writes };
      });
    },
    update<T>(change: (nodes: Node[]) => T | Promise<T>) {
      return write<T>(true, async (current) => {
        const draft = current.sorted.map(parseEntry);
        const result = await change(draft);
        const writes = new Map<string, Node | null>();
        for (const node of draft) {
          const other = writes.get(node.systemId);
          if (other) throw new UecError('NODE_CONFLICT', `id ${node.systemId} is already used by ${other.hostname} (${other.systemId})`);
          writes.set(node.systemId, node);
        }
        for (const systemId of current.byId.keys()) if (!writes.has(systemId)) writes.set(systemId, null);
        return { result, writes };
      });
    },
    resetFollowers(cursor) {
      // A new snapshot at the floor and an empty journal: a cursor below it is older than the
      // snapshot, so changesSince answers reset. Later writers form a batch after it.
      open = null;
      const run = writers.then(() =>
        fileLock.withLock(() =>
          exclusive(async () => {
            const current = await refresh();
            const floor = Math.max(current.seq, Number.isSafeInteger(cursor) ? cursor : 0) + 1;
            await writeSnapshot(current, floor, current.sorted);
            current.seq = floor;
          }),
        ),
      );
      writers = run.catch(() => undefined);
      return run;
    },
    async changesSince(cursor, limit) {
      const current = await read();
      const max = Math.max(1, Math.floor(limit) || 1);
      if (cursor === current.seq) return { changes: [], cursor, reset: false };
      if (!Number.isSafeInteger(cursor) || cursor < current.snapshotSeq || cursor > current.seq) return { changes: [], cursor: current.seq, reset: true };
      const lines = current.lines;
      let lo = 0;
      let hi = lines.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (lines[mid]!.last <= cursor) lo = mid + 1;
        else hi = mid;
      }
      const changes: NodeChange[] = [];
      let handle: fs.promises.FileHandle | undefined;
      try {
        handle = await fs.promises.open(journalFile, 'r');
        if ((await handle.stat()).ino !== current.journal?.ino) return { changes: [], cursor: current.seq, reset: true };
        for (let i = lo; i < lines.length && changes.length < max; i++) {
          const line = lines[i]!;
          const bytes = Buffer.alloc(line.length);
          await handle.read(bytes, 0, line.length, line.offset);
          for (const change of JSON.parse(bytes.toString('utf8')) as NodeChange[]) {
            if (change.seq > cursor && changes.length < max) changes.push(change);
          }
        }
      } catch (err) {
        // Compacted away under us: the follower reloads.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' || err instanceof SyntaxError) return { changes: [], cursor: current.seq, reset: true };
        throw failRead(err, journalWhere);
      } finally {
        await handle?.close();
      }
      return { changes, cursor: changes.length > 0 ? changes[changes.length - 1]!.seq : cursor, reset: false };
    },
    async currentCursor() {
      return (await read()).seq;
    },
    onChange(listener) {
      listeners.push(listener);
    },
    async close() {
      closed = true;
      listeners = [];
      state = null;
    },
  };
}
