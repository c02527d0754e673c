/**
 * `uec-provisioning serve`: the HTTP service of uec-provisioning-common. On one machine it
 * runs both sides on one port: the region (node context, metadata, enlistment) and the
 * provisioning server (boot scripts, boot files, preseeds). The provisioning side asks the
 * region only through the region client interface (the context view and claims): here an
 * in-process client (local-region-client.ts); with `[provisioning] region_url` set, the HTTP
 * client with the shared key (or this edge's own key, provisioning.edge_key_file), exactly as
 * a provisioning server on another machine does.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { loadArchiveSettings } from '../core/archive';
import { atomicWrite } from '../core/atomic-write';
import { BOOT_PATHS } from '../edge/boot';
import { loadImageOptions } from '../edge/image-server';
import type { EffectiveConfig } from '../core/config';
import { UecError, describeError } from '../core/errors';
import { clientAddress, loggablePath, send, text, type Reply } from '../core/http-util';
import type { Logger } from '../core/log';
import { DHCPD_BUS_NAME, countRequestsOf, recordServedRequest, selectMirrorStateFile, useMetricsSources, watchRegionAnswers } from '../core/metrics';
import type { ClientAddressing } from '../core/neighbours';
import { failStuckDeployments, SYSTEM_CLOCK, type Clock } from '../region/node-ops';
import type { Paths } from '../core/paths';
import { preseedDirs } from '../edge/preseed';
import { watchTftpTransfers } from '../region/tftp-transfers';
import { answerFromPreseedMemo, handleProvisioningRequest, LOADER_LINK_TARGETS, type ProvisioningOptions } from '../edge/provisioning';
import { createPreseedMemo } from '../edge/preseed-memo';
import { selectStoreBackend } from '../region/open-store';
import { handleRegionRequest, type RegionOptions } from '../region/region';
import { createLocalRegionClient } from '../region/local-region-client';
import { NODES_FILE, readStoreVersion, type NodeStore } from '../region/node-store';
import { createEdgeRegistry, parseEdgeKey } from '../region/edges';
import { OWNERSHIP_TTL_MS, createOwnershipCache } from '../edge/ownership-cache';
import { SYNC_SYSTEM_ADDRESSING } from '../core/read-neighbour-sync';
import { createRegionClient, createRegionFeed, type RegionClient } from '../edge/region-client';
import { EDGE_DIR, loadEdgeCache } from '../edge/edge-cache';
import { openOutbox } from '../edge/outbox';
import { startFollower, type Follower } from '../edge/follower';
import { createEdgeSide, type EdgeSide } from '../edge/provisioning';
import { selectContextNode } from '../contract/context';
import { useRenderNodeSource } from '../configurator/command';
import * as os from 'node:os';
import type { ChangedNode } from '../configurator/component';
import { createRolesLoader } from '../contract/roles';
import { createRecentLoader } from '../core/recent';
import type { ServerAddress } from '../core/server-address';
import { templateDirs } from '../core/template';

/** The provisioning key: read it, or (where the region runs) create it once, 0600. */
export async function loadProvisioningKey(paths: Paths, keyFile: string, create: boolean): Promise<string> {
  const file = paths.resolve(keyFile);
  try {
    const key = (await fs.promises.readFile(file, 'utf8')).trim();
    if (key.length < 22) throw new UecError('CONFIG_INVALID_VALUE', `${keyFile} holds no usable key (under 128 bits)`);
    return key;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || !create) {
      if (err instanceof UecError) throw err;
      throw new UecError('CONFIG_UNREADABLE', `cannot read the provisioning key ${keyFile}: ${describeError(err)}`, { cause: err });
    }
  }
  await fs.promises.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const key = randomBytes(32).toString('base64url');
  await atomicWrite(file, `${key}\n`, { mode: 0o600 });
  return key;
}

/**
 * This edge's own key (provisioning.edge_key_file, from `edges add` on the region): it must be
 * an edge key and readable by its owner only, else CONFIG_INVALID_VALUE naming the file.
 */
