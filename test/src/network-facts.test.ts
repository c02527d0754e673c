import { spawnSync } from 'node:child_process';
import path from 'node:path';
import t from 'tap';
import {
  interfacesFromSystemInformation,
  netmaskToPrefix,
  staticNetworkFacts,
  type DefaultRoute,
  type InterfaceFact,
  defaultRouteFromProcNetRoute,
  addressesFromIpJson,
} from '../../src/core/network-facts';
import { createTestNetwork, listNamespaces, netnsUnavailableReason } from '../helpers/netns';

type SiRecord = Parameters<typeof interfacesFromSystemInformation>[0][number];

const ROOT = path.resolve(__dirname, '../..');
// Loaded with require() from -e, not as the main module: tap passes its ESM loader hooks
// on to every child node (NODE_OPTIONS=--import=…), and with hooks registered node loads
// a main .ts file through the ESM loader, which ts-node's require hook never sees.
const PRINT_FACTS_ARGV = [
  process.execPath,
  '-r',
  'ts-node/register/transpile-only',
  '-e',
  `require(${JSON.stringify(path.join(ROOT, 'test/helpers/print-network-facts.ts'))})`,
];

/** The root namespace's interfaces (this process's namespace), as sorted "name mac" lines. */
function rootNamespaceLinks(): string[] {
  const r = spawnSync('ip', ['-br', 'link'], { encoding: 'utf8' });
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [name, , mac] = line.split(/\s+/);
      return `${name} ${mac}`;
    })
    .sort();
}

t.test('netmaskToPrefix', async (t) => {
  const cases: [string, number][] = [
    ['255.255.255.0', 24],
    ['255.255.0.0', 16],
    ['255.255.255.128', 25],
    ['255.255.255.255', 32],
    ['0.0.0.0', 0],
    ['24', 24],
    ['0', 0],
    ['ffff:ffff:ffff:ffff::', 64],
    ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 128],
    ['ffff:ff00::', 24],
  ];
  for (const [mask, prefix] of cases) t.equal(netmaskToPrefix(mask), prefix, `${mask} → ${prefix}`);
});

t.test('interfacesFromSystemInformation', async (t) => {
  const record = (r: Partial<SiRecord> & { iface: string }): SiRecord => ({
    ip4: '',
    ip4subnet: '',
    ip6: '',
    ip6subnet: '',
    mac: '',
    internal: false,
    virtual: false,
    operstate: 'down',
    ...r,
  });
  const facts = interfacesFromSystemInformation([
    record({
      iface: 'lo',
      ip4: '127.0.0.1',
      ip4subnet: '255.0.0.0',
      ip6: '::1',
      ip6subnet: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
      mac: '00:00:00:00:00:00',
      internal: true,
      operstate: 'unknown',
    }),
    record({
      iface: 'eth1',
      ip4: '192.0.2.10',
      ip4subnet: '255.255.255.0',
      ip6: '2001:db8::10',
      ip6subnet: 'ffff:ffff:ffff:ffff::',
      mac: '52:54:00:AB:CD:EF',
      operstate: 'up',
    }),
    record({ iface: 'br0', mac: 'AA:BB:CC:DD:EE:FF', virtual: true, operstate: 'down' }),
    record({ iface: 'eth0', ip4: '198.51.100.7', mac: '52:54:00:00:00:01', operstate: 'lowerlayerdown' }),
  ]);

  t.same(
    facts.map((f) => f.name),
    ['br0', 'eth0', 'eth1', 'lo'],
    'sorted by name',
  );
  t.same(facts, [
    { name: 'br0', mac: 'aa:bb:cc:dd:ee:ff', up: false, loopback: false, virtual: true, ipv4: [], ipv6: [] },
    {
      name: 'eth0',
      mac: '52:54:00:00:00:01',
      up: false,
      loopback: false,
      virtual: false,
      ipv4: [{ address: '198.51.100.7', prefix: 32 }],
      ipv6: [],
    },
    {
      name: 'eth1',
      mac: '52:54:00:ab:cd:ef',
      up: true,
      loopback: false,
      virtual: false,
      ipv4: [{ address: '192.0.2.10', prefix: 24 }],
      ipv6: [{ address: '2001:db8::10', prefix: 64 }],
    },
    {
      name: 'lo',
      mac: '00:00:00:00:00:00',
      up: true,
      loopback: true,
      virtual: false,
      ipv4: [{ address: '127.0.0.1', prefix: 8 }],
      ipv6: [{ address: '::1', prefix: 128 }],
    },
  ]);
  t.test('MAC lower-cased', async (t) => t.equal(facts[2]?.mac, '52:54:00:ab:cd:ef'));
  t.test('operstate unknown (loopback) counts as up, lowerlayerdown does not', async (t) => {
    t.equal(facts[3]?.up, true);
    t.equal(facts[1]?.up, false);
  });
  t.test('no address → empty lists', async (t) => t.match(facts[0], { ipv4: [], ipv6: [] }));
  t.test('address without a netmask → host prefix', async (t) => t.same(facts[1]?.ipv4, [{ address: '198.51.100.7', prefix: 32 }]));
  t.same(interfacesFromSystemInformation([]), [], 'no records → no interfaces');
});

