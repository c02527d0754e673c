import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import t from 'tap';
import { main } from '../../../src/cli';
import type { Paths } from '../../../src/core/paths';
import { importImage, listImages, parseChecksums, parseImageName, parseReleaseInfo, removeImage, selectChecksum, type ImageSource } from '../../../packages/tftpd/images';
import { scratchRoot } from '../../helpers/scratch';

/** Every entry under a directory: symlinks by target, files by mode and content. */
function snapshotTree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      const key = path.relative(dir, p);
      if (e.isSymbolicLink()) out[key] = `-> ${fs.readlinkSync(p)}`;
      else if (e.isDirectory()) walk(p);
      else out[key] = `${(fs.statSync(p).mode & 0o7777).toString(8)} ${sha256(fs.readFileSync(p))}`;
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return out;
}

const DEFAULTS = { os: 'debian', release: 'bookworm', arch: 'amd64' };
const BOOT = '/var/lib/uec-provisioning/boot';
const PACKAGE = 'debian-installer-12-netboot-amd64';
const PACKAGE_TREE = '/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64';

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

function run(argv: string[], cwd?: string): void {
  const r = spawnSync(argv[0]!, argv.slice(1), { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
}

/** A small netboot tree as Debian lays it out, packed as <dir>/netboot/netboot.tar.gz with <dir>/SHA256SUMS. */
function buildNetboot(dir: string, kernel: string, options: { checksum?: 'right' | 'wrong' | 'none' } = {}): string {
  const tree = path.join(dir, 'tree');
  fs.mkdirSync(path.join(tree, 'debian-installer/amd64'), { recursive: true });
  fs.writeFileSync(path.join(tree, 'version.info'), 'Debian version:  12 (bookworm)\nInstaller build: 20990101\n');
  fs.writeFileSync(path.join(tree, 'debian-installer/amd64/linux'), kernel);
  fs.writeFileSync(path.join(tree, 'debian-installer/amd64/initrd.gz'), `initrd for ${kernel}\n`.repeat(2000));
  fs.mkdirSync(path.join(dir, 'netboot'), { recursive: true });
  const tarball = path.join(dir, 'netboot/netboot.tar.gz');
  run(['tar', '-czf', tarball, '-C', tree, '.']);
  const digest = options.checksum === 'wrong' ? sha256('something else') : sha256(fs.readFileSync(tarball));
  if (options.checksum !== 'none') fs.writeFileSync(path.join(dir, 'SHA256SUMS'), `${sha256('x')}  ./netboot/mini.iso\n${digest}  ./netboot/netboot.tar.gz\n`);
  return tarball;
}

function scratchDir(_t: unknown, paths: Paths, name: string): string {
  const dir = path.join(paths.root, name);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

const imp = (paths: Paths, source: ImageSource, extra: Partial<Parameters<typeof importImage>[0]> = {}) => importImage({ paths, source, defaults: DEFAULTS, ...extra });
const leftovers = (paths: Paths) => {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (/^\.(staging-|.*\.link-)/.test(e.name)) out.push(path.join(d, e.name));
      if (e.isDirectory()) walk(path.join(d, e.name));
    }
  };
  if (fs.existsSync(paths.resolve(BOOT))) walk(paths.resolve(BOOT));
  return out;
};

t.test('pure helpers', async (t) => {
  t.same(parseReleaseInfo('Debian version:  12 (bookworm)\nInstaller build: 20230607+deb12u15\n'), { os: 'debian', release: 'bookworm', version: '12 (20230607+deb12u15)' });
  t.same(parseReleaseInfo('Debian GNU/Linux 12.5.0 "Bookworm" - Official amd64 NETINST with firmware 20240210-11:27'), { os: 'debian', release: 'bookworm', version: '12.5.0' });
  t.equal(parseReleaseInfo('nothing'), null);
  const sums = parseChecksums(`${'a'.repeat(64)}  ./netboot/netboot.tar.gz\n${'b'.repeat(64)}  ./hd-media/boot.img.gz\n`);
  t.equal(selectChecksum(sums, 'netboot/netboot.tar.gz'), 'a'.repeat(64));
  t.equal(selectChecksum(sums, 'netboot.tar.gz'), 'a'.repeat(64), 'a bare name matches a unique trailing path');
  t.equal(selectChecksum(parseChecksums(`${'a'.repeat(64)}  ./a/initrd.gz\n${'b'.repeat(64)}  ./b/initrd.gz\n`), 'initrd.gz'), null, 'two candidates: no guess');
  t.throws(() => parseImageName('debian/bookworm'), { code: 'USAGE' });
  t.throws(() => parseImageName('debian/../amd64'), { code: 'USAGE' });
  t.same(parseImageName('debian/bookworm/amd64'), DEFAULTS);
});

t.test('import from the installed debian-installer-12-netboot-amd64 package, verified by dpkg md5sums; re-import changes nothing', { skip: fs.existsSync(PACKAGE_TREE) ? false : `${PACKAGE} is not installed` }, async (t) => {
  const paths = scratchRoot(t);
  const first = await imp(paths, { kind: 'package', name: PACKAGE });
  t.equal(first.outcome, 'imported');
  t.match(first.image, { os: 'debian', release: 'bookworm', arch: 'amd64', verified: 'dpkg md5sums', source: `package ${PACKAGE}` });
  const dir = paths.resolve(`${BOOT}/images/debian/bookworm/amd64`);
  t.ok(fs.lstatSync(dir).isSymbolicLink(), 'the image path is a symlink, switched atomically');
  for (const [mine, theirs] of [['linux', 'linux'], ['initrd.gz', 'initrd.gz']]) {
    t.equal(sha256(fs.readFileSync(path.join(dir, mine!))), sha256(fs.readFileSync(path.join(PACKAGE_TREE, theirs!))), `${mine} is the package's file`);
  }
  const link = fs.readlinkSync(dir);
  const second = await imp(paths, { kind: 'package', name: PACKAGE });
  t.equal(second.outcome, 'unchanged', 'second import: nothing changed');
  t.equal(fs.readlinkSync(dir), link, 'the same directory is still served');
  t.same(leftovers(paths), [], 'no staging left');
  await t.rejects(imp(paths, { kind: 'package', name: 'debian-installer-99-netboot-amd64' }), { code: 'IMAGE_UNKNOWN' }, 'a package that is not installed');
  await t.rejects(imp(paths, { kind: 'package', name: 'bash' }), { code: 'USAGE' });
});

t.test('import a netboot.tar.gz with SHA256SUMS; truncated or mismatched → IMAGE_INVALID and the old image untouched', async (t) => {
  const paths = scratchRoot(t);
  const good = buildNetboot(scratchDir(t, paths, 'good'), 'kernel v1\n'.repeat(500));
  const r = await imp(paths, { kind: 'tarball', location: good });
  t.match(r.image, { os: 'debian', release: 'bookworm', arch: 'amd64', verified: 'SHA256SUMS', version: '12 (20990101)' });
  t.same(r.notes, []);
  t.equal(fs.readFileSync(paths.resolve(`${BOOT}/images/debian/bookworm/amd64/linux`), 'utf8'), 'kernel v1\n'.repeat(500));
  const before = snapshotTree(paths.resolve(BOOT));

  const truncatedDir = scratchDir(t, paths, 'truncated');
  const full = fs.readFileSync(buildNetboot(truncatedDir, 'kernel v2\n'.repeat(500), { checksum: 'none' }));
  const truncated = path.join(truncatedDir, 'netboot/netboot.tar.gz');
  fs.writeFileSync(truncated, full.subarray(0, Math.floor(full.length / 2)));
  await t.rejects(imp(paths, { kind: 'tarball', location: truncated }), { code: 'IMAGE_INVALID', message: /not a complete gzip tar archive.*nothing was imported/ }, 'truncated tarball');
  t.same(snapshotTree(paths.resolve(BOOT)), before, 'truncated: boot tree byte-identical, nothing half-imported');

  const mismatch = buildNetboot(scratchDir(t, paths, 'mismatch'), 'kernel v3\n'.repeat(500), { checksum: 'wrong' });
  await t.rejects(imp(paths, { kind: 'tarball', location: mismatch }), { code: 'IMAGE_INVALID', message: /does not match/ }, 'checksum mismatch');
  t.same(snapshotTree(paths.resolve(BOOT)), before, 'mismatch: boot tree byte-identical');

  const unverified = buildNetboot(scratchDir(t, paths, 'nosums'), 'kernel v4\n'.repeat(500), { checksum: 'none' });
  const u = await imp(paths, { kind: 'tarball', location: unverified }, { release: 'trixie' });
  t.equal(u.image.verified, 'none');
  t.match(u.notes.join('\n'), /no SHA256SUMS/, 'a note says it was not verified');
  t.same((await listImages(paths)).map((i) => `${i.os}/${i.release}/${i.arch}`), ['debian/bookworm/amd64', 'debian/trixie/amd64'], '--release stores it beside the first');

  const v2 = buildNetboot(scratchDir(t, paths, 'v2'), 'kernel v2\n'.repeat(500));
  const oldTarget = fs.readlinkSync(paths.resolve(`${BOOT}/images/debian/bookworm/amd64`));
  await imp(paths, { kind: 'tarball', location: v2 });
  t.equal(fs.readFileSync(paths.resolve(`${BOOT}/images/debian/bookworm/amd64/linux`), 'utf8'), 'kernel v2\n'.repeat(500), 'a new version replaces the old');
  t.notOk(fs.existsSync(path.join(paths.resolve(`${BOOT}/images/debian/bookworm`), oldTarget)), 'the old directory is gone');
  t.same(leftovers(paths), []);

  await removeImage(paths, 'debian', 'trixie', 'amd64');
  t.same((await listImages(paths)).map((i) => i.release), ['bookworm']);
  t.notOk(fs.existsSync(paths.resolve(`${BOOT}/images/debian/trixie`)), 'empty release directory removed');
  await t.rejects(removeImage(paths, 'debian', 'trixie', 'amd64'), { code: 'IMAGE_UNKNOWN' });
});

t.test('import from an http URL finds SHA256SUMS one directory up (Debian layout)', async (t) => {
  const paths = scratchRoot(t);
  const dir = scratchDir(t, paths, 'mirror');
  buildNetboot(dir, 'kernel over http\n'.repeat(300));
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req.url ?? '');
    const file = path.join(dir, decodeURIComponent((req.url ?? '/').split('?')[0]!));
    if (!file.startsWith(dir) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-length': fs.statSync(file).size });
    fs.createReadStream(file).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const r = await imp(paths, { kind: 'tarball', location: `${base}/netboot/netboot.tar.gz` });
  t.equal(r.image.verified, 'SHA256SUMS');
  t.same(requests, ['/netboot/netboot.tar.gz', '/netboot/SHA256SUMS', '/SHA256SUMS']);
  await t.rejects(imp(paths, { kind: 'tarball', location: `${base}/missing/netboot.tar.gz` }), { code: 'UPSTREAM_FAILED' });
  t.same(leftovers(paths), []);
});

t.test('import from an installer ISO built with xorriso (install.amd/, sha256sum.txt, .disk/info)', async (t) => {
  const paths = scratchRoot(t);
  const build = (name: string, kernel: string, corrupt: boolean) => {
    const tree = scratchDir(t, paths, `${name}-tree`);
    fs.mkdirSync(path.join(tree, 'install.amd'), { recursive: true });
    fs.mkdirSync(path.join(tree, '.disk'), { recursive: true });
    fs.writeFileSync(path.join(tree, '.disk/info'), 'Debian GNU/Linux 12.8.0 "Bookworm" - Official amd64 NETINST with firmware 20241109-11:04');
    fs.writeFileSync(path.join(tree, 'install.amd/vmlinuz'), kernel);
    fs.writeFileSync(path.join(tree, 'install.amd/initrd.gz'), 'initrd\n'.repeat(1000));
    const sums = ['install.amd/vmlinuz', 'install.amd/initrd.gz'].map((f) => `${sha256(fs.readFileSync(path.join(tree, f)))}  ./${f}`);
    if (corrupt) sums[0] = `${sha256('tampered')}  ./install.amd/vmlinuz`;
    fs.writeFileSync(path.join(tree, 'sha256sum.txt'), sums.join('\n') + '\n');
    const iso = path.join(paths.root, `${name}.iso`);
    run(['xorriso', '-as', 'mkisofs', '-quiet', '-R', '-J', '-V', 'DEBIAN', '-o', iso, tree]);
    return iso;
  };
  const r = await imp(paths, { kind: 'iso', file: build('good', 'iso kernel\n'.repeat(100), false) });
  t.match(r.image, { os: 'debian', release: 'bookworm', arch: 'amd64', version: '12.8.0', verified: 'sha256sum.txt' });
  t.equal(fs.readFileSync(paths.resolve(`${BOOT}/images/debian/bookworm/amd64/linux`), 'utf8'), 'iso kernel\n'.repeat(100));
  t.match(r.notes.join('\n'), /no netboot tree/);
  const before = snapshotTree(paths.resolve(BOOT));
  await t.rejects(imp(paths, { kind: 'iso', file: build('bad', 'other kernel\n', true) }), { code: 'IMAGE_INVALID', message: /install\.amd\/vmlinuz does not match sha256sum\.txt/ });
  t.same(snapshotTree(paths.resolve(BOOT)), before, 'nothing changed');
  const notIso = path.join(paths.root, 'not.iso');
  fs.writeFileSync(notIso, 'not an iso image');
  await t.rejects(imp(paths, { kind: 'iso', file: notIso }), { code: 'IMAGE_INVALID' });
  t.same(leftovers(paths), []);
});

t.test('CLI: images import/list --json/remove, plain progress lines when not on a terminal', async (t) => {
  const paths = scratchRoot(t);
  const tarball = buildNetboot(scratchDir(t, paths, 'src'), 'cli kernel\n'.repeat(100));
  const cli = async (...args: string[]) => {
    let stdout = '';
    let stderr = '';
    const code = await main(['--root', paths.root, ...args], { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), env: {}, interactive: false });
    return { code, stdout, stderr };
  };
  const imported = await cli('images', 'import', tarball);
  t.equal(imported.code, 0, imported.stderr);
  t.match(imported.stderr, /verifying netboot\.tar\.gz against .*SHA256SUMS\nunpacking netboot\.tar\.gz\ncopying linux\ncopying initrd\.gz\nimported debian\/bookworm\/amd64\n/);
  t.notMatch(imported.stderr, /\r/, 'no carriage returns in a log');
  const listed = await cli('images', 'list', '--json');
  t.same((JSON.parse(listed.stdout) as { release: string }[]).map((i) => i.release), ['bookworm']);
  t.equal((await cli('images', 'import')).code, 2, 'no source: usage error');
  t.equal((await cli('images', 'remove', 'debian/sid/amd64')).code, 10, 'IMAGE_UNKNOWN exit status');
  t.equal((await cli('images', 'remove', 'debian/bookworm/amd64')).code, 0);
  t.equal((await cli('images', 'list')).stdout.split('\n').filter(Boolean).length, 1, 'only the header left');
});
