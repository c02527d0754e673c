/**
 * Node applies (applyNodeChanges) against a real dnsmasq in throw-away network namespaces
 * (nothing reaches the machine's network), with a real DHCP client (busybox udhcpc):
 * - an added node's reservation is served with no signal (dnsmasq reads new hosts.d files by
 *   inotify);
 * - a changed reservation is served after the SIGHUP the apply sends, and a removed one is not
 *   served any more;
 * - why the SIGHUP: without it dnsmasq keeps serving a removed (or replaced) reservation
 *   (dnsmasq(8), --dhcp-hostsdir: "host records are only added dynamically").
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { main, type Io } from '../../../src/cli';
import { applyComponents, applyNodeChanges, type Session } from '../../../src/configurator/command';
import { loadComponents, mergeSchemas } from '../../../src/configurator/component';
import { createNode, type Node } from '../../../src/contract/node';
import { SILENT_LOGGER } from '../../../src/core/log';
import { staticNetworkFacts } from '../../../src/core/network-facts';
import type { Paths } from '../../../src/core/paths';
import { NO_SERVICE_CONTROL, createSysvControl } from '../../../src/core/services';
import type { NodeStore } from '../../../src/region/node-store';
import { createTestNetwork, netnsUnavailableReason, type TestNetwork } from '../../helpers/netns';
import { REPO_ROOT, scratchRoot } from '../../helpers/scratch';
import { DHCPD_PATHS } from '../../../packages/dhcpd/render';

const skip = netnsUnavailableReason();
process.env.UEC_PROVISIONING_TEMPLATES = path.join(REPO_ROOT, 'templates');
const SERVER_MAC = '52:54:00:45:00:01';
const FACTS = staticNetworkFacts([{ name: 'prov0', mac: SERVER_MAC, up: true, loopback: false, virtual: true, ipv4: [{ address: '10.45.0.1', prefix: 24 }], ipv6: [] }], null);
const COMPONENTS = loadComponents().filter((c) => ['common', 'dhcpd'].includes(c.name));

const UDHCPC_SCRIPT = '#!/bin/sh\n[ "$1" = bound ] && echo "BOUND ip=$ip"\nexit 0\n';

/** The address one DHCP exchange (busybox udhcpc, lease released after) gets, or ''. */
async function dhcpAddress(net: TestNetwork, ns: string, script: string): Promise<string> {
  const r = await net.exec(ns, ['busybox', 'udhcpc', '-i', 'c0', '-n', '-q', '-R', '-f', '-t', '4', '-T', '1', '-s', script], { timeoutMs: 30000 });
  return /BOUND ip=(\S*)/.exec(r.stdout)?.[1] ?? '';
}

function sessionFor(paths: Paths, nodes: () => Node[]): Session {
  const store = { list: async () => structuredClone(nodes()) } as unknown as NodeStore;
  const io: Io = { stdout: () => undefined, stderr: () => undefined, env: {} };
  return { io, paths, log: SILENT_LOGGER, json: false, components: COMPONENTS, schema: mergeSchemas(COMPONENTS), network: () => FACTS, nodeStore: () => store };
}

function makeNode(hostname: string, mac: string, ipv4: string, systemId: string): Node {
  return createNode({ hostname, macs: [mac], ipv4 }, new Date('2026-01-01T00:00:00Z'), { systemId, token: 'x'.repeat(32) });
}