t.test('staticNetworkFacts returns what it was given', async (t) => {
  const interfaces: InterfaceFact[] = [
    { name: 'eth0', mac: '52:54:00:12:34:56', up: true, loopback: false, virtual: false, ipv4: [{ address: '192.0.2.5', prefix: 24 }], ipv6: [] },
  ];
  const route: DefaultRoute = { interface: 'eth0', gateway: '192.0.2.1' };
  const facts = staticNetworkFacts(interfaces, route);
  t.equal(await facts.listInterfaces(), interfaces);
  t.equal(await facts.defaultRoute(), route);
  t.equal(await staticNetworkFacts([]).defaultRoute(), null, 'no route given → null');
  t.same(await staticNetworkFacts([]).listInterfaces(), []);
});

// createSystemNetworkFacts() itself runs in the child (test/helpers/print-network-facts.ts).
t.test('createSystemNetworkFacts inside a namespace', { skip: netnsUnavailableReason() }, async (t) => {
  const rootLinksBefore = rootNamespaceLinks();
  const net = createTestNetwork(t, { name: 'facts' });
  const host = await net.ns('host');
  const peer = await net.ns('peer');
  const forwarding = await net.exec(host, ['sysctl', '-n', 'net.ipv4.ip_forward', 'net.ipv6.conf.all.forwarding']);
  t.same(forwarding.stdout.split('\n').filter(Boolean), ['0', '0'], 'forwarding is off in the namespace');
  await net.link({ ns: host, ifname: 'uect0', mac: '52:54:00:aa:bb:cc', cidr: '10.77.0.5/24' }, { ns: peer, ifname: 'uect1', cidr: '10.77.0.1/24' });
  await net.waitOperstate(host, 'uect0', 'up');
  // Inside a namespace whose only link is a veth to another test namespace: no way out.
  await net.ip(host, ['route', 'add', 'default', 'via', '10.77.0.1']);

  const run = await net.exec(host, PRINT_FACTS_ARGV, { cwd: ROOT });
  t.equal(run.code, 0, 'the facts script ran', { stderr: run.stderr });
  const out = JSON.parse(run.stdout) as { interfaces: InterfaceFact[]; defaultRoute: DefaultRoute | null; raw: unknown };

  t.same(
    out.interfaces.map((i) => i.name),
    ['lo', 'uect0'],
    "only the namespace's interfaces",
    { raw: out.raw },
  );
  t.match(
    out.interfaces.find((i) => i.name === 'uect0'),
    { mac: '52:54:00:aa:bb:cc', up: true, loopback: false, ipv4: [{ address: '10.77.0.5', prefix: 24 }] },
    'uect0: address, prefix, MAC, up',
    { raw: out.raw },
  );
  t.match(
    out.interfaces.find((i) => i.name === 'uect0')?.ipv6,
    [{ address: 'fe80::5054:ff:feaa:bbcc', prefix: 64 }],
    'uect0: the EUI-64 link-local address of its MAC',
  );
  t.match(out.interfaces.find((i) => i.name === 'lo'), { loopback: true, up: true, ipv4: [{ address: '127.0.0.1', prefix: 8 }] }, 'lo is loopback');
  t.same(out.defaultRoute, { interface: 'uect0', gateway: '10.77.0.1' }, 'default route');

  const peerRun = await net.exec(peer, PRINT_FACTS_ARGV, { cwd: ROOT });
  t.equal(peerRun.code, 0, 'the facts script ran in the peer namespace', { stderr: peerRun.stderr });
  t.equal((JSON.parse(peerRun.stdout) as { defaultRoute: unknown }).defaultRoute, null, 'no default route → null');

  await net.destroy();
  t.notOk(
    listNamespaces().some((name) => name === host || name === peer),
    'after destroy() the namespaces are gone from `ip netns list`',
  );
  t.same(rootNamespaceLinks(), rootLinksBefore, "the root namespace's interfaces are unchanged");
});

