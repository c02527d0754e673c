/**
 * IPv4 arithmetic for subnets and ranges. Pure: addresses as unsigned 32-bit numbers.
 */
import { isIPv4 } from 'node:net';

export interface Subnet {
  /** The network address, dotted. */
  network: string;
  prefix: number;
  netmask: string;
  broadcast: string;
}

export interface Range {
  start: string;
  end: string;
}

export function ipToNumber(address: string): number {
  if (!isIPv4(address)) throw new Error(`not an IPv4 address: ${address}`);
  return address.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
}

export function numberToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** The subnet an address with a prefix length belongs to. */
export function subnetOf(address: string, prefix: number): Subnet {
  const mask = maskOf(prefix);
  const network = (ipToNumber(address) & mask) >>> 0;
  return { network: numberToIp(network), prefix, netmask: numberToIp(mask), broadcast: numberToIp((network | (~mask >>> 0)) >>> 0) };
}

export function inSubnet(address: string, subnet: Subnet): boolean {
  return ((ipToNumber(address) & maskOf(subnet.prefix)) >>> 0) === ipToNumber(subnet.network);
}

/** True for the subnet's network and broadcast addresses (a /31 or /32 has neither). */
export function isNetworkOrBroadcast(address: string, subnet: Subnet): boolean {
  if (subnet.prefix >= 31) return false;
  return address === subnet.network || address === subnet.broadcast;
}

export function rangeSize(range: Range): number {
  return ipToNumber(range.end) - ipToNumber(range.start) + 1;
}

export function inRange(address: string, range: Range): boolean {
  const n = ipToNumber(address);
  return n >= ipToNumber(range.start) && n <= ipToNumber(range.end);
}

/**
 * The address range proposed for full mode: the upper half of the subnet's host addresses
 * (the lower half is left for machines with static addresses), and in it the longest run
 * that contains none of `exclude` (gateway, this server's own addresses). Null when the
 * subnet is too small (fewer than 2 usable addresses). Pure.
 */
export function proposeRange(subnet: Subnet, exclude: readonly string[]): Range | null {
  if (subnet.prefix > 30) return null;
  const first = ipToNumber(subnet.network) + 1;
  const last = ipToNumber(subnet.broadcast) - 1;
  const half = first + Math.floor((last - first + 1) / 2);
  const lo = last - first + 1 >= 8 ? half : first;
  const excluded = new Set(exclude.filter((a) => isIPv4(a)).map(ipToNumber));
  let best: [number, number] | null = null;
  let runStart: number | null = null;
  for (let n = lo; n <= last + 1; n++) {
    const free = n <= last && !excluded.has(n);
    if (free && runStart === null) runStart = n;
    if (!free && runStart !== null) {
      if (!best || n - 1 - runStart > best[1] - best[0]) best = [runStart, n - 1];
      runStart = null;
    }
  }
  if (!best || best[1] - best[0] < 1) return null;
  return { start: numberToIp(best[0]), end: numberToIp(best[1]) };
}

/** "A-B" → range (both must be IPv4); anything else → null. */
export function parseRange(text: string): Range | null {
  const m = /^\s*([0-9.]+)\s*-\s*([0-9.]+)\s*$/.exec(text);
  if (!m || !isIPv4(m[1] as string) || !isIPv4(m[2] as string)) return null;
  return { start: m[1] as string, end: m[2] as string };
}
