/**
 * The node model the region owns: one machine on the LAN, its identity, its lifecycle and
 * the secret token it uses to call back. Pure: validation and status transitions only;
 * node-store.ts does the I/O.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { UecError } from '../core/errors';
import { isIPv4 } from 'node:net';
import { checkHostname, checkIPv4, checkMac, checkWord, normaliseMac, quoteValue } from '../core/formats';

/** new → (commissioning →) ready → deploying → deployed; failed from deploying or commissioning. */
export const NODE_STATUSES = ['new', 'commissioning', 'ready', 'deploying', 'deployed', 'failed'] as const;
export type NodeStatus = (typeof NODE_STATUSES)[number];

export const ARCHITECTURES = ['amd64', 'arm64', 'i386'] as const;
export type Architecture = (typeof ARCHITECTURES)[number];

/** How the machine's firmware boots: bios (PXE/iPXE legacy), uefi, or not known yet. */
export const SUBARCHITECTURES = ['generic', 'bios', 'uefi'] as const;
export type Subarchitecture = (typeof SUBARCHITECTURES)[number];

/** Which transitions each status allows; anything else is NODE_STATE. */
export const TRANSITIONS: Record<NodeStatus, readonly NodeStatus[]> = {
  new: ['commissioning', 'ready'],
  commissioning: ['ready', 'failed'],
  ready: ['deploying', 'commissioning'],
  deploying: ['deployed', 'failed', 'ready'],
  deployed: ['ready'],
  failed: ['ready', 'commissioning'],
};

export interface NodeEvent {
  /** ISO 8601 time. */
  at: string;
  /** Short machine-readable kind: created, status, installing, installed, netboot-disabled, enlisted, edited. */
  type: string;
  message: string;
  /** The id an edge gave the event when it took it (its queue may deliver it twice; recorded once). */
  id?: string;
}

export interface Hardware {
  manufacturer?: string;
  product?: string;
  serial?: string;
  uuid?: string;
  platform?: string;
}

export interface Node {
  /** Stable id, 'node-' and 6 characters; never reused. */
  systemId: string;
  hostname: string;
  /** Lower-case, colon-separated; the first one is the boot interface. */
  macs: string[];
  arch: Architecture;
  subarch: Subarchitecture;
  /** The role to install (roles are data files; 'server' is the default). */
  role: string;
  os: string;
  /** Debian release codename, e.g. bookworm. */
  release: string;
  status: NodeStatus;
  /** Why the node is in its status, for failed above all. */
  statusReason: string;
  statusChangedAt: string;
  /** Fixed IPv4 reservation, or '' for an address from the pool (or the site's DHCP). */
  ipv4: string;
  /** The node's own secret (≥128 bits, URL-safe). Never logged; masked when shown to a person. */
  token: string;
  /** False after the installer calls disable-netboot: the next netboot boots the local disk. */
  netboot: boolean;
  /**
   * The client address bound to the current deploy or commissioning (node-address.ts): set by
   * its first accepted request, cleared when a deploy or commissioning starts. Absent or ''
   * when none is bound.
   */
  boundAddress?: string;
  hardware: Hardware;
  createdAt: string;
  updatedAt: string;
  /** Newest last; only the last MAX_EVENTS are kept. */
  events: NodeEvent[];
}

export const MAX_EVENTS = 100;
export const DEFAULT_ROLE = 'server';
export const DEFAULT_OS = 'debian';
export const DEFAULT_RELEASE = 'bookworm';

const ID_ALPHABET = 'abcdefghjkmnpqrstuvwxy3456789';

/** A new system id: node- and 6 characters from an alphabet without look-alikes. */
export function newSystemId(random: (size: number) => Buffer = randomBytes): string {
  const bytes = random(6);
  let id = 'node-';
  for (const byte of bytes) id += ID_ALPHABET[byte % ID_ALPHABET.length];
  return id;
}

/** 192 random bits, base64url: 32 characters safe in URLs, kernel arguments and preseeds. */
export function newToken(random: (size: number) => Buffer = randomBytes): string {
  return random(24).toString('base64url');
}

/** Constant-time comparison of a presented token with the node's. */
export function tokenMatches(presented: string, expected: string): boolean {
  const a = Buffer.from(presented);
  const b = Buffer.from(expected);
  if (a.length !== b.length) {
    timingSafeEqual(b, b); // same work either way
    return false;
  }
  return timingSafeEqual(a, b);
}

