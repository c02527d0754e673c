/**
 * A value read from disk at most once per period, for a server's request paths (the roles, the
 * authorized keys: a few small files each request would otherwise read and parse again). An
 * edit is seen within the period, as with the preseed templates (edge/provisioning.ts).
 */

/** How long a read value is kept by default: an admin's edit is seen within a second. */
export const RECENT_MS = 1000;

export interface RecentOptions {
  /** How long a value is kept, in ms (default RECENT_MS). */
  maxAgeMs?: number;
  now?: () => number;
}

/**
 * `load`, called at most once per `maxAgeMs`: calls in between get the value read last (and
 * calls while a read is in flight share it). A failed read is not kept: the next call reads again.
 */
export function createRecentLoader<T>(load: () => Promise<T>, options: RecentOptions = {}): () => Promise<T> {
  const maxAgeMs = options.maxAgeMs ?? RECENT_MS;
  const now = options.now ?? Date.now;
  let kept: { at: number; value: Promise<T> } | null = null;
  return () => {
    const at = now();
    if (kept && at - kept.at < maxAgeMs && at >= kept.at) return kept.value;
    const entry = { at, value: load() };
    kept = entry;
    entry.value.catch(() => {
      if (kept === entry) kept = null;
    });
    return entry.value;
  };
}
