/**
 * Who owns an address, during one deploy (or commissioning) of a node. A node's install
 * material (its install boot script, preseed, first-boot script) and its call-backs are
 * answered only for a client address the node owns:
 *
 *   (a) on-link: the kernel's neighbour table maps the client's IPv4 to one of the node's MACs
 *       (an entry with another MAC, not a router's, is refused whatever else holds);
 *   (b) otherwise the node's reserved IPv4, when it has one;
 *   (c) otherwise (a routed client: no entry, or a router's MAC, and no reservation) the
 *       address bound to this deploy: the first accepted request binds it, every later one
 *       must come from it.
 * An accepted request of (a) or (b) also binds its address when none is bound yet, so a
 * routed stranger cannot bind an address after the node itself has been seen. The binding
 * is cleared when a deploy or commissioning starts.
 *
 * Only IPv4 host addresses can be a node's: loopback, IPv6 and the like are refused.
 * Pure: the caller reads the neighbour table (neighbours.ts) and stores the binding.
 */
import type { NeighbourEntry } from '../core/neighbours';
import { checkNodeIPv4 } from './node';

export interface OwnershipFacts {
  hostname: string;
  systemId: string;
  macs: readonly string[];
  /** The reserved IPv4, or ''. */
  ipv4: string;
  /** The address bound to the current deploy, or '' / undefined. */
  boundAddress?: string;
}

export type OwnershipRule = 'neighbour' | 'reservation' | 'binding';

export type Ownership =
  | { owned: true; rule: OwnershipRule; /** Store this address as the deploy's binding. */ bind: boolean }
  | { owned: false; reason: string };

/** Pure: does `client` (with its neighbour entry, if any) own this node's current deploy? */
export function selectAddressOwnership(node: OwnershipFacts, client: string, neighbour: NeighbourEntry | null): Ownership {
  const notNode = checkNodeIPv4(client);
  if (notNode) return { owned: false, reason: `client address ${JSON.stringify(client)} ${notNode}; nodes call from an IPv4 host address` };
  const bound = node.boundAddress ?? '';
  const bind = bound === '';
  if (neighbour && !neighbour.router) {
    if (node.macs.includes(neighbour.mac)) return { owned: true, rule: 'neighbour', bind };
    return { owned: false, reason: `on-link client ${client} has MAC ${neighbour.mac}, not one of the node's (${node.macs.join(', ')})` };
  }
  const how = neighbour ? `routed client ${client} (behind router MAC ${neighbour.mac})` : `routed client ${client} (no neighbour entry)`;
  if (node.ipv4) {
    if (client === node.ipv4) return { owned: true, rule: 'reservation', bind };
    return { owned: false, reason: `${how} is not the node's reserved address ${node.ipv4}` };
  }
  if (bound) {
    if (client === bound) return { owned: true, rule: 'binding', bind: false };
    return { owned: false, reason: `${how}: this deploy is bound to ${bound}` };
  }
  return { owned: true, rule: 'binding', bind: true };
}
