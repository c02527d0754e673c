/**
 * The one side-effecting step: plans → diff against disk → validate with the real tools →
 * atomic writes → reload each touched service once. Nothing changed: nothing written,
 * nothing reloaded. Any failure after the first write puts every previous file back.
 * Files a component generated earlier but no longer plans are removed (a manifest under
 * /var/lib/uec-provisioning remembers them), so switching modes or purging leaves nothing.
 *
 * A node's files (its DHCP reservation, its boot files) are remembered apart, in one small
 * manifest per component and node (generated-nodes/<component>/<system id>.json), so that a
 * node change can be applied alone (`scope`): only that node's files are planned, compared,
 * written or removed, and no other node's file or manifest is read. A full apply writes the
 * same files and manifests as any sequence of node applies that ends in the same nodes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UecError, describeError } from './errors';
import { atomicWrite, removeFile, writeTempFile } from './atomic-write';
import { fsOps, readFileIfExists, statIfExists } from './fs-ops';
import { SYSTEM, type Paths } from './paths';
import type { Logger } from './log';
import type { ServiceControl, ServiceSpec } from './services';
import { renderUnifiedDiff } from './unified-diff';
import { VALIDATORS, validateContent, type Validator, type ValidatorName } from './validators';

export interface FilePlan {
  /** System path, for example /etc/dnsmasq.d/uec-provisioning-dhcp.conf. */
  path: string;
  content: string;
  mode: number;
  /** The real tool that must accept the file before it is written. */
  validate?: ValidatorName;
  /** Services that re-read the file: reloaded once per apply when it changes. */
  services?: ServiceSpec[];
  /**
   * The system id of the node the file belongs to (its DHCP reservation, its boot files):
   * remembered in that node's manifest, so that a node apply (`scope`) can replace it.
   */
  node?: string;
}

/** Where the per-node manifests live: <dir>/<component>/<system id>.json. */
export const NODE_MANIFEST_DIR = path.posix.join(path.posix.dirname(SYSTEM.generatedManifest), 'generated-nodes');

/** A system id, as the node manifests' file names take it. */
const NODE_KEY = /^[a-z0-9-]{1,64}$/;

interface ManifestEntry {
  path: string;
  services: ServiceSpec[];
}

type Manifest = Record<string, ManifestEntry[]>;

export interface ApplyOptions {
  paths: Paths;
  component: string;
  plans: FilePlan[];
  services: ServiceControl;
  log: Logger;
  dryRun?: boolean;
  validators?: Record<ValidatorName, Validator>;
  /**
   * A node apply: `plans` are every file of these nodes (none for a removed node or one left
   * out), each plan naming its node. Files these nodes had and no longer plan are removed;
   * the component's other files and other nodes' files are neither read nor touched.
   * Without it, a full apply: `plans` are every file of the component.
   */
  scope?: { nodes: readonly string[] };
}

export interface ApplyResult {
  component: string;
  written: string[];
  removed: string[];
  reloaded: string[];
  diff: string;
}

interface Change {
  path: string;
  before: Buffer | null;
  beforeMode: number | null;
  after: string | null;
  mode: number;
  validate?: ValidatorName;
  services: ServiceSpec[];
  /** A manifest, not a generated file: not shown, not counted, reloads nothing. */
  bookkeeping?: boolean;
}

function nodeManifestPath(component: string, node: string): string {
  return path.posix.join(NODE_MANIFEST_DIR, component, `${node}.json`);
}

async function readJson<T>(paths: Paths, file: string): Promise<{ raw: Buffer | null; value: T | null }> {
  const raw = await readFileIfExists(paths.resolve(file));
  if (raw === null) return { raw, value: null };
  try {
    return { raw, value: JSON.parse(raw.toString('utf8')) as T };
  } catch (err) {
    throw new UecError('WRITE_FAILED', `${file} is not valid JSON: ${describeError(err)}`, { cause: err });
  }
}

function renderEntries(entries: readonly ManifestEntry[]): string {
  return JSON.stringify([...entries].sort((a, b) => (a.path < b.path ? -1 : 1)), null, 2) + '\n';
}

