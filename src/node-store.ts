/**
 * Where the region keeps its nodes. One small interface (list, find, update) and one
 * implementation: a JSON file under /var/lib/uec-provisioning, replaced atomically on every
 * change, so a kill -9 at any moment leaves either the old or the new store, never a mix.
 * Writers take an exclusive lock file (created by link(2) with the holder's pid already inside;
 * a dead holder's lock is taken over, by one writer at a time), so the CLI, the services and the web UI can change nodes at the same time.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { atomicWrite } from './atomic-write';
import { UecError, describeError } from './errors';
import { fsOps } from './fs-ops';
import { findConflict, parseMac, type Node } from './node';
import type { Paths } from './paths';

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

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The pid in a lock file; NaN when it is missing or unreadable. */
async function lockHolder(lockFile: string): Promise<number> {
  return Number.parseInt(await fs.promises.readFile(lockFile, 'utf8').catch(() => ''), 10);
}

/** A lock whose writer is gone (never this process: another store of ours may hold it). */
function holderDead(holder: number): boolean {
  return Number.isInteger(holder) && holder > 0 && holder !== process.pid && !processAlive(holder);
}

export function createFileNodeStore(paths: Paths, options: FileNodeStoreOptions = {}): NodeStore {
  const file = paths.resolve(NODES_FILE);
  const where = paths.systemPathOf(file);
  const lockFile = `${file}.lock`;
  const takeoverFile = `${file}.lock.takeover`;
  const lockTimeoutMs = options.lockTimeoutMs ?? 10_000;
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

  async function lock(): Promise<void> {
    const deadline = Date.now() + lockTimeoutMs;
    await fsOps().mkdir(path.dirname(file), 0o755);
    for (let attempt = 0; ; attempt++) {
      // The lock appears with the holder's pid already inside (written to a temp file, then
      // hard-linked into place), so a kill -9 can never leave an empty lock nobody can take over.
      const temp = path.join(path.dirname(file), `.${path.basename(file)}.lock.${process.pid}.${attempt}.tmp`);
      try {
        await fs.promises.writeFile(temp, `${process.pid}\n`, { mode: 0o600 });
        await fs.promises.link(temp, lockFile);
        return;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // ENOENT: a writer's temp sweep removed our temp file before the link; try again.
        if (code !== 'EEXIST' && code !== 'ENOENT') {
          throw new UecError('STORE_FAILED', `cannot lock node store ${where}: ${describeError(err)}`, { cause: err });
        }
      } finally {
        await fs.promises.rm(temp, { force: true });
      }
      const holder = await lockHolder(lockFile);
      if (holderDead(holder)) {
        // The holder died (kill -9): its write either happened completely or not at all.
        await options.beforeTakeover?.();
        if (await takeOver(attempt)) continue;
      }
      if (Date.now() > deadline) {
        throw new UecError('STORE_FAILED', `node store ${where} is locked by process ${Number.isNaN(holder) ? '?' : holder} for over ${lockTimeoutMs} ms`);
      }
      await sleep(Math.min(2 + attempt * 2, 25));
    }
  }

  /**
   * Remove a dead writer's lock. Writers that found it stale at the same moment take turns
   * (the takeover file, made like the lock), and each looks again before removing: one that
   * came second sees the first one's live lock and leaves it.
   */
  async function takeOver(attempt: number): Promise<boolean> {
    const temp = path.join(path.dirname(file), `.${path.basename(file)}.takeover.${process.pid}.${attempt}.tmp`);
    try {
      await fs.promises.writeFile(temp, `${process.pid}\n`, { mode: 0o600 });
      await fs.promises.link(temp, takeoverFile);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST' && code !== 'ENOENT') throw new UecError('STORE_FAILED', `cannot lock node store ${where}: ${describeError(err)}`, { cause: err });
      // Another writer is taking over. Killed right there, it leaves its takeover file stale too.
      if (code === 'EEXIST' && holderDead(await lockHolder(takeoverFile))) await fs.promises.rm(takeoverFile, { force: true });
      return false;
    } finally {
      await fs.promises.rm(temp, { force: true });
    }
    try {
      if (!holderDead(await lockHolder(lockFile))) return false;
      await fs.promises.rm(lockFile, { force: true });
      return true;
    } finally {
      await fs.promises.rm(takeoverFile, { force: true });
    }
  }

  async function unlock(): Promise<void> {
    await fs.promises.rm(lockFile, { force: true });
  }

  async function sweepTemps(): Promise<void> {
    const base = path.basename(file);
    const dir = path.dirname(file);
    for (const name of await fs.promises.readdir(dir).catch(() => [] as string[])) {
      if (name.startsWith(`.${base}.`) && name.endsWith('.tmp')) await fs.promises.rm(path.join(dir, name), { force: true });
    }
  }

  async function updateLocked<T>(change: (nodes: Node[]) => T | Promise<T>): Promise<T> {
    await lock();
    let written: Node[] | undefined;
    let result: T;
    try {
      const before = await read();
      const beforeText = JSON.stringify(before);
      const draft = JSON.parse(beforeText) as Node[];
      result = await change(draft);
      sortNodes(draft);
      const afterText = JSON.stringify(draft);
      if (afterText !== JSON.stringify(sortNodes([...before]))) {
        const conflict = findConflict(draft);
        if (conflict) throw new UecError('NODE_CONFLICT', conflict);
        await sweepTemps();
        const data: StoreFile = { version: 1, nodes: draft };
        try {
          await atomicWrite(file, `${JSON.stringify(data, null, 1)}\n`, { mode: 0o600 });
        } catch (err) {
          throw new UecError('STORE_FAILED', `cannot write node store ${where}: ${describeError(err)}; it is unchanged`, { cause: err });
        }
        written = draft;
      }
    } finally {
      await unlock();
    }
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
