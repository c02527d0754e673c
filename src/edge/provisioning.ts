/**
 * The provisioning server's HTTP side: what netbooting and installing machines fetch. Every
 * route is in PROVISIONING_ROUTES (method, path, who may call it, body limit, handler).
 *
 *   GET /boot/ipxe                      open: the iPXE script DHCP hands every iPXE client
 *   GET /boot/ipxe/node?mac=…           open: that machine's script: enlist or local disk; the
 *                                       install script only to a client that owns the node
 *   GET /boot/<path>                    open: the boot tree (kernel, initrd) over HTTP
 *   GET /preseed/enlist                 open: the preseed of an unknown machine
 *   GET /preseed/<system-id>[?type=]    node-address: the node's preseed, rendered here
 *   GET /preseed/<system-id>/firstboot  node: the first-boot report script (token + address)
 *   GET /enlist?mac=…                   open: enlistment, passed on to the region
 *
 * "Owns the node" (node-address.ts): the client's MAC in this server's neighbour table is one
 * of the node's, or it is the node's reserved address, or the address bound to this deploy.
 * This server asks the region (POST /api/v1/nodes/<id>/claim, or in-process when the region
 * runs in this process: local-region-client.ts), which keeps the binding; an accepted answer
 * is remembered for a few seconds per node, token, address and MAC (ownership-cache.ts).
 *
 * With the region in this process (`serve`), a repeated plain GET /preseed/<id> on a connection
 * whose ownership of the node was accepted is answered before routing, from the bytes last
 * served, until the node store changes (any process), a second passes or the configuration is
 * reloaded (answerFromPreseedMemo, preseed-memo.ts): the same answer, without the per-request
 * context look-up, neighbour-table read, claim, render and log line.
 *
 * It knows nodes through the region (region-client.ts); when the region does not answer it
 * says 503 with Retry-After, and the machine's iPXE (or d-i's wget) retries.
 *
 * An edge (`serve --no-region`, options.edge) follows the region's change feed into its cache
 * (edge-cache.ts, follower.ts) and answers from it, so its machines install with the region
 * away: contexts come from the cache; ownership is asked of the region and, when it cannot
 * answer, judged here from the cached MACs, reservation and binding (a first binding of a
 * routed client needs the region: 503); the installers' call-backs come to this server
 *
 *   GET|POST /metadata/latest/<id>/status/<event>   node: queued, then 200
 *   GET|POST /metadata/latest/<id>/disable-netboot  node: queued, then 200
 *
 * (the preseed points them here) and are queued on disk (outbox.ts) with the boot events,
 * and enlistments the region cannot take now; the follower delivers them in order.
 */
import * as fs from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import * as path from 'node:path';
import { imageDirUrl, ipxeBootstrapUrl, enlistUrl, renderKernelArgs, selectImagesFromApache, type BootAction, type ImageSettings } from './boot';
import type { NodeContext } from '../contract/context';
import type { ContextLookup } from '../contract/region-api';
import { UecError, describeError } from '../core/errors';
import { checkLine, checkUrl } from '../core/formats';
import { dispatchRoutes, type Authorizer, type Route, type RouteRequest } from '../core/http-routes';
import { decodePathSegment, json, presentedToken, text, type Reply } from '../core/http-util';
import type { Logger } from '../core/log';
import { timeRender } from '../core/metrics';
import { SYSTEM_ADDRESSING, type ClientAddressing, type NeighbourEntry } from '../core/neighbours';
import type { PreseedMemo } from './preseed-memo';
import { isInstalling, parseMac, type NodeStatus } from '../contract/node';
import {
  PRESEED_TYPES,
  buildPreseedView,
  contextTokenMatches,
  createPreseedTemplateLoader,
  renderPreseed,
  selectPreseedCandidates,
  selectPreseedType,
  type PreseedDirs,
  type PreseedType,
  type ProvisioningUrls,
} from './preseed';
import { selectOwnershipKey, type OwnershipCache } from './ownership-cache';
import type { RegionClient } from './region-client';
import type { EdgeCache } from './edge-cache';
import type { Outbox } from './outbox';
import { selectAddressOwnership } from '../contract/node-address';
import { createEventRepeatFilter, type EdgeEventType } from '../contract/region-api';
import { loadTemplate, refusingEscaper, renderTemplate, type Template, type TemplateDirs } from '../core/template';

