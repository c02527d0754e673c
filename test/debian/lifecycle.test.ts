/**
 * The Debian packages' whole life on this machine: build offline from the checkout, install
 * with apt, check files and rendered config, dpkg-reconfigure with preseeded answers, keep a
 * manual change and an admin edit across reconfigure and upgrade, then purge and check that
 * nothing the packages created is left. Services never start: policy-rc.d refuses them.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { REPO_ROOT, copyCheckout } from '../helpers/scratch';

const POLICY = '/usr/sbin/policy-rc.d';
/** Every binary package debian/control declares: the test follows the package set as it grows. */
const PACKAGES = fs.readFileSync(path.join(REPO_ROOT, 'debian/control'), 'utf8')
  .split('\n')
  .filter((l) => l.startsWith('Package: '))
  .map((l) => l.slice('Package: '.length).trim());
const ENV = { ...process.env, DEBIAN_FRONTEND: 'noninteractive', DEBCONF_NONINTERACTIVE_SEEN: 'true', LC_ALL: 'C.UTF-8' };

function run(cmd: string, args: string[], opts: { cwd?: string; input?: string; allowFail?: boolean } = {}) {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, env: ENV, input: opts.input, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0 && !opts.allowFail) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}:\n${r.stdout}\n${r.stderr}`.slice(-4000));
  }
  return { code: r.status, out: r.stdout, err: r.stderr };
}
const tool = (...args: string[]) => run('uec-provisioning', args, { allowFail: true });

/** Every path under the directories a package may touch, less apt's and dpkg's own records. */
function systemFiles(): Set<string> {
  const out = run('find', ['/etc', '/usr/sbin', '/usr/share/uec-provisioning', '/usr/share/man/man8', '/usr/share/doc', '/var/lib', '/var/log', '-xdev'], { allowFail: true }).out;
  // apache2's own bookkeeping directories (a2disconf/a2dismod create them on first use and
  // never remove them) are its layout, not ours; any marker file left inside them still counts.
  const noise = /^\/var\/lib\/(dpkg|apt|ucf|systemd|dbus|man-db)\/|^\/var\/log\/(apt|dpkg\.log|alternatives\.log)|^\/etc\/ld\.so\.cache|^\/var\/cache\/|^\/var\/lib\/apache2\/(conf|module|site)\/(disabled|enabled)_by_(admin|maint)$/;
  return new Set(out.split('\n').filter((p) => p && !noise.test(p)));
}

/** What apt would install along with the .debs (its own choice of dependencies and recommends), less the .debs. */
function otherPackagesNeeded(debs: string[]): string[] {
  const plan = run('apt-get', ['install', '-s', '-y', ...debs]).out;
  return [...plan.matchAll(/^Inst (\S+)/gm)].map((m) => m[1] ?? '').filter((name) => name && !PACKAGES.includes(name));
}

function installedVersion(pkg: string): string | null {
  const r = run('dpkg-query', ['-W', '-f=${Status} ${Version}', pkg], { allowFail: true });
  return r.code === 0 && r.out.startsWith('install ok installed') ? (r.out.split(' ').pop() ?? null) : null;
}

function build(src: string, version?: string): string[] {
  if (version) {
    const changelog = path.join(src, 'debian/changelog');
    const entry = `uec-provisioning (${version}) unstable; urgency=medium\n\n  * Test rebuild for the upgrade check.\n\n -- uec-provisioning developers <uec-provisioning-devel@lists.example.org>  Mon, 23 Nov 2026 19:00:00 +0000\n\n`;
    fs.writeFileSync(changelog, entry + fs.readFileSync(changelog, 'utf8'));
  }
  // No network inside a new network namespace: the build must work offline.
  run('unshare', ['--net', 'dpkg-buildpackage', '-us', '-uc', '-b'], { cwd: src });
  const parent = path.dirname(src);
  return fs.readdirSync(parent).filter((f) => f.endsWith('.deb') && (!version || f.includes(`_${version}_`))).map((f) => path.join(parent, f));
}

// Two .deb builds and several apt runs: 3 minutes alone, over tap's 5-minute file limit beside
// the other tests and the VM tests (CI: 300 s, then the file was cut off).
t.setTimeout(1_200_000);

t.test('package lifecycle', { skip: process.getuid?.() !== 0 ? 'needs root' : false, timeout: 1_000_000 }, async (t) => {
  let addedPolicy = false;
  if (!fs.existsSync(POLICY)) {
    fs.writeFileSync(POLICY, '#!/bin/sh\n# added by the uec-provisioning lifecycle test\nexit 101\n', { mode: 0o755 });
    addedPolicy = true;
  }
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'uec-deb-'));
  t.teardown(() => {
    run('dpkg', ['--purge', ...PACKAGES], { allowFail: true });
    fs.rmSync(work, { recursive: true, force: true });
    if (addedPolicy) fs.rmSync(POLICY, { force: true });
  });
  run('dpkg', ['--purge', ...PACKAGES], { allowFail: true });
  for (const pkg of PACKAGES) run('sh', ['-c', `echo PURGE | debconf-communicate ${pkg} >/dev/null`], { allowFail: true });

  const src = path.join(work, 'v1', 'uec-provisioning');
  copyCheckout(src);
  const debs = build(src);
  t.same(debs.map((d) => path.basename(d).split('_')[0]).sort(), [...PACKAGES].sort(), 'one .deb per package in debian/control, built offline');
  // What apt brings along with the packages (ipmitool and its daemons, ...) is not theirs to
  // remove: install it first, so the snapshot holds it.
  const others = otherPackagesNeeded(debs);
  if (others.length > 0) run('apt-get', ['install', '-y', ...others]);
  const before = systemFiles();

  const lintian = run('lintian', ['--fail-on', 'none', ...fs.readdirSync(path.dirname(src)).filter((f) => f.endsWith('.changes')).map((f) => path.join(path.dirname(src), f))]);
  const tags = lintian.out.split('\n').filter((l) => /^[EW]: /.test(l));
  t.same(tags, [], 'lintian: no errors or warnings');

  run('apt-get', ['install', '-y', ...debs]);
  for (const pkg of PACKAGES) t.equal(installedVersion(pkg), '0.1.0', `${pkg} installed`);
  t.equal(tool('version').out, 'uec-provisioning 0.1.0\n', 'the installed command runs on the packaged JavaScript');
  t.match(fs.readFileSync('/etc/uec-provisioning/uec-provisioning.conf', 'utf8'), /\[server\][\s\S]*#http_port = 5248/, 'conffile lists every key');
  t.ok(fs.existsSync('/var/lib/uec-provisioning') && fs.existsSync('/etc/uec-provisioning/conf.d'));
  t.equal(run('man', ['-w', 'uec-provisioning']).out.trim(), '/usr/share/man/man8/uec-provisioning.8.gz', 'man page installed');
  const shown = JSON.parse(tool('config', 'show', '--json').out) as Record<string, { value: unknown; origin: string }>;
  t.same(shown['server.interface'], { value: '', origin: '/etc/uec-provisioning/conf.d/50-managed.conf' }, 'debconf default "auto" applied');
  t.equal(run('dpkg-query', ['-W', '-f=${Conffiles}', 'uec-provisioning-common']).out.includes('/etc/uec-provisioning/uec-provisioning.conf'), true, 'main file is a conffile');

  // A preseeded answer reaches the config through dpkg-reconfigure.
  run('debconf-set-selections', [], { input: 'uec-provisioning-common uec-provisioning-common/interface select eth9\n' });
  run('dpkg-reconfigure', ['-fnoninteractive', 'uec-provisioning-common']);
  t.equal(tool('config', 'get', 'server.interface').out, 'eth9\n', 'preseeded answer applied');

  // A change made with config set survives dpkg-reconfigure (read back by .config).
  t.equal(tool('config', 'set', 'server.interface=eth7').code, 0);
  run('dpkg-reconfigure', ['-fnoninteractive', 'uec-provisioning-common']);
  t.equal(tool('config', 'get', 'server.interface').out, 'eth7\n', 'manual change kept by reconfigure');

  // Bad input through the installed command: one line, exit 3, nothing changed.
  const managedBefore = fs.readFileSync('/etc/uec-provisioning/conf.d/50-managed.conf', 'utf8');
  const bad = tool('config', 'set', 'server.http_port=eighty');
  t.equal(bad.code, 3);
  t.equal(bad.err.trim().split('\n').length, 1, 'one line');
  t.match(bad.err, /server\.http_port = "eighty": must be a whole number/);
  t.equal(fs.readFileSync('/etc/uec-provisioning/conf.d/50-managed.conf', 'utf8'), managedBefore);

  // The admin edits the conffile; an upgrade to a rebuilt higher version keeps the edit.
  fs.appendFileSync('/etc/uec-provisioning/uec-provisioning.conf', '\n[log]\nlevel = debug\n');
  const src2 = path.join(work, 'v2', 'uec-provisioning');
  copyCheckout(src2);
  const debs2 = build(src2, '0.1.1');
  run('apt-get', ['install', '-y', '-o', 'Dpkg::Options::=--force-confold', ...debs2]);
  t.equal(installedVersion('uec-provisioning-common'), '0.1.1', 'upgraded');
  t.equal(tool('config', 'get', 'log.level').out, 'debug\n', "admin's conffile edit kept");
  t.equal(tool('config', 'get', 'server.interface').out, 'eth7\n', 'managed setting kept');
  t.notOk(fs.existsSync('/etc/uec-provisioning/uec-provisioning.conf.dpkg-new'), 'no conffile prompt was needed');

  // Remove keeps the configuration; purge removes everything the packages created.
  run('apt-get', ['remove', '-y', ...PACKAGES]);
  t.ok(fs.existsSync('/etc/uec-provisioning/uec-provisioning.conf'), 'remove keeps the conffile');
  run('dpkg', ['--purge', ...PACKAGES]);
  const after = systemFiles();
  const left = [...after].filter((p) => !before.has(p));
  t.same(left, [], 'nothing the packages created is left after purge');
  for (const pkg of PACKAGES) t.equal(run('debconf-show', [pkg], { allowFail: true }).out.trim(), '', `${pkg}: debconf answers purged`);

  // Mirrored data the admin asked to keep survives the purge, even when common (owner of
  // /var/lib/uec-provisioning) is purged before the mirror package.
  run('apt-get', ['install', '-y', ...debs2]);
  run('debconf-set-selections', [], { input: 'uec-provisioning-mirror uec-provisioning-mirror/keep-data boolean true\n' });
  const kept = '/var/lib/uec-provisioning/mirror/trees/kept/pool/main/k/kept/kept_1.0_all.deb';
  fs.mkdirSync(path.dirname(kept), { recursive: true });
  fs.writeFileSync(kept, 'mirrored\n');
  fs.writeFileSync('/var/lib/uec-provisioning/nodes.json.test-extra', 'state\n');
  run('apt-get', ['remove', '-y', ...PACKAGES]);
  run('dpkg', ['--purge', 'uec-provisioning-common']);
  t.ok(fs.existsSync(kept), "purging common leaves the mirrored data to the mirror package's purge");
  t.notOk(fs.existsSync('/var/lib/uec-provisioning/nodes.json.test-extra'), "purging common removes the rest of the state");
  run('dpkg', ['--purge', ...PACKAGES]);
  t.equal(fs.readFileSync(kept, 'utf8'), 'mirrored\n', 'keep-data = true: the mirrored data survives the purge');
  t.same([...systemFiles()].filter((p) => !before.has(p) && !p.startsWith('/var/lib/uec-provisioning/mirror')).filter((p) => p !== '/var/lib/uec-provisioning'), [], 'nothing else is left');
  fs.rmSync('/var/lib/uec-provisioning', { recursive: true, force: true });
  t.ok(fs.existsSync(POLICY), 'policy-rc.d still in place');
});

t.test('the build is reproducible input: vendor/npm matches package-lock.json', async (t) => {
  const manifest = fs.readFileSync(path.join(REPO_ROOT, 'vendor/npm/MANIFEST'), 'utf8').trim().split('\n');
  const lock = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { integrity?: string }> };
  for (const line of manifest) {
    const [, installPath, , integrity] = line.split(' ') as [string, string, string, string];
    t.equal(lock.packages[installPath]?.integrity, integrity, `${installPath} is the locked version`);
  }
  const runtime = execFileSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: REPO_ROOT, encoding: 'utf8' })
    .split('\n')
    .filter((p) => p.includes('/node_modules/'))
    .map((p) => path.relative(REPO_ROOT, p))
    .sort();
  const vendored = manifest.filter((l) => l.startsWith('runtime ')).map((l) => l.split(' ')[1]).sort();
  t.same(vendored, runtime, 'every production dependency is vendored (run scripts/vendor-update.js after changing dependencies)');
});
