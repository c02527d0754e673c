/**
 * How a provisioning server asks the region for a node's context: one GET with the shared
 * key, a short cache (many requests of one boot come within seconds), a timeout, and a
 * clear outcome for each case: the context, "no such node", or "region unavailable" (which
 * the provisioning server turns into 503 with Retry-After so the machine tries again).
 */
import { UecError, describeError } from './errors';
import type { NodeContext } from './context';

export interface RegionClientOptions {
  /** http://host:port of the region, no trailing slash. */
  regionUrl: string;
  key: string;
  cacheMs: number;
  timeoutMs: number;
  now?: () => number;
}

export type ContextLookup = { kind: 'mac'; mac: string } | { kind: 'node'; systemId: string };

export interface RegionClient {
  /** The context, or null when the region has no such node; UPSTREAM_FAILED when it cannot answer. */
  fetchContext(lookup: ContextLookup): Promise<NodeContext | null>;
}

export function createRegionClient(options: RegionClientOptions): RegionClient {
  const now = options.now ?? Date.now;
  const cache = new Map<string, { at: number; value: NodeContext | null }>();
  const inFlight = new Map<string, Promise<NodeContext | null>>();

  async function fetchFresh(path: string): Promise<NodeContext | null> {
    let response: Response;
    try {
      response = await fetch(`${options.regionUrl}${path}`, {
        headers: { Authorization: `Bearer ${options.key}` },
        signal: AbortSignal.timeout(options.timeoutMs),
      });
    } catch (err) {
      const reason = (err as Error).name === 'TimeoutError' ? `no answer within ${options.timeoutMs} ms` : describeError((err as { cause?: unknown }).cause ?? err);
      throw new UecError('UPSTREAM_FAILED', `region ${options.regionUrl} is unavailable: ${reason}`, { cause: err });
    }
    const body = await response.text().catch(() => '');
    if (response.status === 404) return null;
    if (response.status !== 200) {
      throw new UecError('UPSTREAM_FAILED', `region ${options.regionUrl} answered ${response.status} for ${path.replace(/mac=[^&]*/, 'mac=…')}: ${body.trim().slice(0, 200)}`);
    }
    try {
      return JSON.parse(body) as NodeContext;
    } catch (err) {
      throw new UecError('UPSTREAM_FAILED', `region ${options.regionUrl} sent a context that is not JSON`, { cause: err });
    }
  }

  return {
    async fetchContext(lookup) {
      const path = lookup.kind === 'mac' ? `/api/v1/context?mac=${encodeURIComponent(lookup.mac)}` : `/api/v1/nodes/${encodeURIComponent(lookup.systemId)}/context`;
      const hit = cache.get(path);
      if (hit && now() - hit.at < options.cacheMs) return hit.value;
      // Concurrent requests for the same node share one region call.
      let pending = inFlight.get(path);
      if (!pending) {
        pending = fetchFresh(path).finally(() => inFlight.delete(path));
        inFlight.set(path, pending);
      }
      const value = await pending;
      if (options.cacheMs > 0) cache.set(path, { at: now(), value });
      if (cache.size > 10_000) cache.clear();
      return value;
    },
  };
}
