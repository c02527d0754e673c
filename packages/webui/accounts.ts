/**
 * Web UI accounts and API tokens: one JSON file, root-only (0600), replaced atomically.
 * Passwords are scrypt hashes (node:crypto); API tokens are stored as SHA-256 digests, so the
 * file never holds a usable secret. Each user has a generation, raised by every password
 * change: a session remembers the generation it was opened with and stops working after a
 * change, also when the change came from another process (the CLI), since the file is read
 * again whenever it changed on disk. Writers in every process take one lock (src/core/file-lock.ts)
 * and read the file again under it, so no change of another process is lost.
 */
import { createHash, randomBytes, scrypt as scryptCallback, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import * as fs from 'node:fs';
import { atomicWrite } from '../../src/core/atomic-write';
import { UecError, describeError } from '../../src/core/errors';
import { createFileLock } from '../../src/core/file-lock';
import type { Paths } from '../../src/core/paths';

export const ACCOUNTS_FILE = '/var/lib/uec-provisioning/webui/accounts.json';
export const INITIAL_PASSWORD_FILE = '/var/lib/uec-provisioning/webui/initial-admin-password';

export const USER_ROLES = ['admin', 'viewer'] as const;
export type UserRole = (typeof USER_ROLES)[number];

export interface User {
  name: string;
  role: UserRole;
  /** scrypt$N$r$p$salt$hash, base64url parts. */
  hash: string;
  generation: number;
  changedAt: string;
}

export interface ApiToken {
  id: string;
  name: string;
  user: string;
  /** SHA-256 of the secret part, base64url. */
  digest: string;
  createdAt: string;
}

interface AccountsFile {
  version: 1;
  users: User[];
  tokens: ApiToken[];
}

const SCRYPT = { N: 16384, r: 8, p: 1, keylen: 32 };

function scrypt(password: string, salt: Buffer, keylen: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => scryptCallback(password, salt, keylen, options, (err, key) => (err ? reject(err) : resolve(key))));
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, SCRYPT.keylen, { N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p, maxmem: 64 * 1024 * 1024 });
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

const DUMMY_HASH = `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${Buffer.alloc(16).toString('base64url')}$${Buffer.alloc(32).toString('base64url')}`;

/** Constant work whether the hash is real or missing (unknown user). */
export async function verifyPassword(password: string, stored: string | undefined): Promise<boolean> {
  const parts = (stored ?? DUMMY_HASH).split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [, n, r, p, salt, hash] = parts as [string, string, string, string, string, string];
  const expected = Buffer.from(hash, 'base64url');
  const key = await scrypt(password, Buffer.from(salt, 'base64url'), expected.length, { N: Number(n), r: Number(r), p: Number(p), maxmem: 64 * 1024 * 1024 });
  return timingSafeEqual(key, expected) && stored !== undefined;
}

export function checkPassword(password: string): void {
  if (password.length < 8) throw new UecError('ACCOUNT_FAILED', 'a password needs at least 8 characters');
  if (password.length > 1024) throw new UecError('ACCOUNT_FAILED', 'a password may have at most 1024 characters');
}

export function checkUserName(name: string): void {
  if (!/^[a-z][a-z0-9_-]{0,31}$/.test(name)) throw new UecError('ACCOUNT_FAILED', `user name ${JSON.stringify(name)} must be 1-32 lower-case letters, digits, "_" or "-", starting with a letter`);
}

/** A readable random password for the generated admin account (about 120 bits). */
export function generatePassword(): string {
  return randomBytes(15).toString('base64url');
}

/**
 * Remove the generated initial password (`webui user add` without --password-stdin) once
 * the user it belongs to has chosen another: the file names the user first. One unlink
 * (atomic); no other file is touched. True when it was removed.
 */
