/**
 * A component is what one Debian binary package adds: its config sections and its
 * configurator (plan). The CLI finds the installed ones at run time under
 * <lib>/packages/<name>/, so each package can be installed on its own and src/ never
 * imports packages/.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FilePlan } from '../core/apply';
import type { Command } from './command';
import type { ConfigSchema, EffectiveConfig } from '../core/config';
import { UecError, describeError } from '../core/errors';
import type { Logger } from '../core/log';
import type { NetworkFacts } from '../core/network-facts';
import type { Node } from '../contract/node';
import type { Paths } from '../core/paths';
import type { TemplateDirs } from '../core/template';

export interface ComponentContext {
  paths: Paths;
  config: EffectiveConfig;
  templates: TemplateDirs;
  network: NetworkFacts;
  log: Logger;
  /** The region's nodes, read when a component's plan needs them (reservations, boot configs). */
  nodes: () => Promise<Node[]>;
  /** Report a node the plan left out (one line naming it and why); the plan goes on without it. */
  reportNode?: (line: string) => void;
}

/**
 * One changed node, as the store reports it (NodeChange): the node as it now is, or null when
 * it was removed (or is left out of every file, for example because it fails checkNode).
 */
export interface ChangedNode {
  systemId: string;
  node: Node | null;
}

export interface Component {
  /** Short name: common, dhcpd, tftpd, mirror, webui. */
  name: string;
  /** The Debian package that ships it. */
  package: string;
  summary: string;
  configSchema: ConfigSchema;
  /** Load what the render needs, render, return the files this component should own. */
  plan(context: ComponentContext): Promise<FilePlan[]>;
  /** True when plan() reads nodes: such components are applied again after every node change. */
  usesNodes?: boolean;
  /**
   * The files of the given nodes only (their DHCP reservation, their boot files), each plan
   * naming its node (FilePlan.node), exactly as plan() renders them; none for a node that is
   * null or left out. The other nodes are not read. With it, a node change applies only the
   * changed nodes' files; without it, a node change re-runs the whole plan().
   */
  planNodes?(context: ComponentContext, nodes: readonly ChangedNode[]): Promise<FilePlan[]>;
  /** Subcommands this package adds to `uec-provisioning`. */
  commands?: Command[];
}

/** Where compiled (or, in a checkout, source) components live: <lib>/packages. */
export const DEFAULT_LIB_DIR = path.resolve(__dirname, '..', '..');

function isComponent(value: unknown): value is Component {
  const c = value as Component | undefined;
  return Boolean(c && typeof c.name === 'string' && typeof c.package === 'string' && typeof c.plan === 'function' && typeof c.configSchema === 'object');
}

export function loadComponents(libDir: string = process.env.UEC_PROVISIONING_LIB ?? DEFAULT_LIB_DIR): Component[] {
  const packagesDir = path.resolve(libDir, 'packages');
  let names: string[];
  try {
    names = fs.readdirSync(packagesDir).sort();
  } catch (err) {
    throw new UecError('INTERNAL', `cannot list installed components in ${packagesDir}: ${describeError(err)}`, { cause: err });
  }
  const components: Component[] = [];
  for (const name of names) {
    const dir = path.join(packagesDir, name);
    if (!fs.existsSync(path.join(dir, 'index.js')) && !fs.existsSync(path.join(dir, 'index.ts'))) continue;
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const loaded = (require(path.join(dir, 'index')) as { component?: unknown }).component;
    if (!isComponent(loaded)) throw new UecError('INTERNAL', `${dir} does not export a component`);
    components.push(loaded);
  }
  return components;
}

/** The config schema of all installed components; a section claimed twice is a bug. */
export function mergeSchemas(components: Component[]): ConfigSchema {
  const schema: ConfigSchema = {};
  for (const component of components) {
    for (const [section, spec] of Object.entries(component.configSchema)) {
      if (schema[section]) throw new UecError('INTERNAL', `config section [${section}] is claimed by ${schema[section]?.package} and ${spec.package}`);
      schema[section] = spec;
    }
  }
  return schema;
}

export function findComponent(components: Component[], name: string): Component {
  const found = components.find((c) => c.name === name || c.package === name);
  if (!found) {
    throw new UecError('COMPONENT_UNKNOWN', `no installed component ${JSON.stringify(name)} (installed: ${components.map((c) => c.name).join(', ')})`);
  }
  return found;
}
