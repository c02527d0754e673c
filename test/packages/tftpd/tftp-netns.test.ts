/**
 * The rendered config, run by the real dnsmasq inside a test network namespace (nothing on
 * the machine's own interfaces): a client namespace fetches loaders and boot files over
 * TFTP with busybox tftp; path traversal and writes fail.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { applyPlans } from '../../../src/core/apply';
import { loadConfig } from '../../../src/core/config';
import { SILENT_LOGGER } from '../../../src/core/log';
import { staticNetworkFacts } from '../../../src/core/network-facts';
import { NO_SERVICE_CONTROL } from '../../../src/core/services';
import { templateDirs } from '../../../src/core/template';
import { COMMON_SCHEMA } from '../../../packages/common/config-schema';
import { component } from '../../../packages/tftpd';
import { TFTPD_SCHEMA } from '../../../packages/tftpd/config-schema';
import { installLoaders } from '../../../packages/tftpd/loaders';
import { createTestNetwork, netnsUnavailableReason } from '../../helpers/netns';
import { put, REPO_ROOT, scratchRoot } from '../../helpers/scratch';
import { NODES } from './nodes';

const skip = netnsUnavailableReason();

t.test('real dnsmasq in a namespace serves the boot tree over TFTP and nothing outside it', { skip }, async (t) => {
  const paths = scratchRoot(t);
  put(paths, '/etc/uec-provisioning/uec-provisioning.conf', '[server]\ninterface = tftp0\n');
  const config = await loadConfig(paths, { ...COMMON_SCHEMA, ...TFTPD_SCHEMA });
  const plans = await component.plan({
    paths,
    config,
    templates: templateDirs(paths, `${REPO_ROOT}/templates`),
    network: staticNetworkFacts([{ name: 'tftp0', mac: '02:00:00:00:00:01', up: true, loopback: false, virtual: true, ipv4: [{ address: '10.77.0.1', prefix: 24 }], ipv6: [] }]),
    log: SILENT_LOGGER,
    nodes: async () => NODES,
  });
  await applyPlans({ paths, component: 'tftpd', plans, services: NO_SERVICE_CONTROL, log: SILENT_LOGGER });
  await installLoaders({ paths, secureBoot: true });
  // An image reached through the symlink an import makes.
  const imageDir = paths.resolve('/var/lib/uec-provisioning/boot/images/debian/bookworm');
  fs.mkdirSync(path.join(imageDir, '.amd64-test'), { recursive: true });
  fs.writeFileSync(path.join(imageDir, '.amd64-test', 'linux'), 'kernel bytes\n'.repeat(1000));
  fs.symlinkSync('.amd64-test', path.join(imageDir, 'amd64'));
  fs.mkdirSync(paths.resolve('/run/uec-provisioning-tftpd'), { recursive: true });
  // A secret just outside the TFTP root, readable by anyone: only the root must confine.
  put(paths, '/var/lib/uec-provisioning/secret.txt', 'outside the root\n');

  const net = createTestNetwork(t, { name: 'tftp' });
  const server = await net.ns('srv');
  const client = await net.ns('cli');
  await net.link({ ns: server, ifname: 'tftp0', cidr: '10.77.0.1/24' }, { ns: client, ifname: 'eth0', cidr: '10.77.0.2/24' });
  await net.waitOperstate(server, 'tftp0');

  const conf = paths.resolve('/etc/uec-provisioning/dnsmasq-tftpd.conf');
  const dnsmasq = net.spawn(server, ['dnsmasq', `--conf-file=${conf}`, '--keep-in-foreground', '--log-facility=-']);
  await dnsmasq.waitForOutput(/TFTP root is/, 10_000);
  t.ok(fs.existsSync(paths.resolve('/run/uec-provisioning-tftpd/dnsmasq.pid')), 'its own pid file');
  const listening = await net.exec(server, ['ss', '-lunp']);
  t.match(listening.stdout, /10\.77\.0\.1:69/, 'bound to the interface address');
  t.notMatch(listening.stdout, /0\.0\.0\.0:69|\*:69/, 'never the wildcard');

  const out = fs.mkdtempSync(path.join(paths.root, 'client-'));
  const get = async (remote: string) => {
    const local = path.join(out, remote.replace(/[^A-Za-z0-9.]/g, '_'));
    const r = await net.exec(client, ['busybox', 'tftp', '-g', '-r', remote, '-l', local, '10.77.0.1'], { timeoutMs: 30_000 });
    return { ...r, local, content: r.code === 0 ? fs.readFileSync(local) : null };
  };

  const undionly = await get('undionly.kpxe');
  t.equal(undionly.code, 0, `undionly.kpxe fetched (${undionly.stderr.trim()})`);
  t.ok(undionly.content?.equals(fs.readFileSync('/usr/lib/ipxe/undionly.kpxe')), 'byte-identical to the ipxe package');
  for (const name of ['pxelinux.0', 'ldlinux.c32', 'ipxe.efi', 'shimx64.efi', 'grubx64.efi', 'pxelinux.cfg/01-52-54-00-00-00-01', 'grub/grub.cfg', 'images/debian/bookworm/amd64/linux']) {
    const r = await get(name);
    t.equal(r.code, 0, `${name} fetched`);
  }
  t.match((await get('pxelinux.cfg/01-52-54-00-00-00-01')).content?.toString(), /KERNEL images\/debian\/bookworm\/amd64\/linux/);

  for (const evil of ['../../etc/passwd', '../secret.txt', '/etc/passwd', '..%2fsecret.txt', 'images/../../secret.txt']) {
    const r = await get(evil);
    t.not(r.code, 0, `${evil} refused (${r.stderr.trim()})`);
    t.equal(r.content, null, `${evil}: nothing received`);
  }
  fs.writeFileSync(path.join(out, 'upload'), 'x');
  const put1 = await net.exec(client, ['busybox', 'tftp', '-p', '-l', path.join(out, 'upload'), '-r', 'upload', '10.77.0.1'], { timeoutMs: 30_000 });
  t.not(put1.code, 0, 'a write request is refused');
  t.notOk(fs.existsSync(paths.resolve('/var/lib/uec-provisioning/boot/upload')), 'nothing written into the root');
  await dnsmasq.stop();
});