/** The system ids that have a manifest of this component (a full apply only: O(nodes)). */
async function listNodeManifests(paths: Paths, component: string): Promise<string[]> {
  let names: string[];
  try {
    names = await fsOps().readdir(paths.resolve(path.posix.join(NODE_MANIFEST_DIR, component)));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new UecError('WRITE_FAILED', `cannot list ${NODE_MANIFEST_DIR}/${component}: ${describeError(err)}`, { cause: err });
  }
  return names.filter((n) => n.endsWith('.json') && NODE_KEY.test(n.slice(0, -5))).map((n) => n.slice(0, -5));
}

function renderManifest(manifest: Manifest): string {
  const sorted: Manifest = {};
  for (const key of Object.keys(manifest).sort()) {
    const entries = manifest[key] ?? [];
    if (entries.length > 0) sorted[key] = [...entries].sort((a, b) => (a.path < b.path ? -1 : 1));
  }
  return JSON.stringify(sorted, null, 2) + '\n';
}

function checkPlans(plans: FilePlan[], scope: ApplyOptions['scope']): void {
  const seen = new Set<string>();
  const inScope = scope ? new Set(scope.nodes) : null;
  for (const node of scope?.nodes ?? []) {
    if (!NODE_KEY.test(node)) throw new UecError('INTERNAL', `a node apply names ${JSON.stringify(node)}, which is not a system id`);
  }
  for (const plan of plans) {
    if (!plan.path.startsWith('/') || plan.path.split('/').includes('..')) {
      throw new UecError('INTERNAL', `plan path must be absolute and without "..": ${plan.path}`);
    }
    if (seen.has(plan.path)) throw new UecError('INTERNAL', `two plans write ${plan.path}`);
    seen.add(plan.path);
    if (plan.node !== undefined && !NODE_KEY.test(plan.node)) throw new UecError('INTERNAL', `plan ${plan.path} names node ${JSON.stringify(plan.node)}, which is not a system id`);
    if (inScope && (plan.node === undefined || !inScope.has(plan.node))) {
      throw new UecError('INTERNAL', `a node apply of ${[...inScope].join(', ')} plans ${plan.path}, which belongs to ${plan.node === undefined ? 'no node' : `node ${plan.node}`}`);
    }
  }
}

/** What was generated before: the entries to compare with, and the manifests as they are. */
interface Previous {
  entries: ManifestEntry[];
  main: { raw: Buffer | null; manifest: Manifest } | null;
  nodes: Map<string, Buffer | null>;
}

async function readPrevious(options: ApplyOptions): Promise<Previous> {
  const { paths, component, scope } = options;
  const entries: ManifestEntry[] = [];
  let main: Previous['main'] = null;
  if (!scope) {
    const { raw, value } = await readJson<Manifest>(paths, SYSTEM.generatedManifest);
    main = { raw, manifest: value ?? {} };
    entries.push(...(main.manifest[component] ?? []));
  }
  const nodes = new Map<string, Buffer | null>();
  for (const node of scope ? scope.nodes : await listNodeManifests(paths, component)) {
    const { raw, value } = await readJson<ManifestEntry[]>(paths, nodeManifestPath(component, node));
    nodes.set(node, raw);
    entries.push(...(value ?? []));
  }
  return { entries, main, nodes };
}

/** The manifests that must change: the component's (full apply) and each node's. */
function selectBookkeeping(options: ApplyOptions, previous: Previous): Change[] {
  const { component, plans } = options;
  const books: Change[] = [];
  const add = (file: string, before: Buffer | null, after: string | null) => {
    if (before === null ? after === null : after !== null && before.toString('utf8') === after) return;
    books.push({ path: file, before, beforeMode: before === null ? null : 0o644, after, mode: 0o644, services: [], bookkeeping: true });
  };
  if (previous.main) {
    const shared = plans.filter((p) => p.node === undefined).map((p) => ({ path: p.path, services: p.services ?? [] }));
    add(SYSTEM.generatedManifest, previous.main.raw, renderManifest({ ...previous.main.manifest, [component]: shared }));
  }
  const byNode = new Map<string, ManifestEntry[]>();
  for (const plan of plans) {
    if (plan.node === undefined) continue;
    const list = byNode.get(plan.node) ?? [];
    list.push({ path: plan.path, services: plan.services ?? [] });
    byNode.set(plan.node, list);
  }
  for (const node of [...new Set([...previous.nodes.keys(), ...byNode.keys()])].sort()) {
    const entries = byNode.get(node);
    add(nodeManifestPath(component, node), previous.nodes.get(node) ?? null, entries ? renderEntries(entries) : null);
  }
  return books;
}

