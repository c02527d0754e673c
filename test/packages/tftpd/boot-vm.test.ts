/**
 * The pxelinux (BIOS) and shim + GRUB (UEFI) paths end to end as far as this package reaches: an OVMF VM (its own
 * PXE, no iPXE ROM) gets shimx64.efi from a throw-away DHCP dnsmasq (test-only, inside the
 * namespace; the real DHCP config is uec-provisioning-dhcpd's), then the rendered TFTP
 * dnsmasq serves shim → grubx64.efi → grub/grub.cfg, which switches to the node's
 * grub.cfg-01-<mac> and loads the installer kernel of the imported image.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { applyPlans } from '../../../src/core/apply';
import { loadConfig } from '../../../src/core/config';
import { SILENT_LOGGER } from '../../../src/core/log';
import { staticNetworkFacts } from '../../../src/core/network-facts';
import { createNode } from '../../../src/contract/node';
import { NO_SERVICE_CONTROL } from '../../../src/core/services';
import { templateDirs } from '../../../src/core/template';
import { COMMON_SCHEMA } from '../../../packages/common/config-schema';
import { component } from '../../../packages/tftpd';
import { TFTPD_SCHEMA } from '../../../packages/tftpd/config-schema';
import { importImage } from '../../../packages/tftpd/images';
import { installLoaders } from '../../../packages/tftpd/loaders';
import { createTestNetwork, netnsUnavailableReason } from '../../helpers/netns';
import { put, REPO_ROOT, scratchRoot } from '../../helpers/scratch';
import { startVm, vmUnavailableReason } from '../../helpers/vm';

const PACKAGE = 'debian-installer-12-netboot-amd64';
const skip =
  netnsUnavailableReason() ||
  vmUnavailableReason() ||
  (!fs.existsSync('/usr/lib/shim/shimx64.efi.signed') || !fs.existsSync('/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed') ? 'shim-signed or grub-efi-amd64-signed missing' : false) ||
  (!fs.existsSync('/usr/lib/debian-installer/images/12/amd64') ? `${PACKAGE} missing` : false);

interface Case {
  title: string;
  mac: string;
  firmware: 'bios' | 'uefi';
  bootFile: string;
  expected: [RegExp, string][];
}

const CASES: Case[] = [
  {
    title: 'UEFI VM: shim → GRUB → grub.cfg → its own grub.cfg-01-<mac> → installer kernel over TFTP',
    mac: '52:54:00:7a:00:01',
    firmware: 'uefi',
    bootFile: 'shimx64.efi',
    expected: [
      [/sent .*\/shimx64\.efi to 10\.78\.0\./, 'the firmware loaded the shim'],
      [/sent .*\/grubx64\.efi to/, 'the shim loaded GRUB from the TFTP root'],
      [/sent .*\/grub\/grub\.cfg to/, 'GRUB read grub/grub.cfg'],
      [/sent .*\/grub\/grub\.cfg-01-52-54-00-7a-00-01 to/, "and switched to the node's own file"],
    ],
  },
  {
    title: 'BIOS VM: pxelinux.0 → ldlinux.c32 → its own pxelinux.cfg/01-<mac> → installer kernel over TFTP',
    mac: '52:54:00:7a:00:02',
    firmware: 'bios',
    bootFile: 'pxelinux.0',
    expected: [
      [/sent .*\/pxelinux\.0 to 10\.78\.0\./, 'the PXE ROM loaded pxelinux.0'],
      [/sent .*\/ldlinux\.c32 to/, 'pxelinux loaded ldlinux.c32'],
      [/sent .*\/pxelinux\.cfg\/01-52-54-00-7a-00-02 to/, "pxelinux read the node's own file"],
    ],
  },
];

for (const c of CASES) t.test(c.title, { skip, timeout: 240_000 }, async (t) => {
  const mac = c.mac;
  const paths = scratchRoot(t);
  put(paths, '/etc/uec-provisioning/uec-provisioning.conf', '[server]\ninterface = br0\n');
  const config = await loadConfig(paths, { ...COMMON_SCHEMA, ...TFTPD_SCHEMA });
  const node = createNode({ hostname: 'uefi-node', macs: [mac], status: 'deploying' }, new Date(), { systemId: 'node-uefi01', token: 'y'.repeat(32) });
  const plans = await component.plan({
    paths,
    config,
    templates: templateDirs(paths, `${REPO_ROOT}/templates`),
    network: staticNetworkFacts([{ name: 'br0', mac: '02:00:00:00:00:01', up: true, loopback: false, virtual: true, ipv4: [{ address: '10.78.0.1', prefix: 24 }], ipv6: [] }]),
    log: SILENT_LOGGER,
    nodes: async () => [node],
  });
  await applyPlans({ paths, component: 'tftpd', plans, services: NO_SERVICE_CONTROL, log: SILENT_LOGGER });
  await installLoaders({ paths, secureBoot: true });
  await importImage({ paths, source: { kind: 'package', name: PACKAGE }, defaults: { os: 'debian', release: 'bookworm', arch: 'amd64' } });
  fs.mkdirSync(paths.resolve('/run/uec-provisioning-tftpd'), { recursive: true });

  const net = createTestNetwork(t, { name: c.firmware });
  const ns = await net.ns('srv');
  await net.bridge(ns, 'br0');
  await net.tap(ns, 'tap0');
  await net.attach(ns, 'tap0', 'br0');
  await net.addr(ns, 'br0', '10.78.0.1/24');
  await net.up(ns, 'br0');
  await net.up(ns, 'tap0');

  const tftp = net.spawn(ns, ['dnsmasq', `--conf-file=${paths.resolve('/etc/uec-provisioning/dnsmasq-tftpd.conf')}`, '--keep-in-foreground', '--log-facility=-']);
  await tftp.waitForOutput(/TFTP root is/, 10_000);
  const work = fs.mkdtempSync(path.join(paths.root, 'vm-'));
  // Test-only DHCP (no DNS, no TFTP), in the namespace: hands out the shim as boot file.
  const dhcp = net.spawn(ns, [
    'dnsmasq', '--conf-file=/dev/null', '--keep-in-foreground', '--log-facility=-', '--port=0', '--bind-interfaces', '--interface=br0',
    '--dhcp-range=10.78.0.100,10.78.0.150,255.255.255.0,1h', `--dhcp-boot=${c.bootFile},,10.78.0.1`, '--no-ping',
    `--dhcp-leasefile=${work}/leases`, `--pid-file=${work}/dhcp.pid`,
  ]);
  await dhcp.waitForOutput(/DHCP, IP range/, 10_000);

  const vm = startVm(net, { ns, tap: 'tap0', mac, firmware: c.firmware, noOptionRom: c.firmware !== 'bios', workDir: work });
  t.teardown(() => vm.stop());
  const linux = paths.resolve('/var/lib/uec-provisioning/boot/images/debian/bookworm/amd64/linux');
  try {
    await tftp.waitForOutput(new RegExp(`sent ${linux.replace(/[/.]/g, '\\$&')}`), 200_000);
  } finally {
    t.comment(tftp.stdout().split('\n').concat(tftp.stderr().split('\n')).filter((l) => /sent|failed|error/i.test(l)).slice(0, 20).join('\n'));
  }
  const log = tftp.stdout() + tftp.stderr();
  for (const [pattern, what] of c.expected) t.match(log, pattern, what);
  t.pass('the loader fetched the installer kernel of the imported image');
  await vm.stop();
});
