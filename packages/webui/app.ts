/**
 * The web UI's HTTP handler: one REST API under /uec-provisioning/api/ that the pages, the
 * scripts and the CLI all use, and the server-rendered pages under /uec-provisioning/.
 * The same path works on the service's own port and behind apache2's reverse proxy.
 *
 * Every request is authenticated (session cookie, or an API token as Bearer), every state
 * change made with a session cookie carries the session's CSRF token (X-CSRF-Token header or
 * _csrf form field), and only admins change anything but their own password and tokens.
 * The API answers JSON; a form post (application/x-www-form-urlencoded) gets a 303 to the
 * page it came from, or an HTML error page, so the pages work without script.
 */
import * as fs from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import * as path from 'node:path';
import type { Command } from '../../src/command';
import type { ConfigSchema, EffectiveConfig } from '../../src/config';
import { formatValue, writeManagedSettings } from '../../src/config';
import { UecError, describeError, type ErrorCode } from '../../src/errors';
import { BodyTooLargeError, clientAddress, decodePathSegment, loggablePath, parseJsonObject, readBody, tooLargeHeaders } from '../../src/http-util';
import type { Logger } from '../../src/log';
import type { NetworkFacts } from '../../src/network-facts';
import { createNode, newSystemId, newToken, publicNode, type Node } from '../../src/node';
import { deployNodes, recordNodeEvent, releaseNode, removeNode, addNode, type Clock } from '../../src/node-ops';
import { getNode, type NodeStore } from '../../src/node-store';
import type { Paths } from '../../src/paths';
import { maskTokenIn } from '../../src/preseed';
import { renderNodePreseed } from '../../src/provisioning';
import { selectNodeContext } from '../../src/region';
import { createRegionClient } from '../../src/region-client';
import { loadRoles } from '../../src/roles';
import { buildProvisioningOptions, buildRegionOptions } from '../../src/serve';
import { loadServerAddress } from '../../src/server-address';
import { runCommand } from '../../src/run-command';
import type { AccountStore, User, UserRole } from './accounts';
import { loadHealth, listImages, loadLeases } from './health';
import type { LiveChange, LiveNodes } from './live';
import { summariseNode, type NodeSummary } from './live';
import { POWER_ACTIONS, parseBmc, runIpmiPower, sendWakeOnLan, type BmcStore, type PowerAction } from './power';
import * as pages from './pages';
import { csrfMatches, type LoginThrottle, type Session, type SessionTable } from './sessions';

export const BASE = '/uec-provisioning';
export const COOKIE = 'uecp_session';
const MAX_BODY = 64 * 1024;
const MAX_CSV = 1024 * 1024;
const NODE_REF = /^[A-Za-z0-9:._-]{1,64}$/;
const STATIC_NAME = /^[a-z0-9-]{1,40}\.(js|css)$/;

export interface WebuiOptions {
  paths: Paths;
  schema: ConfigSchema;
  loadConfig: () => Promise<EffectiveConfig>;
  store: NodeStore;
  accounts: AccountStore;
  bmcs: BmcStore;
  sessions: SessionTable;
  throttle: LoginThrottle;
  live: LiveNodes;
  network: NetworkFacts;
  log: Logger;
  clock: Clock;
  /** Shipped static files (app.js, app.css). */
  staticDir: string;
  /** Commands of the installed components, to offer `images import` when tftpd brings it. */
  commands: Command[];
  /** How to run the CLI for `images import` (argv before the words). */
  cliArgv: string[];
  /** Pause between repeated Wake-on-LAN packets. */
  wolIntervalMs?: number;
  env?: NodeJS.ProcessEnv;
}

interface Auth {
  user: User;
  /** Undefined for API tokens (they need no CSRF token). */
  session?: Session;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const STATUS_OF: Partial<Record<ErrorCode, number>> = {
  NODE_UNKNOWN: 404,
  NODE_STATE: 409,
  NODE_CONFLICT: 409,
  ROLE_UNKNOWN: 409,
  INVALID_VALUE: 400,
  USAGE: 400,
  CONFIG_INVALID_VALUE: 400,
  CONFIG_UNKNOWN_KEY: 400,
  CONFIG_OVERRIDDEN: 409,
  ACCOUNT_FAILED: 400,
  POWER_FAILED: 502,
  TEMPLATE_NOT_FOUND: 500,
  UPSTREAM_FAILED: 502,
};

function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) out.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  return out;
}

type Body = Record<string, string | string[]>;

function field(body: Body, name: string): string {
  const v = body[name];
  return Array.isArray(v) ? (v[0] ?? '') : (v ?? '');
}