export interface ProvisioningOptions {
  region: RegionClient;
  /** The region's base URL, for passing enlistment on. */
  regionUrl: string;
  urls: ProvisioningUrls;
  /** Extra kernel arguments ([boot] kernel_args). */
  kernelArgs: string;
  /**
   * Who sends the installer kernel and initrd ([boot] image_server, image_http_port), and
   * whether apache2's drop-in for them is enabled now (asked per boot script). None: this service.
   */
  images?: { settings: ImageSettings; apacheEnabled: () => Promise<boolean> };
  /** The resolved TFTP/HTTP boot tree. */
  bootDir: string;
  templates: TemplateDirs;
  preseeds: PreseedDirs;
  /** Directories outside the boot tree that its symlinks may point into (Debian's loaders). */
  linkTargets: string[];
  log: Logger;
  /** Where a request comes from; default SYSTEM_ADDRESSING (the socket and /proc/net/arp). */
  addressing?: ClientAddressing;
  /** Accepted claims remembered for a short while (ownership-cache.ts); none: the region is asked every time. */
  ownership?: OwnershipCache;
  /** On an edge (serve --no-region): its cache of the region's feed and its queue of call-backs. */
  edge?: EdgeSide;
  /**
   * The preseeds served, answered again from memory while nothing they rest on changed
   * (preseed-memo.ts; `serve` with the region in this process). None: every request is routed.
   */
  memo?: PreseedMemo;
}

export interface EdgeSide {
  cache: EdgeCache;
  outbox: Outbox;
  /** The same boot event of a node is queued once in this window (createEdgeSide: 60 s). */
  isNews: (key: string) => boolean;
}

export function createEdgeSide(cache: EdgeCache, outbox: Outbox, now: () => number = Date.now): EdgeSide {
  return { cache, outbox, isNews: createEventRepeatFilter(60_000, now) };
}

/**
 * Pure: a cached context as this edge serves it: the call-back URLs (status, disable-netboot,
 * metadata, enlistment) point at this server, which queues what the region cannot take now.
 */
export function selectEdgeContext(context: NodeContext, httpBase: string): NodeContext {
  const nodeBase = `${httpBase}/metadata/latest/${context.system_id}`;
  return {
    ...context,
    metadata_url: `${httpBase}/metadata/`,
    enlistment_url: `${httpBase}/enlist`,
    disable_netboot_url: `${nodeBase}/disable-netboot`,
    status_url: `${nodeBase}/status/`,
  };
}

/** Rewritten contexts per cached object (a change in the cache is a new object). */
const edgeContexts = new WeakMap<NodeContext, NodeContext>();

/**
 * A node's context: on a synced edge from its cache (a node absent there is unknown: the
 * machine enlists), else from the region (fresh: never from the region client's short cache).
 */
export async function lookupContext(options: ProvisioningOptions, lookup: ContextLookup): Promise<NodeContext | null> {
  const edge = options.edge;
  if (!edge || !edge.cache.synced()) return options.region.fetchContext(lookup, { fresh: true });
  const cached = lookup.kind === 'node' ? edge.cache.get(lookup.systemId) : edge.cache.byMac(lookup.mac);
  if (!cached) return null;
  let served = edgeContexts.get(cached);
  if (!served) edgeContexts.set(cached, (served = selectEdgeContext(cached, options.urls.httpBase)));
  return served;
}

/** Directories, and single files: Debian's ipxe links /usr/lib/ipxe/ipxe.efi and ipxe.lkrn to /boot/ (never all of /boot). */
export const LOADER_LINK_TARGETS = ['/usr/lib/ipxe', '/usr/lib/PXELINUX', '/usr/lib/syslinux', '/usr/lib/debian-installer', '/usr/lib/shim', '/usr/lib/grub', '/boot/ipxe.efi', '/boot/ipxe.lkrn'];

