/**
 * The one side-effecting step: plans → diff against disk → validate with the real tools →
 * atomic writes → reload each touched service once. Nothing changed: nothing written,
 * nothing reloaded. Any failure after the first write puts every previous file back.
 * Files a component generated earlier but no longer plans are removed (a manifest under
 * /var/lib/uec-provisioning remembers them), so switching modes or purging leaves nothing.
 */
import { UecError, describeError } from './errors';
import { atomicWrite, removeFile } from './atomic-write';
import { readFileIfExists, statIfExists } from './fs-ops';
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
}

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
}

async function readManifest(paths: Paths): Promise<Manifest> {
  const buf = await readFileIfExists(paths.resolve(SYSTEM.generatedManifest));
  if (buf === null) return {};
  try {
    return JSON.parse(buf.toString('utf8')) as Manifest;
  } catch (err) {
    throw new UecError('WRITE_FAILED', `${SYSTEM.generatedManifest} is not valid JSON: ${describeError(err)}`, { cause: err });
  }
}

function renderManifest(manifest: Manifest): string {
  const sorted: Manifest = {};
  for (const key of Object.keys(manifest).sort()) {
    const entries = manifest[key] ?? [];
    if (entries.length > 0) sorted[key] = [...entries].sort((a, b) => (a.path < b.path ? -1 : 1));
  }
  return JSON.stringify(sorted, null, 2) + '\n';
}

function checkPlans(plans: FilePlan[]): void {
  const seen = new Set<string>();
  for (const plan of plans) {
    if (!plan.path.startsWith('/') || plan.path.split('/').includes('..')) {
      throw new UecError('INTERNAL', `plan path must be absolute and without "..": ${plan.path}`);
    }
    if (seen.has(plan.path)) throw new UecError('INTERNAL', `two plans write ${plan.path}`);
    seen.add(plan.path);
  }
}

async function collectChanges(options: ApplyOptions, manifest: Manifest): Promise<Change[]> {
  const { paths, plans, component } = options;
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
  for (const entry of manifest[component] ?? []) {
    if (planned.has(entry.path)) continue;
    const target = paths.resolve(entry.path);
    const before = await readFileIfExists(target);
    if (before === null) continue;
    const beforeMode = ((await statIfExists(target))?.mode ?? 0o644) & 0o7777;
    changes.push({ path: entry.path, before, beforeMode, after: null, mode: beforeMode, services: entry.services });
  }
  return changes;
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

export async function applyPlans(options: ApplyOptions): Promise<ApplyResult> {
  const { paths, component, log } = options;
  checkPlans(options.plans);
  const manifest = await readManifest(paths);
  const changes = await collectChanges(options, manifest);
  const diff = changes.map((c) => renderUnifiedDiff(c.path, c.before === null ? null : c.before.toString('utf8'), c.after)).join('');
  const result: ApplyResult = {
    component,
    written: changes.filter((c) => c.after !== null).map((c) => c.path),
    removed: changes.filter((c) => c.after === null).map((c) => c.path),
    reloaded: [],
    diff,
  };
  if (options.dryRun || changes.length === 0) {
    if (changes.length === 0) log.debug('nothing to change', { component });
    return result;
  }

  for (const change of changes) {
    if (change.after !== null && change.validate) {
      await validateContent(change.validate, change.path, change.after, options.validators ?? VALIDATORS);
    }
  }

  const done: Change[] = [];
  const nextManifest: Manifest = { ...manifest, [component]: options.plans.map((p) => ({ path: p.path, services: p.services ?? [] })) };
  try {
    for (const change of changes) {
      const target = paths.resolve(change.path);
      done.push(change);
      if (change.after === null) await removeFile(target);
      else await atomicWrite(target, change.after, { mode: change.mode });
    }
    await atomicWrite(paths.resolve(SYSTEM.generatedManifest), renderManifest(nextManifest), { mode: 0o644 });
  } catch (err) {
    const failures = await restore(paths, done, log);
    const failed = done[done.length - 1]?.path ?? SYSTEM.generatedManifest;
    const restored = failures.length === 0 ? 'previous files restored' : `could not restore ${failures.length} file(s), see the log`;
    throw new UecError('WRITE_FAILED', `cannot write ${failed}: ${describeError(err)}; ${restored}`, { cause: err });
  }
  for (const path of result.written) log.info(`wrote ${path}`, { component });
  for (const path of result.removed) log.info(`removed ${path}`, { component });

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
      const failures = await restore(paths, changes, log);
      await atomicWrite(paths.resolve(SYSTEM.generatedManifest), renderManifest(manifest), { mode: 0o644 }).catch(() => undefined);
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
