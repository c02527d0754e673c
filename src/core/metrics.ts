/**
 * Prometheus metrics (docs/metrics.md), through prom-client: the one module that imports it.
 *
 * One registry per process, the way Prometheus client libraries work: `uec-provisioning serve`
 * and the web UI are separate processes, each scraped on its own /metrics. What a process
 * counts is what it did itself (requests it answered, deploys it started or saw end); a
 * restart resets the counters, which Prometheus's rate() and increase() expect. Gauges that
 * describe the system (nodes by status, dnsmasq's counters, the mirror's last sync, the age of
 * the last region answer) are computed at scrape time from the sources the service registers
 * with useMetricsSources; a source that cannot be read leaves its metric out (and says so in
 * an _up gauge where there is one), never fails the scrape. The TFTP transfers are the one
 * counter read from outside at scrape time that is carried: each scrape adds the lines the
 * TFTP dnsmasq logged since the one before.
 */
import * as fs from 'node:fs';
import type { IncomingMessage } from 'node:http';
import * as dbus from 'dbus-next';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { describeError } from './errors';
import { selectMatchedRoute } from './http-routes';
import type { Reply } from './http-util';

const registry = new Registry();

/** Seconds buckets for work done per request (renders, call-backs): 100 µs … 2.5 s. */
const FAST_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
/** Seconds buckets for a whole install: 1 min … 2 h. */
const DEPLOY_BUCKETS = [60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200];

/** Counts of countRequestsOf's counters not yet added to `requests` (added when it is read). */
const tallies: { labels: Record<'service' | 'route' | 'method' | 'status', string>; count: number }[] = [];
const requests = new Counter({
  name: 'uecp_http_requests_total',
  help: 'HTTP requests answered, by service, route (the route table pattern; "unmatched" for none), method and status.',
  labelNames: ['service', 'route', 'method', 'status'] as const,
  registers: [registry],
  collect() {
    for (const tally of tallies) {
      if (tally.count === 0) continue;
      this.inc(tally.labels, tally.count);
      tally.count = 0;
    }
  },
});
const preseedRender = new Histogram({
  name: 'uecp_preseed_render_duration_seconds',
  help: 'Time to select and render one preseed (cache hits included).',
  buckets: FAST_BUCKETS,
  registers: [registry],
});
const bootScriptRender = new Histogram({
  name: 'uecp_boot_script_render_duration_seconds',
  help: 'Time to render one per-node iPXE boot script.',
  buckets: FAST_BUCKETS,
  registers: [registry],
});
const callbacks = new Histogram({
  name: 'uecp_callback_duration_seconds',
  help: 'Region handling time of the /metadata call-backs of installing machines, by route and status.',
  labelNames: ['route', 'status'] as const,
  buckets: FAST_BUCKETS,
  registers: [registry],
});
const deploysStarted = new Counter({ name: 'uecp_deploys_started_total', help: 'Nodes this process set deploying.', registers: [registry] });
const deploysFinished = new Counter({ name: 'uecp_deploys_finished_total', help: 'Deploys this process saw end in deployed (the first-boot report).', registers: [registry] });
const deploysFailed = new Counter({
  name: 'uecp_deploys_failed_total',
  help: 'Deploys this process saw end in failed, by cause: reported (the installer said so) or timeout (region.deploy_timeout ran out).',
  labelNames: ['cause'] as const,
  registers: [registry],
});
const deployDuration = new Histogram({
  name: 'uecp_deploy_duration_seconds',
  help: 'From a deploy start to deployed or failed, by outcome.',
  labelNames: ['outcome'] as const,
  buckets: DEPLOY_BUCKETS,
  registers: [registry],
});