t.test('node applies against a real dnsmasq: added, changed and removed reservations', { skip }, async (t) => {
  const paths = scratchRoot(t);
  const script = path.join(paths.root, 'udhcpc.sh');
  fs.writeFileSync(script, UDHCPC_SCRIPT, { mode: 0o755 });
  const io: Io = { stdout: () => undefined, stderr: () => undefined, env: { UEC_PROVISIONING_SERVICE_CONTROL: 'none' } };
  const set = ['config', 'set', 'dhcp.mode=full', 'dhcp.interface=prov0', 'server.interface=prov0', 'dhcp.range_start=10.45.0.100', 'dhcp.range_end=10.45.0.150', 'dhcp.dns_servers=10.45.0.53', 'dhcp.ping_check=false'];
  t.equal(await main(['--root', paths.root, ...set], io, { network: FACTS }), 0);
  let nodes: Node[] = [];
  await applyComponents(sessionFor(paths, () => nodes), ['dhcpd']);

  const net = createTestNetwork(t, { name: 'nodeapply' });
  const srv = await net.ns('srv');
  const cl = await net.ns('cli');
  await net.link({ ns: srv, ifname: 'prov0', mac: SERVER_MAC, cidr: '10.45.0.1/24' }, { ns: cl, ifname: 'c0' });
  const dnsmasq = net.spawn(srv, ['dnsmasq', '--keep-in-foreground', '--log-facility=-', `--conf-file=${paths.resolve(DHCPD_PATHS.configFile)}`]);
  await dnsmasq.waitForOutput(/DHCP, IP range 10\.45\.0\.100/);
  const pidFile = paths.resolve(DHCPD_PATHS.pidFile);
  for (let i = 0; i < 200 && !fs.existsSync(pidFile); i++) await new Promise((r) => setTimeout(r, 50));
  const pid = fs.readFileSync(pidFile, 'utf8').trim();
  const session = sessionFor(paths, () => {
    throw new Error('a node apply read every node');
  });
  const sysv = createSysvControl(paths);
  const leaseFor = async (mac: string) => {
    await net.mac(cl, 'c0', mac);
    return dhcpAddress(net, cl, script);
  };
  const logged = () => dnsmasq.stdout() + dnsmasq.stderr();
  const reads = () => (logged().match(/read \S*hosts\.d\//g) ?? []).length;

  // Added: served without a signal.
  const alpha = makeNode('alpha', '52:54:00:45:aa:01', '10.45.0.21', 'node-alpha1');
  const bravo = makeNode('bravo', '52:54:00:45:aa:02', '10.45.0.22', 'node-bravo1');
  nodes = [alpha, bravo];
  const before = reads();
  const added = await applyNodeChanges(session, [{ systemId: alpha.systemId, node: alpha }, { systemId: bravo.systemId, node: bravo }], { services: sysv });
  t.same(added.map((r) => [r.written.length, r.reloaded]), [[2, []]], 'two files written, nothing reloaded');
  await dnsmasq.waitForOutput(/read \S*hosts\.d\/node-bravo1/);
  t.ok(reads() >= before + 2, 'dnsmasq read both by inotify');
  t.equal(await leaseFor(alpha.macs[0]!), '10.45.0.21', 'alpha served its reservation');
  t.equal(await leaseFor(bravo.macs[0]!), '10.45.0.22', 'bravo served its reservation');
  t.notMatch(logged(), /SIGHUP|cleared cache/, 'no signal so far');

  // Changed: a new address, served after the apply's SIGHUP.
  const alpha2 = { ...alpha, ipv4: '10.45.0.31' };
  const changed = await applyNodeChanges(session, [{ systemId: alpha.systemId, node: alpha2 }], { services: sysv });
  t.same(changed.map((r) => [r.written, r.reloaded]), [[['/var/lib/uec-provisioning/dhcpd/hosts.d/node-alpha1'], ['uec-provisioning-dhcpd']]], 'one file, SIGHUP');
  await dnsmasq.waitForOutput(/read \S*hosts\.d\/node-bravo1[\s\S]*read \S*hosts\.d\/node-bravo1/);
  t.equal(await leaseFor(alpha.macs[0]!), '10.45.0.31', 'the changed reservation is served');

  // Removed: not served any more after the apply's SIGHUP.
  const removed = await applyNodeChanges(session, [{ systemId: bravo.systemId, node: null }], { services: sysv });
  t.same(removed.map((r) => [r.removed, r.reloaded]), [[['/var/lib/uec-provisioning/dhcpd/hosts.d/node-bravo1'], ['uec-provisioning-dhcpd']]]);
  await dnsmasq.waitForOutput(/read \S*hosts\.d\/node-alpha1[\s\S]*read \S*hosts\.d\/node-alpha1[\s\S]*read \S*hosts\.d\/node-alpha1/);
  t.match(await leaseFor(bravo.macs[0]!), /^10\.45\.0\.(1[0-4]\d|150)$/, 'bravo now gets a pool address');
  t.equal(fs.readFileSync(pidFile, 'utf8').trim(), pid, 'the same dnsmasq all along: signalled, never restarted');

  // Why the signal: without it dnsmasq keeps a removed reservation.
  const charlie = makeNode('charlie', '52:54:00:45:aa:03', '10.45.0.23', 'node-charl1');
  await applyNodeChanges(session, [{ systemId: charlie.systemId, node: charlie }], { services: sysv });
  await dnsmasq.waitForOutput(/read \S*hosts\.d\/node-charl1/);
  t.equal(await leaseFor(charlie.macs[0]!), '10.45.0.23');
  const unsignalled = await applyNodeChanges(session, [{ systemId: charlie.systemId, node: null }], { services: NO_SERVICE_CONTROL });
  t.same(unsignalled.map((r) => r.removed.length), [1], 'its file is gone');
  t.equal(await leaseFor(charlie.macs[0]!), '10.45.0.23', 'yet with no SIGHUP dnsmasq still serves it');
});
