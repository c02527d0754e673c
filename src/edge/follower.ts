/**
 * The edge's two loops (issue 14 items 3 and 4), run by `serve --no-region`:
 *
 *   delivery  sends the outbox's events (outbox.ts) to the region one at a time, in order;
 *             one the region cannot take now stops the line and is tried again after
 *             `retryMs` (the events after it wait: order is kept).
 *   feed      long-polls the region's change feed from the cache's cursor and stores each
 *             answer in the cache (edge-cache.ts) before asking again. It polls only while
 *             the outbox is empty, so what the edge told its machines (a node's disable-
 *             netboot, its deployed call-back) has reached the region before the region's
 *             view of that node comes back; a reset answer replaces the cache.
 *
 * With the region away both loops retry every `retryMs`, logging once when the region goes
 * and once when it returns; the edge serves from its cache meanwhile.
 */
import { describeError } from '../core/errors';
import type { Logger } from '../core/log';
import type { EdgeCache } from './edge-cache';
import type { Outbox } from './outbox';
import type { RegionFeed } from './region-client';

export interface FollowerOptions {
  cache: EdgeCache;
  outbox: Outbox;
  feed: RegionFeed;
  log: Logger;
  /** Seconds one poll may wait at the region for a change (≤ 30); default 25. */
  waitSeconds?: number;
  /** Pause before trying the region again; default 2000 ms. */
  retryMs?: number;
}

export interface FollowerStatus {
  cursor: number;
  /** ISO 8601 of the last answer of the region (feed or delivery), or '' for none yet. */
  lastContact: string;
  /** The last failure, '' while the region answers. */
  lastError: string;
  pending: number;
}

export interface Follower {
  status(): FollowerStatus;
  /** Resolves once the cache has stored an answer with a cursor ≥ `cursor` (tests, start-up). */
  caughtUp(cursor: number): Promise<void>;
  stop(): Promise<void>;
}

export function startFollower(options: FollowerOptions): Follower {
  const { cache, outbox, feed, log } = options;
  const waitSeconds = options.waitSeconds ?? 25;
  const retryMs = options.retryMs ?? 2000;
  const stopper = new AbortController();
  let stopped = false;
  let lastContact = '';
  let lastError = '';
  const wakers = new Set<() => void>();
  /** Sleep `ms`, or less when woken (an append, a stop). */
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        wakers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      wakers.add(done);
    });
  const wake = () => {
    for (const w of [...wakers]) w();
  };
  outbox.onAppend(wake);

  const contact = () => {
    if (lastError) log.info('the region answers again');
    lastError = '';
    lastContact = new Date().toISOString();
  };
  const failed = (why: string) => {
    if (why !== lastError) log.warn(`region unavailable, serving from the edge cache and queueing call-backs: ${why}`);
    lastError = why;
  };

  const waiting = new Set<{ cursor: number; resolve: () => void }>();
  cache.onChange(() => {
    for (const w of [...waiting]) if (cache.cursor() >= w.cursor) {
      waiting.delete(w);
      w.resolve();
    }
  });

  async function deliveryLoop(): Promise<void> {
    while (!stopped) {
      const next = outbox.pending()[0];
      if (!next) {
        await pause(60_000);
        continue;
      }
      const answer = await feed.deliver(next);
      if (stopped) return;
      if (answer.outcome === 'retry') {
        failed(`delivering ${next.type} of ${next.systemId || 'an unknown machine'}: ${answer.status ? `${answer.status} ${answer.reason}` : answer.reason}`);
        await pause(retryMs);
        continue;
      }
      contact();
      if (answer.status >= 400) log.warn(`the region refused the queued ${next.type} of ${next.systemId || 'an unknown machine'} (${answer.status} ${answer.reason}); dropped`);
      await outbox.done(next.id);
      if (outbox.pending().length === 0) wake();
    }
  }

  async function feedLoop(): Promise<void> {
    while (!stopped) {
      if (outbox.pending().length > 0) {
        await pause(retryMs);
        continue;
      }
      try {
        const batch = await feed.fetchChanges(cache.cursor(), waitSeconds, cache.settings(), stopper.signal);
        if (stopped) return;
        // A reset comes a page at a time: the cache takes the whole set at once.
        for (let page = batch; page.reset && page.next_offset !== undefined && !stopped; ) {
          page = await feed.fetchResetPage(batch.cursor, page.next_offset, stopper.signal);
          batch.changes.push(...page.changes);
          batch.next_offset = page.next_offset;
        }
        if (stopped) return;
        contact();
        await cache.applyBatch(batch);
        if (batch.reset) log.info(`edge cache reloaded from the region: ${batch.changes.length} nodes, cursor ${batch.cursor}`);
      } catch (err) {
        if (stopped) return;
        failed(describeError(err));
        await pause(retryMs);
      }
    }
  }

  const loops = Promise.all([deliveryLoop(), feedLoop()]).catch((err: unknown) => log.error(`edge follower stopped: ${describeError(err)}`));

  return {
    status: () => ({ cursor: cache.cursor(), lastContact, lastError, pending: outbox.pending().length }),
    caughtUp: (cursor) =>
      cache.cursor() >= cursor && cache.synced()
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            waiting.add({ cursor, resolve });
          }),
    async stop() {
      stopped = true;
      stopper.abort();
      wake();
      await loops;
    },
  };
}