/** Where the scrape-time metrics come from; each is optional (a service registers what it has). */
export interface MetricsSources {
  /** How many nodes the node store holds in each status (every status named, zeros included). */
  countNodesByStatus?: () => Promise<Record<string, number>>;
  /** dnsmasq's D-Bus service name (the DHCP instance's enable-dbus=). */
  dnsmasqBusName?: string;
  /** The mirror's state.json (resolved path), when the mirror package is configured. */
  mirrorStateFile?: () => string | undefined;
  /** When the region last answered this provisioning server (ms since the epoch), if ever. */
  lastRegionAnswer?: () => number | undefined;
  /** The region's URL as configured (provisioning.region_url), for the edge lag's label; "local" when unset. */
  regionName?: string;
  /** The clock for ages (ms since the epoch). */
  now?: () => number;
  /**
   * The TFTP transfers the TFTP-only dnsmasq logged since the last call (the first call: since
   * the service started), read from its journal; `problem` is '' when the log was read to its
   * end, else why not (what was read before a cut-off is in `transfers` all the same). Rejects
   * when the log cannot be read at all.
   */
  readTftpTransfers?: () => Promise<TftpRead>;
}

/** What a TFTP transfer ended in: sent, dnsmasq gave up (`failed sending`), no such file, or the client stopped it with an error. */
export const TFTP_RESULTS = ['sent', 'failed', 'not_found', 'aborted'] as const;
/** What the file is in the boot chain: the first-stage loader, a boot config (pxelinux.cfg/, grub/), the installer's kernel or initrd (images/), anything else. */
export const TFTP_KINDS = ['loader', 'config', 'image', 'other'] as const;

/** One TFTP transfer, as the metrics count it: never the file name or the client, so the labels stay bounded. */
export interface TftpTransfer {
  result: (typeof TFTP_RESULTS)[number];
  kind: (typeof TFTP_KINDS)[number];
}

export interface TftpRead {
  transfers: readonly TftpTransfer[];
  problem: string;
}

let sources: MetricsSources = {};

/** Register this process's sources (a later call replaces the earlier ones it names). */
export function useMetricsSources(more: MetricsSources): void {
  sources = { ...sources, ...more };
}

new Gauge({
  name: 'uecp_nodes',
  help: 'Nodes in the node store, by status.',
  labelNames: ['status'] as const,
  registers: [registry],
  async collect() {
    this.reset();
    if (!sources.countNodesByStatus) return;
    const counts = await sources.countNodesByStatus();
    for (const [status, n] of Object.entries(counts)) this.set({ status }, n);
  },
});

// ---------------------------------------------------------------------------- dnsmasq

/** The DHCP instance's bus name (templates/dhcpd: enable-dbus=). */
export const DHCPD_BUS_NAME = 'uk.org.thekelleys.dnsmasq.uec_provisioning_dhcpd';
const DNSMASQ_PATH = '/uk/org/thekelleys/dnsmasq';
const DNSMASQ_TIMEOUT_MS = 1000;
/** GetMetrics keys exported, and the message type each is. */
const DHCP_MESSAGES: Record<string, string> = {
  dhcp_discover: 'discover',
  dhcp_offer: 'offer',
  dhcp_request: 'request',
  dhcp_ack: 'ack',
  dhcp_nak: 'nak',
  dhcp_decline: 'decline',
  dhcp_release: 'release',
  dhcp_inform: 'inform',
  bootp: 'bootp',
  pxe: 'pxe',
};

/** dnsmasq's GetMetrics (a{su}) over the system bus; throws when dnsmasq does not answer in time. */
export async function readDnsmasqMetrics(busName: string, timeoutMs = DNSMASQ_TIMEOUT_MS): Promise<Map<string, number>> {
  const bus = dbus.systemBus();
  // dbus-next reports a refused connection as an 'error' event as well as on the call.
  bus.on('error', () => undefined);
  let timer: NodeJS.Timeout | undefined;
  try {
    const call = bus.call(new dbus.Message({ destination: busName, path: DNSMASQ_PATH, interface: busName, member: 'GetMetrics', signature: '', body: [] }));
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    const reply = await Promise.race([call, timeout]);
    const [dict] = (reply?.body as unknown[] | undefined) ?? [];
    return parseDnsmasqMetrics(dict);
  } finally {
    clearTimeout(timer);
    bus.disconnect();
  }
}

/** Pure: GetMetrics' a{su} as dbus-next gives it (an object) to a map of numbers. */
export function parseDnsmasqMetrics(dict: unknown): Map<string, number> {
  const out = new Map<string, number>();
  if (dict && typeof dict === 'object') {
    for (const [k, v] of Object.entries(dict as Record<string, unknown>)) if (typeof v === 'number' && Number.isFinite(v)) out.set(k, v);
  }
  return out;
}