async function collectChanges(options: ApplyOptions, previous: ManifestEntry[]): Promise<Change[]> {
  const { paths, plans } = options;
  const changes: Change[] = [];
  for (const plan of plans) {
    const target = paths.resolve(plan.path);
    let before: Buffer | null;
    let beforeMode: number | null;
    try {
      before = await readFileIfExists(target);
      beforeMode = before === null ? null : ((await statIfExists(target))?.mode ?? 0) & 0o7777;
    } catch (err) {
      throw new UecError('WRITE_FAILED', `cannot read ${plan.path}: ${describeError(err)}`, { cause: err });
    }
    if (before !== null && before.toString('utf8') === plan.content && beforeMode === plan.mode) continue;
    changes.push({ path: plan.path, before, beforeMode, after: plan.content, mode: plan.mode, validate: plan.validate, services: plan.services ?? [] });
  }
  const planned = new Set(plans.map((p) => p.path));
  for (const entry of previous) {
    if (planned.has(entry.path)) continue;
    planned.add(entry.path);
    const target = paths.resolve(entry.path);
    const before = await readFileIfExists(target);
    if (before === null) continue;
    const beforeMode = ((await statIfExists(target))?.mode ?? 0o644) & 0o7777;
    changes.push({ path: entry.path, before, beforeMode, after: null, mode: beforeMode, services: entry.services });
  }
  return changes;
}

async function removeEmptyDirs(paths: Paths, dirs: string[]): Promise<void> {
  for (const dir of dirs) {
    try {
      await fs.promises.rmdir(paths.resolve(dir));
    } catch {
      return; // not there, or not empty: nothing to tidy
    }
  }
}

async function restore(paths: Paths, done: Change[], log: Logger): Promise<string[]> {
  const failures: string[] = [];
  for (const change of [...done].reverse()) {
    const target = paths.resolve(change.path);
    try {
      if (change.before === null) await removeFile(target);
      else await atomicWrite(target, change.before, { mode: change.beforeMode ?? 0o644 });
    } catch (err) {
      failures.push(`${change.path}: ${describeError(err)}`);
    }
  }
  if (failures.length > 0) log.error('could not restore every previous file', { failures });
  return failures;
}

/**
 * Each service once; a restart wins over a reload of the same service. A new file needs no
 * reload of a service that picks up new files by itself.
 */