const ONE_LINE = refusingEscaper('iPXE script', checkLine);
const RETRY_AFTER = '5';

/** Pure: which boot a context calls for (mirrors selectBootAction for the region's view). */
export function selectContextBootAction(context: NodeContext | null): BootAction {
  if (!context) return 'enlist';
  if (!context.netboot) return 'local';
  return context.status === 'deploying' ? 'install' : 'local';
}

function localReason(status: NodeStatus, netboot: boolean): string {
  if (!netboot) return 'netboot disabled after its install';
  return `status ${status}`;
}

async function renderBootScript(options: ProvisioningOptions, name: string, view: Record<string, unknown>): Promise<Reply> {
  const template = await loadTemplate(options.templates, `boot/${name}.mustache`);
  return text(200, renderTemplate(template, view, ONE_LINE));
}

/** The per-node iPXE script (exported for the CLI and the tests). */
export async function renderNodeScript(options: ProvisioningOptions, context: NodeContext | null): Promise<string> {
  const action = selectContextBootAction(context);
  const base = { provisioning_url: options.urls.httpBase };
  if (!context) return (await renderBootScript(options, 'ipxe-enlist', { ...base, enlist_url: enlistUrl(options.urls) })).body.toString();
  const node = { systemId: context.system_id, hostname: context.hostname };
  const common = { ...base, hostname: context.hostname, system_id: context.system_id, os: context.os, release: context.release, architecture: context.architecture };
  if (action === 'local') {
    return (await renderBootScript(options, 'ipxe-local', { ...common, reason: localReason(context.status, context.netboot) })).body.toString();
  }
  const images = options.images;
  const fromApache = images && selectImagesFromApache(images.settings, await images.apacheEnabled()) ? images.settings : null;
  const image = imageDirUrl(options.urls.httpBase, fromApache, context.os, context.release, context.architecture);
  for (const u of [`${image}/linux`, `${image}/initrd.gz`]) {
    const problem = checkUrl(u);
    if (problem) throw new UecError('INVALID_VALUE', `boot URL ${JSON.stringify(u)} ${problem}`);
  }
  const view = {
    ...common,
    kernel_url: `${image}/linux`,
    initrd_url: `${image}/initrd.gz`,
    kernel_args: renderKernelArgs(node, { httpBase: options.urls.httpBase }, { domain: options.urls.domain, extra: options.kernelArgs }),
  };
  return (await renderBootScript(options, 'ipxe-install', view)).body.toString();
}

/**
 * One template loader per preseed directories (createPreseedTemplateLoader: each directory
 * listed and each file read at most once a second, so an admin's edit shows within a second
 * and machines sharing a template share one Template object).
 */
const templateLoaders = new WeakMap<object, (candidates: string[]) => Promise<Template>>();
/** Rendered preseeds per (cached) context object and template: the same inputs render the same bytes. */
const renderCache = new WeakMap<object, WeakMap<Template, RenderedPreseed>>();

interface RenderedPreseed {
  text: string;
  /** The answer's body, made once. */
  body: Buffer;
}

async function selectCachedTemplate(options: ProvisioningOptions, candidates: string[]): Promise<Template> {
  let load = templateLoaders.get(options.preseeds);
  if (!load) templateLoaders.set(options.preseeds, (load = createPreseedTemplateLoader(options.preseeds)));
  return load(candidates);
}

/** A node's preseed as the machine receives it (token included). */
export async function renderNodePreseed(options: ProvisioningOptions, context: NodeContext | null, type: PreseedType): Promise<{ text: string; body: Buffer; template: string }> {
  const candidates = selectPreseedCandidates(
    context
      ? { type, os: context.os, arch: context.architecture, subarch: context.subarchitecture, release: context.release, hostname: context.hostname, role: context.role.name }
      : { type },
  );
  const template = await selectCachedTemplate(options, candidates);
  const key = context ?? options;
  let byTemplate = renderCache.get(key);
  const cached = byTemplate?.get(template);
  if (cached !== undefined) return { ...cached, template: template.file };
  const view = buildPreseedView(context, options.urls, enlistUrl(options.urls));
  const rendered = renderPreseed(template, view);
  const entry = { text: rendered, body: Buffer.from(text(200, rendered).body) };
  if (!byTemplate) renderCache.set(key, (byTemplate = new WeakMap()));
  byTemplate.set(template, entry);
  return { ...entry, template: template.file };
}

