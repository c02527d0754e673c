/**
 * `nodes why` end to end: the rendered DHCP and TFTP configs under real dnsmasq processes,
 * `uec-provisioning serve`, and real clients (busybox udhcpc and tftp, curl) inside throw-away
 * network namespaces (nothing reaches the machine's network). Each failure is provoked for
 * real and `nodes why` must name it from what dnsmasq logged and the node's timeline: a
 * DISCOVER with no address available (the one-address pool taken by another machine), a MAC
 * dnsmasq ignores (a dhcp-host "ignore" line), an address and nothing else, a loader that is
 * not there, the loader fetched over TFTP and then silence, pxelinux and its config but no
 * kernel, the boot script but no preseed, the preseed fetched and no installing call-back, a
 * MAC never seen, proxy mode with no other DHCP server; and the unknown MAC that took the pool.
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
const MAC = { alpha: '52:54:00:aa:bb:01', bravo: '52:54:00:aa:bb:02', delta: '52:54:00:aa:bb:04', charlie: '52:54:00:aa:bb:05', echo: '52:54:00:aa:bb:06', foxtrot: '52:54:00:aa:bb:07', golf: '52:54:00:aa:bb:08', hotel: '52:54:00:aa:bb:09', india: '52:54:00:aa:bb:0a', stranger: '52:54:00:aa:bb:0f' };
/** The nodes with a fixed address (the one-address pool is the stranger's). */
const FIXED = { alpha: '10.44.0.42', delta: '10.44.0.43', foxtrot: '10.44.0.44', golf: '10.44.0.45', hotel: '10.44.0.46', india: '10.44.0.47' };
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
  for (const [name, ipv4] of Object.entries(FIXED)) ids[name] = (await ok(['nodes', 'add', name, '--mac', MAC[name as keyof typeof FIXED], '--ipv4', ipv4])).stdout.trim();
  ids.bravo = (await ok(['nodes', 'add', 'bravo', '--mac', MAC.bravo])).stdout.trim();
  ids.charlie = (await ok(['nodes', 'add', 'charlie', '--mac', MAC.charlie, '--no-apply'])).stdout.trim();
  ids.echo = (await ok(['nodes', 'add', 'echo', '--mac', MAC.echo])).stdout.trim();
  await ok(['nodes', 'deploy', ...Object.keys(FIXED), 'bravo', 'echo']);
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
  /** One machine: DHCP with its MAC (it must get its fixed address), then `then` from that address. */
  const boot = async (name: keyof typeof FIXED, then: () => Promise<unknown> = async () => undefined) => {
    await net.ip(cl, ['addr', 'flush', 'dev', 'c0']);
    t.equal(await dhcpClient(MAC[name], ['-x', '0x5d:0000', '-V', 'PXEClient:Arch:00000:UNDI:002001']), FIXED[name], `${name}: its reservation`);
    await net.addr(cl, 'c0', `${FIXED[name]}/24`);
    await then();
  };
  const tftpGet = async (file: string) => net.exec(cl, ['busybox', 'tftp', '-g', '-r', file, '-l', path.join(root, 'got'), SERVER], { timeoutMs: 30_000 });
  // alpha: its loader, then silence. foxtrot: a loader that is not there. golf: an address
  // and nothing else. hotel: pxelinux and its config, then no kernel.
  await boot('alpha', async () => {
    const got = await tftpGet('undionly.kpxe');
    t.equal(got.code, 0, `alpha fetched its loader (${got.stderr.trim()})`);
  });
  await boot('foxtrot', async () => t.not((await tftpGet('shimx64.efi')).code, 0, 'foxtrot: shimx64.efi is not installed'));
  await boot('golf');
  await boot('hotel', async () => {
    t.equal((await tftpGet('pxelinux.0')).code, 0, 'hotel: pxelinux.0');
    t.equal((await tftpGet(`pxelinux.cfg/01-${MAC.hotel.replace(/:/g, '-')}`)).code, 0, 'hotel: its pxelinux file');
  });
  await boot('delta');
  await waitFor(
    () => /sent \S+undionly\.kpxe to 10\.44\.0\.42/.test(logText()) && /sent \S+pxelinux\.cfg\/01-52-54-00-aa-bb-09 to 10\.44\.0\.46/.test(logText()) && /DHCPACK\(prov0\) 10\.44\.0\.43/.test(logText()) && (logText().match(/ignored/g) ?? []).length >= 3,
    'the log lines',
  );

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
  // india: its install boot script over HTTP (as iPXE would fetch it), then nothing.
  await boot('india', async () => t.equal((await fetch(`http://${SERVER}:5248/boot/ipxe/node?mac=${MAC.india.replace(/:/g, '-')}`)).status, 200, 'india: its boot script'));
  // delta again, to ask for its call-back from its own address.
  await net.ip(cl, ['addr', 'flush', 'dev', 'c0']);
  await net.mac(cl, 'c0', MAC.delta);
  await net.addr(cl, 'c0', `${FIXED.delta}/24`);

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

  await t.test('the other stages: TFTP failure, no loader, no kernel, no preseed', async (t) => {
    const foxtrot = await why('foxtrot');
    t.equal(foxtrot.verdict.code, 'tftp-failed');
    t.match(foxtrot.verdict.summary, /not found: shimx64\.efi/);
    t.equal((await why('golf')).verdict.code, 'no-loader');
    const hotel = await why('hotel');
    t.equal(hotel.verdict.code, 'no-kernel');
    t.match(hotel.verdict.summary, /fetched pxelinux\.cfg\/01-52-54-00-aa-bb-09/);
    const india = await why('india');
    t.equal(india.verdict.code, 'no-preseed');
    t.ok(india.trace.some((e) => e.source === 'timeline' && /^netboot: /.test(e.what)), 'the boot script is on the timeline');
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

t.test('proxy mode: our PXE answer, no other DHCP server → proxy-no-boot', { skip, timeout: 120_000 }, async (t) => {
  const paths = scratchRoot(t);
  const root = paths.root;
  const script = put(paths, '/udhcpc.sh', UDHCPC_SCRIPT, 0o755);
  const dhcpLog = path.join(root, 'dhcp.log');
  const net = createTestNetwork(t, { name: 'whyp' });
  const srv = await net.ns('srv');
  const cl = await net.ns('cli');
  await net.link({ ns: srv, ifname: 'prov0', mac: SERVER_MAC, cidr: `${SERVER}/24` }, { ns: cl, ifname: 'c0', mac: MAC.alpha });
  for (const args of [['dhcp', 'set-mode', 'proxy', '--interface', 'prov0', '--force'], ['nodes', 'add', 'alpha', '--mac', MAC.alpha], ['nodes', 'deploy', 'alpha']]) {
    const r = await cli(root, args);
    t.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  }
  const dhcp = net.spawn(srv, ['dnsmasq', '--keep-in-foreground', `--log-facility=${dhcpLog}`, `--conf-file=${paths.resolve(DHCPD_PATHS.configFile)}`]);
  const logText = () => (fs.existsSync(dhcpLog) ? fs.readFileSync(dhcpLog, 'utf8') : '');
  await waitFor(() => /DHCP, proxy on subnet/.test(logText()), 'dnsmasq in proxy mode');
  // PXE firmware (vendor class PXEClient): dnsmasq answers with boot information only; no
  // other server gives an address, so the client gets none and never reaches TFTP.
  const r = await net.exec(cl, ['busybox', 'udhcpc', '-i', 'c0', '-n', '-q', '-f', '-t', '2', '-T', '1', '-s', script, '-x', '0x5d:0000', '-V', 'PXEClient:Arch:00000:UNDI:002001'], { timeoutMs: 30_000 });
  t.notMatch(r.stdout, /BOUND/, 'no address');
  await waitFor(() => /PXE\(prov0\) 52:54:00:aa:bb:01 proxy/.test(logText()), 'the proxy answer in the log');
  const why = await cli(root, ['nodes', 'why', 'alpha', '--log', dhcpLog, '--at', new Date(Date.now() + 20 * 60_000).toISOString(), '--json']);
  t.equal(why.code, 0, why.stderr);
  const out = JSON.parse(why.stdout) as { verdict: { code: string; hint: string } };
  t.equal(out.verdict.code, 'proxy-no-boot');
  t.match(out.verdict.hint, /site's DHCP server/);
  await dhcp.stop();
});
