/**
 * The edge registry: the provisioning servers on other hosts that the region knows, each with
 * its own key (issue 14 item 5). One JSON file, /var/lib/uec-provisioning/edges.json (0600),
 * replaced atomically under a lock file like the node store, so `edges add|revoke|assign`, the
 * web UI and the service can change it at the same time.
 *
 * An edge has a name, the subnets it serves (CIDRs; no two live edges overlap), its key stored
 * only as a SHA-256 digest, when it was created, when it last called (written at most once a
 * minute), and when it was revoked. The key is `uecpe.<name>.<secret>`, the secret 256 random
 * bits: the name lets the region find the edge without trying every digest, and a digest of
 * 256 random bits needs no slow hash (scrypt protects guessable passwords; this is not one).
 * The service reads the file again whenever it changed on disk, so a revocation refuses the
 * edge's very next request.
 *
 * Pure: parseEdgeName, parseCidr, selectSubnetOverlap, parseEdgeKey, selectEdgeAuth, plan*.
 * I/O: createEdgeRegistry (load, apply).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import * as fs from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { atomicWrite } from '../core/atomic-write';
import { UecError, describeError } from '../core/errors';
import { createFileLock } from '../core/file-lock';
import type { Paths } from '../core/paths';
import type { Node } from '../contract/node';

export const EDGES_FILE = '/var/lib/uec-provisioning/edges.json';
export const EDGE_KEY_PREFIX = 'uecpe';
/** Last contact is written to the file at most this often per edge. */
export const CONTACT_WRITE_MS = 60_000;
/** Subnets one edge may serve. */
export const MAX_EDGE_SUBNETS = 64;

export interface Edge {
  name: string;
  /** Canonical CIDRs (host bits zero), in the order given. */
  subnets: string[];
  /** SHA-256 of the key's secret part, base64url. Never shown, never logged. */
  keyDigest: string;
  /** ISO 8601. */
  createdAt: string;
  /** ISO 8601; '' when it never called. */
  lastContact: string;
  /** ISO 8601; '' while live. A revoked edge's key is never accepted again. */
  revokedAt: string;
}

/** What lists, the API and the web UI show: everything but the digest. */
export interface PublicEdge {
  name: string;
  subnets: string[];
  createdAt: string;
  lastContact: string;
  revoked: boolean;
  revokedAt: string;
}

/** The edge a request was authenticated as (set on the route request by the region's authorizer). */
export type { AuthenticatedEdge } from '../core/http-routes';

interface EdgesFile {
  version: 1;
  edges: Edge[];
}

const NAME = /^[a-z][a-z0-9-]{0,62}$/;

/** An edge name: a lowercase letter, then letters, digits and '-', at most 63 (pure). */
export function parseEdgeName(name: string): string {
  if (!NAME.test(name)) throw new UecError('INVALID_VALUE', `edge name ${JSON.stringify(name)} must start with a lowercase letter and hold only a-z, 0-9 and '-' (at most 63 characters)`);
  return name;
}

export interface Cidr {
  family: 4 | 6;
  network: bigint;
  prefix: number;
  /** Canonical text: 10.1.0.0/16, fd00::/64. */
  text: string;
}

function ipv4ToBigint(address: string): bigint {
  return address.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

function ipv6ToBigint(address: string): bigint | null {
  if (address.includes('.') || address.includes('%')) return null;
  const [head, tail, extra] = address.split('::');
  if (extra !== undefined) return null;
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const missing = 8 - left.length - right.length;
  if (tail === undefined ? missing !== 0 : missing < 1) return null;
  const groups = [...left, ...Array<string>(tail === undefined ? 0 : missing).fill('0'), ...right];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

function bigintToIpv4(n: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 255n)).join('.');
}