async function serveBootFile(options: ProvisioningOptions, relative: string): Promise<Reply> {
  // Only plain names: no "..", no dot-files, no empty segments, no backslashes.
  const segments = relative.split('/');
  if (segments.some((s) => s === '' || s.startsWith('.') || s.includes('\\') || s.includes('\0'))) return text(404, 'not found');
  const root = await fs.promises.realpath(options.bootDir).catch(() => null);
  if (!root) return text(404, 'not found');
  let real: string;
  try {
    real = await fs.promises.realpath(path.join(root, ...segments));
  } catch {
    return text(404, 'not found');
  }
  // Symlinks may point within the tree (an image switched atomically) or at the read-only
  // loader and installer directories of Debian's packages; nowhere else.
  const allowed = [root, ...options.linkTargets];
  if (!allowed.some((dir) => real === dir || real.startsWith(`${dir}${path.sep}`))) {
    options.log.warn(`refused /boot/${relative}: it resolves outside the boot tree`);
    return text(404, 'not found');
  }
  const stat = await fs.promises.stat(real);
  if (!stat.isFile()) return text(404, 'not found');
  return { status: 200, body: '', file: real, size: stat.size, type: 'application/octet-stream' };
}

function unavailable(options: ProvisioningOptions, err: unknown, what: string): Reply {
  options.log.warn(`${what}: ${describeError(err)}`, { code: err instanceof UecError ? err.code : 'INTERNAL' });
  return text(503, 'region unavailable, try again', { 'Retry-After': RETRY_AFTER });
}

/**
 * Tell the region what this server saw (the web UI shows it as a deploy stage). Never delays
 * or fails the machine's boot: sent in the background, a failure is only logged.
 */
function reportToRegion(options: ProvisioningOptions, context: NodeContext, type: 'netboot' | 'preseed', message: string): void {
  const edge = options.edge;
  if (edge) {
    if (!edge.isNews(`${context.system_id} ${type} ${message}`)) return;
    edge.outbox.append({ type, systemId: context.system_id, message }).catch((err: unknown) => {
      options.log.warn(`could not queue the ${type} event of ${context.hostname} (${context.system_id}): ${describeError(err)}`);
    });
    return;
  }
  options.region.reportEvent(context.system_id, type, message).catch((err: unknown) => {
    options.log.warn(`could not report ${type} of ${context.hostname} (${context.system_id}) to the region: ${describeError(err)}`);
  });
}

const FORBIDDEN = text(403, 'forbidden');

/** A client that owns the node: its address and the neighbour entry the decision rested on. */
interface Owner {
  client: string;
  neighbour: NeighbourEntry | null;
}

/** checkOwner's answer for a client that may not have the node. */
interface Refusal {
  refuse: Reply;
}

/**
 * Does the client of `req` own the node now? Asks the region (which binds a first routed
 * address); a refusal is logged here with the region's reason. The owner when it does; else
 * the reply to send (403, 404, 409, or 503 when the region cannot answer).
 */
