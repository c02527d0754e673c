/**
 * Which interface and address this server faces the installing machines with, from the
 * [server] settings and the machine's network facts. Every component that writes an address
 * or URL into a config file (DHCP boot file URLs, kernel arguments, preseeds) asks here, so
 * they all agree.
 */
import { UecError } from './errors';
import type { EffectiveConfig } from './config';
import type { AddressFact, InterfaceFact, NetworkFacts } from './network-facts';

export interface ServerAddress {
  /** The provisioning interface (server.interface, else the default route's). */
  interface: string;
  /** The IPv4 address machines reach this server at. */
  address: string;
  /** The subnet of that address on the interface. */
  prefix: number;
  httpPort: number;
  /** http://address:port (no trailing slash): the provisioning HTTP service. */
  httpBase: string;
  /** Every IPv4 address this server has on that interface. */
  ownAddresses: string[];
}

/** Pure: pick interface and address from settings and facts, or say exactly what is missing. */
export function selectServerAddress(
  settings: { interface: string; address: string; httpPort: number },
  interfaces: InterfaceFact[],
  defaultRouteInterface: string | null,
): ServerAddress {
  const name = settings.interface || defaultRouteInterface || '';
  if (!name) throw new UecError('CONFIG_INVALID_VALUE', 'server.interface is empty and there is no default route to guess it from; set server.interface');
  const iface = interfaces.find((i) => i.name === name);
  if (!iface) {
    throw new UecError('CONFIG_INVALID_VALUE', `server.interface ${JSON.stringify(name)} does not exist (interfaces: ${interfaces.map((i) => i.name).join(', ') || 'none'})`);
  }
  let chosen: AddressFact | undefined;
  if (settings.address) {
    chosen = iface.ipv4.find((a) => a.address === settings.address);
    if (!chosen) throw new UecError('CONFIG_INVALID_VALUE', `server.address ${settings.address} is not an address of ${name} (it has ${iface.ipv4.map((a) => a.address).join(', ') || 'no IPv4 address'})`);
  } else {
    chosen = iface.ipv4[0];
    if (!chosen) throw new UecError('CONFIG_INVALID_VALUE', `interface ${name} has no IPv4 address; give it one or set server.address`);
  }
  return {
    interface: name,
    address: chosen.address,
    prefix: chosen.prefix,
    httpPort: settings.httpPort,
    httpBase: `http://${chosen.address}:${settings.httpPort}`,
    ownAddresses: iface.ipv4.map((a) => a.address),
  };
}

export async function loadServerAddress(config: EffectiveConfig, network: NetworkFacts): Promise<ServerAddress> {
  const [interfaces, route] = await Promise.all([network.listInterfaces(), network.defaultRoute()]);
  return selectServerAddress(
    { interface: config.getString('server.interface'), address: config.getString('server.address'), httpPort: config.getNumber('server.http_port') },
    interfaces,
    route?.interface ?? null,
  );
}