/** "abcd…" for people; the full token appears only in what the machine itself receives. */
export function maskToken(token: string): string {
  return token.length <= 4 ? '****' : `${token.slice(0, 4)}…`;
}

function invalid(what: string, value: string, reason: string): UecError {
  return new UecError('INVALID_VALUE', `${what} ${quoteValue(value)} ${reason}`);
}

/**
 * A node's boot MAC: six colon-separated octets of a unicast address (a DHCP reservation or
 * boot file for a broadcast, all-zero or multicast address would catch other machines' requests).
 */
export function checkNodeMac(value: string): string | null {
  const reason = checkMac(value);
  if (reason) return reason;
  const mac = value.toLowerCase();
  if (mac === '00:00:00:00:00:00') return 'is the all-zero MAC, not a machine\'s';
  if (mac === 'ff:ff:ff:ff:ff:ff') return 'is the broadcast MAC, not a machine\'s';
  if (Number.parseInt(mac.slice(0, 2), 16) & 1) return 'is a multicast MAC, not a machine\'s';
  return null;
}

/** A node's fixed address: a unicast host address (not 0.0.0.0/8, loopback, multicast or 240/4 and broadcast). */
export function checkNodeIPv4(value: string): string | null {
  if (!isIPv4(value)) return checkIPv4(value) ?? 'is not an IPv4 address';
  const first = Number(value.split('.')[0]);
  if (first === 0) return 'is not a host address (0.0.0.0/8)';
  if (first === 127) return 'is a loopback address';
  if (first >= 224 && first < 240) return 'is a multicast address';
  if (first >= 240) return 'is a reserved or the broadcast address';
  return null;
}

/** role, os and release name files and image directories: a word that does not start with ".". */
export function checkNodeName(value: string): string | null {
  return checkWord(value) ?? (value.startsWith('.') ? 'must not start with "."' : null);
}

/** Accepts 52:54:00:12:34:56, 52-54-00-12-34-56 or 525400123456; returns the colon form in lower case. */
export function parseMac(value: string): string {
  const trimmed = value.trim();
  const bare = trimmed.replace(/[-:.]/g, '');
  const colon = /^[0-9A-Fa-f]{12}$/.test(bare) && (trimmed.length === 12 || /^[0-9A-Fa-f]{2}([-:])[0-9A-Fa-f]{2}(\1[0-9A-Fa-f]{2}){4}$/.test(trimmed))
    ? bare.match(/../g)!.join(':')
    : trimmed;
  const reason = checkNodeMac(colon);
  if (reason) throw invalid('MAC', value, reason);
  return normaliseMac(colon);
}

export function parseHostname(value: string): string {
  const reason = checkHostname(value);
  if (reason) throw invalid('hostname', value, reason);
  return value.toLowerCase().replace(/\.$/, '');
}

export function parseArchitecture(value: string): Architecture {
  if (!(ARCHITECTURES as readonly string[]).includes(value)) throw invalid('architecture', value, `is not one of ${ARCHITECTURES.join(', ')}`);
  return value as Architecture;
}

export function parseSubarchitecture(value: string): Subarchitecture {
  if (!(SUBARCHITECTURES as readonly string[]).includes(value)) throw invalid('subarchitecture', value, `is not one of ${SUBARCHITECTURES.join(', ')}`);
  return value as Subarchitecture;
}

export function parseStatus(value: string): NodeStatus {
  if (!(NODE_STATUSES as readonly string[]).includes(value)) throw invalid('status', value, `is not one of ${NODE_STATUSES.join(', ')}`);
  return value as NodeStatus;
}

export function parseWord(what: string, value: string): string {
  const reason = checkWord(value);
  if (reason) throw invalid(what, value, reason);
  return value;
}

/** A node's role, os or release (see checkNodeName). */
export function parseNodeName(what: string, value: string): string {
  const reason = checkNodeName(value);
  if (reason) throw invalid(what, value, reason);
  return value;
}

export function parseIPv4OrEmpty(value: string): string {
  if (value === '') return '';
  const reason = checkNodeIPv4(value);
  if (reason) throw invalid('IPv4 address', value, reason);
  return value;
}

export interface NodeProblem {
  field: string;
  value: string;
  reason: string;
}