async function checkOwner(options: ProvisioningOptions, req: IncomingMessage, context: NodeContext, what: string): Promise<Owner | Refusal> {
  const addressing = options.addressing ?? SYSTEM_ADDRESSING;
  const client = addressing.clientAddress(req);
  const neighbour = await addressing.neighbour(client);
  const owner = { client, neighbour };
  const key = selectOwnershipKey(context.system_id, context.token, client, neighbour);
  if (options.ownership?.owns(key)) return owner;
  let answer;
  try {
    answer = await options.region.claimAddress(context.system_id, client, neighbour);
  } catch (err) {
    if (!options.edge) return { refuse: unavailable(options, err, what) };
    // The region is away: judge from the cached context; a first binding must wait for it.
    const local = selectAddressOwnership({ hostname: context.hostname, systemId: context.system_id, macs: context.macs, ipv4: context.ipv4, boundAddress: context.bound_address }, client, neighbour);
    if (local.owned && local.rule === 'binding' && local.bind) return { refuse: unavailable(options, err, `${what} (a routed client, which only the region can bind)`) };
    answer = local.owned ? ({ owned: true, rule: local.rule } as const) : ({ owned: false, status: 403, reason: `${local.reason} (judged by this edge, the region is away)` } as const);
  }
  if (answer.owned) {
    options.ownership?.remember(key);
    return owner;
  }
  const seen = neighbour ? `neighbour MAC ${neighbour.mac}${neighbour.router ? ', a router' : ''}` : 'no neighbour entry';
  options.log.warn(`refused ${what} of ${context.hostname} (${context.system_id}) to ${client} (${seen}): ${answer.reason}`);
  if (answer.status === 404) return { refuse: text(404, 'no such node') };
  if (answer.status === 409) return { refuse: text(409, 'node is not deploying') };
  return { refuse: FORBIDDEN };
}

/** What the authorizer hands a node route: the node's context, its caller checked. */
export interface ProvisioningGrant {
  context?: NodeContext;
  /** The client that owns it, as checked (node and node-address routes). */
  owner?: Owner;
  /** The node store's generation read before the context was looked up (with options.memo). */
  generation?: number;
}

function requireContext(grant: ProvisioningGrant): NodeContext {
  if (!grant.context) throw new UecError('INTERNAL', 'a node route ran without its context');
  return grant.context;
}

/**
 * open: anyone. node-address: the node is deploying or commissioning (409 otherwise: a preseed
 * outside an install is a mistake, not an attack) and the client owns it. node: also its
 * current token; a wrong one, or one of a node no longer installing, is 403.
 */
const authorizeProvisioning: Authorizer<ProvisioningOptions, ProvisioningGrant> = async (options, route, request) => {
  if (route.access === 'open') return { grant: {} };
  if (route.access === 'provisioning-key') throw new UecError('INTERNAL', `${route.path}: the provisioning server has no keyed routes`);
  const systemId = request.params[0] ?? '';
  const what = route.access === 'node' ? (route.path.startsWith('/metadata/') ? 'call-back' : 'first-boot script') : 'preseed';
  let context: NodeContext | null;
  // Read before the context: a commit after this point makes a remembered answer stale, never a stale one current.
  const generation = options.memo?.generation();
  try {
    // Fresh, not from the context cache: right after a new deploy the cached context would
    // still hold the last install's status and token. (One fetch of each per install.)
    context = await lookupContext(options, { kind: 'node', systemId });
  } catch (err) {
    return { refuse: unavailable(options, err, `${what} for ${systemId}`) };
  }
  if (route.access === 'node') {
    const client = (options.addressing ?? SYSTEM_ADDRESSING).clientAddress(request.req);
    if (!context || !contextTokenMatches(context, presentedToken(request.req, request.url))) {
      options.log.warn(`refused the ${what} of ${systemId} to ${client}: unknown node or wrong token`);
      return { refuse: FORBIDDEN };
    }
    if (!isInstalling(context.status)) {
      options.log.warn(`refused the ${what} of ${context.hostname} (${systemId}) to ${client}: its token expired, the node is ${context.status}`);
      return { refuse: FORBIDDEN };
    }
  } else {
    if (!context) return { refuse: text(404, 'no such node') };
    if (!isInstalling(context.status)) {
      options.log.warn(`${what} for ${context.hostname} (${context.system_id}) refused: status ${context.status}`);
      return { refuse: text(409, `node is ${context.status}, not deploying`) };
    }
  }
  const owner = await checkOwner(options, request.req, context, `the ${what}`);
  return 'refuse' in owner ? owner : { grant: { context, owner, generation } };
};

