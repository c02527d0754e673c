/**
 * The preseed fast path's memory: the bytes of the preseed last served for each node, so an
 * installer (or a load test) fetching the same preseed again is answered without routing, a
 * context look-up, a neighbour-table read, a claim or a render (serve.ts calls `recall` before
 * anything else). What a remembered answer rests on, and what makes it unusable:
 *
 *   the node's context and its token   `generation`: bumped by every commit to the node store,
 *                                        of this process or another (serve.ts), so a redeploy,
 *                                        a release or an edit is never answered from here
 *   the templates, roles, archive, keys at most `ttlMs` old (1 s, as the contexts and templates
 *                                        the slow path reuses; the slow path also reloads the
 *                                        configuration); after half of it, the next request is
 *                                        routed to make a fresh answer, the others still recall
 *   the client owns the node              only on a connection the slow path checked (its peer
 *                                        address and the neighbour-table MAC it had then are
 *                                        bound to the connection) or, for a new connection, whose
 *                                        neighbour entry read now is the one the answer was
 *                                        served with: the same peer address and MAC
 *
 * Why per connection: a TCP connection's peer cannot change. Another machine that takes the
 * address (another MAC in the neighbour table) cannot use the first machine's connection (its
 * kernel does not know it and resets it); it opens its own, whose first request reads the
 * neighbour table: another MAC than the answer's sends it the slow path, which asks the region.
 * So an address moved to another MAC is refused exactly as before, and /proc/net/arp is read
 * once per connection, not per request. Addressing whose answers can change within one
 * connection (the tests' fake LAN) is never bound.
 *
 * Another process's commit reaches the generation through inotify (serve.ts), an event the
 * event loop reads like a socket: a request read in the same turn as that event may still get
 * the answer from before the commit, as a request already being answered when a commit lands
 * does on the full path. This process's own commits bump it synchronously.
 */
import type { Socket } from 'node:net';
import type { NeighbourEntry } from '../core/neighbours';
import { createEventRepeatFilter } from '../contract/region-api';

/** How long a remembered preseed is answered from memory: the slow path's reuse of contexts, templates and settings. */
export const PRESEED_MEMO_MS = 1000;

/** One served preseed, as the slow path remembers it. */
export interface RememberedPreseed {
  systemId: string;
  /** The answer's body, and its length as a header value. */
  body: Buffer;
  length: string;
  /** The client it was served to, and its neighbour entry then (null: none, a routed client). */
  client: string;
  neighbour: NeighbourEntry | null;
  /** The store generation read before the context was looked up. */
  generation: number;
  /** The options object (configuration) it was rendered with. */
  options: object;
}

export interface PreseedMemo {
  /** The node store's generation now (read it before looking a context up). */
  generation(): number;
  /** A preseed the slow path served, with the store generation it read first. */
  remember(entry: RememberedPreseed): void;
  /** The ownership the slow path accepted on this connection: its peer and neighbour entry. */
  bindConnection(socket: Socket, client: string, neighbour: NeighbourEntry | null): void;
  /**
   * The remembered answer for this node on this connection, or null (take the slow path). A
   * connection not yet bound is bound here when `neighbourNow` (the table read now) gives the
   * entry the answer was served with, for the same client: the decision the slow path would
   * make from its memory of accepted claims (ownership-cache.ts), the token being unchanged.
   */
  recall(systemId: string, socket: Socket, client: string, options: object, neighbourNow?: (client: string) => NeighbourEntry | null): RememberedPreseed | null;
  /** Answers given from memory for a node since the last call (for the slow path's log line). */
  takeRecalled(systemId: string): number;
  /** True the first time a key is seen in a minute: the slow path logs a preseed once per node, type and client a minute. */
  isNews(key: string): boolean;
}

interface Stored {
  entry: RememberedPreseed;
  at: number;
  /** A request was sent the slow path to make a fresh answer (after half the time limit). */
  refreshing: boolean;
}

/** Pure: do two neighbour entries say the same (both none, or the same MAC with the same router flag)? */
export function sameNeighbour(a: NeighbourEntry | null, b: NeighbourEntry | null): boolean {
  if (a === null || b === null) return a === b;
  return a.mac === b.mac && a.router === b.router;
}

/** How often the slow path logs the same preseed for the same client. */
export const PRESEED_LOG_REPEAT_MS = 60_000;

export function createPreseedMemo(options: { generation: () => number; ttlMs?: number; now?: () => number; maxEntries?: number }): PreseedMemo {
  const ttlMs = options.ttlMs ?? PRESEED_MEMO_MS;
  const now = options.now ?? Date.now;
  const max = options.maxEntries ?? 10_000;
  const entries = new Map<string, Stored>();
  const recalledSince = new Map<string, number>();
  const connections = new WeakMap<Socket, { client: string; neighbour: NeighbourEntry | null }>();
  const isNews = createEventRepeatFilter(PRESEED_LOG_REPEAT_MS, now);
  return {
    generation: options.generation,
    isNews,
    remember(entry) {
      if (ttlMs <= 0) return;
      if (entries.size >= max) entries.clear();
      entries.set(entry.systemId, { entry, at: now(), refreshing: false });
    },
    bindConnection(socket, client, neighbour) {
      connections.set(socket, { client, neighbour });
    },
    recall(systemId, socket, client, currentOptions, neighbourNow) {
      const stored = entries.get(systemId);
      if (!stored) return null;
      const { entry } = stored;
      const age = now() - stored.at;
      if (entry.generation !== options.generation() || entry.options !== currentOptions || age >= ttlMs) {
        entries.delete(systemId);
        return null;
      }
      if (entry.client !== client) return null;
      let bound = connections.get(socket);
      if (!bound && neighbourNow) {
        const seen = neighbourNow(client);
        if (!sameNeighbour(seen, entry.neighbour)) return null;
        connections.set(socket, (bound = { client, neighbour: seen }));
      }
      if (!bound || bound.client !== client || !sameNeighbour(bound.neighbour, entry.neighbour)) return null;
      // After half the limit one request makes a fresh answer while the others are still answered
      // from this one: not every connection's next request at once when it expires.
      if (age >= ttlMs / 2 && !stored.refreshing) {
        stored.refreshing = true;
        return null;
      }
      if (recalledSince.size >= max) recalledSince.clear();
      recalledSince.set(systemId, (recalledSince.get(systemId) ?? 0) + 1);
      return entry;
    },
    takeRecalled(systemId) {
      const n = recalledSince.get(systemId) ?? 0;
      recalledSince.delete(systemId);
      return n;
    },
  };
}