export async function loadEdgeKey(paths: Paths, keyFile: string): Promise<string> {
  const file = paths.resolve(keyFile);
  let key: string;
  let mode: number;
  try {
    mode = (await fs.promises.stat(file)).mode & 0o777;
    key = (await fs.promises.readFile(file, 'utf8')).trim();
  } catch (err) {
    throw new UecError('CONFIG_UNREADABLE', `cannot read the edge key ${keyFile} (provisioning.edge_key_file): ${describeError(err)}`, { cause: err });
  }
  if ((mode & 0o077) !== 0) throw new UecError('CONFIG_INVALID_VALUE', `the edge key ${keyFile} is readable by other users (mode ${mode.toString(8).padStart(4, '0')}): chmod 600 it`);
  if (!parseEdgeKey(key)) throw new UecError('CONFIG_INVALID_VALUE', `${keyFile} (provisioning.edge_key_file) holds no edge key (the uecpe.NAME.… line \`uec-provisioning edges add\` printed)`);
  return key;
}

/** SSH public keys for deployed machines: comments and blank lines dropped, each line checked. */
export async function loadAuthorizedKeys(paths: Paths, keysFile: string): Promise<string[]> {
  let textContent: string;
  try {
    textContent = await fs.promises.readFile(paths.resolve(keysFile), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new UecError('CONFIG_UNREADABLE', `cannot read ${keysFile}: ${describeError(err)}`, { cause: err });
  }
  const keys = textContent
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  keys.forEach((key, i) => {
    // eslint-disable-next-line no-control-regex
    if (/['\\\u0000-\u001f]/.test(key) || key.length > 16384) {
      throw new UecError('CONFIG_INVALID_VALUE', `${keysFile}: key ${i + 1} contains a quote, backslash or control character`);
    }
  });
  return keys;
}

export interface ServiceSettings {
  paths: Paths;
  config: EffectiveConfig;
  server: ServerAddress;
  store: NodeStore;
  log: Logger;
  clock?: Clock;
  /** Run the region here (default true). */
  region?: boolean;
  /** The port this process listens on: the default region URL when the region runs here. */
  localPort?: number;
  /** The address the service listens on, when not all: the in-process region is reached there. */
  localHost?: string;
  /**
   * Reads the configuration again. When given, the settings boot scripts and preseeds use
   * (kernel arguments, domain, archive, roles' admin user…) follow `config set` and edits
   * within a second, without a restart; the address and port stay as started.
   */
  reloadConfig?: () => Promise<EffectiveConfig>;
  /** Where requests come from (client address, neighbour table); tests pass a fake. Default: the socket and /proc/net/arp. */
  addressing?: ClientAddressing;
  /** How long a served preseed is answered again from memory (preseed-memo.ts); default PRESEED_MEMO_MS, 1 s. */
  preseedMemoMs?: number;
}

export interface Services {
  region?: RegionOptions;
  provisioning: ProvisioningOptions;
  /** On an edge (no region here, provisioning.region_url set): its cache, queue and follower. */
  edge?: RunningEdge;
  handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void>;
  /** The preseed fast path (answerFromPreseedMemo): true when it answered `req`, synchronously. */
  answerFast(req: http.IncomingMessage, res: http.ServerResponse): boolean;
  /** Stop watching the node store's files. */
  stop(): void;
}

/** The region side's options from the configuration (used by serve and the web UI's preseed preview). */
export function buildRegionOptions(o: { paths: Paths; config: EffectiveConfig; store: NodeStore; base: string; key: string; log: Logger; clock?: Clock; addressing?: ClientAddressing }): RegionOptions {
  const { paths, config } = o;
  return {
    store: o.store,
    urls: { base: o.base.replace(/\/$/, '') },
    provisioningKey: o.key,
    edges: createEdgeRegistry(paths),
    acceptSharedKey: config.getBoolean('region.accept_shared_key'),
    loadArchive: () => loadArchiveSettings(paths, config),
    // Read at most once a second: every context build needs them.
    loadRoles: createRolesLoader(paths),
    loadAuthorizedKeys: createRecentLoader(() => loadAuthorizedKeys(paths, config.getString('region.authorized_keys_file'))),
    adminUser: config.getString('region.admin_user'),
    maxNewNodes: config.getNumber('region.max_new_nodes'),
    log: o.log,
    clock: o.clock ?? SYSTEM_CLOCK,
    addressing: o.addressing,
  };
}

/** The provisioning server side's options from the configuration. */
export function buildProvisioningOptions(o: {
  paths: Paths;
  config: EffectiveConfig;
  server: ServerAddress;
  regionUrl: string;
  region: RegionClient;
  log: Logger;
  addressing?: ClientAddressing;
}): ProvisioningOptions {
  const { paths, config } = o;
  return {
    region: o.region,
    regionUrl: o.regionUrl,
    urls: { httpBase: o.server.httpBase, domain: config.getString('boot.domain') },
    kernelArgs: config.getString('boot.kernel_args'),
    images: loadImageOptions(paths, config),
    bootDir: paths.resolve(BOOT_PATHS.bootDir),
    templates: templateDirs(paths),
    preseeds: preseedDirs(paths),
    linkTargets: LOADER_LINK_TARGETS,
    log: o.log,
    addressing: o.addressing,
  };
}

export async function createServices(settings: ServiceSettings): Promise<Services> {
  const { paths, config, server, store, log } = settings;
  const clock = settings.clock ?? SYSTEM_CLOCK;
  const runRegion = settings.region ?? true;
  const keyFile = config.getString('provisioning.key_file');
  // An edge with its own key (provisioning.edge_key_file) needs no copy of the region's shared key.
  const ownEdgeKeyFile = runRegion ? '' : config.getString('provisioning.edge_key_file');
  const key = ownEdgeKeyFile ? await loadEdgeKey(paths, ownEdgeKeyFile) : await loadProvisioningKey(paths, keyFile, runRegion);
  const regionBase = config.getString('region.url') || server.httpBase;
  const region: RegionOptions | undefined = runRegion ? buildRegionOptions({ paths, config, store, base: regionBase, key, log: log.child({ side: 'region' }), clock, addressing: settings.addressing }) : undefined;
  const regionUrl = (config.getString('provisioning.region_url') || `http://${settings.localHost && settings.localHost !== '0.0.0.0' ? settings.localHost : '127.0.0.1'}:${settings.localPort ?? server.httpPort}`).replace(/\/$/, '');
  // The region in this process (and not pointed elsewhere): asked in-process, through the same
  // client interface, with the context reused only while the node store is unchanged.
  // An edge with its own key (edges add on the region) presents it instead of the shared key.
  const edgeKeyFile = config.getString('provisioning.edge_key_file');
  const localRegion = region !== undefined && !config.getString('provisioning.region_url');
  // The node store's generation: every commit of this process (onChange) and, through inotify
  // on the store's directory, of every other process (the web UI, the CLI) bumps it, so the
  // contexts and the remembered preseeds are dropped without a stat per request. Where the
  // directory cannot be watched (or the store is PostgreSQL, written by other hosts), the
  // store's files are stat'ed on every look-up as before and no preseed is remembered.
  let storeWrites = 0;
  if (region) store.onChange(() => void storeWrites++);
  const watcher = localRegion && selectStoreBackend(config) === 'embedded' ? watchStoreFiles(paths, () => void storeWrites++) : undefined;
  const watching = () => watcher !== undefined && !watcher.failed;
  const memo = watcher ? createPreseedMemo({ generation: () => (watching() ? storeWrites : ++storeWrites), ttlMs: settings.preseedMemoMs }) : undefined;
  const regionClient: RegionClient =
    region && localRegion
      ? createLocalRegionClient({ region: () => services.region ?? region, storeVersion: () => (watching() ? String(storeWrites) : `${storeWrites} ${readStoreVersion(paths)}`) })
      : createRegionClient({
          regionUrl,
          key: edgeKeyFile ? await loadEdgeKey(paths, edgeKeyFile) : key,
          cacheMs: config.getNumber('provisioning.context_cache_seconds') * 1000,
          timeoutMs: config.getNumber('provisioning.region_timeout_ms'),
        });
  const ownership = createOwnershipCache({ ttlMs: OWNERSHIP_TTL_MS });
  const edge = !region && config.getString('provisioning.region_url') ? await startEdge(settings, regionUrl, edgeKeyFile ? await loadEdgeKey(paths, edgeKeyFile) : key) : undefined;
  const provisioningFor = (c: EffectiveConfig) => ({
    ...buildProvisioningOptions({ paths, config: c, server, regionUrl, region: regionClient, log: log.child({ side: 'provisioning' }), addressing: settings.addressing ?? SYNC_SYSTEM_ADDRESSING }),
    ownership,
    edge: edge?.side,
    memo,
  });
  const countFast = countRequestsOf('provisioning', '/preseed/<id>', 'GET', 200);
  const services: Services = {
    region,
    edge,
    provisioning: provisioningFor(config),
    answerFast(req, res) {
      if (!answerFromPreseedMemo(services.provisioning, req, res)) return false;
      countFast();
      return true;
    },
    stop() {
      watcher?.close();
    },
    async handle(req, res) {
      const client = clientAddress(req);
      await refresh();
      const started = process.hrtime.bigint();
      let url: URL;
      try {
        url = new URL(req.url ?? '/', 'http://localhost');
      } catch {
        send(res, text(400, 'bad request'));
        return;
      }
      let reply: Reply | null = null;
      try {
        if (services.region) reply = await handleRegionRequest(services.region, req, url);
        reply ??= await handleProvisioningRequest(services.provisioning, req, url);
      } catch (err) {
        log.error(`${req.method} ${url.pathname}: ${describeError(err)}`, { code: 'INTERNAL' });
        reply = text(500, 'internal error');
      }
      reply ??= text(404, 'not found');
      send(res, reply, req.method);
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      recordServedRequest(req, reply.status, ms / 1000);
      log.debug(`${req.method} ${loggablePath(url)} ${reply.status} ${ms.toFixed(1)} ms`, { client });
    },
  };
  // The configuration is read again at most once a second, by the first request after that
  // second (about 6 ms); a broken edit keeps the last good settings and is logged once.
  let loadedAt = Date.now();
  let reloading: Promise<void> | undefined;
  let lastError = '';
  const refresh = async (): Promise<void> => {
    if (!settings.reloadConfig || Date.now() - loadedAt < CONFIG_RELOAD_MS) return;
    reloading ??= settings
      .reloadConfig()
      .then((fresh) => {
        if (services.region) services.region = buildRegionOptions({ paths, config: fresh, store, base: regionBase, key, log: log.child({ side: 'region' }), clock, addressing: settings.addressing });
        services.provisioning = provisioningFor(fresh);
        lastError = '';
      })
      .catch((err: unknown) => {
        const why = describeError(err);
        if (why !== lastError) log.error(`configuration not reloaded, the last good one stays in use: ${why}`);
        lastError = why;
      })
      .finally(() => {
        loadedAt = Date.now();
        reloading = undefined;
      });
    await reloading;
  };
  return services;
}

const CONFIG_RELOAD_MS = 1000;

/** The store's directory watched (inotify): `failed` once the watch broke (the caller stats instead). */
interface StoreWatcher {
  failed: boolean;
  close(): void;
}

/** Calls `changed` on every change to the node store's files (snapshot, journal), by any process; undefined when it cannot watch. */
function watchStoreFiles(paths: Paths, changed: () => void): StoreWatcher | undefined {
  const file = paths.resolve(NODES_FILE);
  const dir = path.dirname(file);
  const prefix = path.basename(file).replace(/\.json$/, '.');
  try {
    fs.mkdirSync(dir, { recursive: true });
    const watcher = fs.watch(dir, { persistent: false }, (_event, name) => {
      if (name === null || name.startsWith(prefix)) changed();
    });
    const state: StoreWatcher = { failed: false, close: () => watcher.close() };
    watcher.on('error', () => {
      state.failed = true;
      changed();
    });
    return state;
  } catch {
    return undefined;
  }
}

export interface RunningEdge {
  side: EdgeSide;
  follower: Follower;
  close(): Promise<void>;
}

/**
 * An edge's cache, queue and follower (edge/follower.ts), under EDGE_DIR. The configurator's
 * nodes come from the cache from now on (DHCP reservations, per-node boot files), so the
 * automatic apply renders what the region's feed says, not this host's (empty) store.
 */
async function startEdge(settings: ServiceSettings, regionUrl: string, key: string): Promise<RunningEdge> {
  const dir = settings.paths.resolve(EDGE_DIR);
  const cache = await loadEdgeCache(dir);
  const outbox = await openOutbox(dir);
  const feed = createRegionFeed({ regionUrl, key, edgeName: os.hostname().toLowerCase(), timeoutMs: settings.config.getNumber('provisioning.region_timeout_ms') });
  const follower = startFollower({ cache, outbox, feed, log: settings.log.child({ side: 'edge' }) });
  useRenderNodeSource(settings.store, async () => cache.list().map(selectContextNode));
  return {
    side: createEdgeSide(cache, outbox),
    follower,
    async close() {
      await follower.stop();
      await Promise.all([cache.close(), outbox.close()]);
    },
  };
}

export interface RunningService {
  /** The first listener (the provisioning address, or the one asked for). */
  server: http.Server;
  /** Every listener: the provisioning address and loopback, or the one address asked for. */
  servers: http.Server[];
  /** The addresses listened on, in order. */
  hosts: string[];
  port: number;
  close(): Promise<void>;
}

/**
 * Where the service listens: the one address asked for, else the provisioning server's own
 * address (where machines on the LAN reach it) and loopback (the web UI, the CLI, a local
 * edge). Never every address by default: other networks of this host must not reach it. Pure.
 */
export function selectListenAddresses(asked: string | undefined, server: { address: string }): string[] {
  if (asked !== undefined && asked !== '') return [asked];
  return [...new Set([server.address, '127.0.0.1'].filter(Boolean))];
}

/** Changes read from the node store's feed at a time, by the apply's follower. */
const FOLLOW_BATCH = 1000;

/** Listen, sweep stuck deployments every minute, and stop cleanly. */

export async function startService(
  settings: ServiceSettings & {
    port: number;
    host?: string;
    /** Bring the files of these nodes up to date (DHCP reservations, boot files); null: all of them. */
    onNodesChanged?: (changes: readonly ChangedNode[] | null) => Promise<void>;
  },
): Promise<RunningService> {
  let services: Services | undefined;
  const answering = new Set<Promise<void>>();
  const onRequest: http.RequestListener = (req, res) => {
    if (!services) return send(res, text(503, 'starting', { 'Retry-After': '1' }));
    if (services.answerFast(req, res)) return;
    const handled = services
      .handle(req, res)
      .catch((err: unknown) => {
        // A request must never take the service down: log it, and end the answer if it is still open.
        settings.log.error(`${req.method} ${(req.url ?? '').split('?')[0]}: ${describeError(err)}`, { code: 'INTERNAL' });
        if (!res.headersSent) send(res, text(500, 'internal error'));
        else if (!res.writableEnded) res.destroy();
      })
      .finally(() => answering.delete(handled));
    answering.add(handled);
  };
  const hosts = selectListenAddresses(settings.host, settings.server);
  const servers: http.Server[] = [];
  let port = settings.port;
  try {
    for (const host of hosts) {
      const server = http.createServer(onRequest);
      server.keepAliveTimeout = 5000;
      await new Promise<void>((resolve, reject) => {
        server.once('error', (err) => reject(new UecError('INTERNAL', `cannot listen on ${host}:${port}: ${describeError(err)}`, { cause: err })));
        server.listen(port, host, () => resolve());
      });
      servers.push(server);
      // Port 0 (tests): every other address listens on the port the first one got.
      port = (server.address() as { port: number }).port;
    }
    // The in-process region is asked on loopback when the service listens there.
    services = await createServices({ ...settings, localPort: port, localHost: hosts.includes('127.0.0.1') ? '127.0.0.1' : hosts[0] });
  } catch (err) {
    for (const server of servers) server.close();
    throw err;
  }
  const server = servers[0]!;
  useMetricsSources({
    countNodesByStatus: services.region ? () => settings.store.countByStatus() : undefined,
    dnsmasqBusName: DHCPD_BUS_NAME,
    mirrorStateFile: () => selectMirrorStateFile(settings.paths, settings.config),
    lastRegionAnswer: watchRegionAnswers(services.provisioning.region),
    regionName: settings.config.getString('provisioning.region_url') || 'local',
    // The journal's times are the wall clock's, whatever clock the service was given.
    readTftpTransfers: watchTftpTransfers({ since: new Date() }),
  });
  const timeout = settings.config.getNumber('region.deploy_timeout');
  const sweep = async () => {
    try {
      const failed = await failStuckDeployments(settings.store, timeout, settings.clock);
      for (const node of failed) settings.log.warn(`node ${node.hostname} (${node.systemId}) failed: ${node.statusReason}`);
    } catch (err) {
      settings.log.error(`deploy timeout sweep: ${describeError(err)}`);
    }
  };
  const timer = services.region ? setInterval(() => void sweep(), 60_000) : undefined;
  timer?.unref();
  if (services.region) void sweep();
  // Node changes are applied (DHCP reservations, boot configs) one apply at a time, in order,
  // each for the nodes that changed only (a node apply: no other node is read). The store's
  // commits of one turn of the event loop make one apply, so does a burst that arrives while
  // an apply runs (a boot storm of enlistments). A trigger without changes (the edge's cache)
  // applies every node. close() runs the apply still waiting and waits for it.
  let pending: NodeJS.Timeout | undefined;
  let changed = new Map<string, ChangedNode>();
  let applyAll = false;
  let applying: Promise<void> = Promise.resolve();
  let stopped = false;
  const apply = settings.onNodesChanged;
  const runApply = () => {
    if (pending === undefined || !apply) return;
    clearTimeout(pending);
    pending = undefined;
    if (changed.size === 0) applyAll = true;
    applying = applying
      .then(() => {
        // What accumulated until this apply starts; empty when an earlier one took it.
        const [all, batch] = [applyAll, changed];
        [applyAll, changed] = [false, new Map()];
        if (all || batch.size > 0) return apply(all ? null : [...batch.values()]);
      })
      .catch((err: unknown) => settings.log.error(`applying node changes: ${describeError(err)}`));
  };
  // The store's commits reach the apply through its change feed, from where this service
  // started: those of this process at once (onChange), those of other processes (the web UI's
  // deploys, a CLI command with --no-apply, the other hosts of a PostgreSQL region) within a
  // second. Following the feed, not onChange alone, is what makes a deploy from the web UI
  // write the node's pxelinux and GRUB files.
  const feedCursor = apply && services.region ? { at: await settings.store.currentCursor(), reading: false, again: false } : undefined;
  const followStore = async () => {
    if (!feedCursor || stopped) return;
    if (feedCursor.reading) {
      feedCursor.again = true; // a commit during this read: read once more after it
      return;
    }
    feedCursor.reading = true;
    try {
      for (;;) {
        feedCursor.again = false;
        const batch = await settings.store.changesSince(feedCursor.at, FOLLOW_BATCH);
        feedCursor.at = batch.cursor;
        if (batch.reset) applyAll = true;
        for (const change of batch.changes) changed.set(change.systemId, change);
        if (batch.reset || batch.changes.length > 0) {
          clearTimeout(pending);
          pending = setTimeout(runApply, 0);
        }
        if (batch.changes.length < FOLLOW_BATCH && !feedCursor.again) break;
      }
    } catch (err) {
      settings.log.error(`following the node store's changes: ${describeError(err)}`);
    } finally {
      feedCursor.reading = false;
    }
  };
  const followTimer = feedCursor ? setInterval(() => void followStore(), 1000) : undefined;
  followTimer?.unref();
  if (apply) {
    settings.store.onChange(() => void followStore());
    // On an edge the nodes change when the feed (or a queued call-back) changes the cache: those
    // nodes, or all of them after a reset; and all once at start, so the files match the cache.
    const cache = services.edge?.side.cache;
    cache?.onChange((ids, reset) => {
      if (stopped) return;
      if (reset) applyAll = true;
      for (const id of ids) {
        const context = cache.get(id);
        changed.set(id, { systemId: id, node: context ? selectContextNode(context) : null });
      }
      clearTimeout(pending);
      pending = setTimeout(runApply, 0);
    });
    if (cache?.synced()) {
      applyAll = true;
      pending = setTimeout(runApply, 0);
    }
  }
  settings.log.info(`listening on ${hosts.map((h) => `${h}:${port}`).join(' and ')}${services.region ? ' (region and provisioning server)' : ' (provisioning server)'}`);
  return {
    server,
    servers,
    hosts,
    port,
    close: async () => {
      if (timer) clearInterval(timer);
      if (followTimer) clearInterval(followTimer);
      services?.stop();
      await followStore();
      const closed = Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
      // Finish what is under way, so no write outlives the service: the reports to the region
      // (bounded by provisioning.region_timeout_ms), the requests being answered, the apply.
      await services?.provisioning.region.settle();
      await Promise.allSettled([...answering]);
      for (const s of servers) s.closeAllConnections();
      await closed;
      stopped = true;
      runApply();
      await applying;
      await services?.edge?.close();
    },
  };
}
