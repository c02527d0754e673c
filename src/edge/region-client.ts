/**
 * How a provisioning server asks the region for a node's context: one GET with the shared
 * key, a short cache (many requests of one boot come within seconds), a timeout, and a
 * clear outcome for each case: the context, "no such node", or "region unavailable" (which
 * the provisioning server turns into 503 with Retry-After so the machine tries again).
 */
import { UecError, describeError } from '../core/errors';
import type { NodeContext } from '../contract/context';
import { createEventRepeatFilter, type ContextFeedBatch, type RegionClient } from '../contract/region-api';
import type { OutboxEvent } from './outbox';

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

/** What an edge's follower asks of the region over HTTP: the change feed, and delivery of its queued events. */
export interface RegionFeed {
  /** One long poll of GET /api/v1/changes; UPSTREAM_FAILED when the region does not answer as it should. */
  fetchChanges(since: number, waitSeconds: number, settings: string, signal?: AbortSignal): Promise<ContextFeedBatch>;
  /** The page of a reset's full set at `offset` (GET /api/v1/changes?reset=<cursor>&offset=<n>). */
  fetchResetPage(cursor: number, offset: number, signal?: AbortSignal): Promise<ContextFeedBatch>;
  /**
   * Send one queued event. 'done': the region took it, or refused it for good (4xx: the node
   * is gone or no longer in that state; logged by the caller). 'retry': it could not answer,
   * or asked to be asked later (5xx, 401, 403, 429): keep it, and everything after it.
   */
  deliver(event: OutboxEvent): Promise<{ outcome: 'done' | 'retry'; status: number; reason: string }>;
}

export interface RegionFeedOptions {
  regionUrl: string;
  key: string;
  /** This edge's name, sent with every poll so the region can show its last contact and lag. */
  edgeName: string;
  timeoutMs: number;
}

export function createRegionFeed(options: RegionFeedOptions): RegionFeed {
  async function call(pathAndQuery: string, init: { method?: string; json?: unknown; timeoutMs: number; key?: boolean; signal?: AbortSignal }): Promise<{ status: number; body: string }> {
    // The timeout, or the caller's stop, whichever comes first (AbortSignal.any is Node 20).
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new DOMException('timed out', 'TimeoutError')), init.timeoutMs);
    const stop = () => controller.abort(init.signal?.reason);
    init.signal?.addEventListener('abort', stop, { once: true });
    try {
      const response = await fetch(`${options.regionUrl}${pathAndQuery}`, {
        method: init.method ?? 'GET',
        headers: {
          ...(init.key === false ? {} : { Authorization: `Bearer ${options.key}` }),
          'X-Uec-Edge': options.edgeName,
          ...(init.json !== undefined ? { 'Content-Type': 'application/json' } : {}),
        },
        body: init.json !== undefined ? JSON.stringify(init.json) : undefined,
        signal: controller.signal,
      });
      return { status: response.status, body: await response.text().catch(() => '') };
    } catch (err) {
      const timedOut = (err as Error).name === 'TimeoutError' || (controller.signal.reason as Error | undefined)?.name === 'TimeoutError';
      const reason = timedOut ? `no answer within ${init.timeoutMs} ms` : describeError((err as { cause?: unknown }).cause ?? err);
      throw new UecError('UPSTREAM_FAILED', `region ${options.regionUrl} is unavailable: ${reason}`, { cause: err });
    } finally {
      clearTimeout(timer);
      init.signal?.removeEventListener('abort', stop);
    }
  }
  async function getBatch(pathAndQuery: string, timeoutMs: number, signal?: AbortSignal): Promise<ContextFeedBatch> {
    const response = await call(pathAndQuery, { timeoutMs, signal });
    if (response.status !== 200) throw new UecError('UPSTREAM_FAILED', `region ${options.regionUrl} answered ${response.status} to the change feed: ${response.body.trim().slice(0, 200)}`);
    let batch: ContextFeedBatch;
    try {
      batch = JSON.parse(response.body) as ContextFeedBatch;
    } catch (err) {
      throw new UecError('UPSTREAM_FAILED', `region ${options.regionUrl} sent a change feed answer that is not JSON`, { cause: err });
    }
    if (typeof batch.cursor !== 'number' || typeof batch.reset !== 'boolean' || !Array.isArray(batch.changes)) {
      throw new UecError('UPSTREAM_FAILED', `region ${options.regionUrl} sent a change feed answer without cursor, reset and changes`);
    }
    return batch;
  }
  return {
    fetchChanges(since, waitSeconds, settings, signal) {
      return getBatch(`/api/v1/changes?since=${since}&wait=${waitSeconds}&settings=${encodeURIComponent(settings)}`, waitSeconds * 1000 + options.timeoutMs, signal);
    },
    fetchResetPage(cursor, offset, signal) {
      return getBatch(`/api/v1/changes?reset=${cursor}&offset=${offset}`, options.timeoutMs * 4, signal);
    },
    async deliver(event) {
      let response: { status: number; body: string };
      try {
        response =
          event.type === 'enlist'
            ? await call(`/metadata/enlist?${event.query ?? ''}`, { timeoutMs: options.timeoutMs, key: false })
            : await call(`/api/v1/nodes/${encodeURIComponent(event.systemId)}/events`, { method: 'POST', json: { id: event.id, type: event.type, message: event.message, at: event.at }, timeoutMs: options.timeoutMs });
      } catch (err) {
        return { outcome: 'retry', status: 0, reason: describeError(err) };
      }
      const reason = response.body.trim().slice(0, 200);
      if (response.status >= 200 && response.status < 300) return { outcome: 'done', status: response.status, reason };
      if (response.status === 400 || response.status === 404 || response.status === 409) return { outcome: 'done', status: response.status, reason };
      return { outcome: 'retry', status: response.status, reason };
    },
  };
}