// Two cases systeminformation alone gets wrong; src/core/network-facts.ts covers both.
t.test('createSystemNetworkFacts: an address-less NIC and a split default route', { skip: netnsUnavailableReason() }, async (t) => {
  const net = createTestNetwork(t, { name: 'gaps' });
  const host = await net.ns('host');
  const peer = await net.ns('peer');
  await net.link({ ns: host, ifname: 'uect0', cidr: '10.77.0.5/24' }, { ns: peer, ifname: 'uect1' });
  await net.link({ ns: host, ifname: 'uect2', cidr: '10.88.0.5/24' }, { ns: peer, ifname: 'uect3' });
  await net.waitOperstate(host, 'uect0', 'up');
  await net.waitOperstate(host, 'uect2', 'up');
  // A NIC not configured yet: down, no address (say, the one about to serve DHCP).
  await net.bridge(host, 'uectbr0');
  // The split default route a VPN installs: 0/1 and 128/1 win over the default route.
  await net.ip(host, ['route', 'add', 'default', 'via', '10.77.0.1']);
  await net.ip(host, ['route', 'add', '0.0.0.0/1', 'via', '10.88.0.1']);
  await net.ip(host, ['route', 'add', '128.0.0.0/1', 'via', '10.88.0.1']);

  const run = await net.exec(host, PRINT_FACTS_ARGV, { cwd: ROOT });
  t.equal(run.code, 0, 'the facts script ran', { stderr: run.stderr });
  const out = JSON.parse(run.stdout) as { interfaces: InterfaceFact[]; defaultRoute: DefaultRoute | null };
  t.ok(
    out.interfaces.some((i) => i.name === 'uectbr0'),
    'an interface with no address is listed (os.networkInterfaces() omits it)',
    { found: out.interfaces.map((i) => i.name) },
  );
  t.same(out.defaultRoute, { interface: 'uect0', gateway: '10.77.0.1' }, 'interface and gateway come from the same (default) route');
});

t.test('defaultRouteFromProcNetRoute: lowest metric default with a gateway; none without', async (t) => {
  const header = 'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n';
  const text =
    header +
    'eth1\t00000000\t01004D0A\t0003\t0\t0\t200\t00000000\t0\t0\t0\n' +
    'eth0\t00000000\t010000C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n' +
    'eth0\t000000C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n';
  t.same(defaultRouteFromProcNetRoute(text), { interface: 'eth0', gateway: '192.0.0.1' });
  t.equal(defaultRouteFromProcNetRoute(header + 'eth0\t000000C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n'), null);
});

t.test('addressesFromIpJson: every address of each family, prefixes kept', async (t) => {
  const text = JSON.stringify([
    { ifname: 'br0', addr_info: [{ family: 'inet', local: '10.0.0.1', prefixlen: 24 }, { family: 'inet', local: '10.0.1.1', prefixlen: 16 }, { family: 'inet6', local: 'fd00::1', prefixlen: 64 }] },
    { ifname: 'tap0', addr_info: [] },
    { addr_info: [{ family: 'inet', local: '1.2.3.4', prefixlen: 8 }] },
  ]);
  const map = addressesFromIpJson(text);
  t.same(map.get('br0'), { ipv4: [{ address: '10.0.0.1', prefix: 24 }, { address: '10.0.1.1', prefix: 16 }], ipv6: [{ address: 'fd00::1', prefix: 64 }] });
  t.same(map.get('tap0'), { ipv4: [], ipv6: [] });
  t.equal(map.size, 2, 'records without a name are skipped');
});

t.test('createSystemNetworkFacts: a bridge without carrier keeps its addresses', { skip: netnsUnavailableReason() }, async (t) => {
  const net = createTestNetwork(t, { name: 'nocarrier' });
  const host = await net.ns('host');
  await net.bridge(host, 'br0');
  await net.tap(host, 'tap0');
  await net.attach(host, 'tap0', 'br0');
  await net.addr(host, 'br0', '10.78.0.1/24');
  await net.addr(host, 'br0', '10.78.1.1/24');
  await net.up(host, 'tap0');
  await net.up(host, 'br0');
  const run = await net.exec(host, PRINT_FACTS_ARGV, { cwd: ROOT });
  t.equal(run.code, 0, 'the facts script ran', { stderr: run.stderr });
  const out = JSON.parse(run.stdout) as { interfaces: InterfaceFact[] };
  // Node's os.networkInterfaces() (under systeminformation) skips interfaces that are not RUNNING.
  t.same(
    out.interfaces.find((i) => i.name === 'br0')?.ipv4,
    [{ address: '10.78.0.1', prefix: 24 }, { address: '10.78.1.1', prefix: 24 }],
    'both addresses of a bridge whose only port has no carrier',
  );
});
