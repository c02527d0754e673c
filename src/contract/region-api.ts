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
