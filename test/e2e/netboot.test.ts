/**
 * End to end: real virtual machines netboot from this server inside network namespaces.
 *
 * One namespace "lan" holds a bridge br0 (10.77.0.1/24, the provisioning interface), the
 * dnsmasq instances of uec-provisioning-dhcpd and uec-provisioning-tftpd started with exactly
 * the files their configurators rendered under a scratch --root, and `uec-provisioning serve`
 * (region and provisioning server). VMs are qemu processes on tap devices in that bridge. A
 * second namespace "site" plays the site's own DHCP server for the proxy-mode case. Nothing
 * has a route out; everything is torn down when the test ends, also on failure.
 *
 * The rendered dnsmasq files name system paths (/etc/uec-provisioning, /var/lib/...): each
 * dnsmasq runs in a private mount namespace where the scratch root's directories are
 * bind-mounted over those paths, so the files are used byte for byte as rendered.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { createTestNetwork, netnsUnavailableReason, type NetnsProcess, type TestNetwork } from '../helpers/netns';
import { REPO_ROOT, scratchRoot } from '../helpers/scratch';
import { holdVmLane, startVm, vmUnavailableReason, type Firmware } from '../helpers/vm';

const DI_TREE = '/usr/lib/debian-installer/images/12/amd64/text';
const CLI = path.join(REPO_ROOT, 'dist/src/cli.js');
const SERVER = '10.77.0.1';

const MACS = {
  bios: '52:54:00:77:00:11',
  uefi: '52:54:00:77:00:12',
  proxy: '52:54:00:77:00:13',
  unknown: '52:54:00:77:00:14',
};

function skipReason(): string | false {
  return (
    netnsUnavailableReason() ||
    vmUnavailableReason() ||
    (!fs.existsSync(DI_TREE) && 'debian-installer-12-netboot-amd64 is not installed') ||
    (!fs.existsSync('/usr/sbin/dnsmasq') && 'dnsmasq-base is not installed') ||
    (!fs.existsSync(CLI) && 'run npm run build first')
  );
}

interface Lab {
  net: TestNetwork;
  lan: string;
  root: string;
  work: string;
  cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }>;
  cliOk(args: string[]): Promise<string>;
  /** Start a dnsmasq with a rendered config file (a system path under the scratch root). */
  dnsmasq(configSystemPath: string, name: string): NetnsProcess;
  serve: NetnsProcess;
}

const ENV = {
  UEC_PROVISIONING_SERVICE_CONTROL: 'none',
  UEC_PROVISIONING_LIB: path.join(REPO_ROOT, 'dist'),
  UEC_PROVISIONING_TEMPLATES: path.join(REPO_ROOT, 'templates'),
};

/** The system directories that rendered files refer to, bind-mounted from the scratch root. */
const BIND_DIRS = ['/etc/uec-provisioning', '/var/lib/uec-provisioning'];

/**
 * argv run in a private mount namespace where BIND_DIRS are the scratch root's. Their parents
 * get a throw-away overlay first, so the mount points never appear on the host.
 */
function bindScript(root: string, scratch: string, argv: string[]): string[] {
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  // A private /run too: the pid files the configs name stay out of the host's /run.
  const steps = [`mount -t tmpfs tmpfs ${quote(scratch)}`, 'mount -t tmpfs tmpfs /run'];
  for (const [i, dir] of BIND_DIRS.entries()) {
    const parent = path.dirname(dir);
    const upper = path.join(scratch, `u${i}`);
    const workdir = path.join(scratch, `w${i}`);
    steps.push(`mkdir -p ${quote(upper)} ${quote(workdir)}`);
    steps.push(`mount -t overlay overlay -o lowerdir=${parent},upperdir=${upper},workdir=${workdir} ${quote(parent)}`);
    steps.push(`mkdir -p ${quote(dir)}`, `mount --bind ${quote(path.join(root, dir))} ${quote(dir)}`);
  }
  return ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', `${steps.join(' && ')} && exec ${argv.map(quote).join(' ')}`];
}