function bigintToIpv6(n: bigint): string {
  const groups = [112n, 96n, 80n, 64n, 48n, 32n, 16n, 0n].map((s) => ((n >> s) & 0xffffn).toString(16));
  // The longest run of two or more zero groups becomes '::' (RFC 5952).
  let best = { at: -1, len: 0 };
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > best.len && j - i >= 2) best = { at: i, len: j - i };
    i = j;
  }
  if (best.at < 0) return groups.join(':');
  return `${groups.slice(0, best.at).join(':')}::${groups.slice(best.at + best.len).join(':')}`;
}

/** A subnet as CIDR (IPv4 or IPv6, host bits zero), or INVALID_VALUE naming it (pure). */
export function parseCidr(text: string): Cidr {
  const fail = (why: string): never => {
    throw new UecError('INVALID_VALUE', `subnet ${JSON.stringify(text)} ${why}`);
  };
  const m = /^([0-9a-fA-F.:]+)\/(\d{1,3})$/.exec(text.trim());
  if (!m) return fail('is not an address/prefix such as 10.1.0.0/16');
  const [, address, prefixText] = m as unknown as [string, string, string];
  const prefix = Number(prefixText);
  let family: 4 | 6;
  let value: bigint | null;
  if (isIPv4(address)) {
    family = 4;
    value = ipv4ToBigint(address);
  } else if (isIPv6(address)) {
    family = 6;
    value = ipv6ToBigint(address.toLowerCase());
  } else return fail('is not an IPv4 or IPv6 address/prefix');
  if (value === null) return fail('is not a plain IPv6 address/prefix');
  const bits = family === 4 ? 32 : 128;
  if (prefix > bits) return fail(`has a prefix over /${bits}`);
  const hostMask = (1n << BigInt(bits - prefix)) - 1n;
  const network = value & ~hostMask;
  const canonical = `${family === 4 ? bigintToIpv4(network) : bigintToIpv6(network)}/${prefix}`;
  if ((value & hostMask) !== 0n) return fail(`has host bits set (the network is ${canonical})`);
  return { family, network, prefix, text: canonical };
}

/** Pure: does an edge serving `subnets` serve this node? Its reserved or bound IPv4 in one of them, or neither. */
export function selectEdgeServes(subnets: readonly string[] | undefined, node: Pick<Node, 'ipv4' | 'boundAddress'>): boolean {
  if (subnets === undefined) return true;
  const address = node.ipv4 || node.boundAddress || '';
  if (!address) return true;
  return selectSubnetsHold(subnets, address);
}

/** Pure: is `address` (IPv4 or IPv6) in one of the subnets? False for anything not an address. */
export function selectSubnetsHold(subnets: readonly string[], address: string): boolean {
  let host;
  try {
    host = parseCidr(`${address}/${isIPv6(address) ? 128 : 32}`);
  } catch {
    return false;
  }
  return subnets.some((s) => {
    try {
      return cidrsOverlap(parseCidr(s), host);
    } catch {
      return false;
    }
  });
}

/** Whether two subnets share an address (pure). */
export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  if (a.family !== b.family) return false;
  const bits = a.family === 4 ? 32 : 128;
  const shorter = Math.min(a.prefix, b.prefix);
  const shift = BigInt(bits - shorter);
  return a.network >> shift === b.network >> shift;
}

/**
 * Why `subnets` cannot be given to edge `name` (overlapping each other, or a live edge other
 * than `name`), or null (pure). Revoked edges serve nothing, so they do not count.
 */
export function selectSubnetOverlap(edges: readonly Edge[], name: string, subnets: readonly string[]): string | null {
  const wanted = subnets.map(parseCidr);
  for (let i = 0; i < wanted.length; i++) {
    for (let j = i + 1; j < wanted.length; j++) {
      if (cidrsOverlap(wanted[i]!, wanted[j]!)) return `subnets ${wanted[i]!.text} and ${wanted[j]!.text} overlap`;
    }
  }
  for (const edge of edges) {
    if (edge.name === name || edge.revokedAt) continue;
    for (const theirs of edge.subnets.map(parseCidr)) {
      const clash = wanted.find((w) => cidrsOverlap(w, theirs));
      if (clash) return `subnet ${clash.text} overlaps ${theirs.text} of edge ${edge.name}`;
    }
  }
  return null;
}

