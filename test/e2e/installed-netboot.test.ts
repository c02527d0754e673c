/**
 * End to end on the installed appliance: the six .debs installed by apt (one transaction,
 * with Recommends, offline from the image's cache) into a clean Debian 12 booted with systemd
 * as PID 1, configured only through debconf answers and the uec-provisioning command as a
 * sysadmin would, and real VMs netbooting from the daemons systemd started there.
 *
 * Network (all inside namespaces this test creates; nothing has a route out):
 *   namespace "lan":  bridge br0 (10.66.0.2/24, the admin's browser), the VMs' tap devices,
 *                     and the veth end vappl;
 *   namespace "appl": the appliance container (systemd-nspawn), eth0 10.66.0.1/24, which is
 *                     its provisioning interface and the LAN's gateway (docs/dhcpd.md).
 *
 * Cases: UEFI with Secure Boot enforced (OVMF's PXE → Debian's signed shim → signed GRUB →
 * signed kernel over TFTP), a kernel with one byte changed refused under Secure Boot, and the
 * web UI through apache2. BIOS with the iPXE ROM and UEFI (OVMF's own PXE → ipxe.efi → HTTP)
 * from the same installed appliance are the lab's CI scenario (test/e2e/lab.test.ts: the same
 * apt install, debconf answers and CLI, plus enlistment, Wake-on-LAN and IPMI power-on, and
 * the same journal checks), so CI boots each kind of machine once.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { chromium } from 'playwright-core';
import { bookwormImage, bookwormUnavailableReason, bootContainer, builtDebs, copyInto, overlayRoot, type Container } from '../helpers/bookworm';
import { createTestNetwork, netnsUnavailableReason, type TestNetwork } from '../helpers/netns';
import { holdVmLane, startVm, vmUnavailableReason, type Firmware, type Vm } from '../helpers/vm';

const SERVER = '10.66.0.1';
const BROWSER_ADDRESS = '10.66.0.2/24';
const ADMIN_PASSWORD = 'e2e-admin-password';
const CHROMIUM = '/usr/bin/chromium';
const IMAGE_DIR = '/var/lib/uec-provisioning/boot/images/debian/bookworm/amd64';

interface NodeCase {
  name: string;
  mac: string;
  firmware: Firmware;
  subarch: 'bios' | 'uefi';
}
const NODES: Record<'secure' | 'tampered', NodeCase> = {
  secure: { name: 'vm-secure', mac: '52:54:00:66:00:13', firmware: 'uefi-secure', subarch: 'uefi' },
  tampered: { name: 'vm-tampered', mac: '52:54:00:66:00:14', firmware: 'uefi-secure', subarch: 'uefi' },
};

// The admin's debconf answers, set before apt runs, as a preseeded install would.
const DEBCONF = `uec-provisioning-common uec-provisioning-common/interface select eth0
uec-provisioning-dhcpd uec-provisioning-dhcpd/mode select full
uec-provisioning-dhcpd uec-provisioning-dhcpd/interface select eth0
uec-provisioning-dhcpd uec-provisioning-dhcpd/range string 10.66.0.100-10.66.0.150
uec-provisioning-webui uec-provisioning-webui/admin-password password ${ADMIN_PASSWORD}
`;

const UNITS = ['uec-provisioning.service', 'uec-provisioning-dhcpd.service', 'uec-provisioning-tftpd.service', 'uec-provisioning-webui.service', 'apache2.service'];

function skipReason(): string | false {
  return (
    netnsUnavailableReason() ||
    vmUnavailableReason() ||
    bookwormUnavailableReason() ||
    (!fs.existsSync('/usr/share/OVMF/OVMF_CODE_4M.ms.fd') && 'ovmf is not installed') ||
    (!fs.existsSync(CHROMIUM) && 'chromium is not installed')
  );
}

interface NodeEvent {
  at: string;
  type: string;
  message: string;
}
interface NodeJson {
  systemId: string;
  hostname: string;
  status: string;
  events: NodeEvent[];
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number, everyMs = 2000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

const FLIP_MIDDLE_BYTE = `const fs = require('fs');
const fd = fs.openSync(process.argv[1], 'r+');
const at = Math.floor(fs.fstatSync(fd).size / 2);
const b = Buffer.alloc(1);
fs.readSync(fd, b, 0, 1, at);
b[0] ^= 0x01;
fs.writeSync(fd, b, 0, 1, at);
fs.closeSync(fd);`;

const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(0)} s`;

t.setTimeout(1_200_000);

t.test('installed appliance: apt, debconf and the CLI; VMs netboot from the systemd-started daemons', { skip: skipReason(), timeout: 1_100_000 }, async (t) => {
  const started = Date.now();
  const image = bookwormImage();
  const debs = builtDebs();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'uec-installed-nb-'));
  t.teardown(() => fs.rmSync(work, { recursive: true, force: true }));

  // Teardowns run last-registered first: VMs and browser, container, overlay, then the network.
  const net: TestNetwork = createTestNetwork(t, { name: 'inb' });
  const lan = await net.ns('lan');
  const appl = await net.ns('appl');
  await net.bridge(lan, 'br0');
  await net.addr(lan, 'br0', BROWSER_ADDRESS);
  await net.up(lan, 'br0');
  await net.link({ ns: appl, ifname: 'eth0', cidr: `${SERVER}/24` }, { ns: lan, ifname: 'vappl' });
  await net.attach(lan, 'vappl', 'br0');

  const root = overlayRoot(t, image);
  // Not under /tmp: systemd-nspawn mounts a fresh tmpfs there.
  const debPaths = copyInto(root, '/root/debs', debs.debs);
  let phase = Date.now();
  const c: Container = await bootContainer(t, net, appl, root, { name: 'uec-installed' });
  t.comment(`container booted: ${seconds(phase)}`);

  const cli = (args: string[], timeoutMs = 120_000) => c.must(['uec-provisioning', ...args], { timeoutMs });
  const nodeJson = async (name: string): Promise<NodeJson> => JSON.parse(await cli(['--json', 'nodes', 'show', name])) as NodeJson;
  const journal = (units: string[]) => c.must(['journalctl', '--no-pager', '-o', 'cat', ...units.flatMap((u) => ['-u', u])]);
  const dhcpdStarts = async () => (await journal(['uec-provisioning-dhcpd'])).split('DHCP, IP range').length - 1;

  await t.test('apt installs the six packages with Recommends, offline, in one transaction; systemd starts the daemons', async (t) => {
    phase = Date.now();
    await c.must(['debconf-set-selections'], { input: DEBCONF });
    const install = await c.must(['apt-get', 'install', '-y', '-q', ...debPaths], { timeoutMs: 600_000 });
    t.comment(`apt-get install: ${seconds(phase)}`);
    t.match(install, /dhcp mode full on eth0/, 'the preseeded DHCP mode and interface were applied');
    t.match(install, /Setting up uec-provisioning \(/, 'the metapackage configured');
    const states = await c.exec(['systemctl', 'is-active', ...UNITS]);
    t.same(states.stdout.trim().split('\n'), UNITS.map(() => 'active'), `${UNITS.join(', ')} active`);
    const failed = (await c.must(['systemctl', 'list-units', '--failed', '--plain', '--no-legend'])).trim();
    t.notMatch(failed, /uec-provisioning|apache2|apt-cacher-ng/, `no unit of ours failed (failed: ${failed || 'none'})`);
    t.match(await journal(['uec-provisioning-dhcpd']), /DHCP, IP range 10\.66\.0\.100 -- 10\.66\.0\.150/, 'dhcpd serves the preseeded range');
    t.match(await journal(['uec-provisioning-tftpd']), /TFTP root is \/var\/lib\/uec-provisioning\/boot/);
  });

  await t.test('the admin configures with the CLI: gateway and DNS, serial console, the installer image, two nodes to deploy', async (t) => {
    phase = Date.now();
    // A LAN has a gateway (docs/dhcpd.md); here it is the appliance itself, nothing is forwarded.
    const before = await dhcpdStarts();
    await cli(['config', 'set', `dhcp.router=${SERVER}`, `dhcp.dns_servers=${SERVER}`, 'boot.kernel_args=console=ttyS0,115200']);
    await cli(['apply']);
    t.match(await c.must(['cat', '/etc/uec-provisioning/dnsmasq-dhcpd.conf']), new RegExp(`option:router,${SERVER.replace(/\./g, '\\.')}\n`));
    await waitFor('dhcpd restarted', async () => ((await dhcpdStarts()) === before + 1 ? true : undefined), 20_000, 500);
    t.pass('apply restarted the installed dhcpd onto the new file');
    t.comment(`config set, apply: ${seconds(phase)}`);
    let step = Date.now();
    await cli(['images', 'import', '--package', 'debian-installer-12-netboot-amd64']);
    t.match(await cli(['images', 'list']), /debian\/bookworm\/amd64 /);
    t.comment(`images import: ${seconds(step)}`);
    step = Date.now();
    for (const n of Object.values(NODES)) {
      await cli(['nodes', 'add', n.name, '--mac', n.mac, '--arch', 'amd64', '--subarch', n.subarch]);
      await cli(['nodes', 'deploy', n.name, '--role', 'server', '--release', 'bookworm']);
      t.equal((await nodeJson(n.name)).status, 'deploying', `${n.name} deploying`);
    }
    t.comment(`2 × nodes add + deploy: ${seconds(step)}`);
  });

  let tapCount = 0;
  const boot = async (n: NodeCase): Promise<Vm> => {
    const tap = `tap${tapCount++}`;
    await net.tap(lan, tap);
    await net.attach(lan, tap, 'br0');
    await net.up(lan, tap);
    // UEFI: no NIC option ROM, so OVMF's own PXE boots (as on real hardware; NETBOOT-NOTES).
    return startVm(net, { ns: lan, tap, mac: n.mac, firmware: n.firmware, workDir: work, noOptionRom: n.firmware !== 'bios' });
  };
  const hasEvent = (node: NodeJson, type: string) => node.events.some((e) => e.type === type);

  // The VMs: not beside the other netboot e2e (two sets of TCG VMs starve each other).
  await holdVmLane(t);
  await t.test('Secure Boot enforced: shim → GRUB → signed kernel over TFTP; a kernel with one byte changed is refused', async (t) => {
    phase = Date.now();
    const before = await dhcpdStarts();
    await cli(['config', 'set', 'boot.uefi_loader=shim']);
    await cli(['apply']);
    t.match(await c.must(['cat', '/etc/uec-provisioning/dnsmasq-dhcpd.conf']), /dhcp-boot=tag:!ipxe,tag:efi64,shimx64\.efi,,10\.66\.0\.1/);
    await waitFor('dhcpd restarted', async () => ((await dhcpdStarts()) === before + 1 ? true : undefined), 20_000, 500);
    t.pass('apply restarted the installed dhcpd for the new UEFI loader');

    const since = Date.now();
    const vm = await boot(NODES.secure);
    t.teardown(() => vm.stop());
    const linux = `${IMAGE_DIR}/linux`;
    const sentLinux = new RegExp(`sent /var/lib/uec-provisioning/boot/images/debian/bookworm/amd64/linux to 10\\.66\\.0\\.\\d+`);
    await waitFor('the signed kernel over TFTP', async () => (sentLinux.test(await journal(['uec-provisioning-tftpd'])) ? true : undefined), 360_000);
    t.comment(`Secure Boot VM got its kernel over TFTP: ${seconds(since)}`);

    // serve's /metrics (loopback: no key) counts the TFTP transfers from the tftpd's journal (docs/metrics.md, "TFTP").
    const scrape = () => c.must(['node', '-e', "fetch('http://127.0.0.1:5248/metrics').then(async (r) => process.stdout.write(await r.text()))"]);
    const tftpMetrics = await waitFor('uecp_tftp_transfers_total{result="sent",kind="loader"} >= 1 in serve\'s /metrics', async () => {
      const text = await scrape();
      const loaders = /^uecp_tftp_transfers_total\{(?=[^}]*result="sent")(?=[^}]*kind="loader")[^}]*\} (\d+)$/m.exec(text);
      return loaders && Number(loaders[1]) >= 1 && /^uecp_tftp_log_up 1$/m.test(text) ? loaders[0] : undefined;
    }, 30_000);
    t.pass(`serve's /metrics counts the loader sent over TFTP, read from the tftpd's journal: ${tftpMetrics}`);

    // The second Secure Boot VM starts now, with a kernel one byte different, while the first
    // goes on to its preseed: the byte is changed in the served tree (the first VM has its copy).
    const resolved = (await c.must(['readlink', '-f', linux])).trim();
    await c.must(['cp', '-p', resolved, '/root/linux.orig']);
    // A new file renamed over the served one: the one byte in the middle changes nothing else.
    await c.must(['cp', '-p', resolved, `${resolved}.tmp`]);
    await c.must(['node', '-e', FLIP_MIDDLE_BYTE, `${resolved}.tmp`]);
    await c.must(['mv', `${resolved}.tmp`, resolved]);
    const cmp = await c.exec(['cmp', '-l', '/root/linux.orig', resolved]);
    t.equal(cmp.stdout.trim().split('\n').length, 1, `the served kernel differs from the signed one in one byte (${cmp.stdout.trim()})`);
    t.teardown(async () => {
      await c.exec(['sh', '-c', `[ ! -e /root/linux.orig ] || mv /root/linux.orig ${resolved}`]);
    });
    const badSince = Date.now();
    const bad = await boot(NODES.tampered);
    t.teardown(() => bad.stop());

    const node = await waitFor(`${NODES.secure.name}'s installing call-back`, async () => {
      const node = await nodeJson(NODES.secure.name);
      return hasEvent(node, 'installing') ? node : undefined;
    }, 480_000).catch(async (err: Error) => {
      // What the machine and the service last said, for the failure message.
      const events = (await nodeJson(NODES.secure.name)).events.map((e) => `${e.at} ${e.type} ${e.message}`).join('\n');
      const served = (await journal(['uec-provisioning'])).split('\n').slice(-15).join('\n');
      throw new Error(`${err.message}\ntimeline:\n${events}\nuec-provisioning's journal (last lines):\n${served}\nserial (last lines):\n${vm.serial().split('\n').slice(-40).join('\n')}`);
    });
    const secs = seconds(since);
    t.comment(`${NODES.secure.name} to installing: ${secs}`);
    const types = node.events.map((e) => e.type);
    t.ok(['preseed', 'installing'].every((x) => types.includes(x)), `timeline preseed → installing (${types.join(', ')})`);
    await vm.waitForSerial(/secureboot: Secure boot enabled/, 30_000);
    t.pass('the installer kernel says Secure boot enabled on the serial console');
    await vm.stop();

    await bad.waitForSerial(/bad shim signature|invalid signature|verification failed|Security Violation/i, 120_000);
    t.comment(`the tampered kernel refused after ${seconds(badSince)}`);
    const refusal = /bad shim signature|invalid signature|verification failed|Security Violation/i.exec(bad.serial())?.[0];
    t.pass(`GRUB refused the changed kernel: "${refusal}"`);
    await bad.stop();
    await c.must(['mv', '/root/linux.orig', resolved]);
    const tampered = await nodeJson(NODES.tampered.name);
    t.notOk(hasEvent(tampered, 'preseed') || hasEvent(tampered, 'installing'), `no preseed fetch for ${NODES.tampered.name} (${tampered.events.map((e) => e.type).join(', ')})`);
    t.notMatch(bad.serial(), /secureboot: Secure boot enabled|Linux version/, 'the changed kernel never ran');

    const tftp = await journal(['uec-provisioning-tftpd']);
    for (const file of ['shimx64.efi', 'grubx64.efi', `grub/grub.cfg-01-${NODES.secure.mac.replace(/:/g, '-')}`, 'images/debian/bookworm/amd64/initrd.gz']) {
      t.match(tftp, new RegExp(`sent /var/lib/uec-provisioning/boot/${file.replace(/[.]/g, '\\.')} to`), `${file} over TFTP`);
    }
    t.match(await journal(['uec-provisioning']), new RegExp(`node ${NODES.secure.name} \\(${node.systemId}\\) reported installing`));
    t.notMatch(await journal(['uec-provisioning']), /dnsmasq-dhcpd\.conf/, 'no node-change apply rewrote the DHCP file');
    t.comment(`Secure Boot cases: ${seconds(phase)}`);
  });

  await t.test('web UI through apache2: log in, the node\'s deploy stages, the imported image on the Images page and the dashboard', async (t) => {
    phase = Date.now();
    // Chromium runs inside the LAN namespace (a browser on the provisioning LAN); Playwright
    // talks to it over a pipe, so the wrapper only has to enter the namespace.
    const wrapper = path.join(work, 'chromium-in-lan');
    fs.writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${lan} ${CHROMIUM} "$@"\n`, { mode: 0o755 });
    const browser = await chromium.launch({
      executablePath: wrapper,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    t.teardown(() => browser.close());
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    page.setDefaultTimeout(20_000);
    const base = `http://${SERVER}/uec-provisioning`;
    await page.goto(`${base}/`);
    t.match(page.url(), /\/uec-provisioning\/login$/, 'apache2 proxies to the web UI, which asks for a login');
    await page.fill('#user', 'admin');
    await page.fill('#password', ADMIN_PASSWORD);
    await page.press('#password', 'Enter');
    await page.waitForURL(`${base}/`);
    t.equal(await page.textContent('h1'), 'Dashboard', 'logged in with the debconf password');
    const health = (await page.textContent('table')) ?? '';
    t.match(health, /Images\s*ok\s*1 imported \(bookworm\/amd64\)/, 'the dashboard counts the imported image');

    const secure = await nodeJson(NODES.secure.name);
    await page.goto(`${base}/nodes/${secure.systemId}`);
    const done = await page.locator('.stages li.done').allTextContents();
    t.ok(['preseed', 'installing'].every((x) => done.includes(x)), `the node page shows the deploy stages reached: ${done.join(' → ')}`);
    t.match(await page.textContent('.timeline'), /installing/);
    await page.goto(`${base}/images`);
    t.match((await page.textContent('main')) ?? '', /debian\s*bookworm\s*amd64\s*[^\n]*initrd\.gz, linux/, 'the Images page lists the imported image');
    t.comment(`browser: ${seconds(phase)}`);
  });

  t.comment(`total: ${seconds(started)}`);
});
