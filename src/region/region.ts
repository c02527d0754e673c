/**
 * The region's HTTP side: the node context view for provisioning servers (shared key), the
 * metadata endpoints installing machines call back with their own token, and enlistment.
 * Every route is in REGION_ROUTES (method, path, who may call it, body limit, handler);
 * http-routes.ts dispatches them.
 *
 * 'provisioning key' means an edge's own key (edges.ts; the request's `authenticatedEdge` says
 * which edge) or the shared key (see authorizeProvisioningKey).
 *
 *   GET  /api/v1/nodes                                   provisioning key
 *   GET  /api/v1/context?mac=M, /api/v1/nodes/<id>/context  provisioning key
 *   POST /api/v1/nodes/<id>/events                       provisioning key (netboot, preseed; from an
 *                                                        edge's queue also its call-backs, with event ids)
 *   GET  /api/v1/changes?since=C&wait=S                  provisioning key: the change feed (change-feed.ts)
 *   POST /api/v1/nodes/<id>/claim                        provisioning key: may this client act for the node?
 *   GET|POST /metadata/latest/<id>/status/<event>        node (installing, installed, deployed, failed)
 *   GET|POST /metadata/latest/<id>/disable-netboot       node
 *   GET|POST /metadata/enlist?mac=…&buildarch=…&platform=…  open (unknown machines have nothing else)
 *
 * 'node' means: the node's current token (rotated when a deploy or commissioning starts),
 * while the node is deploying or commissioning, from an address it owns (node-address.ts: its
 * MAC in this host's neighbour table, its reservation, or the address bound to this deploy).
 * Each refusal is 403 "forbidden", the same answer for an unknown node, a wrong token, an
 * expired one and another machine's address, so a caller learns nothing; the log line says
 * which it was, naming the node and the address.
 */
import type { IncomingMessage } from 'node:http';
import type { ArchiveSettings } from '../core/archive';
import { buildNodeContext, type NodeContext, type RegionUrls } from '../contract/context';
import { UecError, describeError } from '../core/errors';
import { checkLine } from '../core/formats';
import { dispatchRoutes, type Authorizer, type Route, type RouteRequest } from '../core/http-routes';
import { json, parseJsonObject, presentedToken, text, type Reply } from '../core/http-util';
import type { Logger } from '../core/log';
import { isLoopbackAddress, scrapeMetrics } from '../core/metrics';
import { SYSTEM_ADDRESSING, type ClientAddressing, type NeighbourEntry } from '../core/neighbours';
import { DEFAULT_RELEASE, isInstalling, parseMac, publicNode, tokenMatches, type Node } from '../contract/node';
import {
  EnlistLimitError,
  STATUS_EVENTS,
  claimNodeAddress,
  disableNetboot,
  enlistNode,
  recordNodeEvent,
  recordStatusEvent,
  selectArchitecture,
  type Clock,
  type StatusEvent,
} from './node-ops';
import type { NodeStore } from './node-store';
import { selectFeedFollowers, serveChanges } from './change-feed';
import { EDGE_EVENT_TYPES, checkEventId, type EdgeEventType } from '../contract/region-api';
import { isEdgeKey, selectEdgeServes, selectSubnetsHold, type EdgeRegistry } from './edges';
import { selectRole, selectRolePackages, type Role } from '../contract/roles';

export interface RegionOptions {
  store: NodeStore;
  urls: RegionUrls;
  /** The shared key provisioning servers present (the one-box setup, and edges without their own key). */
  provisioningKey: string;
  /** The edge registry (edges.ts): provisioning servers with their own keys. Without it only the shared key is accepted. */
  edges?: EdgeRegistry;
  /** Accept the shared key from other hosts (edges not yet given their own key); from loopback always. Default true. */
  acceptSharedKey?: boolean;
  loadArchive: () => Promise<ArchiveSettings>;
  loadRoles: () => Promise<Role[]>;
  /** The SSH public keys for admin_user, one per line. */
  loadAuthorizedKeys: () => Promise<string[]>;
  adminUser: string;
  log: Logger;
  clock: Clock;
  /** Enlistment is refused (429) while this many nodes are new; default DEFAULT_MAX_NEW_NODES. */
  maxNewNodes?: number;
  /** Where a call-back comes from; default SYSTEM_ADDRESSING (the socket and /proc/net/arp). */
  addressing?: ClientAddressing;
}

