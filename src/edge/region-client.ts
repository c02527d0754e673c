/**
 * How a provisioning server asks the region for a node's context: one GET with the shared
 * key, a short cache (many requests of one boot come within seconds), a timeout, and a
 * clear outcome for each case: the context, "no such node", or "region unavailable" (which
 * the provisioning server turns into 503 with Retry-After so the machine tries again).
 */
import { UecError, describeError } from '../core/errors';
import type { NodeContext } from '../contract/context';
import { createEventRepeatFilter, type RegionClient } from '../contract/region-api';

export interface RegionClientOptions {
  /** http://host:port of the region, no trailing slash. */
  regionUrl: string;
  key: string;
  cacheMs: number;
  timeoutMs: number;
  now?: () => number;
  /** The same event for the same node is sent once in this window (a re-fetched preseed is not news). */
  eventRepeatMs?: number;
}

export type { ClaimAnswer, ContextLookup, RegionClient } from '../contract/region-api';

export function createRegionClient(options: RegionClientOptions): RegionClient {
  const now = options.now ?? Date.now;
  const cache = new Map<string, { at: number; value: NodeContext | null }>();
  const inFlight = new Map<string, Promise<NodeContext | null>>();
  const isNews = createEventRepeatFilter(options.eventRepeatMs ?? 60_000, now);
  const reporting = new Set<Promise<unknown>>();

  /** One call to the region with the key and the timeout; its status and body, or UPSTREAM_FAILED. */
  async function request(path: string, init: { method?: string; json?: unknown } = {}): Promise<{ status: number; body: string }> {
    let response: Response;
    try {
      response = await fetch(`${options.regionUrl}${path}`, {
        method: init.method ?? 'GET',
        headers: { Authorization: `Bearer ${options.key}`, ...(init.json !== undefined ? { 'Content-Type': 'application/json' } : {}) },
        body: init.json !== undefined ? JSON.stringify(init.json) : undefined,
        signal: AbortSignal.timeout(options.timeoutMs),
      });
    } catch (err) {
      const reason = (err as Error).name === 'TimeoutError' ? `no answer within ${options.timeoutMs} ms` : describeError((err as { cause?: unknown }).cause ?? err);
      throw new UecError('UPSTREAM_FAILED', `region ${options.regionUrl} is unavailable: ${reason}`, { cause: err });
    }
    return { status: response.status, body: await response.text().catch(() => '') };
  }

  async function fetchFresh(path: string): Promise<NodeContext | null> {
    const response = await request(path);
    const body = response.body;
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
    async reportEvent(systemId, type, message) {
      if (!isNews(`${systemId} ${type} ${message}`)) return;
      const sending = request(`/api/v1/nodes/${encodeURIComponent(systemId)}/events`, { method: 'POST', json: { type, message } });
      reporting.add(sending);
      const response = await sending.finally(() => reporting.delete(sending));
      if (response.status !== 201) throw new UecError('UPSTREAM_FAILED', `region ${options.regionUrl} answered ${response.status} to a ${type} event: ${response.body.trim().slice(0, 200)}`);
    },
    async claimAddress(systemId, address, neighbour) {
      const response = await request(`/api/v1/nodes/${encodeURIComponent(systemId)}/claim`, {
        method: 'POST',
        json: { address, mac: neighbour?.mac ?? '', router: neighbour?.router ?? false },
      });
      const reason = response.body.trim().slice(0, 300);
      if (response.status === 200) {
        let rule = '';
        try {
          rule = String((JSON.parse(response.body) as { rule?: unknown }).rule ?? '');
        } catch {
          // the rule is only for the log
        }
        return { owned: true, rule };
      }
      if (response.status === 403 || response.status === 404 || response.status === 409) return { owned: false, status: response.status, reason };
      throw new UecError('UPSTREAM_FAILED', `region ${options.regionUrl} answered ${response.status} to a claim for ${systemId}: ${reason}`);
    },
    async settle() {
      await Promise.allSettled([...reporting]);
    },
    async fetchContext(lookup, how = {}) {
      const path = lookup.kind === 'mac' ? `/api/v1/context?mac=${encodeURIComponent(lookup.mac)}` : `/api/v1/nodes/${encodeURIComponent(lookup.systemId)}/context`;
      const hit = cache.get(path);
      if (hit && !how.fresh && now() - hit.at < options.cacheMs) return hit.value;
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