/** Canonical, checked subnets for an edge (pure): at least one, at most MAX_EDGE_SUBNETS, no duplicates. */
export function parseSubnets(subnets: readonly string[]): string[] {
  const split = subnets.flatMap((s) => s.split(/[\s,]+/)).filter(Boolean);
  if (split.length === 0) throw new UecError('INVALID_VALUE', 'an edge needs at least one subnet (--subnet CIDR)');
  if (split.length > MAX_EDGE_SUBNETS) throw new UecError('INVALID_VALUE', `an edge serves at most ${MAX_EDGE_SUBNETS} subnets (got ${split.length})`);
  return [...new Set(split.map((s) => parseCidr(s).text))];
}

export function publicEdge(edge: Edge): PublicEdge {
  return { name: edge.name, subnets: [...edge.subnets], createdAt: edge.createdAt, lastContact: edge.lastContact, revoked: Boolean(edge.revokedAt), revokedAt: edge.revokedAt };
}

export const digestEdgeSecret = (secret: string): string => createHash('sha256').update(secret).digest('base64url');

export function formatEdgeKey(name: string, secret: string): string {
  return `${EDGE_KEY_PREFIX}.${name}.${secret}`;
}

/** The name and secret of a presented edge key, or null when it is not one (pure). */
export function parseEdgeKey(presented: string): { name: string; secret: string } | null {
  const m = /^uecpe\.([a-z][a-z0-9-]{0,62})\.([A-Za-z0-9_-]{43})$/.exec(presented);
  return m ? { name: m[1]!, secret: m[2]! } : null;
}

/** Whether a presented key looks like an edge key (so a wrong one is not taken for the shared key). */
export const isEdgeKey = (presented: string): boolean => presented.startsWith(`${EDGE_KEY_PREFIX}.`);

export type EdgeAuth = { ok: true; edge: Edge } | { ok: false; name: string; reason: string };

const DUMMY_DIGEST = digestEdgeSecret('no such edge');

/**
 * Who presented this key (pure): a live edge whose digest matches, compared in constant time
 * (an unknown edge still costs one comparison). The reason is for the log: it names the edge,
 * never the key.
 */
export function selectEdgeAuth(edges: readonly Edge[], presented: string): EdgeAuth {
  const key = parseEdgeKey(presented);
  const edge = key ? edges.find((e) => e.name === key.name) : undefined;
  const a = Buffer.from(digestEdgeSecret(key?.secret ?? 'x'));
  const b = Buffer.from(edge?.keyDigest ?? DUMMY_DIGEST);
  const same = a.length === b.length && timingSafeEqual(a, b);
  if (!key) return { ok: false, name: '?', reason: 'a malformed edge key' };
  if (!edge) return { ok: false, name: key.name, reason: `no edge ${key.name} is registered` };
  if (!same) return { ok: false, name: edge.name, reason: `a wrong key for edge ${edge.name}` };
  if (edge.revokedAt) return { ok: false, name: edge.name, reason: `edge ${edge.name} was revoked at ${edge.revokedAt}` };
  return { ok: true, edge };
}

function findEdge(edges: readonly Edge[], name: string): Edge {
  const edge = edges.find((e) => e.name === name);
  if (!edge) throw new UecError('INVALID_VALUE', `no edge ${JSON.stringify(name)} (see uec-provisioning edges list)`);
  return edge;
}

/**
 * The registry with a new edge (pure). A name in use by a live edge is refused; a revoked
 * edge's name may be registered again, with a new key (the old one stays refused: its digest
 * is gone).
 */
export function planAddEdge(edges: readonly Edge[], name: string, subnets: readonly string[], keyDigest: string, now: Date): Edge[] {
  parseEdgeName(name);
  const canonical = parseSubnets(subnets);
  const existing = edges.find((e) => e.name === name);
  if (existing && !existing.revokedAt) throw new UecError('INVALID_VALUE', `edge ${name} is already registered (revoke it first to give it a new key)`);
  const overlap = selectSubnetOverlap(edges, name, canonical);
  if (overlap) throw new UecError('INVALID_VALUE', `edge ${name} not registered: ${overlap}`);
  const edge: Edge = { name, subnets: canonical, keyDigest, createdAt: now.toISOString(), lastContact: '', revokedAt: '' };
  return sortEdges([...edges.filter((e) => e.name !== name), edge]);
}

