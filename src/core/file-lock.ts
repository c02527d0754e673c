/**
 * A cross-process lock beside a state file that several processes rewrite (the node store,
 * the web UI's accounts): FILE.lock, created by link(2) with the holder's pid already inside,
 * so a kill -9 never leaves an empty lock nobody can take over. A dead holder's lock is
 * taken over by one waiter at a time (FILE.lock.takeover, made the same way). Callers do
 * their read-modify-write inside withLock; one process should also queue its own writers,
 * since a live lock of this process is never taken over.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describeError, type UecError } from './errors';
import { fsOps } from './fs-ops';

export interface FileLockOptions {
  /** The file as named in errors, e.g. "node store /var/lib/uec-provisioning/nodes.json". */
  what: string;
  /** The error to throw (a stable code of the caller's kind). */
  fail: (message: string, cause?: unknown) => UecError;
  /** How long a writer waits for the lock before failing. */
  timeoutMs?: number;
  /** Tests only: runs after a writer judged the lock stale, before it takes it over. */
  beforeTakeover?: () => Promise<void>;
  /** Mode of the directory when it has to be created. */
  dirMode?: number;
}

export interface FileLock {
  /** Run `action` holding the lock; the lock is released however it ends. */
  withLock<T>(action: () => Promise<T>): Promise<T>;
  /** Remove temp files (.FILE.*.tmp) a killed writer left; call while holding the lock. */
  sweepTemps(): Promise<void>;
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

export function createFileLock(file: string, options: FileLockOptions): FileLock {
  const dir = path.dirname(file);
  const base = path.basename(file);
  const lockFile = `${file}.lock`;
  const takeoverFile = `${file}.lock.takeover`;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const { what, fail } = options;

  async function lock(): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    await fsOps().mkdir(dir, options.dirMode ?? 0o755);
    for (let attempt = 0; ; attempt++) {
      // The lock appears with the holder's pid already inside (written to a temp file, then
      // hard-linked into place).
      const temp = path.join(dir, `.${base}.lock.${process.pid}.${attempt}.tmp`);
      try {
        await fs.promises.writeFile(temp, `${process.pid}\n`, { mode: 0o600 });
        await fs.promises.link(temp, lockFile);
        return;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // ENOENT: a writer's temp sweep removed our temp file before the link; try again.
        if (code !== 'EEXIST' && code !== 'ENOENT') throw fail(`cannot lock ${what}: ${describeError(err)}`, err);
      } finally {
        await fs.promises.rm(temp, { force: true });
      }
      const holder = await lockHolder(lockFile);
      if (holderDead(holder)) {
        // The holder died (kill -9): its write either happened completely or not at all.
        await options.beforeTakeover?.();
        if (await takeOver(attempt)) continue;
      }
      if (Date.now() > deadline) throw fail(`${what} is locked by process ${Number.isNaN(holder) ? '?' : holder} for over ${timeoutMs} ms`);
      await sleep(Math.min(2 + attempt * 2, 25));
    }
  }

  /**
   * Remove a dead writer's lock. Writers that found it stale at the same moment take turns
   * (the takeover file, made like the lock), and each looks again before removing: one that
   * came second sees the first one's live lock and leaves it.
   */
  async function takeOver(attempt: number): Promise<boolean> {
    const temp = path.join(dir, `.${base}.takeover.${process.pid}.${attempt}.tmp`);
    try {
      await fs.promises.writeFile(temp, `${process.pid}\n`, { mode: 0o600 });
      await fs.promises.link(temp, takeoverFile);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST' && code !== 'ENOENT') throw fail(`cannot lock ${what}: ${describeError(err)}`, err);
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

  return {
    async withLock<T>(action: () => Promise<T>): Promise<T> {
      await lock();
      try {
        return await action();
      } finally {
        await fs.promises.rm(lockFile, { force: true });
      }
    },
    async sweepTemps() {
      for (const name of await fs.promises.readdir(dir).catch(() => [] as string[])) {
        if (name.startsWith(`.${base}.`) && name.endsWith('.tmp')) await fs.promises.rm(path.join(dir, name), { force: true });
      }
    },
  };
}
