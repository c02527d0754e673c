/**
 * ISO mode with real xorriso: an installer-shaped ISO (built with xorriso -as mkisofs) is
 * extracted and switched in; an ISO that is not an installer image, and a file that is no
 * ISO at all, are refused with IMAGE_INVALID and the served tree stays.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { main, type Io } from '../../../src/cli';
import type { Paths } from '../../../src/core/paths';
import { component as common } from '../../../packages/common/index';
import { component as mirror } from '../../../packages/mirror/index';
import { REPO_ROOT, put, scratchRoot, snapshotTree } from '../../helpers/scratch';

process.env.UEC_PROVISIONING_TEMPLATES = path.join(REPO_ROOT, 'templates');

async function cli(paths: Paths, args: string[]) {
  let stdout = '';
  let stderr = '';
  const io: Io = { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s), env: { ...process.env, UEC_PROVISIONING_SERVICE_CONTROL: 'none' } };
  return { code: await main(['--root', paths.root, ...args], io, { components: [common, mirror] }), stdout, stderr };
}

function makeIso(paths: Paths, name: string, files: Record<string, string>): string {
  const src = paths.resolve(`/build/${name}`);
  for (const [rel, content] of Object.entries(files)) put(paths, `/build/${name}/${rel}`, content);
  execFileSync('xorriso', ['-as', 'mkisofs', '-quiet', '-r', '-J', '-V', name, '-o', paths.resolve(`/srv/${name}.iso`), src], { stdio: 'ignore' });
  return `/srv/${name}.iso`;
}

const useIso = (paths: Paths, iso: string) => put(paths, '/etc/uec-provisioning/conf.d/50-managed.conf', `[mirror]\nmode = iso\niso = ${iso}\nmin_free_mb = 1\nhost = 127.0.0.1\n`);

t.test('iso mode: an installer ISO is extracted and served; bad images are refused', async (t) => {
  const paths = scratchRoot(t);
  fs.mkdirSync(paths.resolve('/srv'), { recursive: true });
  const good = makeIso(paths, 'debian-test', {
    '.disk/info': 'Debian GNU/Linux 12 "Bookworm" - Test amd64 NETINST\n',
    'dists/bookworm/Release': 'Suite: stable\nCodename: bookworm\n',
    'pool/main/u/uec-hello/uec-hello_1.0_all.deb': 'not really a deb\n',
    'install.amd/vmlinuz': 'kernel\n',
    'install.amd/initrd.gz': 'initrd\n',
  });
  useIso(paths, good);
  const ok = await cli(paths, ['--json', 'mirror', 'sync']);
  t.equal(ok.code, 0, ok.stderr);
  const current = paths.resolve('/var/lib/uec-provisioning/mirror/current');
  t.equal(fs.readFileSync(path.join(current, '.disk/info'), 'utf8').trim(), 'Debian GNU/Linux 12 "Bookworm" - Test amd64 NETINST');
  t.ok(fs.existsSync(path.join(current, 'install.amd/vmlinuz')), 'the netboot kernel is there for images import');
  t.equal((await cli(paths, ['apply', 'mirror'])).code, 0);
  t.match(fs.readFileSync(paths.resolve('/etc/apache2/conf-available/uec-provisioning-mirror.conf'), 'utf8'), /Alias \/uec-provisioning\/archive \/var\/lib\/uec-provisioning\/mirror\/current\n/);
  const status = JSON.parse((await cli(paths, ['--json', 'mirror', 'status'])).stdout);
  t.match(status, { mode: 'iso', tree: '/var/lib/uec-provisioning/mirror/current', served_url: 'http://127.0.0.1/uec-provisioning/archive', last_sync: { result: 'ok' } });
  const served = snapshotTree(fs.realpathSync(current));

  useIso(paths, makeIso(paths, 'just-files', { 'README.txt': 'holiday photos\n' }));
  const notInstaller = await cli(paths, ['mirror', 'sync']);
  t.equal(notInstaller.code, 10, 'IMAGE_INVALID');
  t.match(notInstaller.stderr, /is not a Debian installer image \(it lacks \.disk\/info, dists\/, install\*\/\)/);
  t.same(snapshotTree(fs.realpathSync(current)), served, 'served tree unchanged');

  put(paths, '/srv/garbage.iso', 'this is not an ISO 9660 image\n'.repeat(100));
  useIso(paths, '/srv/garbage.iso');
  const garbage = await cli(paths, ['mirror', 'sync']);
  t.equal(garbage.code, 10);
  t.match(garbage.stderr, /garbage\.iso is not (a readable ISO 9660 image|a Debian installer image)/);
  t.same(snapshotTree(fs.realpathSync(current)), served);

  useIso(paths, '/srv/missing.iso');
  t.equal((await cli(paths, ['mirror', 'sync'])).code, 3, 'a missing ISO is a configuration error');
});
