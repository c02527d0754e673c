/**
 * Pure model and render: golden files for off, proxy and full with each loader choice, each
 * rendered config accepted by the real `dnsmasq --test`; the proposed range; bad input gives
 * one error naming the culprit.
 */
import t from 'tap';
import { UecError } from '../../../src/core/errors';
import { templateDirs } from '../../../src/core/template';
import { createPaths } from '../../../src/core/paths';
import { validateContent } from '../../../src/core/validators';
import { loadDhcpTemplates, locations } from '../../../packages/dhcpd/index';
import { parseRange, proposeRange, subnetOf } from '../../../packages/dhcpd/ipv4';
import { leaseMax, parseResolvConf, selectDhcpModel, type ModelInput } from '../../../packages/dhcpd/model';
import { renderDhcpd, renderDhcpdHosts } from '../../../packages/dhcpd/render';
import { REPO_ROOT } from '../../helpers/scratch';
import { FIXTURES, INTERFACES, ROUTE, node, settings } from './helpers';
import { checkGolden } from '../../helpers/golden';
import * as path from 'node:path';

const ROOT = createPaths('/');
const TEMPLATES = templateDirs(ROOT, path.join(REPO_ROOT, 'templates'));

function input(over: Partial<ModelInput> = {}): ModelInput {
  return {
    settings: settings(),
    interfaces: INTERFACES,
    defaultRoute: ROUTE,
    resolvers: [],
    nodes: [node('alpha', ['52:54:00:aa:00:01', '52:54:00:aa:00:02'], '10.44.0.20'), node('bravo', ['52:54:00:aa:00:03'])],
    loadersPresent: new Set(),
    locations: locations(ROOT),
    ...over,
  };
}

const CASES: [string, Partial<ModelInput>][] = [
  ['off', { settings: settings({ mode: 'off' }) }],
  ['no-interface', { settings: settings({ mode: 'full', interface: '' }) }],
  ['proxy-bios-ipxe', { settings: settings({ mode: 'proxy' }) }],
  ['proxy-pxelinux-shim', { settings: settings({ mode: 'proxy', biosLoader: 'pxelinux', uefiLoader: 'shim' }) }],
  ['full-ipxe', {}],
  ['full-pxelinux-shim', { settings: settings({ biosLoader: 'pxelinux', uefiLoader: 'shim', rangeStart: '10.44.0.100', rangeEnd: '10.44.0.199', router: '10.44.0.254', pingCheck: false, logDhcp: true }) }],
  ['full-arm64', { loadersPresent: new Set(['ipxe-arm64.efi']), resolvers: ['192.0.2.53'], settings: settings({ dnsServers: '' }) }],
];

for (const [name, over] of CASES) {
  t.test(`golden: ${name}, accepted by dnsmasq --test`, async (t) => {
    const plans = renderDhcpd(selectDhcpModel(input(over)), await loadDhcpTemplates(TEMPLATES));
    checkGolden(t, FIXTURES, name, plans);
    for (const p of plans.filter((p) => p.validate === 'dnsmasq')) await validateContent('dnsmasq', p.path, p.content);
    t.equal(renderDhcpd(selectDhcpModel(input(over)), await loadDhcpTemplates(TEMPLATES)).map((p) => p.content).join(''), plans.map((p) => p.content).join(''), 'same input, same bytes');
  });
}

t.test('the boot file follows the client: tags and loader names', async (t) => {
  const templates = await loadDhcpTemplates(TEMPLATES);
  const full = renderDhcpd(selectDhcpModel(input()), templates)[0]?.content ?? '';
  t.match(full, /^dhcp-boot=tag:ipxe,http:\/\/10\.44\.0\.1:5248\/boot\/ipxe$/m, 'iPXE → the bootstrap script URL');
  t.match(full, /^dhcp-boot=tag:!ipxe,tag:bios,undionly\.kpxe,,10\.44\.0\.1$/m);
  t.match(full, /^dhcp-boot=tag:!ipxe,tag:efi64,ipxe\.efi,,10\.44\.0\.1$/m);
  t.notMatch(full, /tag:efiarm64/, 'no arm64 boot line without an arm64 loader');
  t.notMatch(full, /^no-ping/m, 'ping check on by default');
  const shim = renderDhcpd(selectDhcpModel(input({ settings: settings({ biosLoader: 'pxelinux', uefiLoader: 'shim' }), loadersPresent: new Set(['shimaa64.efi']) })), templates)[0]?.content ?? '';
  t.match(shim, /tag:bios,pxelinux\.0,/);
  t.match(shim, /tag:efi64,shimx64\.efi,/);
  t.match(shim, /tag:efiarm64,shimaa64\.efi,/);
  t.match(shim, /^interface=prov0$/m);
  t.match(shim, /^port=0$/m);
  t.match(shim, /^dhcp-option=tag:uec,option:router$/m, 'the default route is on another interface: no router sent');
});