const FORBIDDEN = text(403, 'forbidden');
const DUMMY_TOKEN = 'x'.repeat(32);
/** Call-backs and events are tiny; a claim is two fields. */
const SMALL_BODY = 16 * 1024;
const CLAIM_BODY = 1024;

/** What every context is built from besides its node: read once per request or feed answer. */
export interface ContextInputs {
  roles: Role[];
  archive: ArchiveSettings;
  authorizedKeys: string[];
}

export async function loadContextInputs(options: RegionOptions): Promise<ContextInputs> {
  const [roles, archive, authorizedKeys] = await Promise.all([options.loadRoles(), options.loadArchive(), options.loadAuthorizedKeys()]);
  return { roles, archive, authorizedKeys };
}

/** The context of one node; a deploying node whose role cannot be installed is an error. */
export async function selectNodeContext(options: RegionOptions, node: Node, inputs?: ContextInputs): Promise<NodeContext> {
  const roles = inputs?.roles ?? (await options.loadRoles());
  let role: Role;
  let packages: string[];
  try {
    role = selectRole(roles, node.role);
    packages = selectRolePackages(role, node.release);
  } catch (err) {
    if (node.status === 'deploying') throw err;
    role = { name: node.role, description: '', tasks: [], packages: {}, preseed: [], lateCommands: [], file: '' };
    packages = [];
  }
  return buildNodeContext(node, options.urls, inputs?.archive ?? (await options.loadArchive()), role, packages, {
    commissioningRelease: DEFAULT_RELEASE,
    adminUser: options.adminUser,
    authorizedKeys: inputs?.authorizedKeys ?? (await options.loadAuthorizedKeys()),
  });
}

function errorReply(err: unknown, log: Logger, what: string): Reply {
  if (err instanceof EnlistLimitError) {
    log.warn(`${what}: ${err.message}`, { code: err.code });
    return text(429, 'too many new nodes waiting; try again later', { 'Retry-After': '300' });
  }
  if (err instanceof UecError) {
    const status = err.code === 'NODE_UNKNOWN' ? 404 : err.code === 'NODE_STATE' || err.code === 'NODE_CONFLICT' || err.code === 'ROLE_UNKNOWN' ? 409 : err.code === 'INVALID_VALUE' ? 400 : 500;
    log[status >= 500 ? 'error' : 'warn'](`${what}: ${err.message}`, { code: err.code });
    return text(status, status >= 500 ? 'internal error' : err.message);
  }
  log.error(`${what}: ${describeError(err)}`, { code: 'INTERNAL' });
  return text(500, 'internal error');
}

/** What a handler of a 'node' route is given: the node, as the call-back found it. */
export interface RegionGrant {
  node?: Node;
}

function describeNeighbour(neighbour: NeighbourEntry | null): string {
  if (!neighbour) return 'no neighbour entry';
  return `neighbour MAC ${neighbour.mac}${neighbour.router ? ' (a router)' : ''}`;
}

/**
 * A provisioning-key route's caller: a live edge's own key (edges.ts; the request then carries
 * `authenticatedEdge`, and the edge's last contact is recorded), or the shared key (from
 * loopback always, from elsewhere while `acceptSharedKey`). Every refusal is the same 403;
 * the log line names the edge and why, never the key.
 */
