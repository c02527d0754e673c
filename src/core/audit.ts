/**
 * The audit log: who changed what, one JSON line per change, appended to
 * /var/log/uec-provisioning/audit.log by the CLI, the maintainer scripts (through the CLI),
 * the web UI and its API (docs/audit.md has the format and the list of actions).
 *
 * Appends are atomic per line: the file is opened with O_APPEND and each line goes out in one
 * write(2) of at most AUDIT_LINE_LIMIT bytes (under PIPE_BUF), so lines from several processes
 * never mix. A line that cannot be written is logged as an error and the change stands (it has
 * already happened): the audit log records changes, it does not gate them.
 *
 * Secrets never appear: a changed field whose name looks like a secret (password, token,
 * secret…) is written as "[redacted]" (or "" when empty), and the callers build targets and
 * changes from fields that are not secret (a node's token is never among them).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { UecError, describeError } from './errors';
import { fsOps } from './fs-ops';
import type { Logger } from './log';
import type { Paths } from './paths';

export const AUDIT_LOG = '/var/log/uec-provisioning/audit.log';
/** Mode of a new audit log (Debian's convention for logs: root:adm 0640; logrotate keeps it). */
export const AUDIT_MODE = 0o640;
/** Maintainer scripts say who they are: UEC_PROVISIONING_ACTOR=debconf:<package>. */
export const AUDIT_ACTOR_ENV = 'UEC_PROVISIONING_ACTOR';
/** Bytes of one line, newline included: under PIPE_BUF (4096), one write(2) each. */
export const AUDIT_LINE_LIMIT = 4000;
/** What the readers (CLI, web UI) read from the end of the file at most. */
export const AUDIT_READ_LIMIT = 8 * 1024 * 1024;
export const REDACTED = '[redacted]';