t.test('reservations: one file per node, no address → name only', async (t) => {
  const plans = renderDhcpd(selectDhcpModel(input()), await loadDhcpTemplates(TEMPLATES));
  const hosts = plans.filter((p) => p.path.includes('/hosts.d/'));
  t.same(hosts.map((p) => p.content.split('\n')[1]), ['52:54:00:aa:00:01,52:54:00:aa:00:02,10.44.0.20,alpha', '52:54:00:aa:00:03,bravo']);
  t.ok(hosts.every((p) => p.services?.[0]?.picksUpNewFiles && !p.services[0].restart));
  t.ok(plans[0]?.services?.[0]?.restart, 'the main config restarts the instance');
  const proxy = renderDhcpd(selectDhcpModel(input({ settings: settings({ mode: 'proxy' }) })), await loadDhcpTemplates(TEMPLATES));
  t.equal(proxy.length, 1, 'proxy mode gives no addresses, so no reservations');
});

t.test('proposed range: upper half of the subnet, without gateway and own addresses', async (t) => {
  t.same(proposeRange(subnetOf('10.44.0.1', 24), ['10.44.0.1']), { start: '10.44.0.128', end: '10.44.0.254' });
  t.same(proposeRange(subnetOf('10.44.0.1', 24), ['10.44.0.1', '10.44.0.254']), { start: '10.44.0.128', end: '10.44.0.253' });
  t.same(proposeRange(subnetOf('10.44.0.200', 24), ['10.44.0.200', '10.44.0.1']), { start: '10.44.0.128', end: '10.44.0.199' }, 'longest free run');
  t.same(proposeRange(subnetOf('172.16.5.9', 16), ['172.16.5.9', '172.16.0.1']), { start: '172.16.128.0', end: '172.16.255.254' });
  t.same(proposeRange(subnetOf('10.0.0.1', 29), ['10.0.0.1']), { start: '10.0.0.2', end: '10.0.0.6' });
  t.same(proposeRange(subnetOf('10.0.0.1', 30), ['10.0.0.1']), null, '/30: one address left, no range');
  t.same(proposeRange(subnetOf('10.0.0.1', 31), []), null);
  t.same(proposeRange(subnetOf('10.0.0.1', 32), []), null);
  t.same(parseRange('10.0.0.5 - 10.0.0.9'), { start: '10.0.0.5', end: '10.0.0.9' });
  t.equal(parseRange('10.0.0.5'), null);
  t.same(parseResolvConf('nameserver 127.0.0.53\nnameserver 192.0.2.53\n# x\nnameserver 192.0.2.53\nnameserver ::1\n'), ['192.0.2.53']);
});

