/**
 * An edge's persistent copy of the region's node contexts (issue 14 items 3 and 4), filled by
 * the follower (follower.ts) from the region's change feed, read by the provisioning routes
 * and the configurator (DHCP reservations, per-node boot files), and kept across restarts so
 * the edge serves its machines with the region away.
 *
 * On disk, under EDGE_DIR:
 *   snapshot.json   {"version":1, "line":L, "cursor":C, "synced":bool, "nodes":{id: context}}
 *                   written atomically (temp file, fsync, rename, fsync of the directory)
 *   journal.jsonl   one line per applied feed answer or local change, each with its line
 *                   number: {"n":N, "cursor":C, "reset":false, "changes":[{seq, systemId, context}]}
 *                   appended and fdatasync'd before the change is used
 * Loading reads the snapshot, then replays the journal lines after its line number. A line a
 * kill cut short (no newline at the end) was never acknowledged: it is cut off, and the
 * follower asks again from the cursor before it. Every `compactEvery` lines the snapshot is
 * rewritten and the journal emptied (a crash between the two only leaves lines the snapshot
 * already holds, skipped by their numbers). The cursor is in the same line as its data: a
 * restart continues exactly after the last change that was stored.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { atomicWrite } from '../core/atomic-write';
import { UecError, describeError } from '../core/errors';
import type { NodeContext } from '../contract/context';
import type { ContextChange, ContextFeedBatch } from '../contract/region-api';

export const EDGE_DIR = '/var/lib/uec-provisioning/edge';
const SNAPSHOT = 'snapshot.json';
const JOURNAL = 'journal.jsonl';

export interface EdgeCache {
  /** The feed cursor the stored data is at (0: nothing yet). */
  cursor(): number;
  /** True once a first answer of the feed was stored: from then on a node absent here is unknown. */
  synced(): boolean;
  /** The region's settings digest the contexts were built with ('' before the first answer). */
  settings(): string;
  get(systemId: string): NodeContext | undefined;
  /** By a lower-case MAC. */
  byMac(mac: string): NodeContext | undefined;
  /** Every cached context, by hostname then system id. */
  list(): NodeContext[];
  /** Store one answer of the feed (durably), then use it. A reset replaces everything. */
  applyBatch(batch: ContextFeedBatch): Promise<void>;
  /** A change made here (a call-back taken with the region away), stored like a feed change; the cursor stays. */
  applyLocal(systemId: string, change: (context: NodeContext) => NodeContext): Promise<NodeContext | undefined>;
  /** Called after each stored change, with the system ids it touched; `reset`: everything was replaced (nodes may be gone unnamed). */
  onChange(listener: (systemIds: readonly string[], reset: boolean) => void): void;
  close(): Promise<void>;
}

interface Snapshot {
  version: 1;
  line: number;
  cursor: number;
  synced: boolean;
  settings?: string;
  nodes: Record<string, NodeContext>;
}

interface JournalLine {
  n: number;
  cursor: number;
  reset: boolean;
  settings?: string;
  changes: ContextChange[];
}

function fail(message: string, cause?: unknown): UecError {
  return new UecError('STORE_FAILED', message, cause === undefined ? undefined : { cause });
}

/** Pure: the entries of a journal's complete lines (text up to its last newline). */
export function parseJournal(text: string, where: string): JournalLine[] {
  const lines: JournalLine[] = [];
  let at = 0;
  for (const raw of text.split('\n')) {
    at++;
    if (raw === '') continue;
    let line: JournalLine;
    try {
      line = JSON.parse(raw) as JournalLine;
    } catch (err) {
      throw fail(`edge cache journal ${where} line ${at} is not JSON: ${describeError(err)}`, err);
    }
    if (typeof line.n !== 'number' || typeof line.cursor !== 'number' || !Array.isArray(line.changes)) throw fail(`edge cache journal ${where} line ${at} is not a journal entry`);
    lines.push(line);
  }
  return lines;
}

/** The bytes of a file up to and including its last newline, and the whole file's length. */
export async function readWholeLines(file: string): Promise<{ text: string; keep: number; size: number }> {
  let data: Buffer;
  try {
    data = await fs.promises.readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { text: '', keep: 0, size: 0 };
    throw fail(`cannot read ${file}: ${describeError(err)}`, err);
  }
  const keep = data.lastIndexOf(0x0a) + 1;
  return { text: data.subarray(0, keep).toString('utf8'), keep, size: data.length };
}

/**
 * The cached contexts as they are on disk, read only (nothing truncated, nothing locked): for a
 * command on the edge host (`uec-provisioning apply`) while `serve` may be writing. A journal
 * line being written is not yet whole and is left out, as loadEdgeCache would.
 */
export async function readEdgeContexts(dir: string): Promise<NodeContext[]> {
  const cache = await loadParts(dir);
  return [...cache.nodes.values()].sort((a, b) => a.hostname.localeCompare(b.hostname) || a.system_id.localeCompare(b.system_id));
}

