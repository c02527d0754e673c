/**
 * The quick start's install as a sysadmin gets it: the freshly built .debs installed by apt
 * in ONE transaction on a clean Debian 12 (the cached debootstrapped image, offline, its
 * dependencies coming from its apt cache), with Recommends (what `apt install` does) and
 * without. Every package must end `ii`; then purging them, all together or each alone in
 * either order, must leave nothing that was not there before.
 *
 * "Before" is the same clean image with only the dependencies apt brought along installed
 * (their own postinsts leave their own files): what remains after a purge beyond that is
 * ours. Services never start in these chroots (policy-rc.d); the DEP-8 suite starts them
 * under real systemd.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import {
  PACKAGES,
  prepareChroot,
  bookwormImage,
  bookwormUnavailableReason,
  builtDebs,
  chrootMust,
  chrootRun,
  copyInto,
  overlayRoot,
} from '../helpers/bookworm';

/** apt's, dpkg's and the dependencies' own bookkeeping: not files a package leaves behind. */
const NOISE = /^\/(proc|sys|dev|run|tmp)\/|^\/var\/lib\/(dpkg|apt|ucf|systemd|dbus|man-db)\/|^\/var\/log\/(apt\/|dpkg\.log|alternatives\.log)|^\/var\/cache\/|^\/etc\/ld\.so\.cache$|^\/var\/lib\/apache2\/(conf|module|site)\/(disabled|enabled)_by_(admin|maint)$|^\/var\/lib\/apache2\/deferred_actions$/;

/** Every path in the root (as seen inside it), less the noise. */
function snapshot(root: string): Set<string> {
  const out = new Set<string>();
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      const inside = full.slice(root.length);
      if (/^\/(proc|sys|dev|run|tmp)$/.test(inside)) continue;
      if (NOISE.test(inside)) continue;
      out.add(inside);
      if (entry.isDirectory()) walk(full);
    }
  };
  walk(root);
  return out;
}

function statusOf(root: string): Record<string, string> {
  const r = chrootRun(root, ['dpkg-query', '-W', '-f=${Package} ${db:Status-Abbrev}\n', ...PACKAGES]);
  const out: Record<string, string> = {};
  for (const line of r.stdout.split('\n')) {
    const [pkg, status] = line.trim().split(/\s+/);
    if (pkg) out[pkg] = status ?? '';
  }
  return out;
}

const aptInstall = (recommends: boolean, debs: string[]) => ['apt-get', 'install', '-y', '-q', ...(recommends ? [] : ['--no-install-recommends']), ...debs];

// Two modes, each with a baseline, an install and four purges: longer than the suite's
// per-file timeout (package.json).
t.setTimeout(1_500_000);

