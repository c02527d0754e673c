import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { parseGateways, parseNeighbourTable, readNeighbour, readNeighbourTable, selectNeighbour } from '../../src/core/neighbours';

const ARP = `IP address       HW type     Flags       HW address            Mask     Device
10.0.0.5         0x1         0x2         52:54:00:AA:00:01     *        br0
10.0.0.6         0x1         0x0         00:00:00:00:00:00     *        br0
10.0.0.1         0x1         0x2         02:00:00:00:00:fe     *        br0
10.0.0.7         0x1         0x6         52:54:00:aa:00:07     *        br0
garbage line
10.0.0.8         0x1         0x2         not-a-mac             *        br0
10.0.0.5         0x1         0x2         52:54:00:aa:00:99     *        eth1
`;
// Default route via 10.0.0.1 (0100000A little-endian), a link route, a host route via 10.0.0.1 too.
const ROUTE = `Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
br0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0
br0\t0000000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
br0\t0001A8C0\t0100000A\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
`;

t.test('parseNeighbourTable: complete entries only, MACs in lower case, the first entry of an address wins', async (t) => {
  t.same([...parseNeighbourTable(ARP)], [
    ['10.0.0.5', '52:54:00:aa:00:01'],
    ['10.0.0.1', '02:00:00:00:00:fe'],
    ['10.0.0.7', '52:54:00:aa:00:07'],
  ]);
  t.same([...parseNeighbourTable('')], []);
});

t.test('parseGateways: RTF_GATEWAY routes only, little-endian hex to dotted quads', async (t) => {
  t.same(parseGateways(ROUTE), ['10.0.0.1'], 'the flag-less route via 10.0.0.1 is not a gateway route');
  t.same(parseGateways(''), []);
});

t.test('selectNeighbour: a gateway\'s MAC is a router; no entry → null', async (t) => {
  const table = { entries: parseNeighbourTable(ARP), gateways: parseGateways(ROUTE) };
  t.same(selectNeighbour(table, '10.0.0.5'), { mac: '52:54:00:aa:00:01', router: false });
  t.same(selectNeighbour(table, '10.0.0.1'), { mac: '02:00:00:00:00:fe', router: true });
  t.equal(selectNeighbour(table, '10.0.0.6'), null, 'incomplete');
  t.equal(selectNeighbour(table, '10.9.9.9'), null, 'routed: no entry');
});

t.test('readNeighbourTable / readNeighbour read arp and route from the given directory; missing files are empty tables', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uec-neigh-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  t.same(await readNeighbourTable(dir), { entries: new Map(), gateways: [] });
  fs.writeFileSync(path.join(dir, 'arp'), ARP);
  fs.writeFileSync(path.join(dir, 'route'), ROUTE);
  t.same(await readNeighbour('10.0.0.7', dir), { mac: '52:54:00:aa:00:07', router: false });
  fs.writeFileSync(path.join(dir, 'arp'), ARP.replace('52:54:00:aa:00:07', '52:54:00:aa:00:77'));
  t.same(await readNeighbour('10.0.0.7', dir), { mac: '52:54:00:aa:00:77', router: false }, 'read again on every lookup');
});