const dnsmasqUp = new Gauge({ name: 'uecp_dnsmasq_up', help: "1 when the DHCP instance's dnsmasq answered GetMetrics over D-Bus at this scrape, else 0.", registers: [registry] });
const dhcpMessages = new Counter({
  name: 'uecp_dnsmasq_dhcp_messages_total',
  help: 'DHCP messages dnsmasq handled since it started (GetMetrics), by type; bootp and pxe are its BOOTP and proxy-PXE replies.',
  labelNames: ['dnsmasq', 'type'] as const,
  registers: [registry],
});
// Labelled by instance, so that they are absent (not 0) when dnsmasq does not answer.
const leasesAllocated = new Counter({ name: 'uecp_dnsmasq_leases_allocated_total', help: 'DHCPv4 leases dnsmasq allocated since it started (GetMetrics leases_allocated_4).', labelNames: ['dnsmasq'] as const, registers: [registry] });
const leasesPruned = new Counter({ name: 'uecp_dnsmasq_leases_pruned_total', help: 'DHCPv4 leases dnsmasq expired since it started (GetMetrics leases_pruned_4).', labelNames: ['dnsmasq'] as const, registers: [registry] });

async function collectDnsmasq(): Promise<void> {
  dhcpMessages.reset();
  leasesAllocated.reset();
  leasesPruned.reset();
  if (!sources.dnsmasqBusName) {
    dnsmasqUp.set(0);
    return;
  }
  let values: Map<string, number>;
  try {
    values = await readDnsmasqMetrics(sources.dnsmasqBusName);
  } catch (err) {
    dnsmasqUp.set(0);
    lastDnsmasqError = describeError(err);
    return;
  }
  dnsmasqUp.set(1);
  lastDnsmasqError = '';
  for (const [key, type] of Object.entries(DHCP_MESSAGES)) {
    const v = values.get(key);
    if (v !== undefined) dhcpMessages.inc({ dnsmasq: 'dhcpd', type }, v);
  }
  const allocated = values.get('leases_allocated_4');
  if (allocated !== undefined) leasesAllocated.inc({ dnsmasq: 'dhcpd' }, allocated);
  const pruned = values.get('leases_pruned_4');
  if (pruned !== undefined) leasesPruned.inc({ dnsmasq: 'dhcpd' }, pruned);
}

let lastDnsmasqError = '';
/** Why the last scrape could not read dnsmasq ('' when it could): for the tests and a debug log. */
export function lastDnsmasqProblem(): string {
  return lastDnsmasqError;
}

// ------------------------------------------------------------------------------- TFTP

const tftpLogUp = new Gauge({ name: 'uecp_tftp_log_up', help: "1 when the TFTP-only dnsmasq's log (the journal of uec-provisioning-tftpd) was read to its end at this scrape, else 0.", registers: [registry] });
// Carried in the process (never reset): each scrape adds what was logged since the last one.
const tftpTransfers = new Counter({
  name: 'uecp_tftp_transfers_total',
  help: 'TFTP transfers the TFTP-only dnsmasq logged since this process started, by result (sent, failed, not_found, aborted) and kind of file (loader, config, image, other).',
  labelNames: ['result', 'kind'] as const,
  registers: [registry],
});

/** A TFTP read in progress: a second scrape meanwhile waits for it instead of counting the same lines again. */
let tftpCollecting: Promise<void> | undefined;
let lastTftpError = '';

async function collectTftpOnce(read: () => Promise<TftpRead>): Promise<void> {
  // Every series from the first scrape on, so that rate() and increase() see their start.
  for (const result of TFTP_RESULTS) for (const kind of TFTP_KINDS) tftpTransfers.inc({ result, kind }, 0);
  let got: TftpRead;
  try {
    got = await read();
  } catch (err) {
    tftpLogUp.set(0);
    lastTftpError = describeError(err);
    return;
  }
  for (const { result, kind } of got.transfers) tftpTransfers.inc({ result, kind });
  tftpLogUp.set(got.problem ? 0 : 1);
  lastTftpError = got.problem;
}

async function collectTftp(): Promise<void> {
  const read = sources.readTftpTransfers;
  if (!read) {
    tftpLogUp.set(0);
    return;
  }
  if (!tftpCollecting) tftpCollecting = collectTftpOnce(read).finally(() => (tftpCollecting = undefined));
  await tftpCollecting;
}

