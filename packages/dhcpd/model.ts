/**
 * The DHCP model: every setting, fact and node reservation checked and put in the shape the
 * templates need. Pure: config values, network facts, nodes and the loaders present in,
 * a model or one UecError naming the culprit out.
 */
import { isIPv4 } from 'node:net';
import { ipxeBootstrapUrl } from '../../src/edge/boot';
import { UecError } from '../../src/core/errors';
import { checkHostname, checkMac } from '../../src/core/formats';
import type { InterfaceFact } from '../../src/core/network-facts';
import type { Node } from '../../src/contract/node';
import { selectServerAddress } from '../../src/core/server-address';
import type { DhcpMode } from './config-schema';
import { inRange, inSubnet, ipToNumber, isNetworkOrBroadcast, proposeRange, subnetOf, type Range, type Subnet } from './ipv4';

export interface DhcpSettings {
  mode: DhcpMode;
  interface: string;
  rangeStart: string;
  rangeEnd: string;
  leaseTime: number;
  router: string;
  dnsServers: string;
  pingCheck: boolean;
  logDhcp: boolean;
  biosLoader: 'ipxe' | 'pxelinux';
  uefiLoader: 'ipxe' | 'shim';
  serverInterface: string;
  serverAddress: string;
  httpPort: number;
}

/** Where the instance keeps its files (system paths resolved under --root by the caller). */
export interface DhcpLocations {
  configFile: string;
  hostsDir: string;
  leaseFile: string;
  pidFile: string;
}

export interface Reservation {
  systemId: string;
  hostname: string;
  macs: string[];
  /** '' when the node has no fixed address: it gets its name, and an address from the pool. */
  ipv4: string;
}

export interface BootFiles {
  bios: string;
  uefi: string;
  /** Only when such a loader is present in the TFTP root. */
  arm64: string | null;
  ipxeUrl: string;
}

export type DhcpModel =
  | { mode: 'off'; reason: string }
  | {
      mode: 'proxy' | 'full';
      interface: string;
      serverAddress: string;
      ownAddresses: string[];
      subnet: Subnet;
      range: Range | null;
      leaseTime: number;
      router: string;
      dnsServers: string[];
      pingCheck: boolean;
      logDhcp: boolean;
      boot: BootFiles;
      reservations: Reservation[];
      /** One line per node left out of the reservations (its data does not fit this subnet). */
      leftOut: string[];
      locations: DhcpLocations;
    };

/** The loader file names in the TFTP root (uec-provisioning-tftpd installs them). */
export const LOADER_FILES = {
  bios: { ipxe: 'undionly.kpxe', pxelinux: 'pxelinux.0' },
  uefi: { ipxe: 'ipxe.efi', shim: 'shimx64.efi' },
  arm64: { ipxe: 'ipxe-arm64.efi', shim: 'shimaa64.efi' },
} as const;

function bad(message: string): UecError {
  return new UecError('CONFIG_INVALID_VALUE', message);
}

/** "a, b c" → ['a', 'b', 'c'], each an IPv4 address. */
export function parseDnsServers(text: string): string[] {
  const list = text.split(/[\s,]+/).filter(Boolean);
  for (const item of list) if (!isIPv4(item)) throw bad(`dhcp.dns_servers: ${JSON.stringify(item)} is not an IPv4 address`);
  return list;
}

/** nameserver lines of a resolv.conf, loopback ones (systemd-resolved's stub) skipped. Pure. */
export function parseResolvConf(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    const address = m?.[1];
    if (address && isIPv4(address) && !address.startsWith('127.') && !out.includes(address)) out.push(address);
  }
  return out;
}

