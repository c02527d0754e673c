/**
 * What a `uec-provisioning` subcommand is, and the session it runs in. The core commands
 * live in cli.ts; an installed component may add its own (`images` from tftpd, `mirror`
 * from mirror) by exporting them, so each package brings its commands with it.
 */
import type { ParseArgsConfig } from 'node:util';
import { applyPlans, type ApplyResult } from '../core/apply';
import { findComponent, type ChangedNode, type Component, type ComponentContext } from './component';
import { loadConfig, type ConfigSchema, type EffectiveConfig } from '../core/config';
import { UecError } from '../core/errors';
import type { Logger } from '../core/log';
import type { NetworkFacts } from '../core/network-facts';
import { checkNode, describeNodeProblem, type Node } from '../contract/node';
import type { NodeStore } from '../region/node-store';
import type { Paths } from '../core/paths';
import { createServiceControl, type ServiceControl } from '../core/services';
import { templateDirs } from '../core/template';

export interface Io {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: NodeJS.ProcessEnv;
  /** True when stderr is a terminal (progress bars); false in logs and tests. */
  interactive?: boolean;
}

export type Options = NonNullable<ParseArgsConfig['options']>;
export type Values = Record<string, string | boolean | string[] | boolean[] | undefined>;

export interface Session {
  io: Io;
  paths: Paths;
  log: Logger;
  json: boolean;
  components: Component[];
  schema: ConfigSchema;
  network: () => NetworkFacts;
  nodeStore: () => NodeStore;
}

export interface Command {
  words: string[];
  args: string;
  summary: string;
  options: Options;
  optionHelp: [string, string][];
  run(session: Session, positionals: string[], values: Values): Promise<number>;
}

export function usageError(message: string): UecError {
  return new UecError('USAGE', `${message} (see uec-provisioning --help)`);
}

export function printApplyResult(session: Session, result: ApplyResult, showDiff: boolean, dryRun: boolean): void {
  if (showDiff && result.diff) session.io.stdout(result.diff);
  const verb = dryRun ? 'would change' : 'changed';
  const count = result.written.length + result.removed.length;
  if (count === 0) session.log.info(`${result.component}: up to date, nothing written, nothing reloaded`);
  else session.log.info(`${result.component}: ${verb} ${count} file(s)${result.reloaded.length ? `, reloaded ${result.reloaded.join(', ')}` : ''}`);
}

export interface ApplyComponentsOptions {
  dryRun?: boolean;
  unconfigure?: boolean;
  /** Only components whose plans depend on node state (after a node change). */
  nodeAwareOnly?: boolean;
  config?: EffectiveConfig;
  /**
   * Filled with one line per stored node that fails checkNode (an older version stored it):
   * such nodes are left out of every plan, so the others' files are still written. Without
   * it each is logged as a warning (node commands, the automatic apply of serve).
   */
  invalidNodes?: string[];
}

/** Where the nodes to render come from instead of the store's list, per store (useRenderNodeSource). */
const renderNodeSources = new WeakMap<NodeStore, () => Promise<Node[]>>();

/**
 * On an edge (serve --no-region) the nodes its DHCP reservations and boot files are rendered
 * from are those of its cache of the region's feed, not this host's store: `serve` names the
 * source for its session's store.
 */
export function useRenderNodeSource(store: NodeStore, source: () => Promise<Node[]>): void {
  renderNodeSources.set(store, source);
}

/** The stored nodes the renderers can take; each other one is reported once and left out. */
async function loadRenderableNodes(session: Session, report: (line: string) => void): Promise<Node[]> {
  const good: Node[] = [];
  const store = session.nodeStore();
  for (const node of await (renderNodeSources.get(store) ?? (() => store.list()))()) {
    const problem = checkNode(node);
    if (problem) report(`${describeNodeProblem(node, problem)}; its DHCP and boot files are left out until it is fixed (uec-provisioning nodes edit) or removed`);
    else good.push(node);
  }
  return good;
}