async function authorizeProvisioningKey(options: RegionOptions, request: RouteRequest, presented: string, what: string): Promise<{ grant: RegionGrant } | { refuse: Reply }> {
  const log = options.log;
  if (isEdgeKey(presented)) {
    if (!options.edges) {
      log.warn(`refused ${what}: an edge key, and this region has no edge registry`);
      return { refuse: FORBIDDEN };
    }
    const auth = await options.edges.authenticate(presented);
    if (!auth.ok) {
      log.warn(`refused ${what}: edge ${auth.name}: ${auth.reason}`);
      return { refuse: FORBIDDEN };
    }
    request.authenticatedEdge = { name: auth.edge.name, subnets: [...auth.edge.subnets] };
    // At most one write a minute per edge; a failure is logged and the request still served.
    await options.edges.recordContact(auth.edge.name, options.clock.now()).catch((err: unknown) => log.error(`edge ${auth.edge.name}: last contact not recorded: ${describeError(err)}`));
    return { grant: {} };
  }
  if (!tokenMatches(presented, options.provisioningKey)) {
    log.warn(`refused ${what}: wrong provisioning key`);
    return { refuse: FORBIDDEN };
  }
  if (options.acceptSharedKey === false) {
    const client = (options.addressing ?? SYSTEM_ADDRESSING).clientAddress(request.req);
    if (!isLoopbackAddress(client)) {
      log.warn(`refused ${what} from ${client}: the shared provisioning key, accepted only from this host (region.accept_shared_key is false: give that edge its own key)`);
      return { refuse: FORBIDDEN };
    }
  }
  return { grant: {} };
}

/** Who may call: the provisioning key, or the node's token + status + address; open routes anyone. */
export const authorizeRegion: Authorizer<RegionOptions, RegionGrant> = async (options, route, request) => {
  const log = options.log;
  const { req, url, method } = request;
  const what = `${method} ${url.pathname}`;
  if (route.access === 'open') return { grant: {} };
  const presented = presentedToken(req, url);
  if (route.access === 'provisioning-key') {
    if (route.loopback && isLoopbackAddress((options.addressing ?? SYSTEM_ADDRESSING).clientAddress(req))) return { grant: {} };
    if (presented === null) {
      log.warn(`refused ${what}: no provisioning key`);
      return { refuse: text(401, 'unauthorized', { 'WWW-Authenticate': 'Bearer' }) };
    }
    return authorizeProvisioningKey(options, request, presented, what);
  }
  // 'node' (the region has no 'node-address' route: every call-back carries the token).
  const addressing = options.addressing ?? SYSTEM_ADDRESSING;
  const client = addressing.clientAddress(req);
  const systemId = request.params[0] ?? '';
  const found = await options.store.find(systemId);
  const node = found?.systemId === systemId ? found : undefined;
  const tokenOk = tokenMatches(presented ?? '', node?.token ?? DUMMY_TOKEN);
  if (!node || !tokenOk) {
    log.warn(`refused ${what} from ${client}: unknown node or wrong token`);
    return { refuse: FORBIDDEN };
  }
  const named = `node ${node.hostname} (${node.systemId})`;
  if (!isInstalling(node.status)) {
    log.warn(`refused ${what} from ${client}: the token of ${named} expired, the node is ${node.status}`);
    return { refuse: FORBIDDEN };
  }
  const neighbour = await addressing.neighbour(client);
  const { ownership } = await claimNodeAddress(options.store, node.systemId, client, neighbour, options.clock);
  if (!ownership.owned) {
    log.warn(`refused ${what} for ${named} from ${client} (${describeNeighbour(neighbour)}): ${ownership.reason}`);
    return { refuse: FORBIDDEN };
  }
  return { grant: { node } };
};

/**
 * What a provisioning server saw of a node's boot, reported so the region's timeline (and the
 * web UI's deploy stages) show it: `netboot` (its install boot script was served) and
 * `preseed` (the installer fetched its preseed). Body: {"type": "...", "message": "..."}.
 * An edge's queue (edge/outbox.ts) also sends here the installers' call-backs it took
 * (installing, installed, deployed, failed, disable-netboot), each with "id" (an event id:
 * recorded once, a repeat is answered 201 and changes nothing) and "at" (when it was taken).
 */
export const BOOT_EVENTS = ['netboot', 'preseed'] as const;

