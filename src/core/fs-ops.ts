import { execFile } from 'node:child_process';
import * as fs from 'node:fs';

/**
 * The one module through which the product changes files. Tests swap single operations
 * (to inject EACCES or ENOSPC) with `withFsFault` and check that nothing was lost.
 */
export interface FsOps {
  readFile(path: string): Promise<Buffer>;
  open(path: string, flags: string, mode: number): Promise<fs.promises.FileHandle>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  mkdir(path: string, mode: number): Promise<void>;
  chmod(path: string, mode: number): Promise<void>;
  chown(path: string, uid: number, gid: number): Promise<void>;
  stat(path: string): Promise<fs.Stats>;
  readdir(path: string): Promise<string[]>;
  fsyncDir(path: string): Promise<void>;
  /** Flush every filesystem's dirty data to disk (sync(2), through coreutils' sync). */
  syncAll(): Promise<void>;
}

const real: FsOps = {
  readFile: (p) => fs.promises.readFile(p),
  open: (p, flags, mode) => fs.promises.open(p, flags, mode),
  rename: (a, b) => fs.promises.rename(a, b),
  unlink: (p) => fs.promises.unlink(p),
  mkdir: async (p, mode) => {
    await fs.promises.mkdir(p, { recursive: true, mode });
  },
  chmod: (p, mode) => fs.promises.chmod(p, mode),
  chown: (p, uid, gid) => fs.promises.chown(p, uid, gid),
  stat: (p) => fs.promises.stat(p),
  readdir: (p) => fs.promises.readdir(p),
  fsyncDir: async (p) => {
    const handle = await fs.promises.open(p, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
  syncAll: () =>
    new Promise<void>((resolve, reject) => {
      execFile('sync', [], { timeout: 600_000 }, (err) => (err ? reject(err) : resolve()));
    }),
};

let current: FsOps = real;

export function fsOps(): FsOps {
  return current;
}

/** Run `body` with some operations replaced; the real ones come back afterwards. */
export async function withFsFault<T>(overrides: Partial<FsOps>, body: () => Promise<T>): Promise<T> {
  const saved = current;
  current = { ...real, ...overrides };
  try {
    return await body();
  } finally {
    current = saved;
  }
}

/** Contents of a file, or null when it does not exist. Other errors propagate. */
export async function readFileIfExists(path: string): Promise<Buffer | null> {
  try {
    return await current.readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

export async function statIfExists(path: string): Promise<fs.Stats | null> {
  try {
    return await current.stat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}
