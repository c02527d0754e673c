/**
 * A provisioning server's short memory of "this client owns this node" (node-address.ts), so
 * an installer that fetches its preseed again and again within one deploy is not sent to the
 * region's claim each time. Only what the claim accepted is remembered, for `ttlMs`, keyed by
 * everything the decision rests on that the server sees:
 *
 *   the node's system id and its current token  (a new deploy rotates the token: a miss)
 *   the client's address                         (another address: a miss)
 *   the MAC its neighbour table holds for it     (another machine on that address: a miss)
 *   whether that MAC is a router's
 *
 * A refusal is never remembered: the next request asks the region again. The caller still
 * checks the node's status (from a fresh context) before asking here.
 */
import type { NeighbourEntry } from '../core/neighbours';

/** How long the service remembers an accepted claim: an installer's repeated fetches within one deploy. */
export const OWNERSHIP_TTL_MS = 10_000;

export interface OwnershipCache {
  /** True when this exact ownership was accepted by the region within ttlMs. */
  owns(key: string): boolean;
  /** Remember an accepted ownership (never call it for a refusal). */
  remember(key: string): void;
}

/** Pure: the key of one ownership decision. The token is kept in memory only, never logged. */
export function selectOwnershipKey(systemId: string, token: string, client: string, neighbour: NeighbourEntry | null): string {
  return JSON.stringify([systemId, token, client, neighbour ? neighbour.mac : null, neighbour?.router === true]);
}

export function createOwnershipCache(options: { ttlMs: number; now?: () => number; maxEntries?: number }): OwnershipCache {
  const now = options.now ?? Date.now;
  const max = options.maxEntries ?? 10_000;
  const accepted = new Map<string, number>();
  return {
    owns(key) {
      const at = accepted.get(key);
      if (at === undefined) return false;
      if (now() - at < options.ttlMs) return true;
      accepted.delete(key);
      return false;
    },
    remember(key) {
      if (options.ttlMs <= 0) return;
      if (accepted.size >= max) accepted.clear();
      accepted.set(key, now());
    },
  };
}