/** What a component's plan gets; `nodes` reads every node, once, only when a plan asks. */
function createComponentContext(session: Session, component: Component, config: EffectiveConfig, nodes: () => Promise<Node[]>, report: (line: string) => void): ComponentContext {
  return {
    paths: session.paths,
    config,
    templates: templateDirs(session.paths),
    network: session.network(),
    log: session.log.child({ component: component.name }),
    nodes,
    reportNode: report,
  };
}

/** Plan, diff, validate, write and reload the named (or all) components, one after another. */
export async function applyComponents(session: Session, names: string[], options: ApplyComponentsOptions = {}): Promise<ApplyResult[]> {
  let selected = names.length > 0 ? names.map((n) => findComponent(session.components, n)) : session.components;
  if (options.nodeAwareOnly) selected = selected.filter((c) => c.usesNodes);
  const config = options.config ?? (await loadConfig(session.paths, session.schema));
  const services = await createServiceControl(session.paths, session.io.env);
  const results: ApplyResult[] = [];
  let nodes: Promise<Node[]> | undefined;
  const report = (line: string) => (options.invalidNodes ? options.invalidNodes.push(line) : session.log.warn(line));
  const readNodes = async () => structuredClone(await (nodes ??= loadRenderableNodes(session, report)));
  for (const component of selected) {
    const context = createComponentContext(session, component, config, readNodes, report);
    const plans = options.unconfigure ? [] : await component.plan(context);
    results.push(await applyPlans({ paths: session.paths, component: component.name, plans, services, log: context.log, dryRun: Boolean(options.dryRun) }));
  }
  return results;
}

export interface ApplyNodeChangesOptions {
  config?: EffectiveConfig;
  /** Tests and benches: the service control to reload through (default: this machine's). */
  services?: ServiceControl;
}

/**
 * After a node change: bring the changed nodes' files (DHCP reservation, boot files) up to
 * date in every node-aware component, and nothing else. A component with a planNodes hook
 * renders and writes only those nodes' files (no other node is read); one without it is
 * applied whole. Several changes of one node: the last one counts. A changed node that fails
 * checkNode is reported and its files are removed, as a full apply would leave them out.
 */
export async function applyNodeChanges(session: Session, changes: readonly ChangedNode[], options: ApplyNodeChangesOptions = {}): Promise<ApplyResult[]> {
  const latest = new Map<string, Node | null>();
  for (const change of changes) latest.set(change.systemId, change.node);
  if (latest.size === 0) return [];
  const report = (line: string) => session.log.warn(line);
  const changed: ChangedNode[] = [];
  for (const [systemId, node] of [...latest].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const problem = node ? checkNode(node) : null;
    if (node && problem) {
      report(`${describeNodeProblem(node, problem)}; its DHCP and boot files are left out until it is fixed (uec-provisioning nodes edit) or removed`);
      // A system id a file name cannot hold has no files to update.
      if (/^[a-z0-9-]{1,40}$/.test(systemId)) changed.push({ systemId, node: null });
    } else changed.push({ systemId, node: node ? structuredClone(node) : null });
  }
  const config = options.config ?? (await loadConfig(session.paths, session.schema));
  const services = options.services ?? (await createServiceControl(session.paths, session.io.env));
  const results: ApplyResult[] = [];
  let nodes: Promise<Node[]> | undefined;
  const readNodes = async () => structuredClone(await (nodes ??= loadRenderableNodes(session, report)));
  for (const component of session.components.filter((c) => c.usesNodes)) {
    const context = createComponentContext(session, component, config, readNodes, report);
    if (!component.planNodes) {
      results.push(await applyPlans({ paths: session.paths, component: component.name, plans: await component.plan(context), services, log: context.log }));
      continue;
    }
    const plans = await component.planNodes(context, changed);
    const scope = { nodes: changed.map((c) => c.systemId) };
    results.push(await applyPlans({ paths: session.paths, component: component.name, plans, services, log: context.log, scope }));
  }
  return results;
}
