/** A region and a provisioning server on loopback port 0, over a scratch root, for the HTTP tests. */
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import type { Test } from 'tap';
import { loadArchiveSettings } from '../../src/core/archive';
import { buildNodeContext, type NodeContext } from '../../src/contract/context';
import { send, text } from '../../src/core/http-util';
import { SILENT_LOGGER, createLogger, type Logger } from '../../src/core/log';
import type { ClientAddressing, NeighbourEntry } from '../../src/core/neighbours';
import type { Node } from '../../src/contract/node';
import type { Clock } from '../../src/region/node-ops';
import { createFileNodeStore, type NodeStore } from '../../src/region/node-store';
import type { Paths } from '../../src/core/paths';
import { preseedDirs } from '../../src/edge/preseed';
import { LOADER_LINK_TARGETS, createEdgeSide, handleProvisioningRequest, type ProvisioningOptions } from '../../src/edge/provisioning';
import { loadEdgeCache, type EdgeCache } from '../../src/edge/edge-cache';
import { openOutbox, type Outbox } from '../../src/edge/outbox';
import { startFollower, type Follower } from '../../src/edge/follower';
import { handleRegionRequest, type RegionOptions } from '../../src/region/region';
import { createRegionClient, createRegionFeed } from '../../src/edge/region-client';
import { loadRoles } from '../../src/contract/roles';
import { templateDirs } from '../../src/core/template';
import { REPO_ROOT, scratchRoot } from './scratch';
import { loadConfig } from '../../src/core/config';
import { loadComponents, mergeSchemas } from '../../src/configurator/component';

export const SHIPPED_TEMPLATES = path.join(REPO_ROOT, 'templates');
export const KEY = 'k'.repeat(43);

/** Listen on 127.0.0.1:0 with a handler; closed at teardown. */
export async function listen(t: Test, handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

export function memoryLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: createLogger({ level: 'debug', json: false, write: (l) => void lines.push(l) }), lines };
}

/**
 * A fake LAN for tests that run on loopback: the client address is taken from the test-only
 * header X-Fake-Client (127.0.0.1 without it), and the neighbour table is a map the test
 * fills. Only tests use it; the services' default reads the socket and /proc/net/arp.
 */
export interface FakeLan {
  addressing: ClientAddressing;
  /** Puts ADDRESS → MAC in the fake neighbour table (router: a gateway's MAC). */
  neighbour(address: string, mac: string, router?: boolean): void;
  /** Headers that make a request come from ADDRESS (merge others in). */
  from(address: string, headers?: Record<string, string>): { headers: Record<string, string> };
}

export function createFakeLan(): FakeLan {
  const table = new Map<string, NeighbourEntry>();
  return {
    addressing: {
      clientAddress: (req) => {
        const fake = req.headers['x-fake-client'];
        return typeof fake === 'string' ? fake : '127.0.0.1';
      },
      neighbour: async (address) => table.get(address) ?? null,
    },
    neighbour: (address, mac, router = false) => void table.set(address, { mac, router }),
    from: (address, headers = {}) => ({ headers: { 'X-Fake-Client': address, ...headers } }),
  };
}

export interface Fixture {
  paths: Paths;
  store: NodeStore;
  region: RegionOptions;
  regionUrl: string;
  provisioning: ProvisioningOptions;
  provisioningUrl: string;
  lines: string[];
  clock: Clock & { set(d: Date): void };
  lan: FakeLan;
}

export async function startFixture(t: Test, options: { cacheMs?: number; timeoutMs?: number; regionUrl?: string } = {}): Promise<Fixture> {
  const paths = scratchRoot(t);
  const store = createFileNodeStore(paths);
  const config = await loadConfig(paths, mergeSchemas(loadComponents()));
  let now = new Date('2026-03-01T10:00:00.000Z');
  const clock = { now: () => now, set: (d: Date) => void (now = d) };
  const { log, lines } = memoryLog();
  const lan = createFakeLan();
  const region: RegionOptions = {
    store,
    urls: { base: 'http://192.0.2.10:5248' },
    provisioningKey: KEY,
    loadArchive: () => loadArchiveSettings(paths, config),
    loadRoles: () => loadRoles(paths, path.join(SHIPPED_TEMPLATES, 'roles')),
    loadAuthorizedKeys: async () => ['ssh-ed25519 AAAAC3Nza test@example'],
    adminUser: 'debian',
    log,
    clock,
    addressing: lan.addressing,
  };
  const regionUrl = await listen(t, (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    void handleRegionRequest(region, req, url).then((reply) => send(res, reply ?? text(404, 'not found'), req.method));
  });
  const provisioning: ProvisioningOptions = {
    region: createRegionClient({ regionUrl: options.regionUrl ?? regionUrl, key: KEY, cacheMs: options.cacheMs ?? 0, timeoutMs: options.timeoutMs ?? 3000 }),
    regionUrl: options.regionUrl ?? regionUrl,
    urls: { httpBase: 'http://192.0.2.10:5248', domain: 'example.org' },
    kernelArgs: 'console=ttyS0,115200',
    bootDir: paths.resolve('/var/lib/uec-provisioning/boot'),
    templates: templateDirs(paths, SHIPPED_TEMPLATES),
    preseeds: { ...preseedDirs(paths), shipped: path.join(SHIPPED_TEMPLATES, 'preseeds') },
    linkTargets: LOADER_LINK_TARGETS,
    log,
    addressing: lan.addressing,
  };
  const provisioningUrl = await listen(t, (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    void handleProvisioningRequest(provisioning, req, url).then((reply) => send(res, reply ?? text(404, 'not found'), req.method));
  });
  return { paths, store, region, regionUrl, provisioning, provisioningUrl, lines, clock, lan };
}

