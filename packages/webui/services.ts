/**
 * What the route handlers share: the options the web UI was started with, and the work more
 * than one resource needs (log in, the session cookie, power, the preseed preview, the node
 * query, CSV import, the live event streams).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Command } from '../../src/configurator/command';
import type { ConfigSchema, EffectiveConfig } from '../../src/core/config';
import { UecError, describeError } from '../../src/core/errors';
import { decodePathSegment } from '../../src/core/http-util';
import type { Logger } from '../../src/core/log';
import type { NetworkFacts } from '../../src/core/network-facts';
import { NODE_STATUSES, createNode, newSystemId, newToken, type Node, type NodeStatus } from '../../src/contract/node';
import { recordNodeEvent, type Clock } from '../../src/region/node-ops';
import { getNode, selectQueryMatch, type NodeStore } from '../../src/region/node-store';
import type { Paths } from '../../src/core/paths';
import { maskTokenIn } from '../../src/edge/preseed';
import { renderNodePreseed } from '../../src/edge/provisioning';
import { selectNodeContext } from '../../src/region/region';
import { createRegionClient } from '../../src/edge/region-client';
import { buildProvisioningOptions, buildRegionOptions } from '../../src/cli/serve';
import { loadServerAddress } from '../../src/core/server-address';
import type { AccountStore } from './accounts';
import type { LiveChange, LiveNodes } from './live';
import { summariseNode, type NodeSummary } from './live';
import type { PageUser } from './pages';
import { runIpmiPower, sendWakeOnLan, type BmcStore, type PowerAction } from './power';
import { BASE, COOKIE, HttpError, type Auth } from './routes/route';
import type { LoginThrottle, Session, SessionTable } from './sessions';

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
  /** Peers whose X-Forwarded-For and X-Forwarded-Proto are believed (webui.trusted_proxies). */
  trustedProxies?: readonly string[];
  env?: NodeJS.ProcessEnv;
}

export interface NodeQuery {
  total: number;
  matched: number;
  nodes: NodeSummary[];
  page: number;
  per: number;
}

export interface WebuiServices {
  /** Check the throttle and the password; a session, or HttpError 401/429. */
  login(client: string, name: string, password: string): Promise<Session>;
  /** The Set-Cookie value of the session cookie (an empty value with Max-Age=0 ends it). */
  cookie(secure: boolean, value: string, maxAge?: number): string;
  power(ref: string, action: PowerAction, who: string): Promise<string>;
  preseedPreview(node: Node): Promise<{ template: string; text: string }>;
  queryNodes(url: URL): Promise<NodeQuery>;
  importCsv(text: string): Promise<Node[]>;
  imagesCommand(): Command | undefined;
  openEvents(req: IncomingMessage, res: ServerResponse, user: string): void;
  /** End the live streams of a user (their password changed). */
  endStreamsOf(user: string): void;
  closeStreams(): void;
  pageUser(auth: Auth): PageUser;
}

export const NODE_REF = /^[A-Za-z0-9:._-]{1,64}$/;

/** A node reference from a path parameter: decoded and checked, else HttpError 400. */
export function nodeRef(value: string): string {
  const ref = decodePathSegment(value);
  if (ref === null) throw new HttpError(400, 'malformed percent-encoding in the node reference');
  if (!NODE_REF.test(ref)) throw new HttpError(400, 'bad node id (system id, hostname or MAC)');
  return ref;
}

