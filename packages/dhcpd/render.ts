/**
 * Pure render: a DHCP model and the loaded templates in, file plans out. Same input, same
 * bytes: reservations sorted by system id, one file per node. The main config does not
 * depend on the nodes, so a node's reservation is rendered alone (renderDhcpdHosts).
 */
import * as path from 'node:path';
import type { FilePlan } from '../../src/core/apply';
import type { ServiceSpec } from '../../src/core/services';
import { refusingEscaper, renderTemplate, type Template } from '../../src/core/template';
import { leaseMax, type DhcpModel } from './model';

export const SERVICE_NAME = 'uec-provisioning-dhcpd';

/** System paths of the instance. */
export const DHCPD_PATHS = {
  configFile: '/etc/uec-provisioning/dnsmasq-dhcpd.conf',
  stateDir: '/var/lib/uec-provisioning/dhcpd',
  hostsDir: '/var/lib/uec-provisioning/dhcpd/hosts.d',
  leaseFile: '/var/lib/uec-provisioning/dhcpd/dnsmasq.leases',
  pidFile: '/var/lib/uec-provisioning/dhcpd/dnsmasq.pid',
} as const;

export const TEMPLATE_NAMES = { config: 'dhcpd/dnsmasq-dhcpd.conf.mustache', host: 'dhcpd/host.mustache' } as const;

/** The main config is read only at start: a change restarts the instance. */
export const RESTART_SERVICE: ServiceSpec = { name: SERVICE_NAME, unit: `${SERVICE_NAME}.service`, pidFile: DHCPD_PATHS.pidFile, reloadSignal: 'SIGHUP', restart: true };

/** New files in the hosts directory are read by inotify; changed or removed ones need SIGHUP. */
export const HOSTS_SERVICE: ServiceSpec = { name: SERVICE_NAME, unit: `${SERVICE_NAME}.service`, pidFile: DHCPD_PATHS.pidFile, reloadSignal: 'SIGHUP', picksUpNewFiles: true };

/** Values going into dnsmasq lines: one token, nothing that would end or split a line. */
export function checkDnsmasqValue(value: string): string | null {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f\s,"'#\\]/.test(value)) return 'contains a space, comma, quote, "#", backslash or control character';
  if (value.length === 0) return 'is empty';
  return null;
}

const ESCAPE = refusingEscaper('dnsmasq', checkDnsmasqValue);

export interface DhcpTemplates {
  config: Template;
  host: Template;
}

export function renderDhcpd(model: DhcpModel, templates: DhcpTemplates): FilePlan[] {
  if (model.mode === 'off') return [];
  const full = model.mode === 'full' && model.range;
  const view = {
    config_path: DHCPD_PATHS.configFile,
    mode: model.mode,
    interface: model.interface,
    pid_file: model.locations.pidFile,
    lease_file: model.locations.leaseFile,
    hosts_dir: model.locations.hostsDir,
    full: Boolean(full),
    proxy: model.mode === 'proxy',
    range_start: model.range?.start ?? '',
    range_end: model.range?.end ?? '',
    netmask: model.subnet.netmask,
    network: model.subnet.network,
    lease_time: String(model.leaseTime),
    lease_max: String(model.range ? leaseMax(model.subnet) : 1000),
    router: model.router,
    has_dns: model.dnsServers.length > 0,
    dns_servers: model.dnsServers,
    ping_check: model.pingCheck,
    log_dhcp: model.logDhcp,
    server_address: model.serverAddress,
    ipxe_url: model.boot.ipxeUrl,
    bios_loader: model.boot.bios,
    uefi_loader: model.boot.uefi,
    arm64_loader: model.boot.arm64 ?? '',
  };
  const plans: FilePlan[] = [
    { path: DHCPD_PATHS.configFile, content: renderTemplate(templates.config, view, ESCAPE), mode: 0o644, validate: 'dnsmasq', services: [RESTART_SERVICE] },
  ];
  if (full) plans.push(...renderDhcpdHosts(model, templates));
  return plans;
}

/** The reservation files alone, one per node, each naming its node (for a node apply). */
export function renderDhcpdHosts(model: DhcpModel, templates: Pick<DhcpTemplates, 'host'>): FilePlan[] {
  if (model.mode !== 'full' || !model.range) return [];
  return model.reservations.map((r) => ({
    path: path.posix.join(DHCPD_PATHS.hostsDir, r.systemId),
    content: renderTemplate(templates.host, { system_id: r.systemId, hostname: r.hostname, macs: r.macs, ipv4: r.ipv4 }, ESCAPE),
    mode: 0o644,
    services: [HOSTS_SERVICE],
    node: r.systemId,
  }));
}