/** A context for pure tests (never from a store). */
export function sampleContext(over: Partial<Node> = {}): NodeContext {
  const node: Node = {
    systemId: 'node-abc123', hostname: 'web1', macs: ['52:54:00:00:00:01'], arch: 'amd64', subarch: 'bios', role: 'server', os: 'debian', release: 'bookworm',
    status: 'deploying', statusReason: '', statusChangedAt: '2026-03-01T10:00:00.000Z', ipv4: '', token: 'Tok3nTok3nTok3nTok3nTok3nTok3n_-', netboot: true,
    hardware: {}, createdAt: '2026-03-01T10:00:00.000Z', updatedAt: '2026-03-01T10:00:00.000Z', events: [], ...over,
  };
  return buildNodeContext(
    node,
    { base: 'http://192.0.2.10:5248' },
    { main_archive: 'http://deb.debian.org/debian', ports_archive: 'http://ports.example.org/debian', http_proxy: 'http://192.0.2.10:3142/', source: 'config' },
    { name: 'server', description: 'Plain server', tasks: ['standard', 'ssh-server'], packages: {}, preseed: ['d-i foo/bar string baz'], lateCommands: ['in-target true'], file: '' },
    ['openssh-server'],
    { commissioningRelease: 'bookworm', adminUser: 'debian', authorizedKeys: ['ssh-ed25519 AAAAC3Nza test@example'] },
  );
}

export { SILENT_LOGGER };

/**
 * A TCP pass-through to `target` (http://127.0.0.1:PORT) that a test can take down and bring
 * back: down() closes every connection and refuses new ones, as a stopped region does.
 */
export async function startSwitch(t: Test, target: string): Promise<{ url: string; down(): void; up(): void }> {
  const port = Number(new URL(target).port);
  let isDown = false;
  const open = new Set<net.Socket>();
  const server = net.createServer((client) => {
    if (isDown) return void client.destroy();
    const upstream = net.connect(port, '127.0.0.1');
    for (const s of [client, upstream]) {
      open.add(s);
      s.on('close', () => open.delete(s));
      s.on('error', () => undefined);
    }
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of open) s.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    down: () => {
      isDown = true;
      for (const s of open) s.destroy();
    },
    up: () => void (isDown = false),
  };
}

export interface EdgeFixture {
  edgeUrl: string;
  provisioning: ProvisioningOptions;
  cache: EdgeCache;
  outbox: Outbox;
  follower: Follower;
  /** The region as the edge reaches it: take it down and bring it back. */
  region: { down(): void; up(): void };
}

/**
 * An edge on loopback in front of the fixture's region (through a switch): its cache and
 * outbox under `dir`, its follower polling every second at most, retrying every 100 ms.
 */
export async function startEdgeFixture(t: Test, f: Fixture, dir: string, options: { edgeName?: string } = {}): Promise<EdgeFixture> {
  const regionSwitch = await startSwitch(t, f.regionUrl);
  const cache = await loadEdgeCache(dir);
  const outbox = await openOutbox(dir);
  const feed = createRegionFeed({ regionUrl: regionSwitch.url, key: KEY, edgeName: options.edgeName ?? 'edge-b', timeoutMs: 2000 });
  const follower = startFollower({ cache, outbox, feed, log: f.provisioning.log, waitSeconds: 1, retryMs: 100 });
  const provisioning: ProvisioningOptions = {
    ...f.provisioning,
    region: createRegionClient({ regionUrl: regionSwitch.url, key: KEY, cacheMs: 0, timeoutMs: 1000 }),
    regionUrl: regionSwitch.url,
    urls: { httpBase: 'http://192.0.2.20:5248', domain: 'example.org' },
    edge: createEdgeSide(cache, outbox),
  };
  const edgeUrl = await listen(t, (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    void handleProvisioningRequest(provisioning, req, url).then((reply) => send(res, reply ?? text(404, 'not found'), req.method));
  });
  t.teardown(async () => {
    await follower.stop();
    await cache.close();
    await outbox.close();
  });
  return { edgeUrl, provisioning, cache, outbox, follower, region: regionSwitch };
}
