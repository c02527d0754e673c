/**
 * The region client of a provisioning server that runs in the region's own process (`serve`
 * on one machine, the usual case): the same RegionClient interface, and the same answers, as
 * the HTTP client (region-client.ts), from the same region code (the context view, the claim
 * decision, the event record) called in-process, without the two loopback round trips per
 * request that took most of a preseed's time.
 *
 * "Fresh" stays fresh where it matters: a context is reused only while the node store is the
 * same file version (`storeVersion`, the store's own change key: every write replaces the
 * file), so a new deploy's token, a status change or an edited node is seen by the next
 * request, from whichever process wrote it. What else a context is built from (roles, the
 * archive settings, the admin's SSH keys) is read again after `settingsMs` (default 1 s, as
 * the configuration and the preseed templates are).
 */
import * as fs from 'node:fs';
import type { NodeContext } from '../contract/context';
import { UecError, describeError } from '../core/errors';
import { recordNodeEvent } from './node-ops';
import { judgeClaim, selectNodeContext, type RegionOptions } from './region';
import { createEventRepeatFilter, type ClaimAnswer, type ContextLookup, type RegionClient } from '../contract/region-api';
import { parseMac } from '../contract/node';

export interface LocalRegionClientOptions {
  /** The region's current options (they are rebuilt when the configuration is reloaded). */
  region: () => RegionOptions;
  /** The node store's version: changes whenever any process writes the store. */
  storeVersion: () => string;
  /** How long a context's roles, archive and keys are reused; default 1000 ms. */
  settingsMs?: number;
  /** The same event for the same node is recorded once in this window; default 60 s. */
  eventRepeatMs?: number;
  now?: () => number;
}

export function createLocalRegionClient(options: LocalRegionClientOptions): RegionClient {
  const now = options.now ?? Date.now;
  const settingsMs = options.settingsMs ?? 1000;
  const isNews = createEventRepeatFilter(options.eventRepeatMs ?? 60_000, now);
  const contexts = new Map<string, { version: string; at: number; value: NodeContext | null }>();
  const inFlight = new Map<string, Promise<NodeContext | null>>();
  const reporting = new Set<Promise<unknown>>();

  /** Like the region's context routes: UPSTREAM_FAILED for what would have been a 5xx. */
  async function buildContext(lookup: ContextLookup): Promise<NodeContext | null> {
    const region = options.region();
    try {
      // Indexed look-ups: the cost of one node, whatever the size of the store.
      const key = lookup.kind === 'node' ? lookup.systemId : parseMac(lookup.mac);
      const found = await region.store.find(key);
      const node = found && (lookup.kind === 'node' ? found.systemId === key : found.macs.includes(key)) ? found : undefined;
      return node ? await selectNodeContext(region, node) : null;
    } catch (err) {
      throw new UecError('UPSTREAM_FAILED', `the region (in this process) could not build the context of ${lookup.kind === 'node' ? lookup.systemId : lookup.mac}: ${describeError(err)}`, { cause: err });
    }
  }

  return {
    async fetchContext(lookup) {
      const key = lookup.kind === 'node' ? `node ${lookup.systemId}` : `mac ${lookup.mac}`;
      // Read before the store: a write after this point makes the entry stale, never a newer one old.
      const version = options.storeVersion();
      const hit = contexts.get(key);
      if (hit && hit.version === version && now() - hit.at < settingsMs) return hit.value;
      const flightKey = `${key} ${version}`;
      let pending = inFlight.get(flightKey);
      if (!pending) {
        const at = now();
        pending = buildContext(lookup)
          .then((value) => {
            if (contexts.size > 10_000) contexts.clear();
            contexts.set(key, { version, at, value });
            return value;
          })
          .finally(() => inFlight.delete(flightKey));
        inFlight.set(flightKey, pending);
      }
      return pending;
    },
    async claimAddress(systemId, address, neighbour): Promise<ClaimAnswer> {
      let decision;
      try {
        decision = await judgeClaim(options.region(), systemId, address, neighbour);
      } catch (err) {
        throw new UecError('UPSTREAM_FAILED', `the region (in this process) could not judge a claim for ${systemId}: ${describeError(err)}`, { cause: err });
      }
      return decision.status === 200 ? { owned: true, rule: decision.rule } : { owned: false, status: decision.status, reason: decision.reason };
    },
    async reportEvent(systemId, type, message) {
      if (!isNews(`${systemId} ${type} ${message}`)) return;
      const region = options.region();
      const recording = recordNodeEvent(region.store, systemId, type, message, region.clock);
      reporting.add(recording);
      try {
        const node = await recording;
        region.log.info(`node ${node.hostname} (${node.systemId}): ${type} ${message}`);
      } catch (err) {
        throw new UecError('UPSTREAM_FAILED', `the region (in this process) could not record a ${type} event of ${systemId}: ${describeError(err)}`, { cause: err });
      } finally {
        reporting.delete(recording);
      }
    },
    async settle() {
      await Promise.allSettled([...reporting]);
    },
  };
}

/** A file's version: inode, size and change times (an atomic write replaces the inode); 'none' when it is missing. */
export function readFileVersion(file: string): string {
  try {
    const s = fs.statSync(file);
    return `${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
  } catch {
    return 'none';
  }
}