t.test('one apt transaction on a clean bookworm', { skip: bookwormUnavailableReason(), timeout: 1_200_000 }, async (t) => {
  let start = Date.now();
  const image = bookwormImage();
  const { debs } = builtDebs();
  t.same(debs.map((d) => path.basename(d).split('_')[0]).sort(), [...PACKAGES].sort(), 'one .deb per package');
  t.comment(`image and .debs ready in ${((Date.now() - start) / 1000).toFixed(1)} s`);

  for (const recommends of [true, false]) {
    await t.test(recommends ? 'with Recommends' : 'without Recommends', async (t) => {
      // The baseline: the clean image plus exactly what apt brings along with the .debs.
      start = Date.now();
      const base = overlayRoot(t, image);
      prepareChroot(base);
      const baseDebs = copyInto(base, '/tmp/debs', debs);
      const plan = chrootMust(base, [...aptInstall(recommends, baseDebs), '-s']);
      const others = [...plan.matchAll(/^Inst (\S+)/gm)].map((m) => m[1] ?? '').filter((p) => p && !PACKAGES.includes(p));
      t.ok(others.includes('nodejs'), 'apt brings nodejs along');
      t.equal(others.includes('apache2'), true, 'apache2 comes along (a Depends of the mirror)');
      t.equal(others.includes('apt-cacher-ng'), recommends, `apt-cacher-ng ${recommends ? 'comes' : 'does not come'} along`);
      chrootMust(base, ['apt-get', 'install', '-y', '-q', '--no-install-recommends', ...others]);
      const before = snapshot(base);
      t.comment(`baseline (${others.length} dependencies) in ${((Date.now() - start) / 1000).toFixed(1)} s`);

      // The one transaction.
      start = Date.now();
      const root = overlayRoot(t, image);
      prepareChroot(root);
      const inside = copyInto(root, '/tmp/debs', debs);
      const install = chrootRun(root, aptInstall(recommends, inside));
      const said = install.stdout + install.stderr;
      t.equal(install.code, 0, 'apt-get install exits 0', { said: said.slice(-3000) });
      t.same(statusOf(root), Object.fromEntries(PACKAGES.map((p) => [p, 'ii'])), 'every package configured (ii)');
      // What our maintainer scripts said (grub's own "grub-probe: error" about the overlay is not ours).
      const ours = said.split('\n').filter((l) => /^(uec-provisioning[a-z-]*:|apache2_invoke|AH\d+)/.test(l));
      t.ok(ours.length > 5, 'the postinsts said what they did');
      t.same(ours.filter((l) => /error|fail|not configured yet|No MPM/i.test(l)), [], 'no postinst reported a failure');
      t.comment(`install in one transaction: ${((Date.now() - start) / 1000).toFixed(1)} s`);

      t.equal(chrootMust(root, ['uec-provisioning', 'version']), 'uec-provisioning 0.1.0\n', 'the command runs on Debian\'s nodejs');
      t.equal(chrootMust(root, ['uec-provisioning', 'config', 'get', 'mirror.mode']).trim(), recommends ? 'proxy' : 'upstream', 'the mirror mode works with what was installed');
      if (!recommends) t.match(said, /apt-cacher-ng is not installed, so installs use the archive directly \(mode upstream\)/, 'and the postinst says why');
      t.ok(fs.existsSync(path.join(root, 'etc/apache2/conf-enabled/uec-provisioning-webui.conf')), 'the web UI drop-in is enabled in apache2');
      t.ok(fs.existsSync(path.join(root, 'etc/apache2/mods-enabled/proxy_http.load')), 'with mod_proxy_http');
      const check = chrootRun(root, ['apache2ctl', '-t']);
      t.equal(check.code, 0, 'apache2 accepts its whole configuration', { said: check.stderr });

      // Purge all six together, in one apt run (with Recommends), or one apt run at a time,
      // dependents first, while the others stay installed (without).
      start = Date.now();
      if (recommends) {
        chrootMust(root, ['apt-get', 'purge', '-y', '-q', ...PACKAGES]);
      } else {
        const dependentsFirst = ['uec-provisioning', 'uec-provisioning-webui', 'uec-provisioning-tftpd', 'uec-provisioning-mirror', 'uec-provisioning-dhcpd', 'uec-provisioning-common'];
        t.same([...dependentsFirst].sort(), [...PACKAGES].sort(), 'the order names every package');
        for (const pkg of dependentsFirst) chrootMust(root, ['apt-get', 'purge', '-y', '-q', pkg]);
      }
      t.same([...snapshot(root)].filter((p) => !before.has(p)), [], recommends ? 'purged together: nothing left' : 'purged one at a time, dependents first: nothing left');
      for (const pkg of PACKAGES) {
        t.equal(chrootRun(root, ['debconf-show', pkg]).stdout.trim(), '', `${pkg}: debconf answers purged`);
      }
      t.comment(`purge: ${((Date.now() - start) / 1000).toFixed(1)} s`);

      // Each alone in any order: all removed, then purged one dpkg run at a time, common
      // first (with Recommends) or last (without).
      start = Date.now();
      const order = recommends ? PACKAGES : [...PACKAGES].reverse();
      chrootMust(root, aptInstall(recommends, inside));
      chrootMust(root, ['dpkg', '--remove', ...PACKAGES]);
      for (const pkg of order) chrootMust(root, ['dpkg', '--purge', pkg]);
      t.same([...snapshot(root)].filter((p) => !before.has(p)), [], `removed, then purged alone in the order ${order.join(', ')}: nothing left`);
      t.comment(`reinstall, remove and purge one by one: ${((Date.now() - start) / 1000).toFixed(1)} s`);
    });
  }
});