async function recordBootEvent(options: RegionOptions, { params, body }: RouteRequest): Promise<Reply> {
  const systemId = params[0]!;
  const parsed = parseJsonObject(body);
  if ('error' in parsed) return text(400, parsed.error);
  const event: { type?: unknown; message?: unknown; id?: unknown; at?: unknown } = parsed.value;
  if (typeof event.type !== 'string' || !(EDGE_EVENT_TYPES as readonly string[]).includes(event.type)) return text(400, `type must be one of ${EDGE_EVENT_TYPES.join(', ')}`);
  const message = typeof event.message === 'string' ? event.message : '';
  if (message.length > 200 || checkLine(message) !== null) return text(400, 'message must be one line of at most 200 characters');
  const idProblem = event.id === undefined ? null : checkEventId(event.id);
  if (idProblem) return text(400, `id ${idProblem}`);
  const eventId = event.id as string | undefined;
  // A queued event keeps the time the edge took it (never later than now).
  let clock = options.clock;
  if (event.at !== undefined) {
    const at = typeof event.at === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?Z$/.test(event.at) ? new Date(event.at) : null;
    if (!at || Number.isNaN(at.getTime())) return text(400, 'at must be an ISO 8601 UTC time such as 2026-03-01T10:00:00.000Z');
    clock = { now: () => new Date(Math.min(at.getTime(), options.clock.now().getTime())) };
  }
  if (!(await options.store.find(systemId))) return text(404, 'no such node');
  const type = event.type as EdgeEventType;
  const node =
    type === 'netboot' || type === 'preseed'
      ? await recordNodeEvent(options.store, systemId, type, message, clock, eventId)
      : type === 'disable-netboot'
        ? await disableNetboot(options.store, systemId, clock, eventId)
        : await recordStatusEvent(options.store, systemId, type, message, clock, eventId);
  options.log.info(`node ${node.hostname} (${node.systemId}): ${type} ${message}${eventId ? ` (event ${eventId})` : ''}`);
  return json(201, { system_id: node.systemId, type });
}

/**
 * A provisioning server asks before it serves a node's install material: may this client
 * (its address, and the MAC the server's neighbour table has for it) act for the node now?
 * Body: {"address": "10.0.0.5", "mac": "52:54:00:…" or "", "router": true|false}.
 * 200 {"rule": "neighbour"|"reservation"|"binding"} (a first claim binds the address),
 * 403 with the reason (for the server's log; it tells its client only "forbidden"),
 * 404 no such node, 409 the node is not deploying or commissioning, 400 a malformed body.
 */
async function claimAddress(options: RegionOptions, request: RouteRequest): Promise<Reply> {
  const { params, body } = request;
  const parsed = parseJsonObject(body);
  if ('error' in parsed) return text(400, parsed.error);
  const claim: { address?: unknown; mac?: unknown; router?: unknown } = parsed.value;
  if (typeof claim.address !== 'string' || claim.address.length > 64) return text(400, 'address must be a string');
  if (claim.mac !== undefined && typeof claim.mac !== 'string') return text(400, 'mac must be a string');
  if (claim.router !== undefined && typeof claim.router !== 'boolean') return text(400, 'router must be true or false');
  let neighbour: NeighbourEntry | null = null;
  if (claim.mac) {
    try {
      neighbour = { mac: parseMac(claim.mac), router: claim.router === true };
    } catch (err) {
      return text(400, describeError(err));
    }
  }
  if (request.authenticatedEdge) {
    const found = await options.store.find(params[0]!);
    const refused = found && found.systemId === params[0] ? refuseOutsideEdge(options, request, 'a claim', found, claim.address) : null;
    if (refused) return refused;
  }
  const answer = await judgeClaim(options, params[0]!, claim.address, neighbour);
  if (answer.status === 200) return json(200, { rule: answer.rule });
  return text(answer.status, answer.reason);
}

/** The region's answer to a claim (the route's, and an in-process edge's): 200 with the rule, or 403/404/409 with the reason. */
export type ClaimDecision = { status: 200; rule: string } | { status: 403 | 404 | 409; reason: string };

/**
 * May this client (address, and the MAC a provisioning server's neighbour table has for it)
 * act for the node now? A first accepted claim binds the address; a refusal is logged here.
 */
