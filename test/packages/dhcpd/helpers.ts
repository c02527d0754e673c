/** Shared bits of the dhcpd tests: facts, nodes and settings. */
import * as path from 'node:path';
import { createNode, type Node } from '../../../src/contract/node';
import type { InterfaceFact } from '../../../src/core/network-facts';
import type { DhcpSettings } from '../../../packages/dhcpd/model';

export const FIXTURES = path.join(__dirname, 'fixtures');

export const INTERFACES: InterfaceFact[] = [
  { name: 'eth0', mac: '52:54:00:00:00:01', up: true, loopback: false, virtual: false, ipv4: [{ address: '198.51.100.7', prefix: 24 }], ipv6: [] },
  { name: 'prov0', mac: '52:54:00:00:00:02', up: true, loopback: false, virtual: true, ipv4: [{ address: '10.44.0.1', prefix: 24 }], ipv6: [] },
  { name: 'lo', mac: '00:00:00:00:00:00', up: true, loopback: true, virtual: false, ipv4: [{ address: '127.0.0.1', prefix: 8 }], ipv6: [] },
];

export const ROUTE = { interface: 'eth0', gateway: '198.51.100.1' };

export function settings(over: Partial<DhcpSettings> = {}): DhcpSettings {
  return {
    mode: 'full',
    interface: 'prov0',
    rangeStart: '',
    rangeEnd: '',
    leaseTime: 43200,
    router: '',
    dnsServers: '10.44.0.53',
    pingCheck: true,
    logDhcp: false,
    biosLoader: 'ipxe',
    uefiLoader: 'ipxe',
    serverInterface: '',
    serverAddress: '',
    httpPort: 5248,
    ...over,
  };
}

export function node(hostname: string, macs: string[], ipv4 = '', systemId = `node-${hostname.slice(0, 6).padEnd(6, 'x')}`): Node {
  return createNode({ hostname, macs, ipv4 }, new Date('2026-01-01T00:00:00Z'), { systemId, token: 'x'.repeat(32) });
}