/** Why the last scrape could not read the TFTP log to its end ('' when it could): for the tests and a debug log. */
export function lastTftpProblem(): string {
  return lastTftpError;
}

// ----------------------------------------------------------------------------- mirror

/** Pure: the mirror's state.json to the timestamps (seconds) of the last attempt and of the served tree. */
export function parseMirrorState(text: string): { mode: string; success: boolean; finished?: number; served?: number } | null {
  let state: { mode?: unknown; result?: unknown; finished?: unknown; generation?: unknown };
  try {
    state = JSON.parse(text) as typeof state;
  } catch {
    return null;
  }
  if (!state || typeof state !== 'object' || (state.result !== 'ok' && state.result !== 'failed')) return null;
  const finished = typeof state.finished === 'string' ? Date.parse(state.finished) / 1000 : NaN;
  // The served tree's generation is its sync's start time: 20261206T091953123Z (-1 for a second one that millisecond).
  const m = typeof state.generation === 'string' ? /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z/.exec(state.generation) : null;
  const served = m ? Date.parse(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}.${m[7]}Z`) / 1000 : NaN;
  const mode = state.mode === 'iso' ? 'iso' : 'mirror';
  return { mode, success: state.result === 'ok', ...(Number.isFinite(finished) ? { finished } : {}), ...(Number.isFinite(served) ? { served } : {}) };
}

// Labelled by mode (mirror or iso), so that they are absent (not 0) before the first sync.
const mirrorSuccess = new Gauge({ name: 'uecp_mirror_last_sync_success', help: "1 when the mirror's last sync (or ISO extraction) succeeded, 0 when it failed; absent before the first.", labelNames: ['mode'] as const, registers: [registry] });
const mirrorFinished = new Gauge({ name: 'uecp_mirror_last_sync_timestamp_seconds', help: "When the mirror's last sync attempt ended (Unix time).", labelNames: ['mode'] as const, registers: [registry] });
const mirrorServed = new Gauge({ name: 'uecp_mirror_served_tree_timestamp_seconds', help: 'When the sync that produced the served tree started (Unix time): its age is time() minus this.', labelNames: ['mode'] as const, registers: [registry] });

async function collectMirror(): Promise<void> {
  mirrorSuccess.reset();
  mirrorFinished.reset();
  mirrorServed.reset();
  const file = sources.mirrorStateFile?.();
  if (!file) return;
  const text = await fs.promises.readFile(file, 'utf8').catch(() => null);
  const state = text === null ? null : parseMirrorState(text);
  if (!state) return;
  const labels = { mode: state.mode };
  mirrorSuccess.set(labels, state.success ? 1 : 0);
  if (state.finished !== undefined) mirrorFinished.set(labels, state.finished);
  if (state.served !== undefined) mirrorServed.set(labels, state.served);
}

// ---------------------------------------------------------------------------- edge lag

const regionAnswerAge = new Gauge({
  name: 'uecp_region_last_answer_age_seconds',
  help: 'Seconds since the region last answered this provisioning server (edge lag), by region ("local": in this process or on loopback); absent before its first answer.',
  labelNames: ['region'] as const,
  registers: [registry],
});

function collectEdge(): void {
  regionAnswerAge.reset();
  const at = sources.lastRegionAnswer?.();
  if (at === undefined) return;
  regionAnswerAge.set({ region: sources.regionName ?? 'local' }, Math.max(0, ((sources.now ?? Date.now)() - at) / 1000));
}

// ----------------------------------------------------------------------------- hooks

/** Label values stay bounded: a client's invented method is "other". */
const KNOWN_METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'];

/** One answered request; `route` is the route table's pattern, never the raw path. */
export function recordRequest(service: 'provisioning' | 'webui', route: string, method: string, status: number): void {
  const known = method === 'HEAD' ? 'GET' : KNOWN_METHODS.includes(method) ? method : 'other';
  requests.inc({ service, route, method: known, status: String(status) });
}

/**
 * A counter of one fixed route, method and status: for a path answered many times a second
 * (the preseed fast path), where prom-client's label look-up per request costs more than the
 * answer. It counts in a plain number, added to the same series as recordRequest's whenever
 * the counter is read (a scrape, or a test's get()). Make one per route and status, once.
 */
export function countRequestsOf(service: 'provisioning' | 'webui', route: string, method: string, status: number): () => void {
  const known = method === 'HEAD' ? 'GET' : KNOWN_METHODS.includes(method) ? method : 'other';
  const tally = { labels: { service, route, method: known, status: String(status) }, count: 0 };
  tallies.push(tally);
  return () => void tally.count++;
}

export function recordCallback(route: string, status: number, seconds: number): void {
  callbacks.observe({ route, status: String(status) }, seconds);
}

/** Time an async render into the preseed or boot script histogram. */
export async function timeRender<T>(what: 'preseed' | 'boot-script', render: () => Promise<T>): Promise<T> {
  const end = (what === 'preseed' ? preseedRender : bootScriptRender).startTimer();
  try {
    return await render();
  } finally {
    end();
  }
}

export function recordDeploysStarted(count: number): void {
  if (count > 0) deploysStarted.inc(count);
}

/** A deploy ended; `startedAt` is when it started (the node's statusChangedAt while deploying). */
export function recordDeployEnded(outcome: 'deployed' | 'failed', startedAt: string, endedAt: Date, cause: 'reported' | 'timeout' = 'reported'): void {
  if (outcome === 'deployed') deploysFinished.inc();
  else deploysFailed.inc({ cause });
  const seconds = (endedAt.getTime() - Date.parse(startedAt)) / 1000;
  if (Number.isFinite(seconds) && seconds >= 0) deployDuration.observe({ outcome }, seconds);
}

/** The scrape: the text exposition format and its content type. */
export async function renderMetrics(): Promise<{ type: string; body: string }> {
  // The scrape-time reads first: the registry serialises its metrics concurrently.
  await Promise.all([collectDnsmasq(), collectMirror(), collectTftp()]);
  collectEdge();
  return { type: registry.contentType, body: await registry.metrics() };
}

/** The /metrics route's answer (region route table). */
export async function scrapeMetrics(): Promise<Reply> {
  const { type, body } = await renderMetrics();
  return { status: 200, body, type, headers: { 'Cache-Control': 'no-store' } };
}

/** Pure: is this client address loopback (127.0.0.0/8, ::1, or either mapped)? */
export function isLoopbackAddress(address: string): boolean {
  const a = address.startsWith('::ffff:') ? address.slice(7) : address;
  return a === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(a);
}

/** One request the provisioning service answered: its route table pattern (or "unmatched") and status; call-backs timed too. */
export function recordServedRequest(req: IncomingMessage, status: number, seconds: number): void {
  const route = selectMatchedRoute(req) ?? 'unmatched';
  recordRequest('provisioning', route, req.method ?? 'GET', status);
  if (route.startsWith('/metadata/latest/')) recordCallback(route, status, seconds);
}

/**
 * When the region last answered this provisioning server: wraps the client's calls in place
 * (the same object the service keeps using across configuration reloads). An answer is any
 * reply, a 404 or a refusal included; a timeout or a refused connection is none.
 */
export function watchRegionAnswers(client: { fetchContext: (...a: never[]) => Promise<unknown>; claimAddress: (...a: never[]) => Promise<unknown> }, now: () => number = Date.now): () => number | undefined {
  let last: number | undefined;
  for (const method of ['fetchContext', 'claimAddress'] as const) {
    const original = client[method].bind(client) as (...a: unknown[]) => Promise<unknown>;
    try {
      (client as Record<typeof method, (...a: unknown[]) => Promise<unknown>>)[method] = async (...args: unknown[]) => {
        const value = await original(...args);
        last = now();
        return value;
      };
    } catch {
      // A client that cannot be wrapped (frozen): no edge lag metric, never a failed start.
    }
  }
  return () => last;
}

/** The mirror's state file under the configuration (mirror.base_dir), or undefined without the mirror package. */
export function selectMirrorStateFile(paths: { resolve(p: string): string }, config: { getString(key: string): string }): string | undefined {
  try {
    const base = config.getString('mirror.base_dir');
    return base ? paths.resolve(`${base.replace(/\/$/, '')}/state.json`) : undefined;
  } catch {
    return undefined;
  }
}
