/** Shared bits of the dhcpd tests: facts, nodes, settings and golden-file comparison. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Test } from 'tap';
import type { FilePlan } from '../../../src/apply';
import { createNode, type Node } from '../../../src/node';
import type { InterfaceFact } from '../../../src/network-facts';
import type { DhcpSettings } from '../../../packages/dhcpd/model';
import { renderUnifiedDiff } from '../../../src/unified-diff';

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

/** Compare plans with fixtures/<name>/expected/<path>; UPDATE_GOLDEN=1 rewrites them. */
export function assertGolden(t: Test, name: string, plans: FilePlan[]): void {
  const dir = path.join(FIXTURES, name, 'expected');
  if (process.env.UPDATE_GOLDEN === '1') {
    fs.rmSync(dir, { recursive: true, force: true });
    for (const p of plans) {
      const file = path.join(dir, p.path);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, p.content);
    }
    fs.mkdirSync(dir, { recursive: true });
  }
  const expected: string[] = [];
  const walk = (d: string) => {
    if (!fs.existsSync(d)) return;
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else expected.push('/' + path.relative(dir, p));
    }
  };
  walk(dir);
  t.same(plans.map((p) => p.path).sort(), expected.sort(), `${name}: the planned files are the golden ones`);
  for (const p of plans) {
    const file = path.join(dir, p.path);
    const want = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : null;
    if (want !== p.content) t.fail(`${name}: ${p.path} differs from its golden file (UPDATE_GOLDEN=1 rewrites):\n${renderUnifiedDiff(p.path, want, p.content)}`);
    else t.pass(`${name}: ${p.path} matches`);
  }
}
