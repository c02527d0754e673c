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
 * Failed logins per key (user name, client address) in a sliding window. After `limit`
 * failures a key is refused until its oldest failure leaves the window; a success clears the
 * user's key.
 */
export interface LoginThrottle {
  /** Seconds until another attempt is allowed for any of the keys, or 0. */
  retryAfter(keys: string[]): number;
  fail(keys: string[]): void;
  succeed(keys: string[]): void;
}

export function createLoginThrottle(limit: number, windowMs: number, now: () => number = Date.now): LoginThrottle {
  const failures = new Map<string, number[]>();
  const recent = (key: string): number[] => {
    const cutoff = now() - windowMs;
    const list = (failures.get(key) ?? []).filter((t) => t > cutoff);
    if (list.length === 0) failures.delete(key);
    else failures.set(key, list);
    return list;
  };
  return {
    retryAfter(keys) {
      let wait = 0;
      for (const key of keys) {
        const list = recent(key);
        if (list.length >= limit) wait = Math.max(wait, Math.ceil((list[list.length - limit]! + windowMs - now()) / 1000));
      }
      return wait;
    },
    fail(keys) {
      if (failures.size > 100_000) failures.clear();
      for (const key of keys) failures.set(key, [...recent(key), now()]);
    },
    succeed(keys) {
      for (const key of keys) failures.delete(key);
    },
  };
}
