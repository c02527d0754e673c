/**
 * The region's HTTP side: the node context view for provisioning servers (shared key), the
 * metadata endpoints installing machines call back with their own token, and enlistment.
 *
 *   GET  /api/v1/nodes/<id>/context, /api/v1/context?mac=M   Bearer <provisioning key>
 *   GET  /api/v1/nodes                                         Bearer <provisioning key>
 *   GET|POST /metadata/latest/<id>/status/<event>             node token (installing, installed, deployed, failed)
 *   GET|POST /metadata/latest/<id>/disable-netboot            node token
 *   GET|POST /metadata/enlist?mac=…&buildarch=…&platform=…    open (unknown machines have nothing else)
 *
 * Handlers validate first: a short 4xx to the client, a detailed log line for the operator.
 * A wrong token and an unknown node get the same 403, so a caller learns nothing either way.
 */
import type { IncomingMessage } from 'node:http';
import type { ArchiveSettings } from './archive';
import { buildNodeContext, type NodeContext, type RegionUrls } from './context';
import { UecError, describeError } from './errors';
import { checkLine } from './formats';
import { BodyTooLargeError, json, parseJsonObject, presentedToken, readBody, text, tooLargeHeaders, type Reply } from './http-util';
import type { Logger } from './log';
import { DEFAULT_RELEASE, parseMac, publicNode, tokenMatches, type Node } from './node';
import {
  EnlistLimitError,
  STATUS_EVENTS,
  disableNetboot,
  enlistNode,
  recordNodeEvent,
  recordStatusEvent,
  selectArchitecture,
  type Clock,
  type StatusEvent,
} from './node-ops';
import type { NodeStore } from './node-store';
import { selectRole, selectRolePackages, type Role } from './roles';

export interface RegionOptions {
  store: NodeStore;
  urls: RegionUrls;
  /** The key provisioning servers present. */
  provisioningKey: string;
  loadArchive: () => Promise<ArchiveSettings>;
  loadRoles: () => Promise<Role[]>;
  /** The SSH public keys for admin_user, one per line. */
  loadAuthorizedKeys: () => Promise<string[]>;
  adminUser: string;
  log: Logger;
  clock: Clock;
  /** Enlistment is refused (429) while this many nodes are new; default DEFAULT_MAX_NEW_NODES. */
  maxNewNodes?: number;
}

const FORBIDDEN = text(403, 'forbidden');
const DUMMY_TOKEN = 'x'.repeat(32);

/** The context of one node; a deploying node whose role cannot be installed is an error. */
export async function selectNodeContext(options: RegionOptions, node: Node): Promise<NodeContext> {
  const roles = await options.loadRoles();
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
  return buildNodeContext(node, options.urls, await options.loadArchive(), role, packages, {
    commissioningRelease: DEFAULT_RELEASE,
    adminUser: options.adminUser,
    authorizedKeys: await options.loadAuthorizedKeys(),
  });
}

function keyMatches(req: IncomingMessage, url: URL, key: string): boolean {
  const presented = presentedToken(req, url);
  return presented !== null && tokenMatches(presented, key);
}

async function nodeByToken(options: RegionOptions, req: IncomingMessage, url: URL, systemId: string): Promise<Node | null> {
  const presented = presentedToken(req, url) ?? '';
  const node = (await options.store.list()).find((n) => n.systemId === systemId);
  const ok = tokenMatches(presented, node?.token ?? DUMMY_TOKEN);
  return node && ok ? node : null;
}