function uniqueServices(changes: Change[]): ServiceSpec[] {
  const byName = new Map<string, ServiceSpec>();
  for (const change of changes) {
    for (const service of change.services) {
      if (service.picksUpNewFiles && change.before === null && change.after !== null) continue;
      if (!byName.get(service.name)?.restart) byName.set(service.name, service);
    }
  }
  return [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
}

/**
 * From this many files on, an apply writes them as one batch: every new content to its temp
 * file, one sync(2), the renames and removals, one fsync per directory. Each file is still
 * replaced atomically (a reader or a crash sees it old or new), but a full apply of 100,000
 * nodes (500,000 files) costs two syncs instead of two fsyncs per file.
 */
export const BATCH_SYNC_MIN = 16;

/** Write `changes` as one batch; `done` gets each change as its target is touched (for restore). */
async function writeBatch(paths: Paths, changes: readonly Change[], done: Change[]): Promise<void> {
  const ops = fsOps();
  const temps = new Map<Change, string>();
  try {
    for (const change of changes) {
      if (change.after !== null) temps.set(change, await writeTempFile(paths.resolve(change.path), change.after, { mode: change.mode }));
    }
    await ops.syncAll();
    const dirs = new Set<string>();
    for (const change of changes) {
      const target = paths.resolve(change.path);
      done.push(change);
      const temp = temps.get(change);
      if (temp === undefined) {
        if (await removeFile(target, { syncDir: false })) dirs.add(path.dirname(target));
        continue;
      }
      await ops.rename(temp, target);
      temps.delete(change);
      dirs.add(path.dirname(target));
    }
    for (const dir of dirs) await ops.fsyncDir(dir);
  } finally {
    for (const temp of temps.values()) await ops.unlink(temp).catch(() => undefined);
  }
}

export async function applyPlans(options: ApplyOptions): Promise<ApplyResult> {
  const { paths, component, log } = options;
  checkPlans(options.plans, options.scope);
  const previous = await readPrevious(options);
  const changes = await collectChanges(options, previous.entries);
  const books = selectBookkeeping(options, previous);
  const diff = changes.map((c) => renderUnifiedDiff(c.path, c.before === null ? null : c.before.toString('utf8'), c.after)).join('');
  const result: ApplyResult = {
    component,
    written: changes.filter((c) => c.after !== null).map((c) => c.path),
    removed: changes.filter((c) => c.after === null).map((c) => c.path),
    reloaded: [],
    diff,
  };
  if (options.dryRun || changes.length + books.length === 0) {
    if (changes.length === 0) log.debug('nothing to change', { component });
    return result;
  }

  for (const change of changes) {
    if (change.after !== null && change.validate) {
      await validateContent(change.validate, change.path, change.after, options.validators ?? VALIDATORS);
    }
  }

  const done: Change[] = [];
  try {
    const all = [...changes, ...books];
    if (all.length >= BATCH_SYNC_MIN) await writeBatch(paths, all, done);
    else {
      for (const change of all) {
        const target = paths.resolve(change.path);
        done.push(change);
        if (change.after === null) await removeFile(target);
        else await atomicWrite(target, change.after, { mode: change.mode });
      }
    }
  } catch (err) {
    const failures = await restore(paths, done, log);
    const failed = done[done.length - 1]?.path ?? SYSTEM.generatedManifest;
    const restored = failures.length === 0 ? 'previous files restored' : `could not restore ${failures.length} file(s), see the log`;
    throw new UecError('WRITE_FAILED', `cannot write ${failed}: ${describeError(err)}; ${restored}`, { cause: err });
  }
  for (const path of result.written) log.info(`wrote ${path}`, { component });
  for (const path of result.removed) log.info(`removed ${path}`, { component });
  // A component with no node files left (unconfigure, DHCP off) leaves no empty directory.
  if (!options.scope && !options.plans.some((p) => p.node !== undefined)) await removeEmptyDirs(paths, [path.posix.join(NODE_MANIFEST_DIR, component), NODE_MANIFEST_DIR]);

  const reloaded: ServiceSpec[] = [];
  for (const service of uniqueServices(changes)) {
    try {
      const outcome = await options.services.reload(service);
      if (outcome === 'reloaded') {
        result.reloaded.push(service.name);
        reloaded.push(service);
        if (service.restart) log.info(`${service.name} restarted (it re-reads its config only on restart)`, { component });
      }
      else if (outcome === 'restart-needed') log.warn(`${service.name} must be restarted to read its new configuration (a signal would not do)`, { component });
      else log.info(`${service.name} not reloaded: ${outcome}`, { component });
    } catch (err) {
      const failures = await restore(paths, [...changes, ...books], log);
      // Bring the daemons back onto the old files: those already reloaded onto the new ones,
      // and this one (best effort: its first reload already failed).
      for (const s of [...reloaded, service]) {
        await options.services.reload(s).catch((e: unknown) => log.error(`could not reload ${s.name} onto the restored files`, { component, error: describeError(e) }));
      }
      const restored = failures.length === 0 ? 'previous files restored' : `could not restore ${failures.length} file(s), see the log`;
      throw new UecError('SERVICE_FAILED', `${err instanceof UecError ? err.message : describeError(err)}; ${restored}`, { cause: err });
    }
  }
  return result;
}
