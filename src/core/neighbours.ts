/**
 * The kernel's IPv4 neighbour table: which link-layer address an on-link client's IPv4 has.
 * The region and the provisioning server use it to tell a node's own requests from another
 * machine's on the same LAN (node-address.ts decides; this module only reads).
 *
 * /proc/net/arp is per network namespace: a service in a namespace sees its own LAN's table.
 * It is read on every lookup (a few hundred bytes): a stale copy could miss a client that
 * connected a moment ago, and a missing entry is what a routed client looks like. (serve's
 * preseed fast path reuses the entry read for a connection's checked request for that same
 * connection only: a connection's peer cannot change; preseed-memo.ts.)
 *
 * A router's entry says nothing about who is behind it: an entry whose MAC is the MAC of a
 * gateway in /proc/net/route is marked `router`, and the request is treated as routed.
 */
import * as fs from 'node:fs';
import type { IncomingMessage } from 'node:http';
import * as path from 'node:path';
import { clientAddress } from './http-util';

/** The link-layer address the table holds for a client's IPv4, and whether it is a router's. */
/** "::ffff:10.0.0.5" (a dual-stack socket) → "10.0.0.5"; anything else unchanged. */
export function normaliseClientAddress(address: string): string {
  const m = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  return m ? m[1]! : address;
}

export interface NeighbourEntry {
  mac: string;
  router: boolean;
}

export interface NeighbourTable {
  /** IPv4 → lower-case MAC, complete entries only. */
  entries: Map<string, string>;
  /** The IPv4 gateways of the routing table. */
  gateways: string[];
}

/** Looks a client's IPv4 up; null when the table has no complete entry for it. */
export type NeighbourLookup = (address: string) => Promise<NeighbourEntry | null>;

/** Where a request comes from, as the services see it: its address and its neighbour entry. */
export interface ClientAddressing {
  clientAddress(req: IncomingMessage): string;
  neighbour: NeighbourLookup;
  /**
   * True when the answers are the socket's peer and the kernel's table: one connection's client
   * cannot change, and another machine on that address has to open its own connection (which is
   * checked anew). Only then may an ownership accepted on a connection be reused for it
   * (preseed-memo.ts). The tests' fake LAN, whose client is a header, is not.
   */
  connectionBound?: boolean;
  /** The same look-up, synchronous, where it can be (the preseed fast path of a new connection). */
  neighbourNow?: (address: string) => NeighbourEntry | null;
}

/** ATF_COM: the entry is complete (an incomplete one has the all-zero MAC). */
const ATF_COM = 0x2;
/** RTF_GATEWAY in /proc/net/route's Flags. */
const RTF_GATEWAY = 0x2;

/** Pure: /proc/net/arp → IPv4 → MAC for complete entries. A line that does not parse is skipped. */
export function parseNeighbourTable(arp: string): Map<string, string> {
  const entries = new Map<string, string>();
  for (const line of arp.split('\n').slice(1)) {
    const [ip, , flags, mac] = line.trim().split(/\s+/);
    if (!ip || !flags || !mac) continue;
    if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(ip) || !/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(mac)) continue;
    if ((Number.parseInt(flags, 16) & ATF_COM) === 0 || mac === '00:00:00:00:00:00') continue;
    if (!entries.has(ip)) entries.set(ip, mac.toLowerCase());
  }
  return entries;
}

/** Pure: /proc/net/route → the IPv4 gateways (its addresses are little-endian hex). */
export function parseGateways(route: string): string[] {
  const gateways = new Set<string>();
  for (const line of route.split('\n').slice(1)) {
    const [, , gateway, flags] = line.trim().split(/\s+/);
    if (!gateway || !flags || !/^[0-9A-Fa-f]{8}$/.test(gateway)) continue;
    if ((Number.parseInt(flags, 16) & RTF_GATEWAY) === 0) continue;
    const n = Number.parseInt(gateway, 16);
    if (n === 0) continue;
    gateways.add([n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff].join('.'));
  }
  return [...gateways];
}

/** Pure: the entry for one address; a router's MAC is marked as such. */
export function selectNeighbour(table: NeighbourTable, address: string): NeighbourEntry | null {
  const mac = table.entries.get(address);
  if (mac === undefined) return null;
  const routerMacs = new Set(table.gateways.flatMap((g) => table.entries.get(g) ?? []));
  return { mac, router: routerMacs.has(mac) };
}

/** Reads the neighbour and routing tables of this process's network namespace. */
export async function readNeighbourTable(procNet = '/proc/net'): Promise<NeighbourTable> {
  const read = (name: string) => fs.promises.readFile(path.join(procNet, name), 'utf8').catch(() => '');
  const [arp, route] = await Promise.all([read('arp'), read('route')]);
  return { entries: parseNeighbourTable(arp), gateways: parseGateways(route) };
}

/** Reads the table now and looks one address up. */
export async function readNeighbour(address: string, procNet = '/proc/net'): Promise<NeighbourEntry | null> {
  return selectNeighbour(await readNeighbourTable(procNet), address);
}

/** The real thing: the socket's peer address and this namespace's kernel table. */
export const SYSTEM_ADDRESSING: ClientAddressing = {
  clientAddress: (req) => normaliseClientAddress(clientAddress(req)),
  neighbour: (address) => readNeighbour(address),
  connectionBound: true,
};