function errorReply(err: unknown, log: Logger, what: string): Reply {
  if (err instanceof BodyTooLargeError) return text(413, 'request body too large', tooLargeHeaders);
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

/**
 * What a provisioning server saw of a node's boot, reported so the region's timeline (and the
 * web UI's deploy stages) show it: `netboot` (its install boot script was served) and
 * `preseed` (the installer fetched its preseed). Body: {"type": "...", "message": "..."}.
 */
export const BOOT_EVENTS = ['netboot', 'preseed'] as const;

async function recordBootEvent(options: RegionOptions, systemId: string, body: string): Promise<Reply> {
  const parsed = parseJsonObject(body);
  if ('error' in parsed) return text(400, parsed.error);
  const event: { type?: unknown; message?: unknown } = parsed.value;
  if (typeof event.type !== 'string' || !(BOOT_EVENTS as readonly string[]).includes(event.type)) return text(400, `type must be one of ${BOOT_EVENTS.join(', ')}`);
  const message = typeof event.message === 'string' ? event.message : '';
  if (message.length > 200 || checkLine(message) !== null) return text(400, 'message must be one line of at most 200 characters');
  if (!(await options.store.list()).some((n) => n.systemId === systemId)) return text(404, 'no such node');
  const node = await recordNodeEvent(options.store, systemId, event.type, message, options.clock);
  options.log.info(`node ${node.hostname} (${node.systemId}): ${event.type} ${message}`);
  return json(201, { system_id: node.systemId, type: event.type });
}

/** Route one request; null when the path is not the region's. */
export async function handleRegionRequest(options: RegionOptions, req: IncomingMessage, url: URL): Promise<Reply | null> {
  const path = url.pathname;
  const method = req.method ?? 'GET';
  const log = options.log;
  if (path.startsWith('/api/v1/')) {
    const eventPath = /^\/api\/v1\/nodes\/([a-z0-9-]{1,64})\/events$/.exec(path);
    if (eventPath ? method !== 'POST' : method !== 'GET') return text(405, 'method not allowed', { Allow: eventPath ? 'POST' : 'GET' });
    if (presentedToken(req, url) === null) {
      log.warn(`refused ${path}: no provisioning key`);
      return text(401, 'unauthorized', { 'WWW-Authenticate': 'Bearer' });
    }
    if (!keyMatches(req, url, options.provisioningKey)) {
      log.warn(`refused ${path}: wrong provisioning key`);
      return FORBIDDEN;
    }
    try {
      if (path === '/api/v1/nodes') return json(200, (await options.store.list()).map(publicNode));
      if (eventPath) return await recordBootEvent(options, eventPath[1]!, await readBody(req));
      const byId = /^\/api\/v1\/nodes\/([a-z0-9-]{1,64})\/context$/.exec(path);
      if (byId || path === '/api/v1/context') {
        const nodes = await options.store.list();
        let node: Node | undefined;
        if (byId) node = nodes.find((n) => n.systemId === byId[1]);
        else {
          let mac: string;
          try {
            mac = parseMac(url.searchParams.get('mac') ?? '');
          } catch {
            return text(400, 'mac= is not a MAC address');
          }
          node = nodes.find((n) => n.macs.includes(mac));
        }
        if (!node) return text(404, 'no such node');
        return json(200, await selectNodeContext(options, node));
      }
      return text(404, 'not found');
    } catch (err) {
      return errorReply(err, log, `${method} ${path}`);
    }
  }
  if (!path.startsWith('/metadata/')) return null;
  if (method !== 'GET' && method !== 'POST') return text(405, 'method not allowed', { Allow: 'GET, POST' });
  try {
    if (path === '/metadata/enlist') {
      const mac = url.searchParams.get('mac');
      if (!mac) return text(400, 'enlist needs mac=');
      if (method === 'POST') await readBody(req);
      const { arch, subarch } = selectArchitecture(url.searchParams.get('buildarch') ?? undefined, url.searchParams.get('platform') ?? undefined);
      const hardware = Object.fromEntries(
        ['manufacturer', 'product', 'serial', 'uuid', 'platform'].flatMap((k) => {
          const v = url.searchParams.get(k);
          return v ? [[k, v]] : [];
        }),
      );
      const { node, created } = await enlistNode(options.store, { mac, arch, subarch, hardware }, options.clock, options.maxNewNodes);
      log.info(`${created ? 'enlisted new' : 'enlisted again'} node ${node.systemId} (${mac}, ${arch}/${subarch})`);
      return json(created ? 201 : 200, { system_id: node.systemId, hostname: node.hostname, status: node.status });
    }
    const m = /^\/metadata\/latest\/([a-z0-9-]{1,64})\/(status\/([a-z]+)|disable-netboot)$/.exec(path);
    if (!m) return text(404, 'not found');
    const systemId = m[1]!;
    const node = await nodeByToken(options, req, url, systemId);
    if (!node) {
      log.warn(`refused ${method} ${path}: unknown node or wrong token`);
      return FORBIDDEN;
    }
    const body = method === 'POST' ? await readBody(req) : '';
    if (m[2] === 'disable-netboot') {
      await disableNetboot(options.store, systemId, options.clock);
      log.info(`node ${node.hostname} (${systemId}): netboot disabled`);
      return text(200, 'ok');
    }
    const event = m[3] as StatusEvent;
    if (!(STATUS_EVENTS as readonly string[]).includes(event)) return text(404, `unknown status event (known: ${STATUS_EVENTS.join(', ')})`);
    const message = url.searchParams.get('message') ?? body.slice(0, 500);
    const updated = await recordStatusEvent(options.store, systemId, event, message, options.clock);
    log.info(`node ${updated.hostname} (${systemId}) reported ${event}; status ${updated.status}`);
    return text(200, 'ok');
  } catch (err) {
    return errorReply(err, log, `${method} ${path}`);
  }
}