function list(body: Body, name: string): string[] {
  const v = body[name];
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

function isForm(req: IncomingMessage): boolean {
  return (req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded');
}

async function parseBody(req: IncomingMessage, limit = MAX_BODY): Promise<{ body: Body; text: string }> {
  let text: string;
  try {
    text = await readBody(req, limit);
  } catch (err) {
    if (err instanceof BodyTooLargeError) throw new HttpError(413, err.message, tooLargeHeaders);
    throw err;
  }
  const type = req.headers['content-type'] ?? '';
  if (text === '') return { body: {}, text };
  if (type.startsWith('application/json')) {
    const parsed = parseJsonObject(text);
    if ('error' in parsed) throw new HttpError(400, parsed.error);
    const body: Body = {};
    for (const [k, v] of Object.entries(parsed.value)) {
      if (Array.isArray(v)) body[k] = v.map((x) => String(x));
      else if (v !== null && v !== undefined) body[k] = typeof v === 'object' ? JSON.stringify(v) : String(v);
    }
    return { body, text };
  }
  if (type.startsWith('application/x-www-form-urlencoded')) {
    const body: Body = {};
    for (const [k, v] of new URLSearchParams(text)) {
      const prev = body[k];
      body[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
    }
    return { body, text };
  }
  return { body: {}, text };
}

export interface Webui {
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
  /** Power a node on, off or cycle; recorded as a node event either way. */
  power(ref: string, action: PowerAction, who: string): Promise<string>;
  close(): void;
}

export function createWebui(options: WebuiOptions): Webui {
  const { store, accounts, sessions, throttle, live, log } = options;
  const streams = new Map<ServerResponse, string>();

  async function authenticate(req: IncomingMessage): Promise<Auth | undefined> {
    const header = req.headers.authorization;
    if (header?.startsWith('Bearer ')) {
      const user = await accounts.userOfToken(header.slice(7).trim());
      return user ? { user } : undefined;
    }
    const sid = parseCookies(req.headers.cookie).get(COOKIE);
    if (!sid) return undefined;
    const session = sessions.get(sid);
    if (!session) return undefined;
    const user = await accounts.find(session.user);
    if (!user || user.generation !== session.generation) {
      sessions.close(sid);
      return undefined;
    }
    return { user, session };
  }

  function cookie(req: IncomingMessage, value: string, maxAge?: number): string {
    const secure = req.headers['x-forwarded-proto'] === 'https' ? '; Secure' : '';
    return `${COOKIE}=${value}; Path=${BASE}/; HttpOnly; SameSite=Strict${secure}${maxAge !== undefined ? `; Max-Age=${maxAge}` : ''}`;
  }

  async function login(client: string, name: string, password: string): Promise<Session> {
    const keys = [`user:${name.slice(0, 64)}`, `addr:${client}`];
    const wait = throttle.retryAfter(keys);
    if (wait > 0) {
      log.warn(`login refused for ${JSON.stringify(name.slice(0, 64))} from ${client}: too many failures`);
      throw new HttpError(429, `too many failed logins; try again in ${wait} s`, { 'Retry-After': String(wait) });
    }
    const user = name && password ? await accounts.authenticate(name, password.slice(0, 1024)) : undefined;
    if (!user) {
      throttle.fail(keys);
      log.warn(`failed login for ${JSON.stringify(name.slice(0, 64))} from ${client}`);
      throw new HttpError(401, 'wrong user name or password');
    }
    throttle.succeed([`user:${name}`]);
    log.info(`${user.name} logged in from ${client}`);
    return sessions.open(user.name, user.generation);
  }

  async function preseedPreview(node: Node): Promise<{ template: string; text: string }> {
    const config = await options.loadConfig();
    const server = await loadServerAddress(config, options.network);
    const paths = options.paths;
    const region = buildRegionOptions({ paths, config, store, base: config.getString('region.url') || server.httpBase, key: '', log, clock: options.clock });
    // The preview renders in this process: no region client is needed (a dead address, never called).
    const provisioning = buildProvisioningOptions({ paths, config, server, regionUrl: region.urls.base, region: createRegionClient({ regionUrl: 'http://127.0.0.1:1', key: '', cacheMs: 0, timeoutMs: 1 }), log });
    const context = await selectNodeContext(region, node);
    const rendered = await renderNodePreseed(provisioning, context, context.commissioning ? 'commissioning' : 'install');
    return { template: rendered.template, text: maskTokenIn(rendered.text, node.token) };
  }

  async function power(ref: string, action: PowerAction, who: string): Promise<string> {
    const node = await getNode(store, ref);
    let message: string;
    try {
      const bmc = await options.bmcs.get(node.systemId);
      if (bmc) {
        const out = await runIpmiPower(bmc, action, options.env);
        message = `power ${action} by IPMI (${bmc.address})${out ? `: ${out}` : ''}`;
      } else if (action === 'on') {
        const config = await options.loadConfig();
        const server = await loadServerAddress(config, options.network);
        const result = await sendWakeOnLan(node.macs[0]!, {
          address: server.address,
          prefix: server.prefix,
          port: config.getNumber('webui.wol_port'),
          repeat: config.getNumber('webui.wol_repeat'),
          intervalMs: options.wolIntervalMs,
        });
        message = `power on by Wake-on-LAN: ${result.sent} packet(s) for ${node.macs[0]} to ${result.broadcast} on ${server.interface}`;
      } else {
        throw new UecError('POWER_FAILED', `node ${node.hostname} has no BMC details: power ${action} needs IPMI (Wake-on-LAN can only power on)`);
      }
    } catch (err) {
      const why = err instanceof UecError ? err.message : describeError(err);
      await recordNodeEvent(store, node.systemId, 'power', `power ${action} failed (by ${who}): ${why}`, options.clock).catch(() => undefined);
      log.warn(`power ${action} for ${node.hostname}: ${why}`);
      throw err instanceof UecError ? err : new UecError('POWER_FAILED', why, { cause: err });
    }
    await recordNodeEvent(store, node.systemId, 'power', `${message} (by ${who})`, options.clock);
    log.info(`${who}: ${message} for ${node.hostname}`);
    return message;
  }

  function nodeRef(value: string): string {
    const ref = decodePathSegment(value);
    if (ref === null) throw new HttpError(400, 'malformed percent-encoding in the node reference');
    if (!NODE_REF.test(ref)) throw new HttpError(400, 'bad node id (system id, hostname or MAC)');
    return ref;
  }

  function requireAdmin(auth: Auth): void {
    if (auth.user.role !== 'admin') throw new HttpError(403, `user ${auth.user.name} has the ${auth.user.role} role; this needs admin`);
  }

  async function queryNodes(url: URL): Promise<{ total: number; matched: number; nodes: NodeSummary[]; page: number; per: number }> {
    const all = await store.list();
    const q = (url.searchParams.get('q') ?? '').toLowerCase().slice(0, 100);
    const status = url.searchParams.get('status') ?? '';
    const sort = url.searchParams.get('sort') ?? 'hostname';
    const dir = url.searchParams.get('dir') === 'desc' ? -1 : 1;
    const per = Math.min(Math.max(Number(url.searchParams.get('per')) || 200, 1), 1000);
    const page = Math.max(Number(url.searchParams.get('page')) || 1, 1);
    let nodes = all.map(summariseNode);
    if (status) nodes = nodes.filter((n) => n.status === status);
    if (q) nodes = nodes.filter((n) => `${n.hostname} ${n.systemId} ${n.macs.join(' ')} ${n.ipv4} ${n.role} ${n.arch}`.toLowerCase().includes(q));
    const keyOf: Record<string, (n: NodeSummary) => string> = {
      hostname: (n) => n.hostname,
      mac: (n) => n.macs[0] ?? '',
      ipv4: (n) => n.ipv4.split('.').map((o) => o.padStart(3, '0')).join('.'),
      arch: (n) => n.arch,
      role: (n) => n.role,
      status: (n) => n.status,
      last: (n) => n.lastEventAt,
    };
    const key = keyOf[sort] ?? keyOf.hostname!;
    nodes.sort((a, b) => (key(a) < key(b) ? -dir : key(a) > key(b) ? dir : a.hostname.localeCompare(b.hostname)));
    const matched = nodes.length;
    return { total: all.length, matched, nodes: nodes.slice((page - 1) * per, page * per), page, per };
  }

  async function importCsv(textInput: string): Promise<Node[]> {
    const rows = textInput.split(/\r?\n/).map((l, i) => ({ line: i + 1, cells: l.split(',').map((c) => c.trim()) })).filter((r) => r.cells.join('') !== '' && !r.cells[0]!.startsWith('#'));
    if (rows[0] && rows[0].cells[0]?.toLowerCase() === 'hostname') rows.shift();
    if (rows.length === 0) throw new UecError('INVALID_VALUE', 'the CSV has no rows (columns: hostname,mac[,arch,role,release,ipv4]; several MACs separated by spaces)');
    if (rows.length > 10_000) throw new UecError('INVALID_VALUE', 'at most 10000 rows per import');
    return store.update((nodes) => {
      const created: Node[] = [];
      const ids = new Set(nodes.map((n) => n.systemId));
      for (const { line, cells } of rows) {
        const [hostname = '', macs = '', arch, role, release, ipv4] = cells;
        let systemId = newSystemId();
        while (ids.has(systemId)) systemId = newSystemId();
        ids.add(systemId);
        try {
          const node = createNode(
            { hostname, macs: macs.split(/[\s;]+/).filter(Boolean), arch: arch || undefined, role: role || undefined, release: release || undefined, ipv4: ipv4 || undefined },
            options.clock.now(),
            { systemId, token: newToken() },
          );
          nodes.push(node);
          created.push(structuredClone(node));
        } catch (err) {
          if (err instanceof UecError) throw new UecError(err.code, `CSV line ${line}: ${err.message}; nothing was imported`);
          throw err;
        }
      }
      return created;
    }).catch((err: unknown) => {
      if (err instanceof UecError && err.code === 'NODE_CONFLICT') throw new UecError('NODE_CONFLICT', `${err.message}; nothing was imported`);
      throw err;
    });
  }

  function imagesCommand(): Command | undefined {
    return options.commands.find((c) => c.words.join(' ') === 'images import');
  }

  async function pageData(auth: Auth): Promise<pages.PageUser> {
    return { name: auth.user.name, role: auth.user.role, csrf: auth.session?.csrf ?? '' };
  }

  function openEvents(req: IncomingMessage, res: ServerResponse, user: string): void {
    res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
    res.write('retry: 2000\n: connected\n\n');
    const send = (changes: LiveChange[]) => {
      for (const change of changes) res.write(`event: node\ndata: ${JSON.stringify(change)}\n\n`);
    };
    const unsubscribe = live.subscribe(send);
    const ping = setInterval(() => res.write(': ping\n\n'), 15_000);
    streams.set(res, user);
    const end = () => {
      clearInterval(ping);
      unsubscribe();
      streams.delete(res);
    };
    req.on('close', end);
    res.on('close', end);
    void live.check();
  }

  /** The API: JSON in, JSON out (form posts are turned into redirects by the caller). */
  async function api(req: IncomingMessage, res: ServerResponse, url: URL, rel: string, auth: Auth, body: Body, bodyText: string): Promise<unknown> {
    const method = req.method ?? 'GET';
    const who = auth.user.name;
    const m = (re: RegExp) => re.exec(rel);
    let match: RegExpExecArray | null;

    if (rel === '/api/session') {
      if (method === 'GET') return { user: auth.user.name, role: auth.user.role, csrf: auth.session?.csrf ?? null };
      if (method === 'DELETE') {
        if (auth.session) sessions.close(auth.session.id);
        res.setHeader('Set-Cookie', cookie(req, '', 0));
        return { ok: true };
      }
    }
    if (rel === '/api/dashboard' && method === 'GET') {
      const nodes = await store.list();
      const counts: Record<string, number> = { new: 0, commissioning: 0, ready: 0, deploying: 0, deployed: 0, failed: 0 };
      for (const n of nodes) counts[n.status] = (counts[n.status] ?? 0) + 1;
      return { total: nodes.length, counts, health: await loadHealth({ paths: options.paths, config: await options.loadConfig() }) };
    }
    if (rel === '/api/events' && method === 'GET') {
      openEvents(req, res, auth.user.name);
      return undefined;
    }
    if (rel === '/api/roles' && method === 'GET') {
      return (await loadRoles(options.paths)).map((r) => ({ name: r.name, description: r.description, releases: Object.keys(r.packages).sort() }));
    }
    if (rel === '/api/nodes') {
      if (method === 'GET') return queryNodes(url);
      if (method === 'POST') {
        requireAdmin(auth);
        const macs = [...list(body, 'macs'), ...field(body, 'mac').split(/[\s,;]+/)].filter(Boolean);
        const node = await addNode(
          store,
          {
            hostname: field(body, 'hostname'),
            macs,
            arch: field(body, 'arch') || undefined,
            role: field(body, 'role') || undefined,
            release: field(body, 'release') || undefined,
            ipv4: field(body, 'ipv4') || undefined,
          },
          options.clock,
        );
        log.info(`${who} added node ${node.hostname} (${node.systemId})`);
        return { status: 201, value: publicNode(node) };
      }
    }
    if (rel === '/api/nodes/import' && method === 'POST') {
      requireAdmin(auth);
      const csv = field(body, 'csv') || ((req.headers['content-type'] ?? '').startsWith('text/csv') ? bodyText : '');
      const created = await importCsv(csv);
      log.info(`${who} imported ${created.length} node(s) from CSV`);
      return { status: 201, value: { imported: created.length, nodes: created.map(summariseNode) } };
    }
    if (rel === '/api/deploy' && method === 'POST') {
      requireAdmin(auth);
      const refs = [...list(body, 'nodes'), ...list(body, 'node')].map(nodeRef);
      const roles = await loadRoles(options.paths);
      const deployed = await deployNodes(store, refs, roles, { role: field(body, 'role') || undefined, release: field(body, 'release') || undefined }, options.clock);
      log.info(`${who} deployed ${deployed.map((n) => n.hostname).join(', ')}`);
      const powerOn = !['false', '0', 'off', 'no'].includes(field(body, 'power_on').toLowerCase()) && !(isForm(req) && field(body, 'power_on') === '');
      if (powerOn) {
        // In the background: the result of each power-on is an event on the node, seen live.
        for (const node of deployed) void power(node.systemId, 'on', who).catch(() => undefined);
      }
      return { deployed: deployed.map(summariseNode), powerOn };
    }
    if ((match = m(/^\/api\/nodes\/([^/]+)$/))) {
      const ref = nodeRef(match[1]!);
      if (method === 'GET') {
        const node = await getNode(store, ref);
        return { ...publicNode(node), bmc: Boolean(await options.bmcs.get(node.systemId)), stage: summariseNode(node).stage };
      }
      if (method === 'DELETE') {
        requireAdmin(auth);
        const node = await removeNode(store, ref);
        await options.bmcs.set(node.systemId, null);
        log.info(`${who} removed node ${node.hostname} (${node.systemId})`);
        return { removed: node.systemId };
      }
    }
    if ((match = m(/^\/api\/nodes\/([^/]+)\/(release|power|bmc|preseed|lease)$/))) {
      const ref = nodeRef(match[1]!);
      const what = match[2];
      if (what === 'release' && method === 'POST') {
        requireAdmin(auth);
        const node = await releaseNode(store, ref, options.clock);
        log.info(`${who} released ${node.hostname}`);
        return summariseNode(node);
      }
      if (what === 'power' && method === 'POST') {
        requireAdmin(auth);
        const action = field(body, 'action');
        if (!(POWER_ACTIONS as readonly string[]).includes(action)) throw new HttpError(400, `action must be one of ${POWER_ACTIONS.join(', ')}`);
        return { message: await power(ref, action as PowerAction, who) };
      }
      if (what === 'bmc') {
        const node = await getNode(store, ref);
        if (method === 'GET') {
          const bmc = await options.bmcs.get(node.systemId);
          return bmc ? { address: bmc.address, user: bmc.user } : null;
        }
        requireAdmin(auth);
        if (method === 'PUT' || method === 'POST') {
          const bmc = parseBmc({ address: field(body, 'address'), user: field(body, 'user'), password: field(body, 'password') });
          await options.bmcs.set(node.systemId, bmc);
          await recordNodeEvent(store, node.systemId, 'edited', `BMC details set (${bmc.address}) by ${who}`, options.clock);
          return { address: bmc.address, user: bmc.user };
        }
        if (method === 'DELETE') {
          await options.bmcs.set(node.systemId, null);
          await recordNodeEvent(store, node.systemId, 'edited', `BMC details removed by ${who}`, options.clock);
          return { removed: true };
        }
      }
      if (what === 'preseed' && method === 'GET') {
        const node = await getNode(store, ref);
        return { node: node.systemId, ...(await preseedPreview(node)) };
      }
      if (what === 'lease' && method === 'GET') {
        const node = await getNode(store, ref);
        const leases = await loadLeases(options.paths, await options.loadConfig(), node.macs);
        return { leases, leaseFile: leases !== null };
      }
    }
    if (rel === '/api/images') {
      if (method === 'GET') return { images: await listImages(options.paths), importAvailable: Boolean(imagesCommand()) };
    }
    if (rel === '/api/images/import' && method === 'POST') {
      requireAdmin(auth);
      if (!imagesCommand()) throw new HttpError(404, 'image import needs uec-provisioning-tftpd (no `images import` command installed)');
      const words = field(body, 'args').trim().split(/\s+/).filter(Boolean);
      for (const w of words) if (!/^[A-Za-z0-9._=:/+-]{1,200}$/.test(w) || w.startsWith('--root')) throw new HttpError(400, `argument ${JSON.stringify(w)} is not allowed`);
      const argv = [...options.cliArgv, 'images', 'import', ...words, '--root', options.paths.root];
      log.info(`${who} started images import ${words.join(' ')}`);
      const result = await runCommand(argv[0]!, argv.slice(1), { env: options.env, timeoutMs: 30 * 60_000 });
      return { status: result.code === 0 ? 200 : 502, value: { exit: result.code, output: `${result.stdout}${result.stderr}`.slice(-20_000) } };
    }
    if (rel === '/api/config') {
      if (method === 'GET') {
        const config = await options.loadConfig();
        return [...config.settings.entries()]
          .sort(([a], [b]) => (a < b ? -1 : 1))
          .map(([key, s]) => {
            const [section, name] = key.split('.') as [string, string];
            const spec = options.schema[section]?.keys[name];
            return { key, value: s.value, origin: s.origin, package: options.schema[section]?.package ?? '', type: spec?.type ?? 'string', values: spec?.values ?? null, description: spec?.description ?? '' };
          });
      }
      if (method === 'PUT' || method === 'POST') {
        requireAdmin(auth);
        const changes = new Map<string, string>();
        if (field(body, 'key')) changes.set(field(body, 'key'), field(body, 'value'));
        else for (const [k, v] of Object.entries(body)) if (!k.startsWith('_')) changes.set(k, Array.isArray(v) ? (v[0] ?? '') : v);
        if (changes.size === 0) throw new HttpError(400, 'no settings given');
        const result = await writeManagedSettings(options.paths, options.schema, changes);
        log.info(`${who} set ${[...changes.keys()].join(', ')}${result.changed ? '' : ' (unchanged)'}`);
        return { changed: result.changed, set: Object.fromEntries(changes) };
      }
    }
    if (rel === '/api/account/password' && method === 'POST') {
      const current = field(body, 'current');
      if (!(await accounts.authenticate(who, current))) throw new HttpError(403, 'the current password is wrong');
      const newPassword = field(body, 'new');
      if (field(body, 'confirm') && field(body, 'confirm') !== newPassword) throw new HttpError(400, 'the new password and its confirmation differ');
      const user = await accounts.setPassword(who, newPassword);
      sessions.closeUser(who);
      for (const [stream, owner] of streams) if (owner === who) stream.end();
      const session = sessions.open(user.name, user.generation);
      res.setHeader('Set-Cookie', cookie(req, session.id));
      log.info(`${who} changed their password; their other sessions ended`);
      return { changed: true, csrf: session.csrf };
    }
    if (rel === '/api/users') {
      requireAdmin(auth);
      if (method === 'GET') return (await accounts.list()).map((u) => ({ name: u.name, role: u.role, changedAt: u.changedAt }));
      if (method === 'POST') {
        const user = await accounts.create(field(body, 'name'), field(body, 'role') as UserRole, field(body, 'password'));
        log.info(`${who} created user ${user.name} (${user.role})`);
        return { status: 201, value: { name: user.name, role: user.role } };
      }
    }
    if (rel === '/api/tokens') {
      if (method === 'GET') return (await accounts.listTokens(auth.user.role === 'admin' ? undefined : who)).map(({ digest: _d, ...t }) => t);
      if (method === 'POST') {
        const { token, secret } = await accounts.createToken(who, field(body, 'name') || 'token');
        log.info(`${who} created API token ${token.id}`);
        const { digest: _d, ...shown } = token;
        return { status: 201, value: { ...shown, secret } };
      }
    }
    if ((match = m(/^\/api\/tokens\/([0-9a-f]{12})$/)) && method === 'DELETE') {
      const tokens = await accounts.listTokens();
      const token = tokens.find((t) => t.id === match![1]);
      if (!token) throw new HttpError(404, 'no such token');
      if (token.user !== who) requireAdmin(auth);
      await accounts.revokeToken(token.id);
      log.info(`${who} revoked API token ${token.id}`);
      return { revoked: token.id };
    }
    throw new HttpError(rel.startsWith('/api/') && /^\/api\/(session|dashboard|events|roles|nodes|deploy|images|config|account|users|tokens)/.test(rel) ? 405 : 404, rel.startsWith('/api/') ? 'no such API route or method' : 'not found');
  }

  async function page(url: URL, rel: string, auth: Auth): Promise<string> {
    const user = await pageData(auth);
    const flash = url.searchParams.get('msg') ?? '';
    let match: RegExpExecArray | null;
    if (rel === '/') {
      const nodes = await store.list();
      const counts: Record<string, number> = {};
      for (const n of nodes) counts[n.status] = (counts[n.status] ?? 0) + 1;
      return pages.dashboardPage(user, flash, nodes.length, counts, await loadHealth({ paths: options.paths, config: await options.loadConfig() }));
    }
    if (rel === '/nodes') {
      const result = await queryNodes(url);
      const roles = await loadRoles(options.paths).catch(() => []);
      return pages.nodesPage(user, flash, result, url.searchParams, roles.map((r) => r.name));
    }
    if ((match = /^\/nodes\/([^/]+)$/.exec(rel))) {
      const node = await getNode(store, nodeRef(match[1]!));
      const config = await options.loadConfig();
      let preseed: { template: string; text: string } | { error: string };
      try {
        preseed = await preseedPreview(node);
      } catch (err) {
        preseed = { error: describeError(err) };
      }
      const bmc = await options.bmcs.get(node.systemId);
      const leases = await loadLeases(options.paths, config, node.macs);
      return pages.nodePage(user, flash, node, summariseNode(node), preseed, bmc ? { address: bmc.address, user: bmc.user } : null, leases);
    }
    if (rel === '/deploy') {
      const nodes = (await store.list()).map(summariseNode);
      const roles = await loadRoles(options.paths).catch(() => []);
      const watch = (url.searchParams.get('watch') ?? '').split(',').filter((id) => NODE_REF.test(id));
      return pages.deployPage(user, flash, nodes, roles.map((r) => ({ name: r.name, releases: Object.keys(r.packages).sort() })), watch);
    }
    if (rel === '/images') return pages.imagesPage(user, flash, await listImages(options.paths), Boolean(imagesCommand()));
    if (rel === '/settings') {
      const config = await options.loadConfig();
      const rows = [...config.settings.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([key, s]) => {
        const [section, name] = key.split('.') as [string, string];
        const spec = options.schema[section]?.keys[name];
        return { key, value: formatValue(s.value), origin: s.origin, description: spec?.description ?? '', values: spec?.values ? [...spec.values] : null, type: spec?.type ?? 'string' };
      });
      return pages.settingsPage(user, flash, rows);
    }
    if (rel === '/account') {
      const tokens = (await accounts.listTokens(auth.user.role === 'admin' ? undefined : auth.user.name)).map(({ digest: _d, ...t }) => t);
      const users = auth.user.role === 'admin' ? (await accounts.list()).map((u) => ({ name: u.name, role: u.role })) : [];
      return pages.accountPage(user, flash, tokens, users);
    }
    throw new HttpError(404, 'no such page');
  }

  function reply(res: ServerResponse, status: number, type: string, body: string, headers: Record<string, string> = {}): void {
    const buf = Buffer.from(body);
    res.writeHead(status, {
      'Content-Type': type,
      'Content-Length': String(buf.length),
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
      'X-Frame-Options': 'DENY',
      'Referrer-Policy': 'same-origin',
      'Content-Security-Policy': "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
      ...headers,
    });
    res.end(buf);
  }

  function redirect(res: ServerResponse, location: string, headers: Record<string, string> = {}): void {
    reply(res, 303, 'text/plain; charset=utf-8', `see ${location}\n`, { Location: location, ...headers });
  }

  /** Where a form post returns to: a path inside the UI only. */
  function backTo(body: Body, fallback: string): string {
    const back = field(body, '_back');
    return back.startsWith(`${BASE}/`) && !back.startsWith(`${BASE}//`) && !/[\\\r\n]/.test(back) ? back : fallback;
  }

  function withMessage(location: string, msg: string): string {
    return `${location}${location.includes('?') ? '&' : '?'}msg=${encodeURIComponent(msg.slice(0, 300))}`;
  }

  async function serveStatic(res: ServerResponse, name: string, method: string): Promise<void> {
    if (!STATIC_NAME.test(name)) throw new HttpError(404, 'not found');
    const file = path.join(options.staticDir, name);
    let content: Buffer;
    try {
      content = await fs.promises.readFile(file);
    } catch {
      throw new HttpError(404, 'not found');
    }
    const type = name.endsWith('.js') ? 'text/javascript; charset=utf-8' : 'text/css; charset=utf-8';
    res.writeHead(200, { 'Content-Type': type, 'Content-Length': String(content.length), 'Cache-Control': 'max-age=300', 'X-Content-Type-Options': 'nosniff' });
    res.end(method === 'HEAD' ? undefined : content);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = process.hrtime.bigint();
    const client = clientAddress(req);
    const method = req.method ?? 'GET';
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      reply(res, 400, 'text/plain; charset=utf-8', 'bad request\n');
      return;
    }
    const pathname = url.pathname;
    const isApi = pathname.startsWith(`${BASE}/api/`);
    const form = isForm(req);
    let status = 200;
    try {
      if (pathname === '/' || pathname === BASE) {
        redirect(res, `${BASE}/`);
        status = 303;
        return;
      }
      if (!pathname.startsWith(`${BASE}/`)) throw new HttpError(404, 'not found');
      const rel = pathname.slice(BASE.length);
      if (rel.startsWith('/static/')) {
        if (method !== 'GET' && method !== 'HEAD') throw new HttpError(405, 'method not allowed');
        await serveStatic(res, rel.slice('/static/'.length), method);
        return;
      }
      if (rel === '/login') {
        if (method === 'GET') {
          reply(res, 200, 'text/html; charset=utf-8', pages.loginPage(url.searchParams.get('msg') ?? ''));
          return;
        }
        if (method === 'POST') {
          const { body } = await parseBody(req);
          try {
            const session = await login(client, field(body, 'user'), field(body, 'password'));
            redirect(res, `${BASE}/`, { 'Set-Cookie': cookie(req, session.id) });
            status = 303;
          } catch (err) {
            if (!(err instanceof HttpError)) throw err;
            status = err.status;
            reply(res, err.status, 'text/html; charset=utf-8', pages.loginPage(err.message), err.headers);
          }
          return;
        }
      }
      if (rel === '/api/session' && method === 'POST') {
        const { body } = await parseBody(req);
        const session = await login(client, field(body, 'user'), field(body, 'password'));
        const user = (await accounts.find(session.user))!;
        reply(res, 200, 'application/json', `${JSON.stringify({ user: user.name, role: user.role, csrf: session.csrf })}\n`, { 'Set-Cookie': cookie(req, session.id) });
        return;
      }
      const auth = await authenticate(req);
      if (!auth) {
        if (isApi || method !== 'GET') throw new HttpError(401, 'log in first (session cookie or Authorization: Bearer <API token>)', { 'WWW-Authenticate': 'Bearer realm="uec-provisioning"' });
        redirect(res, `${BASE}/login`);
        status = 303;
        return;
      }
      const changing = method !== 'GET' && method !== 'HEAD';
      let body: Body = {};
      let bodyText = '';
      if (changing) {
        ({ body, text: bodyText } = await parseBody(req, rel === '/api/nodes/import' ? MAX_CSV : MAX_BODY));
        if (auth.session && !csrfMatches((req.headers['x-csrf-token'] as string | undefined) ?? field(body, '_csrf'), auth.session.csrf)) {
          throw new HttpError(403, 'missing or wrong CSRF token (send X-CSRF-Token, or _csrf in the form)');
        }
      }
      if (rel === '/logout' && method === 'POST') {
        if (auth.session) sessions.close(auth.session.id);
        redirect(res, `${BASE}/login?msg=${encodeURIComponent('logged out')}`, { 'Set-Cookie': cookie(req, '', 0) });
        status = 303;
        return;
      }
      if (isApi) {
        const override = field(body, '_method').toUpperCase();
        if (form && method === 'POST' && (override === 'DELETE' || override === 'PUT')) (req as { method?: string }).method = override;
        const result = await api(req, res, url, rel, auth, body, bodyText);
        if (res.headersSent) return; // the event stream
        const value = result && typeof result === 'object' && 'status' in result && 'value' in result ? (result as { status: number; value: unknown }) : { status: 200, value: result };
        status = value.status;
        if (form) {
          const fallback = `${BASE}/`;
          let location = backTo(body, fallback);
          const v = value.value as Record<string, unknown> | null;
          if (v && typeof v === 'object' && 'secret' in v) {
            // Shown once, in the response itself: never in a URL, a log or the history.
            reply(res, 201, 'text/html; charset=utf-8', pages.tokenCreatedPage(await pageData(auth), String(v.name), String(v.secret)));
            return;
          }
          if (rel === '/api/deploy' && v && Array.isArray(v.deployed)) location = `${BASE}/deploy?watch=${(v.deployed as NodeSummary[]).map((n) => n.systemId).join(',')}`;
          else if (method === 'DELETE' && /^\/api\/nodes\/[^/]+$/.test(rel)) location = `${BASE}/nodes`;
          else location = withMessage(location, typeof v === 'object' && v && 'message' in v ? String(v.message) : 'done');
          redirect(res, location);
          status = 303;
          return;
        }
        reply(res, value.status, 'application/json', `${JSON.stringify(value.value ?? null)}\n`);
        return;
      }
      if (method !== 'GET' && method !== 'HEAD') throw new HttpError(405, 'method not allowed');
      reply(res, 200, 'text/html; charset=utf-8', await page(url, rel, auth));
    } catch (err) {
      let code: string | undefined;
      let message: string;
      let headers: Record<string, string> = {};
      if (err instanceof HttpError) {
        status = err.status;
        message = err.message;
        headers = err.headers;
      } else if (err instanceof UecError) {
        status = STATUS_OF[err.code] ?? 500;
        code = err.code;
        message = status >= 500 && status !== 502 ? 'internal error' : err.message;
        (status >= 500 ? log.error : log.warn)(`${method} ${pathname}: ${err.message}`, { code: err.code });
      } else {
        status = 500;
        message = 'internal error';
        log.error(`${method} ${pathname}: ${describeError(err)}`, { code: 'INTERNAL' });
      }
      if (res.headersSent) {
        res.end();
        return;
      }
      if (isApi && !form) reply(res, status, 'application/json', `${JSON.stringify({ error: message, ...(code ? { code } : {}) })}\n`, headers);
      else reply(res, status, 'text/html; charset=utf-8', pages.errorPage(status, message), headers);
    } finally {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      log.debug(`${method} ${loggablePath(url)} ${status} ${ms.toFixed(1)} ms`, { client });
    }
  }

  return {
    handle,
    power,
    close() {
      for (const res of streams.keys()) res.end();
      streams.clear();
    },
  };
}
