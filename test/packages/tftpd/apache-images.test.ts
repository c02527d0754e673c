/**
 * apache2's drop-in for the imported images (templates/tftpd/apache-boot.conf.mustache): its
 * golden file and apache2's own check, and a real apache2 on loopback with it: the kernel
 * and initrd byte for byte through an image's symlink, nothing else of the boot tree, no
 * listings. Written by `apply tftpd` only where apache2 is installed.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { APACHE_IMAGES } from '../../../src/edge/boot';
import { validateContent } from '../../../src/core/validators';
import { component, loadTftpdTemplates } from '../../../packages/tftpd';
import { renderApacheImagesConf, renderTftpdPlans, type TftpdModel } from '../../../packages/tftpd/render';
import { put, REPO_ROOT, scratchRoot } from '../../helpers/scratch';
import { startLoopbackApache } from '../../helpers/apache';
import { applyPlans } from '../../../src/core/apply';
import type { ComponentContext } from '../../../src/configurator/component';
import { loadConfig } from '../../../src/core/config';
import { createLogger, SILENT_LOGGER } from '../../../src/core/log';
import { staticNetworkFacts } from '../../../src/core/network-facts';
import type { ServiceControl } from '../../../src/core/services';
import { templateDirs } from '../../../src/core/template';
import { COMMON_SCHEMA } from '../../../packages/common/config-schema';
import { TFTPD_SCHEMA } from '../../../packages/tftpd/config-schema';
import { loadImageOptions } from '../../../src/edge/image-server';

const TEMPLATES = { override: '/nonexistent', shipped: `${REPO_ROOT}/templates` };
const GOLDEN = path.join(__dirname, 'fixtures/apache-images/uec-provisioning-boot.conf');

function model(extra: Partial<TftpdModel> = {}): TftpdModel {
  return { tftpRoot: '/var/lib/uec-provisioning/boot', pidFile: '/run/uec-provisioning-tftpd/dnsmasq.pid', interface: 'eth1', user: 'dnsmasq', group: 'nogroup', httpBase: 'http://192.0.2.10:5248', domain: '', kernelArgs: '', nodes: [], ...extra };
}

t.test('the drop-in: planned only with apache2, golden, passes apache2 -t; a bad boot tree path is refused', async (t) => {
  const templates = await loadTftpdTemplates(TEMPLATES);
  t.notOk(renderTftpdPlans(model(), templates).some((p) => p.path === APACHE_IMAGES.conf), 'no apache2: no drop-in');
  const plan = renderTftpdPlans(model({ apache2: true }), templates).find((p) => p.path === APACHE_IMAGES.conf);
  if (!plan) return t.fail('apache2 installed: the drop-in is planned');
  t.equal(plan.validate, 'apache2');
  t.same(plan.services?.map((s) => s.name), ['apache2'], 'a change reloads apache2');
  if (process.env.UPDATE_GOLDEN === '1') {
    fs.mkdirSync(path.dirname(GOLDEN), { recursive: true });
    fs.writeFileSync(GOLDEN, plan.content);
  }
  t.equal(plan.content, fs.readFileSync(GOLDEN, 'utf8'), 'matches the golden file (UPDATE_GOLDEN=1 rewrites it)');
  await validateContent('apache2', plan.path, plan.content);
  for (const bad of ['/srv/boot tree', '/srv/boot"x', '/srv/boot\nAlias / /', 'relative/boot', '/srv/<boot>']) {
    t.throws(() => renderApacheImagesConf(bad, templates.apacheImages), { code: 'INVALID_VALUE', message: /uec-provisioning-boot\.conf: boot tree/ }, `refused: ${JSON.stringify(bad)}`);
  }
});

t.test('a real apache2 with the drop-in sends the images and nothing else of the boot tree', { skip: fs.existsSync('/usr/sbin/apache2') ? false : 'no apache2' }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uec-tftpd-apache-'));
  fs.chmodSync(dir, 0o755);
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  // A boot tree as `images import` lays it out: the image directory is a symlink to its sibling.
  const boot = path.join(dir, 'boot');
  const real = path.join(boot, 'images/debian/bookworm/.amd64-0123456789ab');
  fs.mkdirSync(real, { recursive: true });
  fs.symlinkSync('.amd64-0123456789ab', path.join(boot, 'images/debian/bookworm/amd64'));
  const kernel = Buffer.alloc(3 * 1024 * 1024 + 17, 0x4b);
  fs.writeFileSync(path.join(real, 'linux'), kernel);
  fs.writeFileSync(path.join(real, 'initrd.gz'), 'initrd\n'.repeat(1000));
  fs.mkdirSync(path.join(boot, 'pxelinux.cfg'));
  fs.writeFileSync(path.join(boot, 'pxelinux.cfg/default'), 'not published\n');
  for (const d of [boot, path.join(boot, 'images'), path.join(boot, 'images/debian'), path.join(boot, 'images/debian/bookworm'), real]) fs.chmodSync(d, 0o755);
  const templates = await loadTftpdTemplates(TEMPLATES);
  const dropIn = path.join(dir, 'uec-provisioning-boot.conf');
  fs.writeFileSync(dropIn, renderApacheImagesConf(boot, templates.apacheImages));
  const apache = await startLoopbackApache(t, {
    dir,
    dropIn,
    modules: [['authz_core_module', 'mod_authz_core.so'], ['alias_module', 'mod_alias.so'], ['autoindex_module', 'mod_autoindex.so'], ['dir_module', 'mod_dir.so']],
    // Debian's apache2.conf denies the whole file system; the drop-in must grant its directory itself.
    lines: ['<Directory />', 'Options FollowSymLinks', 'AllowOverride None', 'Require all denied', '</Directory>'],
  });
  const { port } = apache;
  const base = `http://127.0.0.1:${port}${APACHE_IMAGES.urlPath}`;
  let linux: Response | undefined;
  for (let i = 0; i < 100 && !linux; i++) {
    linux = await fetch(`${base}/debian/bookworm/amd64/linux`).catch(() => undefined);
    if (!linux) await new Promise((r) => setTimeout(r, 100));
  }
  t.equal(linux?.status, 200, `the kernel through the image's symlink ${apache.output()}`);
  t.ok(Buffer.from(await linux!.arrayBuffer()).equals(kernel), 'the kernel byte for byte');
  const initrd = await fetch(`${base}/debian/bookworm/amd64/initrd.gz`);
  t.equal(await initrd.text(), 'initrd\n'.repeat(1000), 'the initrd byte for byte');
  t.equal(initrd.headers.get('content-length'), String(7000));
  for (const listing of [`${base}/`, `${base}/debian/bookworm/amd64/`]) {
    t.equal((await fetch(listing)).status, 403, `no listing: ${listing}`);
  }
  // Only images/ is published: the rest of the boot tree (per-node boot files) is not reachable.
  const escape = await new Promise<string>((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.end(`GET ${APACHE_IMAGES.urlPath}/../pxelinux.cfg/default HTTP/1.0\r\n\r\n`));
    let answer = '';
    socket.on('data', (d) => (answer += d.toString()));
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
  });
  t.match(escape, /^HTTP\/1\.1 4\d\d /, 'a ../ path is refused');
  t.notMatch(escape, /not published/, 'a ../ path does not leave images/');
  const outside = await fetch(`http://127.0.0.1:${port}/pxelinux.cfg/default`);
  t.not(outside.status, 200, 'the rest of the boot tree is not published');
  t.notMatch(await outside.text(), /not published/);
});

t.test('apply tftpd writes the drop-in only where apache2 is (its /etc/apache2), reloads apache2 once, and a second apply changes nothing', { skip: fs.existsSync('/usr/sbin/apache2') ? false : 'no apache2' }, async (t) => {
  const paths = scratchRoot(t);
  put(paths, '/etc/uec-provisioning/uec-provisioning.conf', '[server]\ninterface = eth1\n');
  const config = await loadConfig(paths, { ...COMMON_SCHEMA, ...TFTPD_SCHEMA });
  const lines: string[] = [];
  const log = createLogger({ level: 'info', json: false, write: (l: string) => void lines.push(l) });
  const context = (): ComponentContext => ({
    paths,
    config,
    templates: templateDirs(paths, `${REPO_ROOT}/templates`),
    network: staticNetworkFacts([{ name: 'eth1', mac: '52:54:00:aa:bb:cc', ipv4: [{ address: '192.0.2.10', prefix: 24 }], ipv6: [], up: true, loopback: false, virtual: false }]),
    log,
    nodes: async () => [],
  });
  const calls: string[] = [];
  const control: ServiceControl = { kind: 'none', reload: async (s) => (calls.push(s.name), 'reloaded') };
  const apply = async () => applyPlans({ paths, component: 'tftpd', plans: await component.plan(context()), services: control, log: SILENT_LOGGER });
  await apply();
  t.notOk(fs.existsSync(paths.resolve(APACHE_IMAGES.conf)), 'no /etc/apache2: no drop-in');
  fs.mkdirSync(paths.resolve('/etc/apache2/conf-available'), { recursive: true });
  calls.length = 0;
  const r = await apply();
  t.same(r.written, [APACHE_IMAGES.conf], 'apache2 installed: the drop-in is written');
  t.same(calls, ['apache2'], 'and apache2 reloaded');
  t.match(fs.readFileSync(paths.resolve(APACHE_IMAGES.conf), 'utf8'), `Alias /uec-provisioning-images/ ${paths.resolve('/var/lib/uec-provisioning/boot')}/images/\n`, 'the images directory as apache2 must see it (resolved like tftp-root)');
  t.ok(lines.some((l) => l.includes('a2enconf uec-provisioning-boot')), 'auto and not enabled: apply says how to enable it');
  calls.length = 0;
  const again = await apply();
  t.same([again.written, calls], [[], []], 'a second apply writes and reloads nothing');
});

t.test('loadImageOptions: the settings from [boot], and whether the drop-in is enabled, looked at most once a second', async (t) => {
  const paths = scratchRoot(t);
  put(paths, '/etc/uec-provisioning/uec-provisioning.conf', '[boot]\nimage_server = auto\nimage_http_port = 8080\n');
  const config = await loadConfig(paths, COMMON_SCHEMA);
  let now = 1_000_000;
  const images = loadImageOptions(paths, config, () => now);
  t.same(images.settings, { server: 'auto', apachePort: 8080 });
  t.equal(await images.apacheEnabled(), false);
  put(paths, APACHE_IMAGES.enabled, 'Alias\n');
  now += 500;
  t.equal(await images.apacheEnabled(), false, 'within the second: the answer is reused');
  now += 600;
  t.equal(await images.apacheEnabled(), true, 'after it: looked again (a2enconf shows within a second)');
  fs.rmSync(paths.resolve(APACHE_IMAGES.enabled));
  now += 1000;
  t.equal(await images.apacheEnabled(), false, 'a2disconf shows too');
  put(paths, '/etc/uec-provisioning/conf.d/50-x.conf', '[boot]\nimage_server = nginx\n');
  await t.rejects(loadConfig(paths, COMMON_SCHEMA), /image_server/, 'an unknown image server is refused, naming the key');
});
