import * as fs from 'node:fs';
import { BOOT_PATHS } from '../../src/edge/boot';
import type { ChangedNode, Component, ComponentContext } from '../../src/configurator/component';
import type { FilePlan } from '../../src/core/apply';
import type { EffectiveConfig } from '../../src/core/config';
import { readFileIfExists } from '../../src/core/fs-ops';
import type { Paths } from '../../src/core/paths';
import { loadTemplate, type TemplateDirs } from '../../src/core/template';
import { DHCP_COMMANDS } from './commands';
import { DHCP_SCHEMA, type DhcpMode } from './config-schema';
import { LOADER_FILES, parseResolvConf, selectDhcpModel, type DhcpLocations, type DhcpModel, type DhcpSettings } from './model';
import { DHCPD_PATHS, TEMPLATE_NAMES, renderDhcpd, renderDhcpdHosts, type DhcpTemplates } from './render';
import type { Node } from '../../src/contract/node';
import type { NetworkFacts } from '../../src/core/network-facts';

export function readDhcpSettings(config: EffectiveConfig): DhcpSettings {
  return {
    mode: config.getString('dhcp.mode') as DhcpMode,
    interface: config.getString('dhcp.interface'),
    rangeStart: config.getString('dhcp.range_start'),
    rangeEnd: config.getString('dhcp.range_end'),
    leaseTime: config.getNumber('dhcp.lease_time'),
    router: config.getString('dhcp.router'),
    dnsServers: config.getString('dhcp.dns_servers'),
    pingCheck: config.getBoolean('dhcp.ping_check'),
    logDhcp: config.getBoolean('dhcp.log_dhcp'),
    biosLoader: config.getString('boot.bios_loader') as DhcpSettings['biosLoader'],
    uefiLoader: config.getString('boot.uefi_loader') as DhcpSettings['uefiLoader'],
    serverInterface: config.getString('server.interface'),
    serverAddress: config.getString('server.address'),
    httpPort: config.getNumber('server.http_port'),
  };
}

/** This machine's upstream name servers: systemd-resolved's list first, then resolv.conf. */
async function readResolvers(paths: Paths): Promise<string[]> {
  for (const file of ['/run/systemd/resolve/resolv.conf', '/etc/resolv.conf']) {
    const text = (await readFileIfExists(paths.resolve(file)).catch(() => null))?.toString('utf8');
    const found = text ? parseResolvConf(text) : [];
    if (found.length > 0) return found;
  }
  return [];
}

function presentLoaders(paths: Paths): Set<string> {
  const names = [...Object.values(LOADER_FILES.arm64)];
  return new Set(names.filter((n) => fs.existsSync(paths.resolve(`${BOOT_PATHS.bootDir}/${n}`))));
}

export async function loadDhcpTemplates(dirs: TemplateDirs): Promise<DhcpTemplates> {
  return { config: await loadTemplate(dirs, TEMPLATE_NAMES.config), host: await loadTemplate(dirs, TEMPLATE_NAMES.host) };
}

/** Gather what the model needs from the system, then select it (the pure part). */
export async function loadDhcpModel(input: { paths: Paths; config: EffectiveConfig; network: NetworkFacts; nodes: () => Promise<Node[]> }): Promise<DhcpModel> {
  const settings = readDhcpSettings(input.config);
  if (settings.mode === 'off' || !settings.interface) return selectDhcpModel({ settings, interfaces: [], defaultRoute: null, resolvers: [], nodes: [], loadersPresent: new Set(), locations: locations(input.paths) });
  const [interfaces, defaultRoute] = await Promise.all([input.network.listInterfaces(), input.network.defaultRoute()]);
  return selectDhcpModel({
    settings,
    interfaces,
    defaultRoute,
    resolvers: settings.mode === 'full' && !settings.dnsServers ? await readResolvers(input.paths) : [],
    nodes: settings.mode === 'full' ? await input.nodes() : [],
    loadersPresent: presentLoaders(input.paths),
    locations: locations(input.paths),
  });
}

/** The instance's files as dnsmasq must see them: under the --root prefix. */
export function locations(paths: Paths): DhcpLocations {
  return {
    configFile: paths.resolve(DHCPD_PATHS.configFile),
    hostsDir: paths.resolve(DHCPD_PATHS.hostsDir),
    leaseFile: paths.resolve(DHCPD_PATHS.leaseFile),
    pidFile: paths.resolve(DHCPD_PATHS.pidFile),
  };
}

async function plan(context: ComponentContext) {
  const model = await loadDhcpModel(context);
  if (model.mode === 'off') {
    context.log.debug(`DHCP off: ${model.reason}`);
    if (!model.reason.startsWith('dhcp.mode is off')) context.log.warn(model.reason);
    return [];
  }
  // dnsmasq needs the hosts directory to exist when it starts; the package ships it, and
  // under a --root scratch tree it is made here (an empty directory, nothing else).
  await fs.promises.mkdir(context.paths.resolve(DHCPD_PATHS.hostsDir), { recursive: true, mode: 0o755 });
  for (const line of model.leftOut) (context.reportNode ?? ((l: string) => context.log.warn(l)))(line);
  return renderDhcpd(model, await loadDhcpTemplates(context.templates));
}

/**
 * The reservation files of the changed nodes only: the model is selected with just those
 * nodes (the subnet, range and forbidden addresses do not depend on the others; uniqueness of
 * MACs and addresses among all nodes is the store's rule).
 */
async function planNodes(context: ComponentContext, changed: readonly ChangedNode[]): Promise<FilePlan[]> {
  const present = changed.flatMap((c) => (c.node ? [c.node] : []));
  const model = await loadDhcpModel({ ...context, nodes: async () => present });
  if (model.mode !== 'full') return [];
  await fs.promises.mkdir(context.paths.resolve(DHCPD_PATHS.hostsDir), { recursive: true, mode: 0o755 });
  for (const line of model.leftOut) (context.reportNode ?? ((l: string) => context.log.warn(l)))(line);
  return renderDhcpdHosts(model, { host: await loadTemplate(context.templates, TEMPLATE_NAMES.host) });
}

/**
 * uec-provisioning-dhcpd: a dnsmasq instance of its own for DHCP (proxy or full) on one
 * chosen interface, boot files by client architecture, per-node reservations.
 */
export const component: Component = {
  name: 'dhcpd',
  package: 'uec-provisioning-dhcpd',
  summary: 'DHCP or proxy-DHCP for network boot (a dedicated dnsmasq instance)',
  configSchema: DHCP_SCHEMA,
  usesNodes: true,
  plan,
  planNodes,
  commands: DHCP_COMMANDS,
};