async function nodeBootScript(options: ProvisioningOptions, { req, url }: RouteRequest): Promise<Reply> {
  let mac: string;
  try {
    mac = parseMac(url.searchParams.get('mac') ?? '');
  } catch (err) {
    return text(400, describeError(err));
  }
  let context: NodeContext | null;
  try {
    // Never from the cache: a machine that has just called disable-netboot and reboots
    // must get its local disk, not the installer again. (One request per boot.)
    context = await lookupContext(options, { kind: 'mac', mac });
  } catch (err) {
    return unavailable(options, err, `boot script for ${mac}`);
  }
  const action = selectContextBootAction(context);
  if (context && action === 'install') {
    // The install script names the node and its preseed: only for the node itself.
    const owner = await checkOwner(options, req, context, `the install boot script (asked for ${mac})`);
    if ('refuse' in owner) return owner.refuse;
  }
  options.log.info(`boot script for ${mac}: ${action}${context ? ` (${context.hostname}, ${context.system_id})` : ''}`);
  if (context && action === 'install') reportToRegion(options, context, 'netboot', `install boot script served to ${mac}`);
  return text(200, await timeRender('boot-script', () => renderNodeScript(options, context)));
}

const PRESEED_TYPE = 'text/plain; charset=utf-8';

async function nodePreseed(options: ProvisioningOptions, { req, url, method }: RouteRequest, grant: ProvisioningGrant): Promise<Reply> {
  const context = requireContext(grant);
  const requested = url.searchParams.get('type');
  if (requested !== null && !(PRESEED_TYPES as readonly string[]).includes(requested)) return text(400, `type must be one of ${PRESEED_TYPES.join(', ')}`);
  const type = (requested as PreseedType | null) ?? selectPreseedType(context);
  const rendered = await timeRender('preseed', () => renderNodePreseed(options, context, type));
  const memo = options.memo;
  if (memo && grant.owner && grant.generation !== undefined && requested === null && method === 'GET' && url.search === '') {
    // What the fast path may answer again on this connection (answerFromPreseedMemo).
    if ((options.addressing ?? SYSTEM_ADDRESSING).connectionBound) memo.bindConnection(req.socket, grant.owner.client, grant.owner.neighbour);
    memo.remember({ systemId: context.system_id, body: rendered.body, length: String(rendered.body.length), client: grant.owner.client, neighbour: grant.owner.neighbour, generation: grant.generation, options });
  }
  // One line per node, type and client a minute (the region's timeline event is as sparse), with
  // the answers given from memory since the last one.
  if (!memo || memo.isNews(`${context.system_id} ${type} ${grant.owner?.client ?? ''}`)) {
    const recalled = memo?.takeRecalled(context.system_id) ?? 0;
    options.log.info(`preseed ${type} for ${context.hostname} (${context.system_id}) from ${rendered.template}${recalled > 0 ? ` (and ${recalled} times from memory since the last line)` : ''}`);
  }
  reportToRegion(options, context, 'preseed', `${type} preseed fetched`);
  return { status: 200, body: rendered.body, type: PRESEED_TYPE, headers: {} };
}

/** The path the fast path answers: exactly /preseed/<id>, no query. */
const REMEMBERED_PATH = /^\/preseed\/([a-z0-9-]{1,64})$/;

/**
 * The fast path of a repeated preseed (serve.ts calls it before routing): when `req` is a
 * plain GET of /preseed/<id> on a connection whose ownership of that node the slow path has
 * accepted, and nothing the answer rests on has changed since (preseed-memo.ts), it sends the
 * remembered bytes and says true. Synchronous; anything else says false and is routed.
 */
export function answerFromPreseedMemo(options: ProvisioningOptions, req: IncomingMessage, res: ServerResponse): boolean {
  const memo = options.memo;
  const target = req.url;
  if (!memo || req.method !== 'GET' || target === undefined || !target.startsWith('/preseed/')) return false;
  if (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined) return false;
  const addressing = options.addressing ?? SYSTEM_ADDRESSING;
  if (!addressing.connectionBound) return false;
  const m = REMEMBERED_PATH.exec(target);
  if (!m) return false;
  const entry = memo.recall(m[1]!, req.socket, addressing.clientAddress(req), options, addressing.neighbourNow);
  if (!entry) return false;
  res.writeHead(200, { 'Content-Type': PRESEED_TYPE, 'Content-Length': entry.length, 'Cache-Control': 'no-store' });
  res.end(entry.body);
  return true;
}