export async function removeInitialPassword(paths: Paths, name: string): Promise<boolean> {
  const file = paths.resolve(INITIAL_PASSWORD_FILE);
  let text: string;
  try {
    text = await fs.promises.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new UecError('ACCOUNT_FAILED', `the password was changed, but ${INITIAL_PASSWORD_FILE} cannot be read: ${describeError(err)}; remove it by hand`, { cause: err });
  }
  if (text.split(/\s/, 1)[0] !== name) return false;
  try {
    await fs.promises.unlink(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new UecError('ACCOUNT_FAILED', `the password was changed, but ${INITIAL_PASSWORD_FILE} cannot be removed: ${describeError(err)}; remove it by hand`, { cause: err });
  }
  return true;
}

const digestOf = (secret: string): string => createHash('sha256').update(secret).digest('base64url');

export interface AccountStore {
  list(): Promise<User[]>;
  find(name: string): Promise<User | undefined>;
  /** Create a user; ACCOUNT_FAILED when it exists. */
  create(name: string, role: UserRole, password: string): Promise<User>;
  /**
   * Set a password: generation + 1, every session of the user ends, API tokens stay; the
   * generated initial password file goes when it was this user's.
   */
  setPassword(name: string, password: string): Promise<User>;
  /** The user when name and password match, else undefined (same work either way). */
  authenticate(name: string, password: string): Promise<User | undefined>;
  listTokens(user?: string): Promise<ApiToken[]>;
  /** A new token; the full secret is returned once and never stored. */
  createToken(user: string, name: string): Promise<{ token: ApiToken; secret: string }>;
  revokeToken(id: string): Promise<boolean>;
  /** The user a presented API token belongs to. */
  userOfToken(presented: string): Promise<User | undefined>;
}

export function createAccountStore(paths: Paths, now: () => Date = () => new Date()): AccountStore {
  const file = paths.resolve(ACCOUNTS_FILE);
  let cache: { key: string; data: AccountsFile } | undefined;

  async function read(): Promise<AccountsFile> {
    let stat: fs.Stats;
    try {
      stat = await fs.promises.stat(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, users: [], tokens: [] };
      throw new UecError('ACCOUNT_FAILED', `cannot read ${ACCOUNTS_FILE}: ${describeError(err)}`, { cause: err });
    }
    const key = `${stat.ino}:${stat.size}:${stat.mtimeMs}`;
    if (cache?.key === key) return cache.data;
    let data: AccountsFile;
    try {
      data = JSON.parse(await fs.promises.readFile(file, 'utf8')) as AccountsFile;
    } catch (err) {
      throw new UecError('ACCOUNT_FAILED', `cannot read ${ACCOUNTS_FILE}: ${describeError(err)}`, { cause: err });
    }
    if (data?.version !== 1 || !Array.isArray(data.users) || !Array.isArray(data.tokens)) throw new UecError('ACCOUNT_FAILED', `${ACCOUNTS_FILE} is not a version 1 accounts file`);
    cache = { key, data };
    return data;
  }

  // Every writer (the web UI, each `uec-provisioning webui …` command) takes the same
  // cross-process lock as the node store and reads the file again under it.
  const fileLock = createFileLock(file, {
    what: ACCOUNTS_FILE,
    fail: (message, cause) => new UecError('ACCOUNT_FAILED', message, { cause }),
    dirMode: 0o700,
  });
  let queue: Promise<unknown> = Promise.resolve();
  function update<T>(change: (data: AccountsFile) => T | Promise<T>): Promise<T> {
    const run = queue.then(() =>
      fileLock.withLock(async () => {
        const draft = structuredClone(await read());
        const result = await change(draft);
        await fileLock.sweepTemps();
        try {
          await atomicWrite(file, `${JSON.stringify(draft, null, 1)}\n`, { mode: 0o600 });
        } catch (err) {
          throw new UecError('ACCOUNT_FAILED', `cannot write ${ACCOUNTS_FILE}: ${describeError(err)}; it is unchanged`, { cause: err });
        }
        return result;
      }),
    );
    queue = run.catch(() => undefined);
    return run;
  }

  return {
    async list() {
      return structuredClone((await read()).users);
    },
    async find(name) {
      const user = (await read()).users.find((u) => u.name === name);
      return user ? structuredClone(user) : undefined;
    },
    async create(name, role, password) {
      checkUserName(name);
      checkPassword(password);
      if (!(USER_ROLES as readonly string[]).includes(role)) throw new UecError('ACCOUNT_FAILED', `role ${JSON.stringify(role)} is not one of ${USER_ROLES.join(', ')}`);
      const hash = await hashPassword(password);
      return update((data) => {
        if (data.users.some((u) => u.name === name)) throw new UecError('ACCOUNT_FAILED', `user ${name} already exists`);
        const user: User = { name, role, hash, generation: 1, changedAt: now().toISOString() };
        data.users.push(user);
        return structuredClone(user);
      });
    },
    async setPassword(name, password) {
      checkPassword(password);
      const hash = await hashPassword(password);
      const user = await update((data) => {
        const found = data.users.find((u) => u.name === name);
        if (!found) throw new UecError('ACCOUNT_FAILED', `no user ${JSON.stringify(name)}`);
        found.hash = hash;
        found.generation += 1;
        found.changedAt = now().toISOString();
        return structuredClone(found);
      });
      // Only once the new password is on disk: a failed change keeps the initial one readable.
      await removeInitialPassword(paths, name);
      return user;
    },
    async authenticate(name, password) {
      const user = (await read()).users.find((u) => u.name === name);
      const ok = await verifyPassword(password, user?.hash);
      return ok && user ? structuredClone(user) : undefined;
    },
    async listTokens(user) {
      return structuredClone((await read()).tokens.filter((t) => user === undefined || t.user === user));
    },
    async createToken(user, name) {
      // eslint-disable-next-line no-control-regex
      if (!/^[^\u0000-\u001f\u007f]{1,64}$/.test(name)) throw new UecError('ACCOUNT_FAILED', 'a token name needs 1-64 printable characters');
      const id = randomBytes(6).toString('hex');
      const secretPart = randomBytes(24).toString('base64url');
      const token: ApiToken = { id, name, user, digest: digestOf(secretPart), createdAt: now().toISOString() };
      await update((data) => {
        if (!data.users.some((u) => u.name === user)) throw new UecError('ACCOUNT_FAILED', `no user ${JSON.stringify(user)}`);
        data.tokens.push(token);
      });
      return { token: structuredClone(token), secret: `uecp_${id}_${secretPart}` };
    },
    async revokeToken(id) {
      return update((data) => {
        const before = data.tokens.length;
        data.tokens = data.tokens.filter((t) => t.id !== id);
        return data.tokens.length !== before;
      });
    },
    async userOfToken(presented) {
      const m = /^uecp_([0-9a-f]{12})_([A-Za-z0-9_-]{32})$/.exec(presented);
      const data = await read();
      const token = m ? data.tokens.find((t) => t.id === m[1]) : undefined;
      const a = Buffer.from(digestOf(m?.[2] ?? 'x'));
      const b = Buffer.from(token?.digest ?? digestOf('y'));
      const ok = a.length === b.length && timingSafeEqual(a, b);
      if (!ok || !token) return undefined;
      const user = data.users.find((u) => u.name === token.user);
      return user ? structuredClone(user) : undefined;
    },
  };
}
