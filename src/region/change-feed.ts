/**
 * The region's change feed for edges (issue 14 item 3):
 *
 *   GET /api/v1/changes?since=<cursor>&wait=<seconds ≤ 30>[&settings=<digest>]   provisioning key
 *                                                        (since: default 0; wait: default 0)
 *   GET /api/v1/changes?reset=<cursor>&offset=<n>[&wait=…]                      the next page of a reset
 *
 * answers {cursor, reset, settings, changes: [{seq, systemId, context | null}], next_offset?}
 * with each changed node's context view (context.ts), at once when there are changes after
 * `since`, else when one is committed or `wait` seconds have passed (an empty answer, the
 * same cursor). At most FEED_BATCH_LIMIT changes per answer: ask again from `cursor`.
 *
 * reset: true when `since` is older than what the store keeps, from another store, or when
 * `settings` (the digest of what every context is built from besides the node: roles,
 * archive, SSH keys, URLs) is not the region's: `changes` then hold every node, a page at a
 * time (next_offset: ask `reset=<cursor>&offset=<next_offset>` for the next page; absent on
 * the last), and the edge replaces its cache with the whole set once it has every page, then
 * follows from `cursor` (changes during the paging come after it).
 *
 * An edge with its own key (edges.ts) gets only the nodes of its subnets: a node whose
 * reserved or bound IPv4 is in one of them, or that has neither (it can boot on any LAN); a
 * node that leaves them comes as `context: null`. The shared key gets every node.
 *
 * Each poll also records the edge's contact: its name (its key's, else the X-Uec-Edge header,
 * else its address), when, the cursor it asked from and how far behind that was, for the web
 * UI (selectFeedFollowers, GET /api/v1/changes/followers).
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { NodeContext } from '../contract/context';
import { FEED_BATCH_LIMIT, FEED_MAX_WAIT_SECONDS, type ContextChange, type EdgeContact } from '../contract/region-api';
import type { RouteRequest } from '../core/http-routes';
import { json, text, type Reply } from '../core/http-util';
import { SYSTEM_ADDRESSING } from '../core/neighbours';
import { selectEdgeServes } from './edges';
import type { NodeChange, NodeStore } from './node-store';
import { loadContextInputs, selectNodeContext, type ContextInputs, type RegionOptions } from './region';

interface FeedState {
  waiters: Set<() => void>;
  followers: Map<string, { name: string; address: string; lastContact: Date; cursor: number; upToDateAt: Date }>;
}

/** Per store (it outlives the region options, which a configuration reload rebuilds). */
const states = new WeakMap<NodeStore, FeedState>();

function feedState(store: NodeStore): FeedState {
  let state = states.get(store);
  if (!state) {
    const created: FeedState = { waiters: new Set(), followers: new Map() };
    store.onChange(() => {
      for (const wake of [...created.waiters]) wake();
    });
    states.set(store, (state = created));
  }
  return state;
}

/** Pure: the digest of what contexts are built from besides the node. */
export function selectSettingsDigest(inputs: ContextInputs, options: Pick<RegionOptions, 'urls' | 'adminUser'>): string {
  return createHash('sha256').update(JSON.stringify([inputs.archive, inputs.roles, inputs.authorizedKeys, options.urls, options.adminUser])).digest('base64url').slice(0, 22);
}

/** Pure: the parameters of a feed request, or the reason they are wrong. */
export function parseFeedQuery(url: URL): { since: number; wait: number; settings: string; page?: { cursor: number; offset: number } } | { error: string } {
  const integer = (name: string, max: number): number | string | undefined => {
    const raw = url.searchParams.get(name);
    if (raw === null) return undefined;
    if (!/^\d{1,16}$/.test(raw) || Number(raw) > max) return `${name} must be a whole number from 0 to ${max}`;
    return Number(raw);
  };
  const since = integer('since', Number.MAX_SAFE_INTEGER);
  const wait = integer('wait', FEED_MAX_WAIT_SECONDS);
  const reset = integer('reset', Number.MAX_SAFE_INTEGER);
  const offset = integer('offset', Number.MAX_SAFE_INTEGER);
  for (const v of [since, wait, reset, offset]) if (typeof v === 'string') return { error: v };
  const settings = url.searchParams.get('settings') ?? '';
  if (settings.length > 64) return { error: 'settings must be at most 64 characters' };
  if (reset !== undefined) return { since: 0, wait: 0, settings, page: { cursor: reset as number, offset: (offset as number | undefined) ?? 0 } };
  return { since: (since as number | undefined) ?? 0, wait: (wait as number | undefined) ?? 0, settings };
}