function checkRange(range: Range, subnet: Subnet, iface: string, forbidden: { address: string; what: string }[]): void {
  const label = `dhcp range ${range.start}-${range.end}`;
  for (const end of [range.start, range.end]) {
    if (!inSubnet(end, subnet)) throw bad(`${label}: ${end} is outside ${iface}'s subnet ${subnet.network}/${subnet.prefix}`);
    if (isNetworkOrBroadcast(end, subnet)) throw bad(`${label}: ${end} is the ${end === subnet.network ? 'network' : 'broadcast'} address of ${subnet.network}/${subnet.prefix}`);
  }
  if (ipToNumber(range.start) > ipToNumber(range.end)) throw bad(`${label}: the start is after the end`);
  for (const f of forbidden) {
    if (inRange(f.address, range)) throw bad(`${label} contains ${f.what} ${f.address}`);
  }
}

/**
 * The reservations of the nodes that fit this subnet. A node whose data does not (an address
 * outside the subnet, a MAC or address another node already has) is left out and reported,
 * so one node's bad data never stops every other node's reservation.
 */
function selectReservations(nodes: readonly Node[], subnet: Subnet, forbidden: { address: string; what: string }[]): { reservations: Reservation[]; leftOut: string[] } {
  const macOwner = new Map<string, string>();
  const addressOwner = new Map<string, string>();
  const reservations: Reservation[] = [];
  const leftOut: string[] = [];
  const problemOf = (node: Node, who: string): string | null => {
    if (!/^[a-z0-9-]{1,40}$/.test(node.systemId)) return 'system id is not valid for a file name';
    const hostReason = checkHostname(node.hostname);
    if (hostReason) return `hostname ${JSON.stringify(node.hostname)} ${hostReason}`;
    for (const mac of node.macs) {
      const reason = checkMac(mac);
      if (reason) return `MAC ${JSON.stringify(mac)} ${reason}`;
      const key = mac.toLowerCase();
      const owner = macOwner.get(key);
      if (owner && owner !== who) return `MAC ${key} is also given to ${owner}`;
    }
    if (node.ipv4) {
      if (!isIPv4(node.ipv4)) return `address ${JSON.stringify(node.ipv4)} is not an IPv4 address`;
      if (!inSubnet(node.ipv4, subnet) || isNetworkOrBroadcast(node.ipv4, subnet)) return `address ${node.ipv4} is not a host address of ${subnet.network}/${subnet.prefix}`;
      const clash = forbidden.find((f) => f.address === node.ipv4);
      if (clash) return `address ${node.ipv4} is ${clash.what}`;
      const owner = addressOwner.get(node.ipv4);
      if (owner) return `address ${node.ipv4} is also given to ${owner}`;
    }
    return null;
  };
  for (const node of [...nodes].sort((a, b) => (a.systemId < b.systemId ? -1 : 1))) {
    const who = `node ${node.hostname} (${node.systemId})`;
    if (node.macs.length === 0) continue;
    const problem = problemOf(node, who);
    if (problem) {
      leftOut.push(`${who}: ${problem}; its DHCP reservation is left out until it is fixed (uec-provisioning nodes edit) or removed`);
      continue;
    }
    for (const mac of node.macs) macOwner.set(mac.toLowerCase(), who);
    if (node.ipv4) addressOwner.set(node.ipv4, who);
    // DHCP gives the host part; the domain is the installer's business (boot.domain).
    reservations.push({ systemId: node.systemId, hostname: node.hostname.toLowerCase().split('.')[0] ?? '', macs: node.macs.map((m) => m.toLowerCase()), ipv4: node.ipv4 });
  }
  return { reservations, leftOut };
}

export interface ModelInput {
  settings: DhcpSettings;
  interfaces: InterfaceFact[];
  defaultRoute: { interface: string; gateway: string } | null;
  /** This machine's upstream name servers, for dns_servers = "". */
  resolvers: string[];
  nodes: readonly Node[];
  /** File names present in the TFTP root (only the arm64 loaders are looked at). */
  loadersPresent: ReadonlySet<string>;
  locations: DhcpLocations;
}