export async function judgeClaim(options: RegionOptions, systemId: string, address: string, neighbour: NeighbourEntry | null): Promise<ClaimDecision> {
  let claimed;
  try {
    claimed = await claimNodeAddress(options.store, systemId, address, neighbour, options.clock);
  } catch (err) {
    if (err instanceof UecError && (err.code === 'NODE_UNKNOWN' || err.code === 'NODE_STATE')) {
      options.log.warn(`claim for ${systemId}: ${err.message}`, { code: err.code });
      return { status: err.code === 'NODE_UNKNOWN' ? 404 : 409, reason: err.message };
    }
    throw err;
  }
  const { node, ownership } = claimed;
  const named = `node ${node.hostname} (${node.systemId})`;
  if (!ownership.owned) {
    options.log.warn(`refused the install material of ${named} to ${JSON.stringify(address)} (${describeNeighbour(neighbour)}), asked by a provisioning server: ${ownership.reason}`);
    return { status: 403, reason: ownership.reason };
  }
  if (ownership.bind) options.log.info(`${named}: this install is bound to ${address} (${ownership.rule})`);
  return { status: 200, rule: ownership.rule };
}

/**
 * An edge with its own key reads and claims only the nodes of its subnets (the change feed
 * gives it no other): null when it may, else the refusal, logged with the reason. The shared
 * key (one box, or an edge not yet given its own key) is not limited. Boot events are not
 * limited either: an edge's queue may hold the events of a node reassigned while it was away,
 * and an event only adds to a timeline.
 */
function refuseOutsideEdge(options: RegionOptions, request: RouteRequest, what: string, node: Node, address?: string): Reply | null {
  const edge = request.authenticatedEdge;
  if (!edge) return null;
  const served = selectEdgeServes(edge.subnets, node);
  if (served && (address === undefined || selectSubnetsHold(edge.subnets, address))) return null;
  const why = served ? `the client address ${JSON.stringify(address)} is outside its subnets` : `the node's address ${node.ipv4 || node.boundAddress} is outside its subnets`;
  options.log.warn(`refused ${what} of node ${node.hostname} (${node.systemId}) to edge ${edge.name} (${edge.subnets.join(', ')}): ${why}`);
  return FORBIDDEN;
}

async function nodeContext(options: RegionOptions, request: RouteRequest): Promise<Reply> {
  const { params, url } = request;
  let node: Node | undefined;
  if (params[0] !== undefined) {
    const found = await options.store.find(params[0]);
    node = found?.systemId === params[0] ? found : undefined;
  } else {
    let mac: string;
    try {
      mac = parseMac(url.searchParams.get('mac') ?? '');
    } catch {
      return text(400, 'mac= is not a MAC address');
    }
    node = await options.store.find(mac);
  }
  if (!node) return text(404, 'no such node');
  return refuseOutsideEdge(options, request, 'the context', node) ?? json(200, await selectNodeContext(options, node));
}

async function statusCallback(options: RegionOptions, { params, url, body }: RouteRequest, node: Node): Promise<Reply> {
  const event = params[1] as StatusEvent;
  if (!(STATUS_EVENTS as readonly string[]).includes(event)) return text(404, `unknown status event (known: ${STATUS_EVENTS.join(', ')})`);
  const message = url.searchParams.get('message') ?? body.slice(0, 500);
  const updated = await recordStatusEvent(options.store, node.systemId, event, message, options.clock);
  options.log.info(`node ${updated.hostname} (${node.systemId}) reported ${event}; status ${updated.status}`);
  return text(200, 'ok');
}

async function enlist(options: RegionOptions, { url }: RouteRequest): Promise<Reply> {
  const mac = url.searchParams.get('mac');
  if (!mac) return text(400, 'enlist needs mac=');
  const { arch, subarch } = selectArchitecture(url.searchParams.get('buildarch') ?? undefined, url.searchParams.get('platform') ?? undefined);
  const hardware = Object.fromEntries(
    ['manufacturer', 'product', 'serial', 'uuid', 'platform'].flatMap((k) => {
      const v = url.searchParams.get(k);
      return v ? [[k, v]] : [];
    }),
  );
  const { node, created } = await enlistNode(options.store, { mac, arch, subarch, hardware }, options.clock, options.maxNewNodes);
  options.log.info(`${created ? 'enlisted new' : 'enlisted again'} node ${node.systemId} (${mac}, ${arch}/${subarch})`);
  return json(created ? 201 : 200, { system_id: node.systemId, hostname: node.hostname, status: node.status });
}

