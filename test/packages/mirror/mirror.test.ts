/**
 * Mirror mode with real parts: a reprepro-built, gpg-signed archive served on loopback as
 * the upstream; `uec-provisioning mirror sync` (apt-mirror, gpgv) into a scratch root; a
 * private apache2 serving the result with the rendered conf; apt-get (its own Dir::* tree)
 * downloading from it. Then what must not change the served tree: a tampered Release, the
 * upstream down, a suite upstream lacks, a full disk.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { main, type Io } from '../../../src/cli';
import type { Paths } from '../../../src/core/paths';
import { templateDirs } from '../../../src/core/template';
import { component as common } from '../../../packages/common/index';
import { component as mirror, loadMirrorTemplates } from '../../../packages/mirror/index';
import { parseMirrorSettings } from '../../../packages/mirror/model';
import { renderMirrorPlans } from '../../../packages/mirror/render';
import { buildEffectiveConfig } from '../../../src/core/config';
import { REPO_ROOT, put, scratchRoot, snapshotTree } from '../../helpers/scratch';
import { privateApt, startApache } from './real-tools';
import { createTestArchive, serveDirectory, type TestArchive, type Upstream } from './test-archive';

process.env.UEC_PROVISIONING_TEMPLATES = path.join(REPO_ROOT, 'templates');

async function cli(paths: Paths, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: Io = { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s), env: { ...process.env, UEC_PROVISIONING_SERVICE_CONTROL: 'none' } };
  const code = await main(['--root', paths.root, ...args], io, { components: [common, mirror] });
  return { code, stdout, stderr };
}

function configure(paths: Paths, archive: TestArchive, upstream: string, extra: Record<string, string> = {}): void {
  fs.mkdirSync(paths.resolve('/etc/keys'), { recursive: true });
  fs.copyFileSync(archive.keyring, paths.resolve('/etc/keys/test-archive.gpg'));
  const values: Record<string, string> = {
    mode: 'mirror',
    upstream,
    suites: archive.suites.join(' '),
    architectures: 'amd64',
    components: 'main',
    keyring: '/etc/keys/test-archive.gpg',
    min_free_mb: '1',
    threads: '2',
    host: '127.0.0.1',
    ...extra,
  };
  put(paths, '/etc/uec-provisioning/conf.d/50-managed.conf', `[mirror]\n${Object.entries(values).map(([k, v]) => `${k} = ${v}`).join('\n')}\n`);
}

function served(paths: Paths): Record<string, string> {
  return snapshotTree(fs.realpathSync(paths.resolve('/var/lib/uec-provisioning/mirror/current')));
}

t.test('mirror mode end to end', async (t) => {
  const archive = createTestArchive();
  t.teardown(() => archive.remove());
  let upstream: Upstream = await serveDirectory(archive.publicDir);
  t.teardown(() => upstream.close());
  const paths = scratchRoot(t);
  configure(paths, archive, upstream.url);

  const first = await cli(paths, ['--json', 'mirror', 'sync']);
  t.equal(first.code, 0, first.stderr);
  const state = JSON.parse(first.stdout);
  t.equal(state.result, 'ok');
  t.equal(state.files, 5, 'four debs and one udeb served');
  t.ok(state.fetchedBytes > 0);
  const hostDir = new URL(upstream.url).host;
  const tree = paths.resolve(`/var/lib/uec-provisioning/mirror/current/${hostDir}`);
  t.ok(fs.existsSync(path.join(tree, 'pool/main/u/uec-installer-bit/uec-installer-bit_1.0_all.udeb')), 'the udeb is mirrored');
  t.ok(fs.existsSync(path.join(tree, 'dists/stable/main/debian-installer/binary-amd64/Packages')), 'main/debian-installer indexes are mirrored');
  t.ok(fs.lstatSync(paths.resolve('/var/lib/uec-provisioning/mirror/current')).isSymbolicLink(), 'current is a symlink');

  // The configurator's files for this mode, applied twice: the second run changes nothing.
  const apply1 = await cli(paths, ['apply', 'mirror']);
  t.equal(apply1.code, 0, apply1.stderr);
  const apply2 = await cli(paths, ['apply', 'mirror']);
  t.match(apply2.stderr, /up to date, nothing written/);
  const override = JSON.parse(fs.readFileSync(paths.resolve('/var/lib/uec-provisioning/archive-settings.json'), 'utf8'));
  t.match(override, { main_archive: 'http://127.0.0.1/uec-provisioning/archive', http_proxy: '' });

  // A private apache2 serves the tree with the rendered conf (base_dir resolved into the scratch root).
  const settings = parseMirrorSettings(
    buildEffectiveConfig(
      { ...common.configSchema, ...mirror.configSchema },
      [{ file: 't', values: new Map<string, string | number | boolean>([['mirror.mode', 'mirror'], ['mirror.upstream', upstream.url], ['mirror.base_dir', paths.resolve('/var/lib/uec-provisioning/mirror')]]) }],
    ),
  );
  const tpl = await loadMirrorTemplates({ templates: templateDirs(paths, path.join(REPO_ROOT, 'templates')) });
  const apacheConf = renderMirrorPlans({ settings, templates: tpl, host: '127.0.0.1', archive: { main_archive: upstream.url, ports_archive: upstream.url } }).find((p) => p.path.includes('apache2'));
  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'uec-mirror-apache-'));
  t.teardown(() => fs.rmSync(runDir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(runDir, 'mirror.conf'), apacheConf?.content ?? '');
  const apache = await startApache(path.join(runDir, 'run'), path.join(runDir, 'mirror.conf'));
  t.teardown(() => apache.stop());

  const aptDir = path.join(runDir, 'apt');
  const apt = privateApt(aptDir, `deb http://127.0.0.1:${apache.port}/uec-provisioning/archive stable main`, archive.keyring);
  const aptGet = async () => {
    await apt.run(['update']);
    const dl = path.join(aptDir, 'dl');
    fs.rmSync(dl, { recursive: true, force: true });
    fs.mkdirSync(dl);
    await apt.run(['download', 'uec-hello'], dl);
    return fs.readdirSync(dl);
  };
  t.same(await aptGet(), ['uec-hello_1.0_all.deb'], 'apt-get downloads the package from the apache-served mirror (signature checked by apt)');
  const accessLog = fs.readFileSync(path.join(runDir, 'run', 'access.log'), 'utf8');
  t.match(accessLog, /GET \/uec-provisioning\/archive\/pool\/main\/u\/uec-hello\/uec-hello_1\.0_all\.deb HTTP\/1\.1 200/);

  // Nothing changed upstream: the incremental sync fetches no package file.
  upstream.reset();
  const again = await cli(paths, ['--json', 'mirror', 'sync']);
  t.equal(again.code, 0, again.stderr);
  t.equal(upstream.requests().filter((r) => r.includes('/pool/')).length, 0, 'no pool file requested again');

  // A new package upstream arrives with the next sync.
  archive.addPackage('stable', 'uec-extra', '1.0');
  t.equal((await cli(paths, ['mirror', 'sync'])).code, 0);
  t.ok(fs.existsSync(path.join(tree, 'pool/main/u/uec-extra/uec-extra_1.0_all.deb')));

  // Upstream re-signed within the same second as that sync: same times, Release.gpg the same
  // size. wget -N alone would keep the old signature (a BAD signature on every later sync).
  const distsDir = path.join(archive.publicDir, 'dists/stable');
  const times = new Map(fs.readdirSync(distsDir).map((name) => [name, fs.statSync(path.join(distsDir, name)).mtime] as const));
  archive.addPackage('stable', 'uec-same-second', '1.0');
  for (const [name, mtime] of times) if (fs.existsSync(path.join(distsDir, name))) fs.utimesSync(path.join(distsDir, name), mtime, mtime);
  const sameSecond = await cli(paths, ['mirror', 'sync']);
  t.equal(sameSecond.code, 0, `a Release re-signed in the same second is fetched again: ${sameSecond.stderr}`);
  t.ok(fs.existsSync(path.join(tree, 'pool/main/u/uec-same-second/uec-same-second_1.0_all.deb')));
  const good = served(paths);
  const goodTarget = fs.readlinkSync(paths.resolve('/var/lib/uec-provisioning/mirror/current'));

  t.test('a tampered Release leaves the previous good mirror in place', async (t) => {
    const release = path.join(archive.publicDir, 'dists/stable/Release');
    const original = fs.readFileSync(release);
    t.teardown(() => fs.writeFileSync(release, original));
    fs.writeFileSync(release, Buffer.concat([original, Buffer.from('Tampered: yes\n')]));
    const inRelease = path.join(archive.publicDir, 'dists/stable/InRelease');
    const originalIn = fs.readFileSync(inRelease);
    t.teardown(() => fs.writeFileSync(inRelease, originalIn));
    fs.writeFileSync(inRelease, originalIn.toString().replace('Suite: stable', 'Suite: stab1e'));
    // wget -N asks If-Modified-Since with one-second resolution: make the change visible.
    const later = new Date(Date.now() + 120_000);
    for (const f of [release, inRelease]) fs.utimesSync(f, later, later);
    const bad = await cli(paths, ['mirror', 'sync']);
    t.equal(bad.code, 12, 'UPSTREAM_FAILED');
    t.match(bad.stderr, /signature check failed/);
    t.same(served(paths), good, 'served tree unchanged');
    t.equal(fs.readlinkSync(paths.resolve('/var/lib/uec-provisioning/mirror/current')), goodTarget);
    t.same(await aptGet(), ['uec-hello_1.0_all.deb'], 'apt-get still installs from the last good mirror');
    const status = await cli(paths, ['--json', 'mirror', 'status']);
    t.match(JSON.parse(status.stdout), { mode: 'mirror', last_sync: { result: 'failed', code: 'UPSTREAM_FAILED' }, served_url: 'http://127.0.0.1/uec-provisioning/archive' });
  });

  t.test('a suite upstream lacks: clear error, nothing changed', async (t) => {
    configure(paths, archive, upstream.url, { suites: 'stable nosuch' });
    t.teardown(() => configure(paths, archive, upstream.url));
    const bad = await cli(paths, ['mirror', 'sync']);
    t.equal(bad.code, 12);
    t.match(bad.stderr, /has no suite "nosuch"/);
    t.same(served(paths), good);
  });

  t.test('upstream down: clear error, nothing changed', async (t) => {
    const url = upstream.url;
    await upstream.close();
    const bad = await cli(paths, ['mirror', 'sync']);
    t.equal(bad.code, 12);
    t.match(bad.stderr, /cannot reach the upstream archive/);
    t.same(served(paths), good);
    upstream = await serveDirectory(archive.publicDir, '127.0.0.1', Number(new URL(url).port));
  });

  t.test('too little free space for a run: MIRROR_FAILED before anything is fetched', async (t) => {
    configure(paths, archive, upstream.url, { min_free_mb: '100000000' });
    t.teardown(() => configure(paths, archive, upstream.url));
    upstream.reset();
    const bad = await cli(paths, ['mirror', 'sync']);
    t.equal(bad.code, 15);
    t.match(bad.stderr, /mirror\.min_free_mb asks for/);
    t.equal(upstream.requests().filter((r) => r.includes('/pool/')).length, 0);
    t.same(served(paths), good);
  });

  t.test('mode switch to proxy removes the mirror files; back to mirror restores them', async (t) => {
    configure(paths, archive, upstream.url, { mode: 'proxy' });
    t.equal((await cli(paths, ['apply', 'mirror'])).code, 0);
    t.notOk(fs.existsSync(paths.resolve('/var/lib/uec-provisioning/mirror.list')), 'mirror.list removed');
    t.notOk(fs.existsSync(paths.resolve('/etc/cron.d/uec-provisioning-mirror')), 'cron fallback removed');
    t.ok(fs.existsSync(paths.resolve('/etc/apt-cacher-ng/zz_uec-provisioning.conf')), 'proxy drop-in written');
    t.match(fs.readFileSync(paths.resolve('/etc/apache2/conf-available/uec-provisioning-mirror.conf'), 'utf8'), /serves no local archive/);
    const sync = await cli(paths, ['mirror', 'sync']);
    t.equal(sync.code, 2, 'sync refused outside mirror/iso mode');
    configure(paths, archive, upstream.url, { mode: 'upstream' });
    t.equal((await cli(paths, ['apply', 'mirror'])).code, 0);
    t.notOk(fs.existsSync(paths.resolve('/var/lib/uec-provisioning/archive-settings.json')), 'upstream: no archive override');
    t.notOk(fs.existsSync(paths.resolve('/etc/apt-cacher-ng/zz_uec-provisioning.conf')), 'proxy drop-in removed');
    configure(paths, archive, upstream.url);
    t.equal((await cli(paths, ['apply', 'mirror'])).code, 0);
    t.ok(fs.existsSync(paths.resolve('/var/lib/uec-provisioning/mirror.list')));
  });
});

t.test('disk full during sync (a small tmpfs): MIRROR_FAILED, the served tree is the last good one', async (t) => {
  const archive = createTestArchive(['stable']);
  t.teardown(() => archive.remove());
  const upstream = await serveDirectory(archive.publicDir);
  t.teardown(() => upstream.close());
  const paths = scratchRoot(t);
  const base = paths.resolve('/var/lib/uec-provisioning/mirror');
  fs.mkdirSync(base, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0755', 'uec-mirror-test', base]);
  t.teardown(() => execFileSync('umount', ['-l', base]));
  configure(paths, archive, upstream.url, { min_free_mb: '0' });
  t.equal((await cli(paths, ['mirror', 'sync'])).code, 0, 'the small archive fits');
  const good = served(paths);
  // A package bigger than the filesystem (random bytes: dpkg-deb cannot compress them away).
  const big = path.join(archive.dir, 'big.bin');
  fs.writeFileSync(big, Buffer.alloc(1536 * 1024, 0).map(() => Math.floor(Math.random() * 256)));
  archive.addPackage('stable', 'uec-big', '1.0', big);
  const bad = await cli(paths, ['mirror', 'sync']);
  t.equal(bad.code, 15, bad.stderr);
  t.match(bad.stderr, /disk|full|space/i);
  t.same(served(paths), good, 'served tree unchanged');
});
