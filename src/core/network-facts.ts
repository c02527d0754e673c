/**
 * What the machine's network looks like: interfaces, addresses, prefixes, MACs and the
 * default route. Read with systeminformation behind a small interface, so tests and
 * renders can pass facts of their own.
 */
import * as fs from 'node:fs';
import { UecError, describeError } from './errors';
import { runCommand } from './run-command';

export interface AddressFact {
  address: string;
  prefix: number;
}

export interface InterfaceFact {
  name: string;
  mac: string;
  up: boolean;
  loopback: boolean;
  virtual: boolean;
  ipv4: AddressFact[];
  ipv6: AddressFact[];
}

export interface DefaultRoute {
  interface: string;
  gateway: string;
}

export interface NetworkFacts {
  listInterfaces(): Promise<InterfaceFact[]>;
  defaultRoute(): Promise<DefaultRoute | null>;
}

/** "255.255.255.0" → 24; a prefix length given as a number passes through. */
export function netmaskToPrefix(mask: string): number {
  if (/^\d+$/.test(mask)) return Number(mask);
  if (mask.includes(':')) {
    return mask.split(':').reduce((bits, group) => bits + (group === '' ? 0 : countBits(parseInt(group, 16))), 0);
  }
  return mask.split('.').reduce((bits, octet) => bits + countBits(Number(octet)), 0);
}

function countBits(n: number): number {
  let bits = 0;
  for (let v = n; v > 0; v >>= 1) bits += v & 1;
  return bits;
}

interface SiInterface {
  iface: string;
  ip4: string;
  ip4subnet: string;
  ip6: string;
  ip6subnet: string;
  mac: string;
  internal: boolean;
  virtual: boolean;
  operstate: string;
}

/** Convert systeminformation's records (one address of each family per interface). Pure. */
export function interfacesFromSystemInformation(records: SiInterface[]): InterfaceFact[] {
  return records
    .map((r) => ({
      name: r.iface,
      mac: (r.mac ?? '').toLowerCase(),
      up: r.operstate === 'up' || r.operstate === 'unknown',
      loopback: Boolean(r.internal),
      virtual: Boolean(r.virtual),
      ipv4: r.ip4 ? [{ address: r.ip4, prefix: netmaskToPrefix(r.ip4subnet || '32') }] : [],
      ipv6: r.ip6 ? [{ address: r.ip6, prefix: netmaskToPrefix(r.ip6subnet || '128') }] : [],
    }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * The default route from /proc/net/route (per network namespace): interface and gateway
 * from the same line, lowest metric first. Pure; the gateway is little-endian hex there.
 */
export function defaultRouteFromProcNetRoute(text: string): DefaultRoute | null {
  let best: { route: DefaultRoute; metric: number } | null = null;
  for (const line of text.split('\n').slice(1)) {
    const [iface, destination, gateway, flags, , , metric, mask] = line.trim().split(/\s+/);
    if (!iface || destination !== '00000000' || mask !== '00000000' || !gateway || !flags || !metric) continue;
    if ((parseInt(flags, 16) & 0x3) !== 0x3) continue; // RTF_UP | RTF_GATEWAY
    const g = parseInt(gateway, 16);
    const address = [g & 255, (g >>> 8) & 255, (g >>> 16) & 255, g >>> 24].join('.');
    if (!best || Number(metric) < best.metric) best = { route: { interface: iface, gateway: address }, metric: Number(metric) };
  }
  return best?.route ?? null;
}

interface IpAddrRecord {
  ifname?: string;
  addr_info?: { family?: string; local?: string; prefixlen?: number }[];
}

/**
 * Every address of every interface from `ip -j addr show` (pure). Unlike systeminformation
 * (Node's os.networkInterfaces underneath) it lists all addresses of a family, and those of
 * an interface without carrier: a provisioning bridge whose machines are all powered off
 * still has its address.
 */
export function addressesFromIpJson(text: string): Map<string, { ipv4: AddressFact[]; ipv6: AddressFact[] }> {
  const out = new Map<string, { ipv4: AddressFact[]; ipv6: AddressFact[] }>();
  const records = JSON.parse(text) as IpAddrRecord[];
  for (const r of records) {
    if (!r.ifname) continue;
    const entry = { ipv4: [] as AddressFact[], ipv6: [] as AddressFact[] };
    for (const a of r.addr_info ?? []) {
      if (!a.local || a.prefixlen === undefined) continue;
      if (a.family === 'inet') entry.ipv4.push({ address: a.local, prefix: a.prefixlen });
      else if (a.family === 'inet6') entry.ipv6.push({ address: a.local, prefix: a.prefixlen });
    }
    out.set(r.ifname, entry);
  }
  return out;
}

async function readIpAddresses(): Promise<Map<string, { ipv4: AddressFact[]; ipv6: AddressFact[] }> | null> {
  try {
    const result = await runCommand('ip', ['-j', 'addr', 'show'], { timeoutMs: 10_000 });
    return result.code === 0 ? addressesFromIpJson(result.stdout) : null;
  } catch {
    return null; // no iproute2: systeminformation's view is what we have
  }
}

/** Interfaces systeminformation leaves out (it lists only those with an address), from /sys. */
function readAddresslessInterfaces(known: Set<string>): SiInterface[] {
  let names: string[];
  try {
    names = fs.readdirSync('/sys/class/net');
  } catch {
    return [];
  }
  const read = (name: string, file: string) => {
    try {
      return fs.readFileSync(`/sys/class/net/${name}/${file}`, 'utf8').trim();
    } catch {
      return '';
    }
  };
  return names
    .filter((name) => !known.has(name))
    .map((name) => ({
      iface: name,
      ip4: '',
      ip4subnet: '',
      ip6: '',
      ip6subnet: '',
      mac: read(name, 'address'),
      internal: read(name, 'type') === '772',
      virtual: !fs.existsSync(`/sys/class/net/${name}/device`),
      operstate: read(name, 'operstate'),
    }));
}

export function createSystemNetworkFacts(): NetworkFacts {
  // Loaded lazily: it is only needed by commands that look at the network.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const si = require('systeminformation') as typeof import('systeminformation');
  return {
    async listInterfaces() {
      try {
        const result = (await si.networkInterfaces()) as unknown as SiInterface[] | SiInterface;
        const records = Array.isArray(result) ? result : [result];
        const known = new Set(records.map((r) => r.iface));
        const facts = interfacesFromSystemInformation([...records, ...readAddresslessInterfaces(known)]);
        const addresses = await readIpAddresses();
        if (!addresses) return facts;
        return facts.map((f) => {
          const found = addresses.get(f.name);
          return found ? { ...f, ipv4: found.ipv4, ipv6: found.ipv6 } : f;
        });
      } catch (err) {
        throw new UecError('NETWORK_FACTS_FAILED', `cannot list network interfaces: ${describeError(err)}`, { cause: err });
      }
    },
    async defaultRoute() {
      try {
        // Not systeminformation here: it takes the interface and the gateway from two
        // different commands, which can disagree (split default routes of a VPN).
        return defaultRouteFromProcNetRoute(await fs.promises.readFile('/proc/net/route', 'utf8'));
      } catch (err) {
        throw new UecError('NETWORK_FACTS_FAILED', `cannot read the default route: ${describeError(err)}`, { cause: err });
      }
    },
  };
}

/** Facts given by the caller (tests, or a render for another machine). */
export function staticNetworkFacts(interfaces: InterfaceFact[], route: DefaultRoute | null = null): NetworkFacts {
  return { listInterfaces: async () => interfaces, defaultRoute: async () => route };
}