async function nodeJson(lab: Lab, name: string): Promise<{ status: string; system_id?: string; systemId?: string; events: { type?: string; event?: string; message?: string }[]; architecture?: string; arch?: string }> {
  return JSON.parse(await lab.cliOk(['--json', 'nodes', 'show', name])) as never;
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

// Four TCG boots take about 6 minutes: more than the suite's per-file timeout (package.json).
t.setTimeout(1_800_000);

t.test('netboot: real VMs boot from the rendered dnsmasq configs and the provisioning service', { skip: skipReason(), timeout: 1_500_000 }, async (t) => {
  // Not beside the installed-appliance e2e: two sets of TCG VMs starve each other.
  await holdVmLane(t);
  const net = createTestNetwork(t, { name: 'nb' });
  const lan = await net.ns('lan');
  await net.bridge(lan, 'br0');
  await net.addr(lan, 'br0', `${SERVER}/24`);
  await net.up(lan, 'br0');
  const paths = scratchRoot(t);
  const root = paths.root;
  const work = fs.mkdtempSync(path.join(root, 'work-'));
  // dnsmasq drops to nobody: every parent of what it reads must be world-readable.
  fs.chmodSync(work, 0o755);

  const cli = async (args: string[]) => {
    const r = await net.exec(lan, ['node', CLI, '--root', root, ...args], { env: { ...process.env, ...ENV }, timeoutMs: 300_000 });
    return { code: r.code, stdout: r.stdout, stderr: r.stderr };
  };
  const cliOk = async (args: string[]) => {
    const r = await cli(args);
    if (r.code !== 0) throw new Error(`uec-provisioning ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  };

  // The admin's answers, given as the CLI and debconf would give them.
  await cliOk(['config', 'set', 'server.interface=br0', `server.address=${SERVER}`, 'boot.kernel_args=console=ttyS0,115200', 'boot.domain=lab.test', 'region.deploy_timeout=3600']);
  await cliOk(['dhcp', 'set-mode', 'full', '--interface', 'br0', '--range', '10.77.0.100-10.77.0.150']);
  // A LAN has a gateway; this one is the server itself (no forwarding: nothing leaves the namespace).
  await cliOk(['config', 'set', `dhcp.dns_servers=${SERVER}`, `dhcp.router=${SERVER}`]);
  // What the tftpd package's postinst and dpkg trigger do: Debian's boot loaders into the TFTP root.
  await cliOk(['images', 'loaders']);
  await cliOk(['images', 'import', '--package', 'debian-installer-12-netboot-amd64']);
  for (const [name, mac] of Object.entries(MACS)) {
    if (name === 'unknown') continue;
    await cliOk(['nodes', 'add', '--mac', mac, '--arch', 'amd64', '--release', 'bookworm', `vm-${name}`, '--no-apply']);
    await cliOk(['nodes', 'deploy', `vm-${name}`, '--role', 'server', '--release', 'bookworm', '--no-apply']);
  }
  await cliOk(['apply']);

  // The TFTP configurator names its pid file under --root (as the tftpd namespace test runs it).
  fs.mkdirSync(path.join(root, 'run/uec-provisioning-tftpd'), { recursive: true });
  const dnsmasq = (configSystemPath: string, name: string) => {
    const scratch = fs.mkdtempSync(path.join(work, `mnt-${name}-`));
    return net.spawn(lan, bindScript(root, scratch, ['dnsmasq', '--keep-in-foreground', '--log-facility=-', `--conf-file=${configSystemPath}`, `--pid-file=/run/uec-e2e-${name}-${process.pid}.pid`]));
  };

  const serve = net.spawn(lan, ['node', CLI, '--root', root, '--verbose', 'serve', '--listen', SERVER], { env: { ...process.env, ...ENV } });
  // Stopped before the scratch root goes (teardowns run last-added first): a node change at
  // the end would otherwise make its debounced apply write into the removed root.
  t.teardown(() => serve.stop());
  await serve.waitForOutput(/listening on/, 30_000);
  const lab: Lab = { net, lan, root, work, cli, cliOk, dnsmasq, serve };

  let dhcpd = dnsmasq('/etc/uec-provisioning/dnsmasq-dhcpd.conf', 'dhcpd');
  const tftpd = dnsmasq('/etc/uec-provisioning/dnsmasq-tftpd.conf', 'tftpd');
  await dhcpd.waitForOutput(/DHCP, IP range|DHCP, proxy/, 20_000);
  await tftpd.waitForOutput(/TFTP root is/, 20_000);

  let tapCount = 0;
  const boot = async (mac: string, firmware: Firmware, noOptionRom = false) => {
    const tap = `tap${tapCount++}`;
    await net.tap(lan, tap);
    await net.attach(lan, tap, 'br0');
    await net.up(lan, tap);
    return startVm(net, { ns: lan, tap, mac, firmware, workDir: work, noOptionRom });
  };

  await t.test('BIOS, full DHCP mode: a node to deploy gets its reservation, iPXE, the installer, its preseed, and calls back', async (t) => {
    const node = await nodeJson(lab, 'vm-bios');
    const id = node.system_id ?? node.systemId ?? '';
    const vm = await boot(MACS.bios, 'bios');
    t.teardown(() => vm.stop());
    await waitFor('the installing call-back', async () => ((await nodeJson(lab, 'vm-bios')).events.some((e) => /installing/.test(JSON.stringify(e))) ? true : undefined), 400_000);
    t.match(dhcpd.stdout() + dhcpd.stderr(), new RegExp(`DHCPACK\\(br0\\) 10\\.77\\.0\\.\\d+ ${MACS.bios}`), 'dnsmasq leased an address to the VM');
    // The VM's NIC ROM (ipxe-qemu) is iPXE already: DHCP sends it straight to the HTTP
    // bootstrap by its user class, so it needs no first-stage loader over TFTP.
    t.notMatch(tftpd.stdout() + tftpd.stderr(), new RegExp(`sent .* to 10\\.77\\.0\\.\\d+`), 'an iPXE client fetched nothing over TFTP');
    const served = serve.stdout() + serve.stderr();
    t.match(served, /GET \/boot\/ipxe /, 'iPXE fetched the bootstrap script over HTTP');
    t.match(served, new RegExp(`boot script for ${MACS.bios}: install`), 'and its own install script');
    t.match(served, /GET \/boot\/images\/debian\/bookworm\/amd64\/linux 200/, 'kernel over HTTP');
    t.match(served, /GET \/boot\/images\/debian\/bookworm\/amd64\/initrd\.gz 200/, 'initrd over HTTP');
    t.match(served, new RegExp(`GET /preseed/${id}(\\?\\S*)? 200 `), 'the installer fetched this node\'s preseed');
    t.match(served, new RegExp(`preseed install for vm-bios \\(${id}\\)`));
    t.match(served, new RegExp(`node vm-bios \\(${id}\\) reported installing`), 'early_command reached the region');
    const types = (await nodeJson(lab, 'vm-bios')).events.map((e) => e.type ?? e.event);
    t.ok(['netboot', 'preseed', 'installing'].every((x) => types.includes(x)), `the region's timeline has the boot stages the web UI shows: ${types.join(', ')}`);
  });

  await t.test('UEFI (OVMF\'s own PXE, as on real hardware): ipxe.efi over TFTP, then the kernel download over HTTP', async (t) => {
    const vm = await boot(MACS.uefi, 'uefi', true);
    t.teardown(() => vm.stop());
    await waitFor('the UEFI kernel download', async () => (new RegExp(`boot script for ${MACS.uefi}: install`).test(serve.stdout() + serve.stderr()) && /GET \/boot\/images\/debian\/bookworm\/amd64\/linux 200[\s\S]*GET \/boot\/images\/debian\/bookworm\/amd64\/linux 200/.test(serve.stdout() + serve.stderr()) ? true : undefined), 300_000);
    t.match(tftpd.stdout() + tftpd.stderr(), /sent .*ipxe\.efi/, 'the UEFI loader came over TFTP');
  });

  await t.test('an unknown MAC lands on the enlistment path and is registered as new, once', async (t) => {
    const vm = await boot(MACS.unknown, 'bios');
    t.teardown(() => vm.stop());
    const enlisted = await waitFor(
      'the enlisted node',
      async () => {
        const list = JSON.parse(await cliOk(['--json', 'nodes', 'list'])) as { macs: string[]; status: string; arch?: string; architecture?: string }[];
        return list.find((n) => n.macs.includes(MACS.unknown));
      },
      300_000,
    );
    t.equal(enlisted.status, 'new');
    t.equal(enlisted.arch ?? enlisted.architecture, 'amd64', 'a 64-bit CPU is enlisted as amd64 even from BIOS iPXE');
    // The enlist script powers off where the iPXE build can, else exits to the firmware,
    // which (boot order: network only) netboots again and enlists the same machine again.
    const again = await Promise.race([
      vm.process.exited.then(() => 'powered off'),
      waitFor('a second enlistment', async () => (/enlisted again node/.test(serve.stdout() + serve.stderr()) ? 'enlisted again' : undefined), 30_000).catch(() => 'stayed stopped for 30 s'),
    ]);
    t.comment(`after enlisting, the machine ${again}`);
    await vm.stop();
    const list = JSON.parse(await cliOk(['--json', 'nodes', 'list'])) as { macs: string[] }[];
    t.equal(list.filter((n) => n.macs.includes(MACS.unknown)).length, 1);
  });

  await t.test('proxy mode: the site\'s own DHCP server gives the address, ours only the boot information', async (t) => {
    const site = await net.ns('site');
    await net.veth(site, 'eth0', lan, 'vsite');
    await net.attach(lan, 'vsite', 'br0');
    await net.up(lan, 'vsite');
    await net.addr(site, 'eth0', '10.77.0.2/24');
    await net.up(site, 'eth0');
    const siteDhcp = net.spawn(site, ['dnsmasq', '--keep-in-foreground', '--log-facility=-', '--port=0', '--no-resolv', '--no-hosts', '--bind-interfaces', '--interface=eth0', '--dhcp-range=10.77.0.200,10.77.0.220,10m', `--dhcp-option=option:dns-server,${SERVER}`, `--dhcp-leasefile=${path.join(work, 'site.leases')}`, `--pid-file=${path.join(work, 'site.pid')}`, '--no-ping']);
    await siteDhcp.waitForOutput(/DHCP, IP range/, 20_000);
    await cliOk(['dhcp', 'set-mode', 'proxy', '--interface', 'br0']);
    await dhcpd.stop();
    dhcpd = dnsmasq('/etc/uec-provisioning/dnsmasq-dhcpd.conf', 'dhcpd-proxy');
    await dhcpd.waitForOutput(/DHCP, proxy/, 20_000);
    const vm = await boot(MACS.proxy, 'bios');
    t.teardown(() => vm.stop());
    await waitFor('the proxy-mode preseed request', async () => (/preseed install for vm-proxy/.test(serve.stdout() + serve.stderr()) ? true : undefined), 400_000);
    t.match(siteDhcp.stdout() + siteDhcp.stderr(), new RegExp(`DHCPACK\\(eth0\\) 10\\.77\\.0\\.2\\d\\d ${MACS.proxy}`), 'the site server leased the address');
    t.match(dhcpd.stdout() + dhcpd.stderr(), new RegExp(`PXE\\(br0\\) .*${MACS.proxy} proxy`), 'ours answered as proxy');
    t.notMatch(dhcpd.stdout() + dhcpd.stderr(), new RegExp(`DHCPACK\\(br0\\) [0-9.]+ ${MACS.proxy}`), 'ours leased nothing');
  });
});
