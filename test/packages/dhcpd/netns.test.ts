/**
 * The rendered config under a real dnsmasq, inside throw-away network namespaces (nothing
 * reaches the machine's network): a node added is served its reservation without a restart,
 * a removed one is forgotten after the SIGHUP apply sends, boot files follow option 93 and
 * the iPXE user class, bad input changes nothing and leaves the running dnsmasq alone, and a
 * second apply changes nothing.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { main, type Io } from '../../../src/cli';
import { staticNetworkFacts } from '../../../src/core/network-facts';
import { createTestNetwork, netnsUnavailableReason, type TestNetwork } from '../../helpers/netns';
import { REPO_ROOT, scratchRoot, snapshotTree } from '../../helpers/scratch';
import { DHCPD_PATHS } from '../../../packages/dhcpd/render';

const skip = netnsUnavailableReason();
process.env.UEC_PROVISIONING_TEMPLATES = path.join(REPO_ROOT, 'templates');
const SERVER_MAC = '52:54:00:44:00:01';
const FACTS = staticNetworkFacts(
  [{ name: 'prov0', mac: SERVER_MAC, up: true, loopback: false, virtual: true, ipv4: [{ address: '10.44.0.1', prefix: 24 }], ipv6: [] }],
  null,
);

export const UDHCPC_SCRIPT = '#!/bin/sh\n[ "$1" = bound ] && echo "BOUND ip=$ip siaddr=$siaddr boot_file=$boot_file hostname=$hostname router=$router dns=$dns"\nexit 0\n';

export async function cli(root: string, args: string[]) {
  let stdout = '';
  let stderr = '';
  const io: Io = { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), env: { UEC_PROVISIONING_SERVICE_CONTROL: 'sysv'} };
  const code = await main(['--root', root, ...args], io, { network: FACTS });
  return { code, stdout, stderr };
}

/** One DHCP exchange from the client namespace with udhcpc; -R releases the lease after. */
export async function dhcpClient(net: TestNetwork, ns: string, ifname: string, script: string, extra: string[] = []) {
  const r = await net.exec(ns, ['busybox', 'udhcpc', '-i', ifname, '-n', '-q', '-R', '-f', '-t', '4', '-T', '1', '-s', script, ...extra], { timeoutMs: 30000 });
  const m = /BOUND ip=(\S*) siaddr=(\S*) boot_file=(\S*) hostname=(\S*) router=(\S*) dns=(\S*)/.exec(r.stdout);
  return m ? { ip: m[1], siaddr: m[2], bootFile: m[3], hostname: m[4], router: m[5], dns: m[6] } : { ip: '', stdout: r.stdout, stderr: r.stderr };
}

