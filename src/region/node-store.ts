/**
 * Where the region keeps its nodes. One small interface (list, find, update) and one
 * implementation: a JSON file under /var/lib/uec-provisioning, replaced atomically on every
 * change, so a kill -9 at any moment leaves either the old or the new store, never a mix.
 * Writers take an exclusive lock file (file-lock.ts: created by link(2) with the holder's pid
 * already inside; a dead holder's lock is taken over, by one writer at a time), so the CLI,
 * the services and the web UI can change nodes at the same time.
 */
import * as fs from 'node:fs';
import { atomicWrite } from '../core/atomic-write';
import { UecError, describeError } from '../core/errors';
import { createFileLock } from '../core/file-lock';
import { checkNode, describeNodeProblem, findConflict, parseMac, type Node } from '../contract/node';
import type { Paths } from '../core/paths';

export const NODES_FILE = '/var/lib/uec-provisioning/nodes.json';

export interface NodeStore {
  /** Every node, sorted by hostname. */
  list(): Promise<Node[]>;
  /** A node by system id, hostname or MAC (any MAC spelling), or undefined. */
  find(ref: string): Promise<Node | undefined>;
  /**
   * Read-modify-write under the lock: `change` gets a copy of all nodes to edit in place.
   * If the result breaks an invariant (duplicate MAC, hostname, address) NODE_CONFLICT is
   * thrown and nothing is written. Nothing changed → nothing written.
   */
  update<T>(change: (nodes: Node[]) => T | Promise<T>): Promise<T>;
  /** Called after each write that changed something. */
  onChange(listener: (nodes: readonly Node[]) => void | Promise<void>): void;
}

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
  let mac: string;
  try {
    mac = parseMac(ref);
  } catch {
    return undefined;
  }
  return nodes.find((n) => n.macs.includes(mac));
}

interface StoreFile {
  version: 1;
  nodes: Node[];
}

export interface FileNodeStoreOptions {
  /** How long a writer waits for the lock before STORE_FAILED. */
  lockTimeoutMs?: number;
  /** Tests only: runs after a writer judged the lock stale, before it takes it over. */
  beforeTakeover?: () => Promise<void>;
}

function sortNodes(nodes: Node[]): Node[] {
  return nodes.sort((a, b) => a.hostname.localeCompare(b.hostname) || a.systemId.localeCompare(b.systemId));
}

function parseStoreFile(text: string, where: string): Node[] {
  let data: StoreFile;
  try {
    data = JSON.parse(text) as StoreFile;
  } catch (err) {
    throw new UecError('STORE_FAILED', `node store ${where} is not valid JSON: ${describeError(err)}`, { cause: err });
  }
  if (!data || data.version !== 1 || !Array.isArray(data.nodes)) {
    throw new UecError('STORE_FAILED', `node store ${where} is not a version 1 node store`);
  }
  return data.nodes;
}

export function createFileNodeStore(paths: Paths, options: FileNodeStoreOptions = {}): NodeStore {
  const file = paths.resolve(NODES_FILE);
  const where = paths.systemPathOf(file);
  const fileLock = createFileLock(file, {
    what: `node store ${where}`,
    fail: (message, cause) => new UecError('STORE_FAILED', message, { cause }),
    timeoutMs: options.lockTimeoutMs,
    beforeTakeover: options.beforeTakeover,
  });
  const listeners: ((nodes: readonly Node[]) => void | Promise<void>)[] = [];
  let cache: { key: string; nodes: Node[] } | undefined;
  let queue: Promise<unknown> = Promise.resolve();

  /** The nodes on disk; parsed again only when the file changed (the services read a lot). */
  async function read(): Promise<Node[]> {
    let stat: fs.Stats;
    try {
      stat = await fs.promises.stat(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new UecError('STORE_FAILED', `cannot read node store ${where}: ${describeError(err)}`, { cause: err });
    }
    const key = `${stat.ino}:${stat.size}:${stat.mtimeMs}`;
    if (cache?.key === key) return cache.nodes;
    let text: string;
    try {
      text = await fs.promises.readFile(file, 'utf8');
    } catch (err) {
      throw new UecError('STORE_FAILED', `cannot read node store ${where}: ${describeError(err)}`, { cause: err });
    }
    const nodes = parseStoreFile(text, where);
    cache = { key, nodes };
    return nodes;
  }

  async function updateLocked<T>(change: (nodes: Node[]) => T | Promise<T>): Promise<T> {
    let written: Node[] | undefined;
    const result = await fileLock.withLock(async () => {
      const before = await read();
      const beforeText = JSON.stringify(before);
      const draft = JSON.parse(beforeText) as Node[];
      const out = await change(draft);
      sortNodes(draft);
      const afterText = JSON.stringify(draft);
      if (afterText !== JSON.stringify(sortNodes([...before]))) {
        // The one validator, for every new or changed node: whoever wrote it (CLI, CSV import,
        // web API, enlistment), nothing a renderer would refuse is stored. Unchanged nodes an
        // older version stored are left alone, so they do not block unrelated changes.
        const old = new Map(before.map((n) => [n.systemId, JSON.stringify(n)]));
        for (const node of draft) {
          if (old.get(node.systemId) === JSON.stringify(node)) continue;
          const problem = checkNode(node);
          if (problem) throw new UecError('INVALID_VALUE', `${describeNodeProblem(node, problem)}; nothing was stored`);
        }
        const conflict = findConflict(draft);
        if (conflict) throw new UecError('NODE_CONFLICT', conflict);
        await fileLock.sweepTemps();
        const data: StoreFile = { version: 1, nodes: draft };
        try {
          await atomicWrite(file, `${JSON.stringify(data, null, 1)}\n`, { mode: 0o600 });
        } catch (err) {
          throw new UecError('STORE_FAILED', `cannot write node store ${where}: ${describeError(err)}; it is unchanged`, { cause: err });
        }
        written = draft;
      }
      return out;
    });
    if (written) for (const listener of listeners) await listener(written);
    return result;
  }

  return {
    async list() {
      return sortNodes(structuredClone(await read()));
    },
    async find(ref) {
      const node = selectNode(await read(), ref);
      return node ? structuredClone(node) : undefined;
    },
    update<T>(change: (nodes: Node[]) => T | Promise<T>): Promise<T> {
      // One writer at a time inside this process too; the lock file covers other processes.
      const run = queue.then(() => updateLocked(change));
      queue = run.catch(() => undefined);
      return run;
    },
    onChange(listener) {
      listeners.push(listener);
    },
  };
}