export function selectDhcpModel(input: ModelInput): DhcpModel {
  const s = input.settings;
  if (s.mode === 'off') return { mode: 'off', reason: 'dhcp.mode is off' };
  if (!s.interface) return { mode: 'off', reason: `dhcp.mode is ${s.mode} but dhcp.interface is empty: DHCP stays off until an interface is chosen` };
  const iface = input.interfaces.find((i) => i.name === s.interface);
  if (!iface) {
    const names = input.interfaces.filter((i) => !i.loopback).map((i) => i.name).join(', ') || 'none';
    throw bad(`dhcp.interface ${JSON.stringify(s.interface)} does not exist (interfaces: ${names})`);
  }
  if (iface.loopback) throw bad(`dhcp.interface ${s.interface} is a loopback interface`);
  if (s.serverInterface && s.serverInterface !== s.interface) {
    throw bad(`dhcp.interface is ${s.interface} but server.interface is ${s.serverInterface}: booting machines must reach this server on the DHCP interface; set server.interface=${s.interface}`);
  }
  const server = selectServerAddress({ interface: s.interface, address: s.serverAddress, httpPort: s.httpPort }, input.interfaces, null);
  const subnet = subnetOf(server.address, server.prefix);
  const forbidden = [
    ...server.ownAddresses.map((address) => ({ address, what: "this server's own address" })),
    ...(input.defaultRoute && inSubnet(input.defaultRoute.gateway, subnet) ? [{ address: input.defaultRoute.gateway, what: 'the default gateway' }] : []),
  ];
  let router = '';
  if (s.router) {
    if (!inSubnet(s.router, subnet) || isNetworkOrBroadcast(s.router, subnet)) throw bad(`dhcp.router ${s.router} is not a host address of ${s.interface}'s subnet ${subnet.network}/${subnet.prefix}`);
    router = s.router;
    forbidden.push({ address: router, what: 'the router' });
  } else if (input.defaultRoute && input.defaultRoute.interface === s.interface && inSubnet(input.defaultRoute.gateway, subnet)) {
    router = input.defaultRoute.gateway;
  }
  const arm64Name = LOADER_FILES.arm64[s.uefiLoader];
  const boot: BootFiles = {
    bios: LOADER_FILES.bios[s.biosLoader],
    uefi: LOADER_FILES.uefi[s.uefiLoader],
    arm64: input.loadersPresent.has(arm64Name) ? arm64Name : null,
    ipxeUrl: ipxeBootstrapUrl({ httpBase: server.httpBase }),
  };
  let range: Range | null = null;
  let reservations: Reservation[] = [];
  let leftOut: string[] = [];
  let dnsServers: string[] = [];
  if (s.mode === 'full') {
    if (Boolean(s.rangeStart) !== Boolean(s.rangeEnd)) throw bad('dhcp.range_start and dhcp.range_end must both be set, or both be empty (proposed range)');
    if (s.rangeStart) {
      range = { start: s.rangeStart, end: s.rangeEnd };
      checkRange(range, subnet, s.interface, forbidden);
    } else {
      range = proposeRange(subnet, forbidden.map((f) => f.address));
      if (!range) throw bad(`no DHCP range fits in ${s.interface}'s subnet ${subnet.network}/${subnet.prefix}; set dhcp.range_start and dhcp.range_end`);
    }
    ({ reservations, leftOut } = selectReservations(input.nodes, subnet, forbidden));
    dnsServers = s.dnsServers ? parseDnsServers(s.dnsServers) : input.resolvers;
  }
  return {
    mode: s.mode,
    interface: s.interface,
    serverAddress: server.address,
    ownAddresses: server.ownAddresses,
    subnet,
    range,
    leaseTime: s.leaseTime,
    router,
    dnsServers,
    pingCheck: s.pingCheck,
    logDhcp: s.logDhcp,
    boot,
    reservations,
    leftOut,
    locations: input.locations,
  };
}

/**
 * For dhcp-lease-max: every host address of the subnet (each lease holds one, pool or
 * reservation), at least dnsmasq's default 1000. It does not follow the number of nodes, so
 * adding a node never changes the main config (which would restart the instance).
 */
export function leaseMax(subnet: Subnet): number {
  const size = 2 ** (32 - subnet.prefix);
  return Math.max(1000, subnet.prefix >= 31 ? size : size - 2);
}