/** The registry with the edge revoked (pure); revoking a revoked edge changes nothing. */
export function planRevokeEdge(edges: readonly Edge[], name: string, now: Date): Edge[] {
  const edge = findEdge(edges, name);
  if (edge.revokedAt) return [...edges];
  return edges.map((e) => (e.name === name ? { ...e, revokedAt: now.toISOString() } : e));
}

/** The registry with the edge's subnets replaced by `subnets` (pure). */
export function planAssignSubnets(edges: readonly Edge[], name: string, subnets: readonly string[]): Edge[] {
  const edge = findEdge(edges, name);
  if (edge.revokedAt) throw new UecError('INVALID_VALUE', `edge ${name} is revoked; register it again with edges add`);
  const canonical = parseSubnets(subnets);
  const overlap = selectSubnetOverlap(edges, name, canonical);
  if (overlap) throw new UecError('INVALID_VALUE', `subnets of edge ${name} unchanged: ${overlap}`);
  return edges.map((e) => (e.name === name ? { ...e, subnets: canonical } : e));
}

/** The registry with a last contact (pure); unchanged when the stored one is under CONTACT_WRITE_MS old or the edge is revoked. */
export function planContact(edges: readonly Edge[], name: string, now: Date): Edge[] {
  return edges.map((e) => (e.name === name && !e.revokedAt && !(e.lastContact && now.getTime() - Date.parse(e.lastContact) < CONTACT_WRITE_MS) ? { ...e, lastContact: now.toISOString() } : e));
}

