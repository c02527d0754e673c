/**
 * What a provisioning server (edge) asks of the region, as an interface: the HTTP client
 * (edge/region-client.ts) and the in-process one (region/local-region-client.ts) both
 * implement it. With the context view (context.ts) this is the contract between the two.
 */
import type { NodeContext } from './context';

/** The region's answer to a claim (POST /api/v1/nodes/<id>/claim). */
export type ClaimAnswer =
  | { owned: true; rule: string }
  | { owned: false; status: 403 | 404 | 409; reason: string };

export type ContextLookup = { kind: 'mac'; mac: string } | { kind: 'node'; systemId: string };

export interface RegionClient {
  /** The context, or null when the region has no such node; UPSTREAM_FAILED when it cannot answer. */
  fetchContext(lookup: ContextLookup, how?: { fresh?: boolean }): Promise<NodeContext | null>;
  /** Tell the region what this server saw of a node's boot (netboot, preseed); UPSTREAM_FAILED when it cannot. */
  reportEvent(systemId: string, type: 'netboot' | 'preseed', message: string): Promise<void>;
  /**
   * May this client act for the node now (region route /api/v1/nodes/<id>/claim)? `mac` is
   * what this server's neighbour table holds for the address ('' for none), `router` whether
   * that MAC is a gateway's. Never cached: a first claim binds. UPSTREAM_FAILED when the
   * region cannot answer.
   */
  claimAddress(systemId: string, address: string, neighbour: { mac: string; router: boolean } | null): Promise<ClaimAnswer>;
  /** Resolves when every report under way has been answered or has failed (for a clean stop). */
  settle(): Promise<void>;
}

/**
 * Boot events are news once: the same (node, type, message) is reported at most once per
 * `repeatMs` (a re-fetched preseed is not news, and each event is a write of the node store).
 * Answers whether this one should be sent now, and remembers it if so.
 */
export function createEventRepeatFilter(repeatMs: number, now: () => number): (key: string) => boolean {
  const lastSent = new Map<string, number>();
  return (key) => {
    const sent = lastSent.get(key);
    if (sent !== undefined && now() - sent < repeatMs) return false;
    if (lastSent.size > 10_000) lastSent.clear();
    lastSent.set(key, now());
    return true;
  };
}

/** One entry of the region's change feed (GET /api/v1/changes): the node's context now, or null when it is gone. */
export interface ContextChange {
  seq: number;
  systemId: string;
  context: NodeContext | null;
}

/**
 * One answer of the change feed: the changes after the asked cursor, oldest first, and the
 * cursor to ask from next. `reset`: the cursor was older than what the region keeps (or from
 * another store): `changes` is then the whole set of nodes, and the follower replaces its cache.
 */
export interface ContextFeedBatch {
  cursor: number;
  reset: boolean;
  changes: ContextChange[];
  /** The digest of the region's context settings (roles, archive, keys, URLs): sent back with the next poll. */
  settings?: string;
  /** A reset's next page: ask `reset=<cursor>&offset=<next_offset>`; absent on the last page. */
  next_offset?: number;
}

/** At most this many changes in one answer of the feed; `wait` at most FEED_MAX_WAIT_SECONDS. */
export const FEED_BATCH_LIMIT = 500;
export const FEED_MAX_WAIT_SECONDS = 30;

/**
 * What an edge sends the region from its on-disk queue (edge/outbox.ts), each with a unique
 * event id the region records, so a delivery repeated after a crash or a lost answer is
 * recorded once (POST /api/v1/nodes/<id>/events with "id").
 *   netboot, preseed                          boot events the edge saw
 *   installing, installed, deployed, failed   the installer's status call-backs, taken by the edge
 *   disable-netboot                           the installer's disable-netboot call-back
 */
export const EDGE_EVENT_TYPES = ['netboot', 'preseed', 'installing', 'installed', 'deployed', 'failed', 'disable-netboot'] as const;
export type EdgeEventType = (typeof EDGE_EVENT_TYPES)[number];

/** An event id: 8 to 64 of [A-Za-z0-9_-] (the edge makes them from random bytes). */
export function checkEventId(id: unknown): string | null {
  return typeof id === 'string' && /^[A-Za-z0-9_-]{8,64}$/.test(id) ? null : 'must be 8 to 64 letters, digits, "-" or "_"';
}

/** What the region knows of one edge's contact: the web UI's Edges page shows it. */
export interface EdgeContact {
  name: string;
  /** The address the last poll came from. */
  address: string;
  /** ISO 8601: the edge's last poll of the feed. */
  last_contact: string;
  /** The cursor the edge asked from at its last poll. */
  cursor: number;
  /** How many changes it had not seen then (the region's cursor minus the edge's). */
  behind: number;
  /** Seconds since the edge was last up to date (0 when it is). */
  lag_seconds: number;
}