const ID = '([a-z0-9-]{1,64})';

/** The region's routes. A handler gets the options; 'node' routes also get the node. */
export type RegionRoute = Route<RegionOptions, RegionGrant>;

function requireNode(grant: RegionGrant): Node {
  if (!grant.node) throw new UecError('INTERNAL', 'a node route ran without its node');
  return grant.node;
}

export const REGION_ROUTES: readonly RegionRoute[] = [
  { methods: ['GET'], path: '/api/v1/nodes', pattern: /^\/api\/v1\/nodes$/, access: 'provisioning-key', bodyLimit: 0, handler: async (o, r) => json(200, (await o.store.list()).filter((n) => selectEdgeServes(r.authenticatedEdge?.subnets, n)).map(publicNode)) },
  { methods: ['GET'], path: '/api/v1/context?mac=<mac>', pattern: /^\/api\/v1\/context$/, access: 'provisioning-key', bodyLimit: 0, handler: nodeContext },
  { methods: ['GET'], path: '/api/v1/nodes/<id>/context', pattern: new RegExp(`^/api/v1/nodes/${ID}/context$`), access: 'provisioning-key', bodyLimit: 0, handler: nodeContext },
  // The change feed edges follow (change-feed.ts), and what the region knows of their contact.
  { methods: ['GET'], path: '/api/v1/changes', pattern: /^\/api\/v1\/changes$/, access: 'provisioning-key', bodyLimit: 0, handler: (o, r) => serveChanges(o, r) },
  { methods: ['GET'], path: '/api/v1/changes/followers', pattern: /^\/api\/v1\/changes\/followers$/, access: 'provisioning-key', loopback: true, bodyLimit: 0, handler: async (o) => json(200, await selectFeedFollowers(o.store, o.clock.now())) },
  { methods: ['POST'], path: '/api/v1/nodes/<id>/events', pattern: new RegExp(`^/api/v1/nodes/${ID}/events$`), access: 'provisioning-key', bodyLimit: SMALL_BODY, handler: recordBootEvent },
  { methods: ['POST'], path: '/api/v1/nodes/<id>/claim', pattern: new RegExp(`^/api/v1/nodes/${ID}/claim$`), access: 'provisioning-key', bodyLimit: CLAIM_BODY, handler: claimAddress },
  {
    methods: ['GET', 'POST'],
    path: '/metadata/latest/<id>/status/<event>',
    pattern: new RegExp(`^/metadata/latest/${ID}/status/([a-z]+)$`),
    access: 'node',
    bodyLimit: SMALL_BODY,
    handler: (o, r, g) => statusCallback(o, r, requireNode(g)),
  },
  {
    methods: ['GET', 'POST'],
    path: '/metadata/latest/<id>/disable-netboot',
    pattern: new RegExp(`^/metadata/latest/${ID}/disable-netboot$`),
    access: 'node',
    bodyLimit: SMALL_BODY,
    handler: async (o, _r, g) => {
      const node = requireNode(g);
      await disableNetboot(o.store, node.systemId, o.clock);
      o.log.info(`node ${node.hostname} (${node.systemId}): netboot disabled`);
      return text(200, 'ok');
    },
  },
  { methods: ['GET', 'POST'], path: '/metadata/enlist', pattern: /^\/metadata\/enlist$/, access: 'open', bodyLimit: SMALL_BODY, handler: enlist },
  // Prometheus (docs/metrics.md): a scraper on this host, or one elsewhere with the provisioning key.
  { methods: ['GET'], path: '/metrics', pattern: /^\/metrics$/, access: 'provisioning-key', loopback: true, bodyLimit: 0, handler: scrapeMetrics },
];

/** Route one request; null when the path is not the region's. */
export async function handleRegionRequest(options: RegionOptions, req: IncomingMessage, url: URL): Promise<Reply | null> {
  const reply = await dispatchRoutes(REGION_ROUTES, options, req, url, authorizeRegion, (err, what) => errorReply(err, options.log, what));
  if (reply) return reply;
  if (url.pathname.startsWith('/api/v1/') || url.pathname.startsWith('/metadata/')) return text(404, 'not found');
  return null;
}