async function loadParts(dir: string): Promise<{ nodes: Map<string, NodeContext>; cursor: number; synced: boolean; line: number; settings: string; journalLines: number; whole: { keep: number; size: number } }> {
  const snapshotFile = path.join(dir, SNAPSHOT);
  const journalFile = path.join(dir, JOURNAL);
  let snapshot: Snapshot = { version: 1, line: 0, cursor: 0, synced: false, nodes: {} };
  try {
    const parsed = JSON.parse(await fs.promises.readFile(snapshotFile, 'utf8')) as Snapshot;
    if (parsed.version !== 1 || typeof parsed.nodes !== 'object' || parsed.nodes === null) throw fail(`edge cache ${snapshotFile} is not a version 1 snapshot`);
    snapshot = parsed;
  } catch (err) {
    if (err instanceof UecError) throw err;
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fail(`cannot read edge cache ${snapshotFile}: ${describeError(err)}`, err);
  }
  const parts = { nodes: new Map<string, NodeContext>(Object.entries(snapshot.nodes)), cursor: snapshot.cursor, synced: snapshot.synced, line: snapshot.line, settings: snapshot.settings ?? '', journalLines: 0 };
  const whole = await readWholeLines(journalFile);
  for (const entry of parseJournal(whole.text, journalFile)) {
    parts.journalLines++;
    if (entry.n > parts.line) applyEntry(parts, entry);
  }
  return { ...parts, whole };
}

/** One journal entry onto the loaded state. */
function applyEntry(parts: { nodes: Map<string, NodeContext>; cursor: number; synced: boolean; line: number; settings: string }, entry: JournalLine): void {
  if (entry.reset) parts.nodes.clear();
  for (const change of entry.changes) {
    if (change.context) parts.nodes.set(change.systemId, change.context);
    else parts.nodes.delete(change.systemId);
  }
  parts.cursor = entry.cursor;
  parts.synced = true;
  parts.line = entry.n;
  if (entry.settings !== undefined) parts.settings = entry.settings;
}

export async function loadEdgeCache(dir: string, options: { compactEvery?: number } = {}): Promise<EdgeCache> {
  const compactEvery = options.compactEvery ?? 1000;
  const snapshotFile = path.join(dir, SNAPSHOT);
  const journalFile = path.join(dir, JOURNAL);
  await fs.promises.mkdir(dir, { recursive: true, mode: 0o700 });

  const parts = await loadParts(dir);
  const { nodes, whole } = parts;
  let { cursor, synced, line, settings, journalLines } = parts;
  const apply = (entry: JournalLine) => {
    const state = { nodes, cursor, synced, line, settings };
    applyEntry(state, entry);
    ({ cursor, synced, line, settings } = state);
  };
  const journal = await fs.promises.open(journalFile, 'a+', 0o600);
  // A line cut short by a kill: cut it off, so the next line starts on its own.
  if (whole.keep !== whole.size) {
    await journal.truncate(whole.keep);
    await journal.sync();
  }

  const macs = new Map<string, string>();
  const index = () => {
    macs.clear();
    for (const [id, c] of nodes) for (const mac of c.macs ?? []) macs.set(mac, id);
  };
  index();
  const listeners: ((ids: readonly string[], reset: boolean) => void)[] = [];
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(work: () => Promise<T>): Promise<T> => {
    const run = queue.then(work);
    queue = run.catch(() => undefined);
    return run;
  };

  async function writeSnapshot(): Promise<void> {
    const data: Snapshot = { version: 1, line, cursor, synced, settings, nodes: Object.fromEntries(nodes) };
    try {
      await atomicWrite(snapshotFile, `${JSON.stringify(data)}\n`, { mode: 0o600 });
      await journal.truncate(0);
      await journal.sync();
    } catch (err) {
      throw fail(`cannot write edge cache ${snapshotFile}: ${describeError(err)}`, err);
    }
    journalLines = 0;
  }

  async function store(entry: Omit<JournalLine, 'n'>): Promise<void> {
    const full: JournalLine = { n: line + 1, ...entry };
    if (entry.reset) {
      // A full reload: the new set is the snapshot; the journal starts again.
      const before = { nodes: new Map(nodes), cursor, synced, line, settings };
      apply(full);
      try {
        await writeSnapshot();
      } catch (err) {
        nodes.clear();
        for (const [k, v] of before.nodes) nodes.set(k, v);
        ({ cursor, synced, line, settings } = before);
        throw err;
      }
    } else {
      try {
        await journal.write(`${JSON.stringify(full)}\n`);
        await journal.datasync();
      } catch (err) {
        throw fail(`cannot append to edge cache ${journalFile}: ${describeError(err)}`, err);
      }
      apply(full);
      journalLines++;
      if (journalLines >= compactEvery) await writeSnapshot();
    }
    index();
    const ids = entry.changes.map((c) => c.systemId);
    for (const listener of listeners) listener(ids, entry.reset);
  }

  return {
    cursor: () => cursor,
    synced: () => synced,
    settings: () => settings,
    get: (systemId) => nodes.get(systemId),
    byMac: (mac) => {
      const id = macs.get(mac);
      return id === undefined ? undefined : nodes.get(id);
    },
    list: () => [...nodes.values()].sort((a, b) => a.hostname.localeCompare(b.hostname) || a.system_id.localeCompare(b.system_id)),
    applyBatch: (batch) =>
      serial(async () => {
        const sameSettings = batch.settings === undefined || batch.settings === settings;
        if (!batch.reset && batch.cursor === cursor && batch.changes.length === 0 && sameSettings && synced) return;
        await store({ cursor: batch.cursor, reset: batch.reset, changes: batch.changes, ...(batch.settings !== undefined ? { settings: batch.settings } : {}) });
      }),
    applyLocal: (systemId, change) =>
      serial(async () => {
        const current = nodes.get(systemId);
        if (!current) return undefined;
        const next = change(structuredClone(current));
        if (JSON.stringify(next) === JSON.stringify(current)) return current;
        await store({ cursor, reset: false, changes: [{ seq: 0, systemId, context: next }] });
        return next;
      }),
    onChange: (listener) => void listeners.push(listener),
    close: () => serial(() => journal.close()),
  };
}