async function firstbootScript(options: ProvisioningOptions, _request: RouteRequest, grant: ProvisioningGrant): Promise<Reply> {
  const context = requireContext(grant);
  const template = await loadTemplate(options.templates, 'boot/firstboot.sh.mustache');
  const view = buildPreseedView(context, options.urls, enlistUrl(options.urls));
  return text(200, renderTemplate(template, view, ONE_LINE));
}

async function passEnlistment(options: ProvisioningOptions, { url }: RouteRequest): Promise<Reply> {
  const target = `${options.regionUrl}/metadata/enlist${url.search}`;
  let failure: unknown;
  try {
    const response = await fetch(target, { signal: AbortSignal.timeout(5000) });
    const body = await response.text();
    if (!options.edge || response.status < 500) return text(response.status, body);
    failure = new UecError('UPSTREAM_FAILED', `region answered ${response.status}`);
  } catch (err) {
    if (!options.edge) return unavailable(options, err, 'enlistment');
    failure = err;
  }
  // An edge with the region away: the enlistment waits in the queue.
  let mac: string;
  try {
    mac = parseMac(url.searchParams.get('mac') ?? '');
  } catch (err) {
    return text(400, describeError(err));
  }
  if (url.search.length > 2048) return text(400, 'enlistment query too long');
  // Open to anyone on the LAN: one queued enlistment per MAC, and a bound on the queue.
  const pending = options.edge.outbox.pending();
  const message = `enlistment of ${mac}`;
  if (pending.some((e) => e.type === 'enlist' && e.message === message)) return json(202, { queued: true, mac });
  if (pending.length >= MAX_QUEUED_ENLISTMENTS) {
    options.log.warn(`enlistment of ${mac} refused: ${pending.length} events wait for the region`);
    return text(429, 'too many events wait for the region; try again later', { 'Retry-After': '300' });
  }
  await options.edge.outbox.append({ type: 'enlist', systemId: '', message, query: url.search.slice(1) });
  options.log.info(`enlistment of ${mac} queued for the region: ${describeError(failure)}`);
  return json(202, { queued: true, mac });
}

/** Enlistments are queued (region away) only while fewer events than this wait. */
export const MAX_QUEUED_ENLISTMENTS = 10_000;

/** The machine's message, made one line of at most 200 characters (what the region's event route takes). */
export function selectEventMessage(raw: string): string {
  // eslint-disable-next-line no-control-regex
  return raw.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ').trim().slice(0, 200);
}

const CALLBACK_EVENTS = ['installing', 'installed', 'deployed', 'failed'] as const;

/** Pure: what a call-back taken by an edge changes in its cached context until the region's own view arrives. */
export function selectCallbackEffect(context: NodeContext, type: EdgeEventType): NodeContext {
  if (type === 'disable-netboot') return { ...context, netboot: false };
  if (type === 'deployed') return { ...context, status: 'deployed', commissioning: false };
  if (type === 'failed') return { ...context, status: 'failed', commissioning: false };
  return context;
}

/** An installer's call-back on an edge: queued on disk (synced) before the 200, and its effect kept in the cache. */
async function queueCallback(options: ProvisioningOptions, { params, url, body }: RouteRequest, grant: ProvisioningGrant): Promise<Reply> {
  const edge = options.edge;
  if (!edge) throw new UecError('INTERNAL', 'a call-back route ran on a provisioning server that is not an edge');
  const context = requireContext(grant);
  const event = params[1] ?? 'disable-netboot';
  if (event !== 'disable-netboot' && !(CALLBACK_EVENTS as readonly string[]).includes(event)) return text(404, `unknown status event (known: ${CALLBACK_EVENTS.join(', ')})`);
  const type = event as EdgeEventType;
  const message = selectEventMessage(url.searchParams.get('message') ?? body.slice(0, 500));
  await edge.outbox.append({ type, systemId: context.system_id, message });
  await edge.cache.applyLocal(context.system_id, (c) => selectCallbackEffect(c, type));
  options.log.info(`node ${context.hostname} (${context.system_id}) reported ${type}; queued for the region`);
  return text(200, 'ok');
}