export function createWebuiServices(options: WebuiOptions): WebuiServices {
  const { store, accounts, sessions, throttle, live, log } = options;
  const streams = new Map<ServerResponse, string>();

  async function login(client: string, name: string, password: string): Promise<Session> {
    const account = name.slice(0, 64);
    const wait = throttle.retryAfter(account, client);
    if (wait > 0) {
      log.warn(`login refused for ${JSON.stringify(account)} from ${client}: too many failures`);
      throw new HttpError(429, `too many failed logins; try again in ${wait} s`, { 'Retry-After': String(wait) });
    }
    const user = name && password ? await accounts.authenticate(name, password.slice(0, 1024)) : undefined;
    if (!user) {
      throttle.fail(account, client);
      log.warn(`failed login for ${JSON.stringify(account)} from ${client}`);
      throw new HttpError(401, 'wrong user name or password');
    }
    throttle.succeed(account, client);
    log.info(`${user.name} logged in from ${client}`);
    return sessions.open(user.name, user.generation);
  }

  function cookie(secure: boolean, value: string, maxAge?: number): string {
    return `${COOKIE}=${value}; Path=${BASE}/; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}${maxAge !== undefined ? `; Max-Age=${maxAge}` : ''}`;
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

  async function queryNodes(url: URL): Promise<NodeQuery> {
    const q = (url.searchParams.get('q') ?? '').toLowerCase().slice(0, 100);
    const status = url.searchParams.get('status') ?? '';
    const sort = url.searchParams.get('sort') ?? 'hostname';
    const dir = url.searchParams.get('dir') === 'desc' ? -1 : 1;
    const per = Math.min(Math.max(Number(url.searchParams.get('per')) || 200, 1), 1000);
    const page = Math.max(Number(url.searchParams.get('page')) || 1, 1);
    const counts = await store.countByStatus();
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    const known = (NODE_STATUSES as readonly string[]).includes(status);
    if (sort === 'hostname' && dir === 1 && (status === '' || known)) {
      // The default order is the store's: one page read through its index, whatever the size.
      const found = await store.page({ offset: (page - 1) * per, limit: per, status: known ? (status as NodeStatus) : undefined, search: q || undefined });
      return { total, matched: found.total, nodes: found.nodes.map(summariseNode), page, per };
    }
    // Another column's order: every node is read (O(N)).
    const all = await store.list();
    let nodes = all.map(summariseNode);
    if (status) nodes = nodes.filter((n) => n.status === status);
    if (q) nodes = nodes.filter((n) => selectQueryMatch(n, { search: q }));
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
    return { total, matched, nodes: nodes.slice((page - 1) * per, page * per), page, per };
  }

  async function importCsv(textInput: string): Promise<Node[]> {
    const rows = textInput.split(/\r?\n/).map((l, i) => ({ line: i + 1, cells: l.split(',').map((c) => c.trim()) })).filter((r) => r.cells.join('') !== '' && !r.cells[0]!.startsWith('#'));
    if (rows[0] && rows[0].cells[0]?.toLowerCase() === 'hostname') rows.shift();
    if (rows.length === 0) throw new UecError('INVALID_VALUE', 'the CSV has no rows (columns: hostname,mac[,arch,role,release,ipv4]; several MACs separated by spaces)');
    if (rows.length > 10_000) throw new UecError('INVALID_VALUE', 'at most 10000 rows per import');
    // One transaction that writes only the new nodes; the store's indexes refuse a taken MAC,
    // hostname or address (NODE_CONFLICT) and then nothing is imported.
    return store.modify([], async (_found, writes) => {
      const created: Node[] = [];
      const ids = new Set<string>();
      for (const { line, cells } of rows) {
        const [hostname = '', macs = '', arch, role, release, ipv4] = cells;
        let systemId = newSystemId();
        while (ids.has(systemId) || (await store.find(systemId))?.systemId === systemId) systemId = newSystemId();
        ids.add(systemId);
        try {
          const node = createNode(
            { hostname, macs: macs.split(/[\s;]+/).filter(Boolean), arch: arch || undefined, role: role || undefined, release: release || undefined, ipv4: ipv4 || undefined },
            options.clock.now(),
            { systemId, token: newToken() },
          );
          writes.put(node);
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

  return {
    login,
    cookie,
    power,
    preseedPreview,
    queryNodes,
    importCsv,
    imagesCommand: () => options.commands.find((c) => c.words.join(' ') === 'images import'),
    openEvents,
    endStreamsOf(user) {
      for (const [stream, owner] of streams) if (owner === user) stream.end();
    },
    closeStreams() {
      for (const res of streams.keys()) res.end();
      streams.clear();
    },
    pageUser: (auth) => ({ name: auth.user.name, role: auth.user.role, csrf: auth.session?.csrf ?? '' }),
  };
}
