/**
 * The README's first command, `scripts/install-from-checkout`, run as written on a clean
 * Debian 12 (the cached bookworm image, as root, in a chroot with no network): it installs
 * its own build dependencies and Node.js, builds the .debs from the checkout and installs
 * them with apt, with Recommends. The one difference from a fresh machine is that the
 * image's apt lists and cache stand in for the archive (UEC_APT_UPDATED skips the
 * `apt-get update` that would need the network).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { PACKAGES, bookwormImage, bookwormUnavailableReason, chrootRun, overlayRoot, prepareChroot } from '../helpers/bookworm';
import { copyCheckout } from '../helpers/scratch';

// A build and an install of six packages and their ~120 dependencies: longer than the
// suite's per-file timeout (package.json).
t.setTimeout(1_200_000);

/** The checkout's tracked and new files in a new git repository (the script lists them with git). */
function copyCheckoutWithGit(dest: string): void {
  copyCheckout(dest);
  const git = (...args: string[]) => spawnSync('git', ['-c', 'user.name=test', '-c', 'user.email=test@example.org', ...args], { cwd: dest, encoding: 'utf8' });
  git('init', '-q');
  git('add', '-A');
  git('commit', '-q', '-m', 'checkout');
}

t.test('scripts/install-from-checkout on a clean bookworm', { skip: bookwormUnavailableReason() }, async (t) => {
  const start = Date.now();
  const root = overlayRoot(t, bookwormImage());
  prepareChroot(root);
  t.notOk(fs.existsSync(path.join(root, 'usr/bin/node')), 'the image has no Node.js of its own');
  copyCheckoutWithGit(path.join(root, 'root/uec-provisioning'));

  const r = chrootRun(root, ['sh', '-c', 'cd /root/uec-provisioning && scripts/install-from-checkout'], { env: { UEC_APT_UPDATED: 'yes' } });
  const said = r.stdout + r.stderr;
  t.equal(r.code, 0, 'it exits 0', { said: said.slice(-4000) });
  t.match(r.stdout, /^Installed: .*uec-provisioning-common_0\.1\.0_all\.deb/m, 'it says what it installed');
  t.match(r.stdout, /^Next: uec-provisioning config show/m, 'and what to do next');
  const status = chrootRun(root, ['dpkg-query', '-W', '-f=${Package} ${db:Status-Abbrev}\n', ...PACKAGES, 'apt-cacher-ng']).stdout;
  for (const pkg of [...PACKAGES, 'apt-cacher-ng']) t.match(status, new RegExp(`^${pkg} ii`, 'm'), `${pkg} configured${pkg === 'apt-cacher-ng' ? ' (a Recommends: installed as apt install does)' : ''}`);
  t.equal(chrootRun(root, ['uec-provisioning', 'config', 'get', 'mirror.mode']).stdout.trim(), 'proxy', 'the default package source works with what was installed');
  const show = chrootRun(root, ['uec-provisioning', 'config', 'show']);
  t.equal(show.code, 0, 'the next command works');
  t.comment(`install-from-checkout on a clean bookworm: ${((Date.now() - start) / 1000).toFixed(1)} s`);
});