/** Every action name the product writes (docs/audit.md lists them; a test keeps both in sync). */
export const AUDIT_ACTIONS = [
  'config.set',
  'config.unset',
  'node.add',
  'node.edit',
  'node.remove',
  'node.deploy',
  'node.release',
  'nodes.import',
  'bmc.set',
  'bmc.remove',
  'power.on',
  'power.off',
  'power.cycle',
  'user.add',
  'user.passwd',
  'token.create',
  'token.revoke',
  'images.import',
  'edge.register',
  'edge.revoke',
  'edge.assign',
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

export type AuditActor =
  | { kind: 'unix'; user: string }
  /** `user`: the unix user the maintainer script ran as (the variable is only a claim). */
  | { kind: 'debconf'; package: string; user: string }
  | { kind: 'web'; user: string }
  /** `token`: the token's id (the public part of uecp_<id>_<secret>), `name` its label. */
  | { kind: 'token'; user: string; token: string; name?: string };

export interface AuditChange {
  before: unknown;
  after: unknown;
}

export interface AuditEntry {
  /** ISO 8601, UTC. */
  time: string;
  actor: AuditActor;
  action: AuditAction;
  /** What was changed: a node's systemId and hostname, a config key, a user, a token id. */
  target: Record<string, string>;
  /** Only the fields that changed, before → after (null: did not exist). */
  changes: Record<string, AuditChange>;
  /** Set when the line had to be shortened to stay under AUDIT_LINE_LIMIT. */
  truncated?: true;
}

const PACKAGE_NAME = /^[a-z0-9][a-z0-9+.-]{1,100}$/;

/**
 * Who runs this process, for the audit log (pure): a maintainer script that says so (the
 * UEC_PROVISIONING_ACTOR variable, else dpkg's own DPKG_MAINTSCRIPT_PACKAGE), else the unix
 * user, the one behind sudo when root runs through sudo. A malformed variable is ignored: the
 * unix user is the truth it would have replaced.
 */
export function selectProcessActor(env: NodeJS.ProcessEnv, unixUser: string): AuditActor {
  const claimed = /^debconf:(.+)$/.exec(env[AUDIT_ACTOR_ENV] ?? '')?.[1];
  const pkg = claimed !== undefined && PACKAGE_NAME.test(claimed) ? claimed : env.DPKG_MAINTSCRIPT_PACKAGE;
  if (pkg !== undefined && PACKAGE_NAME.test(pkg)) return { kind: 'debconf', package: pkg, user: unixUser };
  const sudo = env.SUDO_USER;
  if (unixUser === 'root' && sudo && /^[^\s:/]{1,64}$/.test(sudo)) return { kind: 'unix', user: sudo };
  return { kind: 'unix', user: unixUser };
}

/** The actor of this process (its unix user from the password database, else its uid). */
export function loadProcessActor(env: NodeJS.ProcessEnv = process.env): AuditActor {
  let user: string;
  try {
    user = os.userInfo().username;
  } catch {
    user = `uid ${process.getuid?.() ?? '?'}`;
  }
  return selectProcessActor(env, user);
}

/** One word for an actor: unix:alice, debconf:uec-provisioning-dhcpd, web:admin, token:admin/0123456789ab. */
export function describeActor(actor: AuditActor): string {
  switch (actor.kind) {
    case 'unix':
    case 'web':
      return `${actor.kind}:${actor.user}`;
    case 'debconf':
      return `debconf:${actor.package}`;
    case 'token':
      return `token:${actor.user}/${actor.name ? `${actor.name}(${actor.token})` : actor.token}`;
  }
}

const SECRET_FIELD = /passw(or)?d|passphrase|secret|token|digest|credential|salt|hash|(^|[._-])key$/i;

/** Whether a field of that name holds a secret (its value never goes into the log). */
export function isSecretField(name: string): boolean {
  return SECRET_FIELD.test(name);
}

function redact(value: unknown): unknown {
  return value === '' || value === null || value === undefined ? value : REDACTED;
}

/** Only the fields whose values differ, before → after, secret ones redacted (pure; keys sorted). */
export function selectChanges(before: Record<string, unknown> | null, after: Record<string, unknown> | null): Record<string, AuditChange> {
  const keys = [...new Set([...Object.keys(before ?? {}), ...Object.keys(after ?? {})])].sort();
  const out: Record<string, AuditChange> = {};
  for (const key of keys) {
    const b = before?.[key] ?? null;
    const a = after?.[key] ?? null;
    if (JSON.stringify(b) === JSON.stringify(a)) continue;
    out[key] = isSecretField(key) ? { before: redact(b), after: redact(a) } : { before: b, after: a };
  }
  return out;
}

function shorten(value: unknown, max: number): unknown {
  if (typeof value === 'string') return value.length > max ? `${value.slice(0, max)}…` : value;
  if (Array.isArray(value)) return value.length > 8 ? [...value.slice(0, 8).map((v) => shorten(v, max)), `… ${value.length - 8} more`] : value.map((v) => shorten(v, max));
  return value;
}

function encode(entry: AuditEntry): string {
  // U+2028/2029 escaped too, so no reader splits a line on them.
  return `${JSON.stringify(entry).replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029')}\n`;
}

/**
 * The line for an entry (pure): JSON with a final newline, secret fields of `changes` redacted
 * again whatever the caller passed, at most AUDIT_LINE_LIMIT bytes: long values are cut first,
 * then the changes are replaced by their field names (`truncated: true` says so).
 */
export function renderAuditLine(entry: AuditEntry): string {
  const changes: Record<string, AuditChange> = {};
  for (const [key, change] of Object.entries(entry.changes)) changes[key] = isSecretField(key) ? { before: redact(change.before), after: redact(change.after) } : change;
  const safe: AuditEntry = { ...entry, changes };
  let line = encode(safe);
  if (Buffer.byteLength(line) <= AUDIT_LINE_LIMIT) return line;
  const short = (max: number): AuditEntry => ({
    ...safe,
    target: Object.fromEntries(Object.entries(safe.target).map(([k, v]) => [k, shorten(v, max) as string])),
    changes: Object.fromEntries(Object.entries(changes).map(([k, c]) => [k, { before: shorten(c.before, max), after: shorten(c.after, max) }])),
    truncated: true,
  });
  for (const max of [200, 40]) {
    line = encode(short(max));
    if (Buffer.byteLength(line) <= AUDIT_LINE_LIMIT) return line;
  }
  const names = Object.keys(changes).slice(0, 50);
  line = encode({ ...short(40), changes: Object.fromEntries(names.map((k) => [k, { before: '…', after: '…' }])) });
  return Buffer.byteLength(line) <= AUDIT_LINE_LIMIT ? line : encode({ ...short(40), changes: {} });
}

let admGid: number | null | undefined;
function loadAdmGid(): number | null {
  if (admGid !== undefined) return admGid;
  try {
    const line = fs.readFileSync('/etc/group', 'utf8').split('\n').find((l) => l.startsWith('adm:'));
    const gid = line ? Number(line.split(':')[2]) : NaN;
    admGid = Number.isInteger(gid) ? gid : null;
  } catch {
    admGid = null;
  }
  return admGid;
}

/**
 * Append one entry. A new file is created 0640 (root:adm when run as root on the real root;
 * under a --root prefix only the mode). Never throws: a failure is logged as an error and the
 * change it describes stands. Returns whether the line was written.
 */
export async function appendAuditEntry(paths: Paths, entry: AuditEntry, log?: Logger): Promise<boolean> {
  const file = paths.resolve(AUDIT_LOG);
  const line = Buffer.from(renderAuditLine(entry));
  const ops = fsOps();
  try {
    await ops.mkdir(path.dirname(file), 0o755);
    let created = true;
    let handle: fs.promises.FileHandle;
    try {
      handle = await ops.open(file, 'ax', AUDIT_MODE);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      created = false;
      handle = await ops.open(file, 'a', AUDIT_MODE);
    }
    try {
      if (created) {
        await handle.chmod(AUDIT_MODE); // the umask may have narrowed it
        const gid = paths.root === '/' && process.getuid?.() === 0 ? loadAdmGid() : null;
        if (gid !== null) await handle.chown(0, gid);
      }
      const { bytesWritten } = await handle.write(line, 0, line.length);
      if (bytesWritten !== line.length) throw new Error(`short write (${bytesWritten} of ${line.length} bytes)`);
    } finally {
      await handle.close();
    }
    return true;
  } catch (err) {
    const message = `audit log ${AUDIT_LOG}: could not record ${entry.action} by ${describeActor(entry.actor)} (the change itself was made): ${describeError(err)}`;
    if (log) log.error(message, { code: 'WRITE_FAILED' });
    else process.stderr.write(`uec-provisioning: error: ${message}\n`);
    return false;
  }
}

/** An entry to append: now, the actor, the action, the target and what changed. */
export function createAuditEntry(actor: AuditActor, action: AuditAction, target: Record<string, string>, changes: Record<string, AuditChange>, now: Date = new Date()): AuditEntry {
  return { time: now.toISOString(), actor, action, target, changes };
}

/** Record a change: build the entry and append it (never throws). */
export function recordAudit(
  paths: Paths,
  actor: AuditActor,
  action: AuditAction,
  target: Record<string, string>,
  changes: Record<string, AuditChange>,
  log?: Logger,
): Promise<boolean> {
  return appendAuditEntry(paths, createAuditEntry(actor, action, target, changes), log);
}

export interface AuditRead {
  /** In file order (oldest first). */
  entries: AuditEntry[];
  /** The file was larger than what was read: older lines were left out. */
  partial: boolean;
  /** Bytes read from the end of the file. */
  bytesRead: number;
  /** Lines that are not audit entries (skipped). */
  malformed: number;
}

function isEntry(value: unknown): value is AuditEntry {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.time === 'string' && typeof v.action === 'string' && typeof v.actor === 'object' && v.actor !== null && typeof v.target === 'object' && v.target !== null;
}

/** The entries in a chunk of the log (pure); `fromMiddle`: the first line may be cut, skip it. */
export function parseAuditText(text: string, fromMiddle: boolean): { entries: AuditEntry[]; malformed: number } {
  const lines = text.split('\n');
  if (fromMiddle) lines.shift();
  const entries: AuditEntry[] = [];
  let malformed = 0;
  for (const line of lines) {
    if (line.trim() === '') continue;
    try {
      const value: unknown = JSON.parse(line);
      if (isEntry(value)) {
        entries.push({ ...value, changes: value.changes ?? {} });
        continue;
      }
    } catch {
      // counted below
    }
    malformed++;
  }
  return { entries, malformed };
}

/** Read the log from its end, at most `maxBytes` (never the whole of an unbounded file). A missing log has no entries. */
export async function loadAuditEntries(paths: Paths, maxBytes: number = AUDIT_READ_LIMIT): Promise<AuditRead> {
  let handle: fs.promises.FileHandle;
  try {
    handle = await fsOps().open(paths.resolve(AUDIT_LOG), 'r', 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { entries: [], partial: false, bytesRead: 0, malformed: 0 };
    // No dedicated code yet: CONFIG_UNREADABLE is the "cannot read a file of ours" exit 3.
    throw new UecError('CONFIG_UNREADABLE', `cannot read ${AUDIT_LOG}: ${describeError(err)} (it is root:adm 0640: run as root or as a member of adm)`, { cause: err });
  }
  try {
    const { size } = await handle.stat();
    const start = Math.max(0, size - maxBytes);
    const buffer = Buffer.alloc(size - start);
    let got = 0;
    while (got < buffer.length) {
      const { bytesRead } = await handle.read(buffer, got, buffer.length - got, start + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    const { entries, malformed } = parseAuditText(buffer.subarray(0, got).toString('utf8'), start > 0);
    return { entries, partial: start > 0, bytesRead: got, malformed };
  } finally {
    await handle.close();
  }
}

export interface AuditFilter {
  /** Text in the actor (describeActor's word, e.g. "web:admin" or just "admin"). */
  actor?: string;
  /** An action (node.add) or a group (node). */
  action?: string;
  /** Text in any target field (system id, hostname, key, user…). */
  target?: string;
  /** Entries at or after this time. */
  since?: Date;
}

/** The matching entries, newest first (pure). Text matches ignore case. */
export function selectAuditEntries(entries: readonly AuditEntry[], filter: AuditFilter): AuditEntry[] {
  const actor = filter.actor?.trim().toLowerCase();
  const action = filter.action?.trim().toLowerCase();
  const target = filter.target?.trim().toLowerCase();
  const since = filter.since?.getTime();
  const out: AuditEntry[] = [];
  for (let i = entries.length - 1; i >= 0; i--) {
    const e = entries[i]!;
    if (actor && !describeActor(e.actor).toLowerCase().includes(actor)) continue;
    if (action && e.action !== action && !e.action.startsWith(`${action}.`)) continue;
    if (target && !Object.values(e.target).some((v) => String(v).toLowerCase().includes(target))) continue;
    if (since !== undefined && !(Date.parse(e.time) >= since)) continue;
    out.push(e);
  }
  return out;
}

/**
 * A --since value (pure): an ISO 8601 date or time (2026-12-06, 2026-12-06T09:00Z), or an age
 * such as 30m, 12h, 7d before `now`. Null when it is neither.
 */
export function parseSince(text: string, now: Date): Date | null {
  const age = /^(\d{1,6})([mhd])$/.exec(text.trim());
  if (age) return new Date(now.getTime() - Number(age[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[age[2] as 'm' | 'h' | 'd']);
  if (!/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(text.trim())) return null;
  const ms = Date.parse(text.trim());
  return Number.isNaN(ms) ? null : new Date(ms);
}

/** One page of a list (pure): page numbers from 1; a page past the end is the last one. */
export function selectPage<T>(items: readonly T[], page: number, perPage: number): { items: T[]; page: number; pages: number } {
  const pages = Math.max(1, Math.ceil(items.length / perPage));
  const p = Math.min(Math.max(1, Math.floor(page) || 1), pages);
  return { items: items.slice((p - 1) * perPage, p * perPage), page: p, pages };
}

/** One line of text for a person: time, actor, action, target, changes (pure). */
export function formatAuditEntry(e: AuditEntry): string {
  const target = Object.entries(e.target).map(([k, v]) => `${k}=${v}`).join(' ');
  const changes = Object.entries(e.changes).map(([k, c]) => `${k}: ${JSON.stringify(c.before)} → ${JSON.stringify(c.after)}`).join('; ');
  return `${e.time}  ${describeActor(e.actor)}  ${e.action}  ${target}${changes ? `  ${changes}` : ''}`;
}