t.test('reservations, boot files and bad input against a real dnsmasq in a namespace', { skip }, async (t) => {
  const paths = scratchRoot(t);
  const root = paths.root;
  const script = path.join(root, 'udhcpc.sh');
  fs.writeFileSync(script, UDHCPC_SCRIPT, { mode: 0o755 });
  const net = createTestNetwork(t, { name: 'dhcpd' });
  const srv = await net.ns('srv');
  const cl = await net.ns('cli');
  await net.link({ ns: srv, ifname: 'prov0', mac: SERVER_MAC, cidr: '10.44.0.1/24' }, { ns: cl, ifname: 'c0' });

  const set = await cli(root, ['dhcp', 'set-mode', 'full', '--interface', 'prov0', '--range', '10.44.0.100-10.44.0.150', '--force']);
  t.equal(set.code, 0, set.stderr);
  t.equal((await cli(root, ['config', 'set', 'dhcp.dns_servers=10.44.0.53', 'dhcp.ping_check=false'])).code, 0);
  t.equal((await cli(root, ['apply', 'dhcpd'])).code, 0);
  const conf = paths.resolve(DHCPD_PATHS.configFile);
  const dnsmasq = net.spawn(srv, ['dnsmasq', '--keep-in-foreground', '--log-facility=-', `--conf-file=${conf}`]);
  await dnsmasq.waitForOutput(/DHCP, IP range 10\.44\.0\.100/);
  const pidFile = paths.resolve(DHCPD_PATHS.pidFile);
  await t.resolves(waitFor(() => fs.existsSync(pidFile)));
  const pid = fs.readFileSync(pidFile, 'utf8').trim();

  await t.test('second apply changes nothing, reloads nothing', async (t) => {
    const r = await cli(root, ['apply', 'dhcpd', '--json']);
    t.same(JSON.parse(r.stdout), [{ component: 'dhcpd', written: [], removed: [], reloaded: [] }]);
  });

  await t.test('a node added is served its reservation with no restart and no signal', async (t) => {
    const added = await cli(root, ['nodes', 'add', 'alpha', '--mac', '52:54:00:aa:bb:01', '--ipv4', '10.44.0.42']);
    t.equal(added.code, 0, added.stderr);
    t.match(added.stderr, /dhcpd: changed 1 file\(s\)\n/, 'one file, nothing reloaded');
    await dnsmasq.waitForOutput(/read .*hosts\.d\/node-/);
    await net.mac(cl, 'c0', '52:54:00:aa:bb:01');
    const lease = await dhcpClient(net, cl, 'c0', script, ['-x', '0x5d:0000']);
    t.same(lease, { ip: '10.44.0.42', siaddr: '10.44.0.1', bootFile: 'undionly.kpxe', hostname: 'alpha', router: '', dns: '10.44.0.53' });
    t.equal(fs.readFileSync(pidFile, 'utf8').trim(), pid, 'same dnsmasq process');
    t.notMatch(dnsmasq.stderr() + dnsmasq.stdout(), /exiting on receipt of SIGTERM|SIGHUP/);
  });

  await t.test('boot file by client architecture and iPXE', async (t) => {
    await net.mac(cl, 'c0', '52:54:00:aa:bb:09');
    t.equal((await dhcpClient(net, cl, 'c0', script, ['-x', '0x5d:0007'])).bootFile, 'ipxe.efi', 'UEFI x86-64 (7)');
    t.equal((await dhcpClient(net, cl, 'c0', script, ['-x', '0x5d:0009'])).bootFile, 'ipxe.efi', 'UEFI x86-64 (9)');
    t.equal((await dhcpClient(net, cl, 'c0', script, ['-x', '0x5d:0000', '-x', '0xaf:1101'])).bootFile, 'http://10.44.0.1:5248/boot/ipxe', 'iPXE (option 175)');
    t.equal((await dhcpClient(net, cl, 'c0', script, ['-x', '0x5d:000b'])).bootFile, '', 'arm64 without an arm64 loader: no boot file');
    t.equal((await dhcpClient(net, cl, 'c0', script)).bootFile, '', 'plain DHCP client: no boot file');
  });

  await t.test('bad input: one clear error, no file changed, dnsmasq untouched', async (t) => {
    const before = snapshotTree(root);
    const cases: [string[], number, RegExp][] = [
      [['nodes', 'add', 'bravo', '--mac', '52:54:00:aa:bb:01'], 9, /MAC 52:54:00:aa:bb:01 is already used by alpha/],
      [['nodes', 'add', 'bravo', '--mac', '52:54:00:aa:bb:zz'], 3, /MAC "52:54:00:aa:bb:zz"/],
      [['nodes', 'add', 'bra_vo', '--mac', '52:54:00:aa:bb:02'], 3, /hostname "bra_vo"/],
      [['dhcp', 'set-mode', 'full', '--range', '10.44.0.100-10.45.0.10', '--force'], 3, /10\.45\.0\.10 is outside prov0's subnet/],
      [['dhcp', 'set-mode', 'full', '--range', '10.44.0.1-10.44.0.50', '--force'], 3, /contains this server's own address 10\.44\.0\.1/],
      [['dhcp', 'set-mode', 'full', '--interface', 'nosuch0', '--force'], 3, /dhcp\.interface "nosuch0" does not exist/],
    ];
    for (const [args, code, message] of cases) {
      const r = await cli(root, args);
      t.equal(r.code, code, args.join(' '));
      t.match(r.stderr, message);
      t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    }
    t.same(snapshotTree(root), before, 'no file changed');
    t.equal(fs.readFileSync(pidFile, 'utf8').trim(), pid);
    await net.mac(cl, 'c0', '52:54:00:aa:bb:01');
    t.equal((await dhcpClient(net, cl, 'c0', script)).ip, '10.44.0.42', 'still serving');
  });

  await t.test('a node removed: SIGHUP, and its address is no longer reserved', async (t) => {
    const removed = await cli(root, ['nodes', 'remove', 'alpha']);
    t.equal(removed.code, 0, removed.stderr);
    t.match(removed.stderr, /dhcpd: changed 1 file\(s\), reloaded uec-provisioning-dhcpd/);
    await dnsmasq.waitForOutput(/read .*hosts\.d[\s\S]*read .*hosts\.d|SIGHUP|cleared cache/).catch(() => undefined);
    const lease = await dhcpClient(net, cl, 'c0', script);
    t.match(lease.ip, /^10\.44\.0\.(1[0-4]\d|150)$/, 'a pool address now');
    t.equal(fs.readFileSync(pidFile, 'utf8').trim(), pid, 'reloaded, not restarted');
  });
});

async function waitFor(check: () => boolean, timeoutMs = 10000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}
