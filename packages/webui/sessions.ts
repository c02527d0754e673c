/**
 * Login sessions (in memory: a restart of the service logs everyone out) and the login
 * throttle. A session holds the user's password generation; the caller compares it with the
 * account file, so a password change ends older sessions.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';

export interface Session {
  id: string;
  user: string;
  generation: number;
  /** Sent back in X-CSRF-Token (or the _csrf form field) with every state change. */
  csrf: string;
  expiresAt: number;
}

export interface SessionTable {
  open(user: string, generation: number): Session;
  /** The live session of a cookie value, its lifetime extended; undefined when unknown or expired. */
  get(id: string): Session | undefined;
  close(id: string): void;
  /** End every session of a user (password change, user removed). */
  closeUser(user: string): void;
  size(): number;
}

export function createSessionTable(lifetimeMs: number, now: () => number = Date.now): SessionTable {
  const sessions = new Map<string, Session>();
  const sweep = () => {
    const t = now();
    for (const [id, s] of sessions) if (s.expiresAt <= t) sessions.delete(id);
  };
  return {
    open(user, generation) {
      if (sessions.size > 10_000) sweep();
      const session: Session = { id: randomBytes(24).toString('base64url'), user, generation, csrf: randomBytes(24).toString('base64url'), expiresAt: now() + lifetimeMs };
      sessions.set(session.id, session);
      return session;
    },
    get(id) {
      const session = sessions.get(id);
      if (!session) return undefined;
      if (session.expiresAt <= now()) {
        sessions.delete(id);
        return undefined;
      }
      session.expiresAt = now() + lifetimeMs;
      return session;
    },
    close(id) {
      sessions.delete(id);
    },
    closeUser(user) {
      for (const [id, s] of sessions) if (s.user === user) sessions.delete(id);
    },
    size: () => sessions.size,
  };
}

export function csrfMatches(presented: string | undefined, expected: string): boolean {
  if (!presented) return false;
  const a = Buffer.from(presented);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Failed logins, counted so that a stranger cannot lock the admin out (issue 13, item 7).
 *
 * - Per (account, client address): the first `attempts` failures cost nothing; then each
 *   further attempt waits 1 s, 2 s, 4 s … after the last failure, at most 5 minutes. A
 *   record is forgotten 15 minutes after its last failure, and a success clears it.
 * - Per client address, across accounts (password spraying): after `4 × attempts` failures
 *   within 15 minutes the address waits until the oldest of them is 15 minutes old.
 *
 * Nothing is counted per account alone: failures from address X never delay the same
 * account logging in from address Y. The address is the socket peer, or behind a trusted
 * proxy the client the proxy saw (client-address.ts).
 */
export interface LoginThrottle {
  /** Seconds until `account` may try again from `client`, or 0. */
  retryAfter(account: string, client: string): number;
  fail(account: string, client: string): void;
  /** A successful login clears the (account, client) record; the address's count stays. */
  succeed(account: string, client: string): void;
}

export interface ThrottleLimits {
  /** Failures per (account, address) before the backoff starts (webui.login_attempts). */
  attempts: number;
  /** The first wait; it doubles with every further failure. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** Failures per address within windowMs, across accounts. */
  addressFailures: number;
  windowMs: number;
}

export function throttleLimits(attempts: number): ThrottleLimits {
  return { attempts, baseDelayMs: 1000, maxDelayMs: 5 * 60_000, addressFailures: 4 * attempts, windowMs: 15 * 60_000 };
}

/** The wait after `failures` failures of one (account, address), in ms from the last one (pure). */
export function selectBackoffMs(failures: number, limits: ThrottleLimits): number {
  if (failures < limits.attempts) return 0;
  const exponent = Math.min(failures - limits.attempts, 30);
  return Math.min(limits.baseDelayMs * 2 ** exponent, limits.maxDelayMs);
}

export function createLoginThrottle(limits: ThrottleLimits, now: () => number = Date.now): LoginThrottle {
  const pairs = new Map<string, { failures: number; last: number }>();
  const addresses = new Map<string, number[]>();
  const pairKey = (account: string, client: string) => JSON.stringify([account, client]);
  const pair = (key: string) => {
    const record = pairs.get(key);
    if (record && now() - record.last >= limits.windowMs) {
      pairs.delete(key);
      return undefined;
    }
    return record;
  };
  const recent = (client: string): number[] => {
    const cutoff = now() - limits.windowMs;
    const list = (addresses.get(client) ?? []).filter((t) => t > cutoff);
    if (list.length === 0) addresses.delete(client);
    else addresses.set(client, list);
    return list;
  };
  const sweep = () => {
    for (const key of [...pairs.keys()]) pair(key);
    for (const client of [...addresses.keys()]) recent(client);
  };
  return {
    retryAfter(account, client) {
      let waitMs = 0;
      const record = pair(pairKey(account, client));
      if (record) waitMs = record.last + selectBackoffMs(record.failures, limits) - now();
      const list = recent(client);
      if (list.length >= limits.addressFailures) waitMs = Math.max(waitMs, list[list.length - limits.addressFailures]! + limits.windowMs - now());
      return waitMs > 0 ? Math.ceil(waitMs / 1000) : 0;
    },
    fail(account, client) {
      if (pairs.size + addresses.size > 100_000) sweep();
      const key = pairKey(account, client);
      const record = pair(key);
      pairs.set(key, { failures: (record?.failures ?? 0) + 1, last: now() });
      addresses.set(client, [...recent(client), now()]);
    },
    succeed(account, client) {
      pairs.delete(pairKey(account, client));
    },
  };
}