function followerName(request: RouteRequest, options: RegionOptions): string {
  if (request.authenticatedEdge) return request.authenticatedEdge.name;
  const header = request.req.headers['x-uec-edge'];
  if (typeof header === 'string' && /^[a-z0-9][a-z0-9.-]{0,62}$/i.test(header)) return header.toLowerCase();
  return (options.addressing ?? SYSTEM_ADDRESSING).clientAddress(request.req);
}

/** Resolves after a commit in this process, `pollMs` (another process's commit is seen by polling), or `ms`. */
function waitForChange(store: NodeStore, state: FeedState, cursor: number, ms: number, req: IncomingMessage, pollMs = 500): Promise<void> {
  return new Promise<void>((resolve) => {
    const started = Date.now();
    let poll: NodeJS.Timeout | undefined;
    const done = () => {
      clearTimeout(timer);
      clearTimeout(poll);
      state.waiters.delete(done);
      req.off('close', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    state.waiters.add(done);
    req.once('close', done);
    const check = () => {
      poll = setTimeout(() => {
        store
          .currentCursor()
          .then((now) => (now !== cursor ? done() : Date.now() - started < ms ? check() : undefined))
          .catch(done);
      }, pollMs);
    };
    check();
  });
}

async function contextsOf(options: RegionOptions, inputs: ContextInputs, subnets: readonly string[] | undefined, changes: readonly NodeChange[]): Promise<ContextChange[]> {
  const out: ContextChange[] = [];
  for (const change of changes) {
    let context: NodeContext | null = null;
    if (change.node && selectEdgeServes(subnets, change.node)) {
      try {
        context = await selectNodeContext(options, change.node, inputs);
      } catch (err) {
        // A deploying node whose role cannot be installed: the edge must not install it.
        options.log.warn(`change feed: node ${change.node.hostname} (${change.systemId}) sent as absent: ${(err as Error).message}`);
      }
    }
    out.push({ seq: change.seq, systemId: change.systemId, context });
  }
  return out;
}

/** GET /api/v1/changes: see the header. */
export async function serveChanges(options: RegionOptions, request: RouteRequest): Promise<Reply> {
  const query = parseFeedQuery(request.url);
  if ('error' in query) return text(400, query.error);
  const { store } = options;
  const state = feedState(store);
  const inputs = await loadContextInputs(options);
  const settings = selectSettingsDigest(inputs, options);
  const subnets = request.authenticatedEdge?.subnets;
  const name = followerName(request, options);

  const fullPage = async (cursor: number, offset: number): Promise<Reply> => {
    const { nodes, total } = await store.page({ offset, limit: FEED_BATCH_LIMIT });
    const changes = await contextsOf(options, inputs, subnets, nodes.map((node) => ({ seq: cursor, systemId: node.systemId, node })));
    const next = offset + nodes.length;
    // Nodes outside the edge's subnets are left out of a full set (absent means unknown).
    return json(200, { cursor, reset: true, settings, changes: changes.filter((c) => c.context !== null), ...(next < total && nodes.length > 0 ? { next_offset: next } : {}) });
  };
  if (query.page) return fullPage(query.page.cursor, query.page.offset);

  const current = await store.currentCursor();
  const now = options.clock.now();
  const address = (options.addressing ?? SYSTEM_ADDRESSING).clientAddress(request.req);
  // By name and address: two edges on hosts of the same name are two edges.
  const key = `${name} ${address}`;
  const before = state.followers.get(key);
  state.followers.set(key, {
    name,
    address,
    lastContact: now,
    cursor: query.since,
    upToDateAt: query.since >= current || !before ? now : before.upToDateAt,
  });
  if (state.followers.size > 10_000) state.followers.clear();

  if (query.settings !== settings) return fullPage(current, 0);
  let batch = await store.changesSince(query.since, FEED_BATCH_LIMIT);
  if (batch.reset) return fullPage(batch.cursor, 0);
  if (batch.changes.length === 0 && query.wait > 0) {
    await waitForChange(store, state, query.since, query.wait * 1000, request.req);
    batch = await store.changesSince(query.since, FEED_BATCH_LIMIT);
    if (batch.reset) return fullPage(batch.cursor, 0);
  }
  return json(200, { cursor: batch.cursor, reset: false, settings, changes: await contextsOf(options, inputs, subnets, batch.changes) });
}

/** What the region knows of each edge following its feed, by name (for the web UI's Edges page). */
export async function selectFeedFollowers(store: NodeStore, now: Date): Promise<EdgeContact[]> {
  const state = states.get(store);
  if (!state) return [];
  const current = await store.currentCursor();
  return [...state.followers.values()]
    .map((f) => {
      const behind = Math.max(0, current - f.cursor);
      return {
        name: f.name,
        address: f.address,
        last_contact: f.lastContact.toISOString(),
        cursor: f.cursor,
        behind,
        lag_seconds: behind === 0 ? 0 : Math.max(0, Math.round((now.getTime() - f.upToDateAt.getTime()) / 1000)),
      };
    })
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
}