/**
 * The one check of a whole node, with the rules the renderers (DHCP reservations, boot
 * files, preseeds) need: the store refuses to write a new or changed node that fails it, and
 * an apply leaves out (and reports) a node an older version stored. Null when the node is fine.
 */
export function checkNode(node: Node): NodeProblem | null {
  const text = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v) ?? String(v));
  const problem = (field: string, value: unknown, reason: string | null): NodeProblem | null => (reason ? { field, value: text(value), reason } : null);
  const isString = (v: unknown): v is string => typeof v === 'string';
  const macs: unknown = node.macs;
  const macProblem = (): NodeProblem | null => {
    if (!Array.isArray(macs) || macs.length === 0) return problem('macs', macs, 'must list at least one MAC address');
    for (const mac of macs as unknown[]) {
      const found = problem('MAC', mac, isString(mac) ? checkNodeMac(mac) ?? (mac !== mac.toLowerCase() ? 'is not in lower case' : null) : 'is not a string');
      if (found) return found;
    }
    return null;
  };
  const inList = (list: readonly string[]) => (v: unknown) => (isString(v) && list.includes(v) ? null : `is not one of ${list.join(', ')}`);
  const checks: [string, unknown, (v: unknown) => string | null][] = [
    ['system id', node.systemId, (v) => (isString(v) && /^[a-z0-9-]{1,40}$/.test(v) ? null : 'is not a system id')],
    ['hostname', node.hostname, (v) => (isString(v) ? checkHostname(v) ?? (v !== v.toLowerCase() || v.endsWith('.') ? 'is not in canonical form (lower case, no trailing dot)' : null) : 'is not a string')],
    ['architecture', node.arch, inList(ARCHITECTURES)],
    ['subarchitecture', node.subarch, inList(SUBARCHITECTURES)],
    ['role', node.role, (v) => (isString(v) ? checkNodeName(v) : 'is not a string')],
    ['os', node.os, (v) => (isString(v) ? checkNodeName(v) : 'is not a string')],
    ['release', node.release, (v) => (isString(v) ? checkNodeName(v) : 'is not a string')],
    ['status', node.status, inList(NODE_STATUSES)],
    ['IPv4 address', node.ipv4, (v) => (isString(v) ? (v === '' ? null : checkNodeIPv4(v)) : 'is not a string')],
    ['bound address', node.boundAddress, (v) => (v === undefined || v === '' ? null : isString(v) ? checkNodeIPv4(v) : 'is not a string')],
  ];
  for (const [field, value, check] of checks.slice(0, 2)) {
    const found = problem(field, value, check(value));
    if (found) return found;
  }
  const found = macProblem();
  if (found) return found;
  for (const [field, value, check] of checks.slice(2)) {
    const found = problem(field, value, check(value));
    if (found) return found;
  }
  return null;
}

/** One line naming the node and the field, every value escaped: node web1 (node-abc123): release ".." must not start with ".". */
export function describeNodeProblem(node: Node, found: NodeProblem): string {
  const safe = (v: unknown): string => (typeof v === 'string' ? (/^[A-Za-z0-9._-]+$/.test(v) ? v : quoteValue(v)) : (JSON.stringify(v) ?? String(v)));
  return `node ${safe(node.hostname)} (${safe(node.systemId)}): ${found.field} ${quoteValue(found.value)} ${found.reason}`;
}

/** Free text that lands in logs and the event timeline: one line, bounded. */
export function parseNote(value: string): string {
  // eslint-disable-next-line no-control-regex
  return value.replace(/[\u0000-\u001f\u007f]+/g, ' ').slice(0, 500);
}

export interface NewNodeInput {
  hostname: string;
  macs: string[];
  arch?: string;
  subarch?: string;
  role?: string;
  os?: string;
  release?: string;
  ipv4?: string;
  status?: NodeStatus;
  hardware?: Hardware;
}