function sortEdges(edges: Edge[]): Edge[] {
  return edges.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function isEdge(value: unknown): value is Edge {
  const e = value as Edge;
  return (
    typeof e === 'object' &&
    e !== null &&
    typeof e.name === 'string' &&
    Array.isArray(e.subnets) &&
    e.subnets.every((s) => typeof s === 'string') &&
    typeof e.keyDigest === 'string' &&
    typeof e.createdAt === 'string' &&
    typeof e.lastContact === 'string' &&
    typeof e.revokedAt === 'string'
  );
}

/** The edges of the registry file's text (pure); STORE_FAILED naming the file when it is not one. */
export function parseEdgesFile(text: string, where: string): Edge[] {
  let data: EdgesFile;
  try {
    data = JSON.parse(text) as EdgesFile;
  } catch (err) {
    throw new UecError('STORE_FAILED', `edge registry ${where} is not valid JSON: ${describeError(err)}`, { cause: err });
  }
  if (!data || data.version !== 1 || !Array.isArray(data.edges)) throw new UecError('STORE_FAILED', `edge registry ${where} is not a version 1 edge registry`);
  const bad = data.edges.findIndex((e) => !isEdge(e));
  if (bad >= 0) throw new UecError('STORE_FAILED', `edge registry ${where}: entry ${bad + 1} is not an edge`);
  return data.edges;
}

export function renderEdgesFile(edges: readonly Edge[]): string {
  const data: EdgesFile = { version: 1, edges: sortEdges([...edges]) };
  return `${JSON.stringify(data, null, 1)}\n`;
}

export interface EdgeRegistry {
  /** Every edge, sorted by name. */
  list(): Promise<Edge[]>;
  /** Register an edge; the key is returned once and stored only as its digest. */
  add(name: string, subnets: readonly string[], now?: Date): Promise<{ edge: Edge; key: string }>;
  /** Revoke; the edge is returned as it was before (revokedAt '' if it was live). */
  revoke(name: string, now?: Date): Promise<{ before: Edge; after: Edge }>;
  assign(name: string, subnets: readonly string[]): Promise<{ before: Edge; after: Edge }>;
  /** The edge of a presented key, read from the file as it is now. */
  authenticate(presented: string): Promise<EdgeAuth>;
  /** Note that the edge called (written at most once per CONTACT_WRITE_MS). */
  recordContact(name: string, now?: Date): Promise<void>;
}

export interface EdgeRegistryOptions {
  lockTimeoutMs?: number;
  /** Tests: the random bytes of a new key. */
  random?: (size: number) => Buffer;
}

export function createEdgeRegistry(paths: Paths, options: EdgeRegistryOptions = {}): EdgeRegistry {
  const file = paths.resolve(EDGES_FILE);
  const where = paths.systemPathOf(file);
  const random = options.random ?? randomBytes;
  const fileLock = createFileLock(file, { what: `edge registry ${where}`, fail: (message, cause) => new UecError('STORE_FAILED', message, { cause }), timeoutMs: options.lockTimeoutMs });
  let cache: { key: string; edges: Edge[] } | undefined;
  let queue: Promise<unknown> = Promise.resolve();
  /** When this process last wrote each edge's contact (so a busy edge costs no lock per request). */
  const contactWritten = new Map<string, number>();

  async function load(): Promise<Edge[]> {
    let stat: fs.Stats;
    try {
      stat = await fs.promises.stat(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new UecError('STORE_FAILED', `cannot read edge registry ${where}: ${describeError(err)}`, { cause: err });
    }
    const key = `${stat.ino}:${stat.size}:${stat.mtimeMs}`;
    if (cache?.key === key) return cache.edges;
    let text: string;
    try {
      text = await fs.promises.readFile(file, 'utf8');
    } catch (err) {
      throw new UecError('STORE_FAILED', `cannot read edge registry ${where}: ${describeError(err)}`, { cause: err });
    }
    const edges = parseEdgesFile(text, where);
    cache = { key, edges };
    return edges;
  }

  /** Read-modify-write under the lock (and one writer at a time in this process); nothing changed → nothing written. */
  function apply<T>(change: (edges: readonly Edge[]) => { edges: Edge[]; result: T }): Promise<T> {
    const run = queue.then(() =>
      fileLock.withLock(async () => {
        const before = await load();
        const { edges, result } = change(before);
        const text = renderEdgesFile(edges);
        if (text !== renderEdgesFile(before)) {
          await fileLock.sweepTemps();
          try {
            await atomicWrite(file, text, { mode: 0o600 });
          } catch (err) {
            throw new UecError('STORE_FAILED', `cannot write edge registry ${where}: ${describeError(err)}; it is unchanged`, { cause: err });
          }
        }
        return result;
      }),
    );
    queue = run.catch(() => undefined);
    return run;
  }

  return {
    async list() {
      return sortEdges(structuredClone(await load()));
    },
    async add(name, subnets, now = new Date()) {
      const secret = random(32).toString('base64url');
      const key = formatEdgeKey(name, secret);
      return apply((edges) => {
        const next = planAddEdge(edges, name, subnets, digestEdgeSecret(secret), now);
        return { edges: next, result: { edge: findEdge(next, name), key } };
      });
    },
    async revoke(name, now = new Date()) {
      return apply((edges) => {
        const before = findEdge(edges, name);
        const next = planRevokeEdge(edges, name, now);
        return { edges: next, result: { before, after: findEdge(next, name) } };
      });
    },
    async assign(name, subnets) {
      return apply((edges) => {
        const before = findEdge(edges, name);
        const next = planAssignSubnets(edges, name, subnets);
        return { edges: next, result: { before, after: findEdge(next, name) } };
      });
    },
    async authenticate(presented) {
      return selectEdgeAuth(await load(), presented);
    },
    async recordContact(name, now = new Date()) {
      const last = contactWritten.get(name);
      if (last !== undefined && now.getTime() - last < CONTACT_WRITE_MS) return;
      contactWritten.set(name, now.getTime());
      await apply((edges) => ({ edges: planContact(edges, name, now), result: undefined }));
    },
  };
}