const BAD: [string, Partial<ModelInput>, string, RegExp][] = [
  ['interface that does not exist', { settings: settings({ interface: 'nosuch0' }) }, 'CONFIG_INVALID_VALUE', /dhcp\.interface "nosuch0" does not exist \(interfaces: eth0, prov0\)/],
  ['range outside the subnet', { settings: settings({ rangeStart: '10.44.0.100', rangeEnd: '10.45.0.10' }) }, 'CONFIG_INVALID_VALUE', /10\.45\.0\.10 is outside prov0's subnet 10\.44\.0\.0\/24/],
  ['range over the server address', { settings: settings({ rangeStart: '10.44.0.1', rangeEnd: '10.44.0.50' }) }, 'CONFIG_INVALID_VALUE', /contains this server's own address 10\.44\.0\.1/],
  ['range over the router', { settings: settings({ router: '10.44.0.254', rangeStart: '10.44.0.100', rangeEnd: '10.44.0.254' }) }, 'CONFIG_INVALID_VALUE', /contains the router 10\.44\.0\.254/],
  ['range over the broadcast address', { settings: settings({ rangeStart: '10.44.0.100', rangeEnd: '10.44.0.255' }) }, 'CONFIG_INVALID_VALUE', /10\.44\.0\.255 is the broadcast address/],
  ['range backwards', { settings: settings({ rangeStart: '10.44.0.100', rangeEnd: '10.44.0.50' }) }, 'CONFIG_INVALID_VALUE', /the start is after the end/],
  ['half a range', { settings: settings({ rangeStart: '10.44.0.100' }) }, 'CONFIG_INVALID_VALUE', /must both be set/],
  ['bad dns server', { settings: settings({ dnsServers: '10.0.0.1, nameserver' }) }, 'CONFIG_INVALID_VALUE', /dhcp\.dns_servers: "nameserver" is not an IPv4 address/],
  ['server.interface elsewhere', { settings: settings({ serverInterface: 'eth0' }) }, 'CONFIG_INVALID_VALUE', /set server\.interface=prov0/],
];

for (const [name, over, code, message] of BAD) {
  t.test(`bad input: ${name} → ${code}, one line`, async (t) => {
    let thrown: unknown;
    try {
      renderDhcpd(selectDhcpModel(input(over)), await loadDhcpTemplates(TEMPLATES));
    } catch (err) {
      thrown = err;
    }
    t.ok(thrown instanceof UecError, 'a UecError');
    t.equal((thrown as UecError).code, code);
    t.match((thrown as UecError).message, message);
    t.notMatch((thrown as UecError).message, /\n/);
  });
}

/** Node data that does not fit: that node is left out and reported, every other node reserved. */
const LEFT_OUT: [string, Partial<ModelInput>, RegExp][] = [
  ['malformed MAC', { nodes: [{ ...node('alpha', ['52:54:00:aa:00:01']), macs: ['52:54:00:aa:00:zz'] }] }, /node alpha \(node-alphax\): MAC "52:54:00:aa:00:zz" is not a MAC address/],
  ['MAC injection', { nodes: [{ ...node('alpha', ['52:54:00:aa:00:01']), macs: ['52:54:00:aa:00:01\ndhcp-range=1.2.3.4'] }] }, /MAC .* is not a MAC address/],
  ['duplicate MAC', { nodes: [node('alpha', ['52:54:00:aa:00:01']), node('bravo', ['52:54:00:AA:00:01'])] }, /node bravo \(node-bravox\): MAC 52:54:00:aa:00:01 is also given to node alpha/],
  ['bad hostname', { nodes: [{ ...node('alpha', ['52:54:00:aa:00:01']), hostname: 'al_pha,10.0.0.1' }] }, /hostname "al_pha,10\.0\.0\.1" label/],
  ['reservation outside the subnet', { nodes: [node('alpha', ['52:54:00:aa:00:01'], '10.99.0.5')] }, /address 10\.99\.0\.5 is not a host address of 10\.44\.0\.0\/24/],
  ['reservation on the server address', { nodes: [node('alpha', ['52:54:00:aa:00:01'], '10.44.0.1')] }, /address 10\.44\.0\.1 is this server's own address/],
];

for (const [name, over, message] of LEFT_OUT) {
  t.test(`a node left out: ${name}, reported in one line, the others reserved`, async (t) => {
    const good = node('charlie', ['52:54:00:aa:00:09'], '10.44.0.30');
    const model = selectDhcpModel(input({ nodes: [...(over.nodes ?? []), good] }));
    if (model.mode === 'off') throw new Error('DHCP off');
    t.equal(model.leftOut.length, 1, 'one node reported');
    t.match(model.leftOut[0], message);
    t.match(model.leftOut[0], /its DHCP reservation is left out until it is fixed/);
    t.notMatch(model.leftOut[0], /\n/, 'one line');
    t.ok(model.reservations.some((r) => r.systemId === good.systemId), 'the good node is reserved');
    const reported = /^node \S+ \(([^)]+)\)/.exec(model.leftOut[0]!)?.[1];
    t.ok(reported && model.reservations.every((r) => r.systemId !== reported), `the reported node (${reported}) is not`);
    const files = renderDhcpd(model, await loadDhcpTemplates(TEMPLATES));
    for (const p of files.filter((p) => p.validate === 'dnsmasq')) await validateContent('dnsmasq', p.path, p.content);
  });
}

t.test('the main config does not follow the number of nodes (a node added never restarts dnsmasq)', async (t) => {
  const wide = [{ ...INTERFACES[1]!, ipv4: [{ address: '10.44.0.1', prefix: 16 }] }];
  const templates = await loadDhcpTemplates(TEMPLATES);
  const config = (n: number) => {
    const nodes = Array.from({ length: n }, (_, i) => node(`h${i}`, [`52:54:00:bb:00:${i.toString(16).padStart(2, '0')}`], `10.44.1.${i + 1}`, `node-h${i}`));
    const plans = renderDhcpd(selectDhcpModel(input({ interfaces: wide, nodes })), templates);
    t.equal(plans.filter((p) => p.node === undefined).length, 1, 'one shared file, the main config');
    t.ok(plans.slice(1).every((p) => p.node === p.path.split('/').pop()), 'each reservation names its node');
    return plans[0]?.content ?? '';
  };
  const none = config(0);
  t.match(none, /^dhcp-lease-max=65534$/m, 'every host address of the /16');
  t.equal(config(5), none, 'five nodes: the same bytes');
  t.equal(leaseMax(subnetOf('10.44.0.1', 24)), 1000, "dnsmasq's default when the subnet is smaller");
});

t.test('reservations rendered alone are the full render\'s, byte for byte', async (t) => {
  const templates = await loadDhcpTemplates(TEMPLATES);
  const all = renderDhcpd(selectDhcpModel(input()), templates);
  const alone = renderDhcpdHosts(selectDhcpModel(input({ nodes: input().nodes.slice(1) })), templates);
  t.same(alone, all.filter((p) => p.node === 'node-bravox'));
  t.same(renderDhcpdHosts(selectDhcpModel(input({ settings: settings({ mode: 'proxy' }) })), templates), [], 'proxy mode: no reservations');
});