/** A validated new node; system id and token come from the given sources (tests pass fixed ones). */
export function createNode(input: NewNodeInput, now: Date, ids: { systemId: string; token: string }): Node {
  if (input.macs.length === 0) throw new UecError('INVALID_VALUE', `node ${quoteValue(input.hostname)} needs at least one MAC address`);
  const macs = input.macs.map(parseMac);
  const duplicate = macs.find((m, i) => macs.indexOf(m) !== i);
  if (duplicate) throw new UecError('INVALID_VALUE', `MAC ${duplicate} is given twice`);
  const at = now.toISOString();
  return {
    systemId: ids.systemId,
    hostname: parseHostname(input.hostname),
    macs,
    arch: parseArchitecture(input.arch ?? 'amd64'),
    subarch: parseSubarchitecture(input.subarch ?? 'generic'),
    role: parseNodeName('role', input.role ?? DEFAULT_ROLE),
    os: parseNodeName('os', input.os ?? DEFAULT_OS),
    release: parseNodeName('release', input.release ?? DEFAULT_RELEASE),
    status: input.status ?? 'ready',
    statusReason: '',
    statusChangedAt: at,
    ipv4: parseIPv4OrEmpty(input.ipv4 ?? ''),
    token: ids.token,
    netboot: true,
    hardware: sanitiseHardware(input.hardware ?? {}),
    createdAt: at,
    updatedAt: at,
    events: [{ at, type: 'created', message: `created with status ${input.status ?? 'ready'}` }],
  };
}

export function sanitiseHardware(hardware: Hardware): Hardware {
  const out: Hardware = {};
  for (const key of ['manufacturer', 'product', 'serial', 'uuid', 'platform'] as const) {
    const value = hardware[key];
    if (value) out[key] = parseNote(value).slice(0, 128);
  }
  return out;
}

export function addEvent(node: Node, now: Date, type: string, message: string): void {
  node.events.push({ at: now.toISOString(), type, message: parseNote(message) });
  if (node.events.length > MAX_EVENTS) node.events.splice(0, node.events.length - MAX_EVENTS);
  node.updatedAt = now.toISOString();
}

/** Move a node to a new status, or throw NODE_STATE naming both statuses. */
export function transition(node: Node, to: NodeStatus, now: Date, reason: string): void {
  if (!TRANSITIONS[node.status].includes(to)) {
    throw new UecError('NODE_STATE', `node ${node.hostname} (${node.systemId}) is ${node.status}; it cannot become ${to}`);
  }
  const from = node.status;
  node.status = to;
  node.statusReason = parseNote(reason);
  node.statusChangedAt = now.toISOString();
  addEvent(node, now, 'status', `${from} → ${to}${reason ? `: ${reason}` : ''}`);
}

/** The statuses in which a node's token is a credential: its install (or commissioning) is under way. */
export const INSTALL_STATUSES: readonly NodeStatus[] = ['deploying', 'commissioning'];

export function isInstalling(status: NodeStatus): boolean {
  return INSTALL_STATUSES.includes(status);
}

/**
 * Start a deploy or commissioning (in place): the status moves, the node gets a new token (a
 * token of an earlier install is worth nothing) and the address binding of the last one is
 * cleared. Throws NODE_STATE, with the node unchanged, when the transition is not allowed.
 */
export function startInstall(node: Node, to: 'deploying' | 'commissioning', now: Date, reason: string, token: string): void {
  transition(node, to, now, reason);
  node.token = token;
  delete node.boundAddress;
}

/** The node as shown to a person or over the admin API: the token masked. */
export function publicNode(node: Node): Omit<Node, 'token'> & { token: string } {
  return { ...node, token: maskToken(node.token) };
}

/**
 * The first invariant the store's nodes break, or null: unique system ids, hostnames,
 * MACs and reserved addresses. The store checks this before every write.
 */
export function findConflict(nodes: readonly Node[]): string | null {
  const seen = new Map<string, string>();
  for (const node of nodes) {
    const keys = [`id ${node.systemId}`, `hostname ${node.hostname}`, ...node.macs.map((m) => `MAC ${m}`)];
    if (node.ipv4) keys.push(`address ${node.ipv4}`);
    for (const key of keys) {
      const owner = seen.get(key);
      if (owner !== undefined) return `${key} is already used by ${owner}`;
      seen.set(key, `${node.hostname} (${node.systemId})`);
    }
  }
  return null;
}

/** Pure: how many nodes have each status (every status present, zeros included). */
export function selectStatusCounts(nodes: readonly Pick<Node, 'status'>[]): Record<string, number> {
  const counts: Record<string, number> = Object.fromEntries(NODE_STATUSES.map((s) => [s, 0]));
  for (const n of nodes) counts[n.status] = (counts[n.status] ?? 0) + 1;
  return counts;
}
