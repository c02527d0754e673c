/**
 * What the machine's network looks like: interfaces, addresses, prefixes, MACs and the
 * default route. Read with systeminformation behind a small interface, so tests and
 * renders can pass facts of their own.
 */
import { UecError, describeError } from './errors';

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

export function createSystemNetworkFacts(): NetworkFacts {
  // Loaded lazily: it is only needed by commands that look at the network.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const si = require('systeminformation') as typeof import('systeminformation');
  return {
    async listInterfaces() {
      try {
        const records = (await si.networkInterfaces()) as unknown as SiInterface[] | SiInterface;
        return interfacesFromSystemInformation(Array.isArray(records) ? records : [records]);
      } catch (err) {
        throw new UecError('NETWORK_FACTS_FAILED', `cannot list network interfaces: ${describeError(err)}`, { cause: err });
      }
    },
    async defaultRoute() {
      try {
        const [iface, gateway] = await Promise.all([si.networkInterfaceDefault(), si.networkGatewayDefault()]);
        return iface && gateway ? { interface: iface, gateway } : null;
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