async function bootTreeFile(options: ProvisioningOptions, { params }: RouteRequest): Promise<Reply> {
  const relative = decodePathSegment(params[0] ?? '');
  if (relative === null) return text(400, 'malformed percent-encoding in the path');
  return serveBootFile(options, relative);
}

export type ProvisioningRoute = Route<ProvisioningOptions, ProvisioningGrant>;

const GET = ['GET', 'HEAD'] as const;
const ID = '([a-z0-9-]{1,64})';

/** In order: the first route whose path matches and whose method fits answers. */
export const PROVISIONING_ROUTES: readonly ProvisioningRoute[] = [
  {
    methods: GET,
    path: '/boot/ipxe',
    pattern: /^\/boot\/ipxe$/,
    access: 'open',
    bodyLimit: 0,
    handler: (o) => renderBootScript(o, 'ipxe-bootstrap', { provisioning_url: o.urls.httpBase, bootstrap_url: ipxeBootstrapUrl(o.urls) }),
  },
  // Open: enlist and local-disk scripts to anyone; the install script only to the node's owner (checked in the handler).
  { methods: GET, path: '/boot/ipxe/node?mac=<mac>', pattern: /^\/boot\/ipxe\/node$/, access: 'open', bodyLimit: 0, handler: nodeBootScript },
  { methods: GET, path: '/boot/<path>', pattern: /^\/boot\/(.+)$/, access: 'open', bodyLimit: 0, handler: bootTreeFile },
  { methods: GET, path: '/preseed/enlist', pattern: /^\/preseed\/enlist$/, access: 'open', bodyLimit: 0, handler: async (o) => text(200, (await timeRender('preseed', () => renderNodePreseed(o, null, 'enlist'))).text) },
  { methods: GET, path: '/preseed/<id>/firstboot', pattern: new RegExp(`^/preseed/${ID}/firstboot$`), access: 'node', bodyLimit: 0, handler: firstbootScript },
  { methods: GET, path: '/preseed/<id>', pattern: new RegExp(`^/preseed/${ID}$`), access: 'node-address', bodyLimit: 0, handler: nodePreseed },
  { methods: GET, path: '/enlist?mac=<mac>', pattern: /^\/enlist$/, access: 'open', bodyLimit: 0, handler: passEnlistment },
];

/** An edge's own routes (options.edge set): the installers' call-backs, queued for the region. Elsewhere the region answers these paths. */
export const EDGE_ROUTES: readonly ProvisioningRoute[] = [
  { methods: ['GET', 'POST'], path: '/metadata/latest/<id>/status/<event>', pattern: new RegExp(`^/metadata/latest/${ID}/status/([a-z]+)$`), access: 'node', bodyLimit: 16 * 1024, handler: queueCallback },
  { methods: ['GET', 'POST'], path: '/metadata/latest/<id>/disable-netboot', pattern: new RegExp(`^/metadata/latest/${ID}/disable-netboot$`), access: 'node', bodyLimit: 16 * 1024, handler: queueCallback },
];

function errorReply(options: ProvisioningOptions, err: unknown, what: string): Reply {
  const code = err instanceof UecError ? err.code : 'INTERNAL';
  options.log.error(`${what}: ${describeError(err)}`, { code });
  return text(500, 'internal error');
}

/** Route one request; null when the path is not the provisioning server's. */
export async function handleProvisioningRequest(options: ProvisioningOptions, req: IncomingMessage, url: URL): Promise<Reply | null> {
  const reply =
    (await dispatchRoutes(PROVISIONING_ROUTES, options, req, url, authorizeProvisioning, (err, what) => errorReply(options, err, what))) ??
    (options.edge ? await dispatchRoutes(EDGE_ROUTES, options, req, url, authorizeProvisioning, (err, what) => errorReply(options, err, what)) : null);
  if (reply) return reply;
  if (url.pathname.startsWith('/preseed/')) return text(404, 'not found');
  return null;
}
