/**
 * `nodes why` end to end: the rendered DHCP and TFTP configs under real dnsmasq processes,
 * `uec-provisioning serve`, and real clients (busybox udhcpc and tftp, curl) inside throw-away
 * network namespaces (nothing reaches the machine's network). Each failure is provoked for
 * real and `nodes why` must name it from what dnsmasq logged and the node's timeline:
 * (a) a DISCOVER with no address available (the one-address pool taken by another machine),
 * (b) a MAC dnsmasq ignores (a dhcp-host "ignore" line), (c) the loader fetched over TFTP and
 * then silence, (d) the preseed fetched and no installing call-back; and a MAC never seen, and
 * the unknown MAC that took the pool.
 *
 * "Now" is given with --at (the verdicts' thresholds are minutes): no wall-clock asserts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { main, type Io } from '../../src/cli';
import { staticNetworkFacts } from '../../src/core/network-facts';
import { DHCPD_PATHS } from '../../packages/dhcpd/render';
import { installLoaders } from '../../packages/tftpd/loaders';
import { createTestNetwork, netnsUnavailableReason, type TestNetwork } from '../helpers/netns';
import { REPO_ROOT, put, scratchRoot } from '../helpers/scratch';

const skip = netnsUnavailableReason();
const SHIPPED_TEMPLATES = path.join(REPO_ROOT, 'templates');
process.env.UEC_PROVISIONING_TEMPLATES = SHIPPED_TEMPLATES;
const SERVER = '10.44.0.1';
const SERVER_MAC = '52:54:00:44:00:01';
const FACTS = staticNetworkFacts(
  [{ name: 'prov0', mac: SERVER_MAC, up: true, loopback: false, virtual: true, ipv4: [{ address: SERVER, prefix: 24 }], ipv6: [] }],
  null,
);
const MAC = { alpha: '52:54:00:aa:bb:01', bravo: '52:54:00:aa:bb:02', delta: '52:54:00:aa:bb:04', charlie: '52:54:00:aa:bb:05', echo: '52:54:00:aa:bb:06', stranger: '52:54:00:aa:bb:0f' };
const DIST_CLI = path.join(REPO_ROOT, 'dist/src/cli.js');
const UDHCPC_SCRIPT = '#!/bin/sh\n[ "$1" = bound ] && echo "BOUND ip=$ip boot_file=$boot_file"\nexit 0\n';

async function cli(root: string, args: string[]) {
  let stdout = '';
  let stderr = '';
  const io: Io = { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), env: { UEC_PROVISIONING_SERVICE_CONTROL: 'sysv' } };
  const code = await main(['--root', root, ...args], io, { network: FACTS });
  return { code, stdout, stderr };
}

async function waitFor(check: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

t.test('nodes why names each failure a real client provokes', { skip, timeout: 240_000 }, async (t) => {
  const paths = scratchRoot(t);
  const root = paths.root;
  const script = put(paths, '/udhcpc.sh', UDHCPC_SCRIPT, 0o755);
  const dhcpLog = path.join(root, 'dhcp.log');
  const tftpLog = path.join(root, 'tftp.log');
  const net: TestNetwork = createTestNetwork(t, { name: 'why' });
  const srv = await net.ns('srv');
  const cl = await net.ns('cli');
  await net.link({ ns: srv, ifname: 'prov0', mac: SERVER_MAC, cidr: `${SERVER}/24` }, { ns: cl, ifname: 'c0' });

  const ok = async (args: string[]) => {
    const r = await cli(root, args);
    t.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    return r;
  };
  // A pool of one address, so a second machine without a reservation gets none.
  await ok(['dhcp', 'set-mode', 'full', '--interface', 'prov0', '--range', '10.44.0.100-10.44.0.100', '--force']);
  await ok(['config', 'set', 'dhcp.dns_servers=10.44.0.53', 'dhcp.ping_check=false', 'provisioning.context_cache_seconds=0']);
  await ok(['apply', 'dhcpd', 'tftpd']);
  await installLoaders({ paths, secureBoot: false });
  const ids: Record<string, string> = {};
  for (const [name, extra] of [['alpha', ['--ipv4', '10.44.0.42']], ['bravo', []], ['charlie', ['--no-apply']], ['delta', ['--ipv4', '10.44.0.43']], ['echo', []]] as const) {
    ids[name] = (await ok(['nodes', 'add', name, '--mac', MAC[name], ...extra])).stdout.trim();
  }
  await ok(['nodes', 'deploy', 'alpha', 'delta', 'echo']);
  // The admin tells dnsmasq to ignore charlie (a dhcp-host line of its own in hosts.d).
  put(paths, `${DHCPD_PATHS.hostsDir}/zz-ignore-charlie`, `${MAC.charlie},ignore\n`);

  const dhcp = net.spawn(srv, ['dnsmasq', '--keep-in-foreground', `--log-facility=${dhcpLog}`, `--conf-file=${paths.resolve(DHCPD_PATHS.configFile)}`]);
  const tftp = net.spawn(srv, ['dnsmasq', '--keep-in-foreground', `--log-facility=${tftpLog}`, `--conf-file=${paths.resolve('/etc/uec-provisioning/dnsmasq-tftpd.conf')}`]);
  fs.mkdirSync(paths.resolve('/run/uec-provisioning-tftpd'), { recursive: true });
  const logText = () => (fs.existsSync(dhcpLog) ? fs.readFileSync(dhcpLog, 'utf8') : '') + (fs.existsSync(tftpLog) ? fs.readFileSync(tftpLog, 'utf8') : '');
  await waitFor(() => /DHCP, IP range 10\.44\.0\.100/.test(logText()) && /TFTP root is/.test(logText()), 'both dnsmasq instances');

  const dhcpClient = async (mac: string, extra: string[] = []) => {
    await net.mac(cl, 'c0', mac);
    const r = await net.exec(cl, ['busybox', 'udhcpc', '-i', 'c0', '-n', '-q', '-f', '-t', '3', '-T', '1', '-s', script, ...extra], { timeoutMs: 30_000 });
    return /BOUND ip=(\S*)/.exec(r.stdout)?.[1] ?? '';
  };
  // The stranger (no node) takes the only pool address and keeps it (no release).
  t.equal(await dhcpClient(MAC.stranger), '10.44.0.100', 'the stranger takes the pool');
  t.equal(await dhcpClient(MAC.bravo, ['-x', '0x5d:0000']), '', 'bravo: no address');
  t.equal(await dhcpClient(MAC.charlie, ['-x', '0x5d:0000']), '', 'charlie: ignored');
  t.equal(await dhcpClient(MAC.alpha, ['-x', '0x5d:0000', '-V', 'PXEClient:Arch:00000:UNDI:002001']), '10.44.0.42', 'alpha: its reservation');
  await net.addr(cl, 'c0', '10.44.0.42/24');
  const got = await net.exec(cl, ['busybox', 'tftp', '-g', '-r', 'undionly.kpxe', '-l', path.join(root, 'got.kpxe'), SERVER], { timeoutMs: 30_000 });
  t.equal(got.code, 0, `alpha fetched its loader (${got.stderr.trim()})`);
  await net.ip(cl, ['addr', 'flush', 'dev', 'c0']);
  t.equal(await dhcpClient(MAC.delta, ['-x', '0x5d:0000']), '10.44.0.43', 'delta: its reservation');
  await net.addr(cl, 'c0', '10.44.0.43/24');
  await waitFor(() => /sent \S+undionly\.kpxe to 10\.44\.0\.42/.test(logText()) && /DHCPACK\(prov0\) 10\.44\.0\.43/.test(logText()) && (logText().match(/ignored/g) ?? []).length >= 3, 'the log lines');

  // serve in the server namespace; delta fetches its preseed and then says nothing.
  const cliArgs = fs.existsSync(DIST_CLI) ? [DIST_CLI] : ['-r', require.resolve('ts-node/register/transpile-only'), path.join(REPO_ROOT, 'src/cli.ts')];
  const serve = net.spawn(srv, [process.execPath, ...cliArgs, 'serve', '--root', root, '--port', '5248', '--listen', SERVER, '--json', '--no-apply'], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH, UEC_PROVISIONING_TEMPLATES: SHIPPED_TEMPLATES },
  });
  await serve.waitForOutput(/"port":5248/, 60_000);
  const fetch = async (url: string) => {
    const r = await net.exec(cl, ['curl', '-s', '--max-time', '20', '-w', '\n%{http_code}', url], { timeoutMs: 30_000 });
    const lines = r.stdout.split('\n');
    return { status: Number(lines.pop()), body: lines.join('\n') };
  };
  const preseed = await fetch(`http://${SERVER}:5248/preseed/${ids.delta}`);
  t.equal(preseed.status, 200, 'delta fetched its preseed');
  const preseedBody = preseed.body;

  const later = new Date(Date.now() + 20 * 60_000).toISOString();
  const why = async (node: string, at = later) => {
    const r = await cli(root, ['nodes', 'why', node, '--log', dhcpLog, '--log', tftpLog, '--at', at, '--json']);
    t.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as { verdict: { code: string; summary: string; hint: string }; trace: { source: string; what: string }[]; unknownMacs: number };
  };

  await t.test('(a) a DISCOVER with no address available', async (t) => {
    const r = await why('bravo');
    t.equal(r.verdict.code, 'dhcp-no-offer');
    t.match(r.verdict.summary, /no offer: no address available/);
    t.ok(r.trace.some((e) => e.source === 'dhcp' && /DHCPDISCOVER\(prov0\) no address available \(52:54:00:aa:bb:02\)/.test(e.what)), 'the trace shows the DISCOVERs');
    t.equal(r.unknownMacs, 1, 'the stranger is counted');
  });

  await t.test('(b) a MAC dnsmasq ignores', async (t) => {
    const r = await why(MAC.charlie);
    t.equal(r.verdict.code, 'dhcp-ignored');
    t.match(r.verdict.hint, /ignore/);
  });

  await t.test('(c) the loader fetched over TFTP, then silence', async (t) => {
    const r = await why('alpha');
    t.equal(r.verdict.code, 'loader-refused');
    t.match(r.verdict.summary, /loader undionly\.kpxe sent at/);
    t.ok(r.trace.some((e) => e.source === 'tftp' && /undionly\.kpxe \(10\.44\.0\.42\)/.test(e.what)), 'the TFTP line is tied to alpha by its leased address');
    const text = await cli(root, ['nodes', 'why', 'alpha', '--log', dhcpLog, '--log', tftpLog, '--at', later]);
    t.match(text.stdout, /^verdict: loader-refused: /m, 'plain text too');
    t.match(text.stdout, /1 MAC\(s\) no node has were seen on the wire/);
  });

  await t.test('(d) the preseed fetched, no installing call-back; then installing', async (t) => {
    const r = await why('delta');
    t.equal(r.verdict.code, 'preseed-no-installing');
    t.match(r.verdict.hint, /early_command/);
    t.ok(r.trace.some((e) => e.source === 'timeline' && /^preseed: /.test(e.what)));
    // What early_command would have done: the installing call-back with the URL in the preseed.
    const installing = new RegExp(`http://${SERVER.replace(/\./g, '\\.')}:5248/metadata/latest/${ids.delta}/status/installing\\?token=[^'\\s]+`).exec(preseedBody)?.[0];
    t.ok(installing, 'the preseed carries the installing URL');
    const called = await fetch(installing!);
    t.equal(called.status, 200, `installing call-back ${installing} → ${called.body}`);
    const after = await why('delta', new Date(Date.now() + 60_000).toISOString());
    t.equal(after.verdict.code, 'in-progress');
    t.match(after.verdict.summary, /^installing since /);
  });

  await t.test('a MAC never seen, and the unknown MAC on the wire', async (t) => {
    t.equal((await why('echo')).verdict.code, 'no-dhcp');
    const r = await cli(root, ['nodes', 'why', '--unknown', '--log', dhcpLog, '--log', tftpLog, '--json']);
    t.equal(r.code, 0, r.stderr);
    t.same((JSON.parse(r.stdout) as { unknownMacs: { mac: string }[] }).unknownMacs.map((u) => u.mac), [MAC.stranger]);
  });

  await t.test('bad input: one line naming the culprit', async (t) => {
    for (const [args, message] of [
      [['nodes', 'why', 'nosuch'], /no node "nosuch"/],
      [['nodes', 'why', 'alpha', '--at', 'yesterday'], /--at "yesterday" is not an ISO 8601 time/],
      [['nodes', 'why', 'alpha', '--log', '/nonexistent.log'], /cannot read the dnsmasq log \/nonexistent\.log/],
      [['nodes', 'why'], /needs one NODE/],
    ] as const) {
      const r = await cli(root, [...args]);
      t.not(r.code, 0, args.join(' '));
      t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
      t.match(r.stderr, message);
    }
  });

  await serve.stop();
  await dhcp.stop();
  await tftp.stop();
});
