import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { readNeighbour } from '../../src/core/neighbours';
import { readNeighbourSync } from '../../src/core/read-neighbour-sync';

const ARP = `IP address       HW type     Flags       HW address            Mask     Device
10.0.0.5         0x1         0x2         52:54:00:AA:00:01     *        br0
10.0.0.6         0x1         0x0         00:00:00:00:00:00     *        br0
10.0.0.1         0x1         0x2         02:00:00:00:00:fe     *        br0
`;
const ROUTE = `Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
br0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0
`;

t.test('readNeighbourSync: the same answers as readNeighbour (host, router, incomplete, none, no table)', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uec-neigh-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'arp'), ARP);
  fs.writeFileSync(path.join(dir, 'route'), ROUTE);
  const expected = [
    ['10.0.0.5', { mac: '52:54:00:aa:00:01', router: false }],
    ['10.0.0.1', { mac: '02:00:00:00:00:fe', router: true }],
    ['10.0.0.6', null],
    ['10.0.0.9', null],
  ] as const;
  for (const [address, entry] of expected) {
    t.same(readNeighbourSync(address, dir), entry, address);
    t.same(readNeighbourSync(address, dir), await readNeighbour(address, dir), `${address}: as readNeighbour`);
  }
  t.equal(readNeighbourSync('10.0.0.5', path.join(dir, 'missing')), null, 'no table: no entry (a routed client)');
  fs.writeFileSync(path.join(dir, 'arp'), ARP.replace('52:54:00:AA:00:01', '52:54:00:AA:00:66'));
  t.same(readNeighbourSync('10.0.0.5', dir), { mac: '52:54:00:aa:00:66', router: false }, 'read again on every lookup');
});

t.test('readNeighbourSync on the real /proc/net: the same answer as readNeighbour, read again each time', async (t) => {
  const arp = fs.readFileSync('/proc/net/arp', 'utf8');
  const first = /^(\d+\.\d+\.\d+\.\d+)\s+\S+\s+0x[2-9a-f]/m.exec(arp.split('\n').slice(1).join('\n'))?.[1] ?? '192.0.2.1';
  for (let i = 0; i < 3; i++) t.same(readNeighbourSync(first), await readNeighbour(first), `${first}, read ${i + 1}`);
  t.equal(readNeighbourSync('192.0.2.254'), null, 'an address not in the table');
});
