/**
 * Netboot images: `images import` from the installed debian-installer-<N>-netboot-<arch>
 * package, a netboot.tar.gz (file or http(s) URL) or an installer ISO; `images list` and
 * `images remove`. An image is the installer's kernel and initrd (plus image.json) at
 * <boot>/images/<os>/<release>/<arch>, which is a symlink to a sibling directory
 * .<arch>-<id>: an import unpacks into a staging directory inside the boot tree, checks
 * everything, then swaps the symlink with one rename, so TFTP and HTTP clients see the old
 * image or the new one, never a mix. Anything that fails leaves nothing behind.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BOOT_PATHS, imagePath } from '../../src/edge/boot';
import { UecError, describeError } from '../../src/core/errors';
import { checkWord } from '../../src/core/formats';
import type { Paths } from '../../src/core/paths';
import { runCommand } from '../../src/core/run-command';

export type ImageSource =
  | { kind: 'package'; name: string }
  | { kind: 'tarball'; location: string }
  | { kind: 'iso'; file: string };

export interface ImageFile {
  name: string;
  size: number;
  sha256: string;
}

export interface ImageRecord {
  os: string;
  release: string;
  arch: string;
  /** What it was imported from, for `images list`. */
  source: string;
  /** The installer build (from version.info or the ISO's .disk/info), when known. */
  version: string;
  /** How the source was checked: "SHA256SUMS", "dpkg md5sums", "sha256sum.txt" or "none". */
  verified: string;
  files: ImageFile[];
}

export type Progress = (message: string, done?: number, total?: number) => void;

export interface ImportOptions {
  paths: Paths;
  source: ImageSource;
  /** Explicit SHA256SUMS file or URL (else looked for beside the source). */
  checksums?: string;
  os?: string;
  release?: string;
  arch?: string;
  defaults: { os: string; release: string; arch: string };
  progress?: Progress;
  /** Where installed packages' files are read from ("/" on a real system). */
  systemRoot?: string;
}

export interface ImportResult {
  image: ImageRecord;
  outcome: 'imported' | 'unchanged';
  notes: string[];
}

const ISO_ARCH: Record<string, string> = { amd: 'amd64', '386': 'i386', a64: 'arm64' };

function invalid(message: string, cause?: unknown): UecError {
  return new UecError('IMAGE_INVALID', `${message}; nothing was imported`, cause === undefined ? undefined : { cause });
}

function checkPart(what: string, value: string): string {
  const problem = checkWord(value) ?? (value.startsWith('.') ? 'must not start with "."' : null);
  if (problem) throw new UecError('USAGE', `image ${what} ${JSON.stringify(value)} ${problem}`);
  return value;
}

/** Pure: "debian/bookworm/amd64" → its three parts. */
export function parseImageName(name: string): { os: string; release: string; arch: string } {
  const parts = name.split('/');
  if (parts.length !== 3) throw new UecError('USAGE', `image name must be OS/RELEASE/ARCH, for example debian/bookworm/amd64, not ${JSON.stringify(name)}`);
  return { os: checkPart('os', parts[0]!), release: checkPart('release', parts[1]!), arch: checkPart('arch', parts[2]!) };
}

/** Pure: "debian-installer-12-netboot-amd64" → the version and arch of its tree. */
export function parseInstallerPackage(name: string): { version: string; arch: string } {
  const m = /^debian-installer-(\d+)-netboot-([a-z0-9]+)$/.exec(name);
  if (!m) throw new UecError('USAGE', `--package must name a debian-installer-<N>-netboot-<arch> package, not ${JSON.stringify(name)}`);
  return { version: m[1]!, arch: m[2]! };
}

/** Pure: "Debian version:  12 (bookworm)" (version.info) or an ISO's .disk/info → os, release. */
export function parseReleaseInfo(text: string): { os: string; release: string; version: string } | null {
  const info = /Debian version:\s*([0-9.]+)\s*\(([a-z]+)\)/i.exec(text);
  if (info) {
    const build = /Installer build:\s*(\S+)/.exec(text);
    return { os: 'debian', release: info[2]!.toLowerCase(), version: `${info[1]}${build ? ` (${build[1]})` : ''}` };
  }
  const disk = /^Debian GNU\/Linux ([0-9.]+) "([A-Za-z]+)"/.exec(text);
  if (disk) return { os: 'debian', release: disk[2]!.toLowerCase(), version: disk[1]! };
  return null;
}

/** Pure: SHA256SUMS text → path (without "./") → hex digest. */
export function parseChecksums(text: string): Map<string, string> {
  const sums = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([0-9a-fA-F]{64})\s+\*?(.+)$/.exec(line.trim());
    if (m) sums.set(m[2]!.replace(/^\.\//, ''), m[1]!.toLowerCase());
  }
  return sums;
}

/** Pure: the entry for a file, by exact relative path, else by unique trailing path. */
export function selectChecksum(sums: Map<string, string>, relative: string): string | null {
  const exact = sums.get(relative);
  if (exact) return exact;
  const matches = [...sums.entries()].filter(([p]) => p === path.posix.basename(relative) || p.endsWith(`/${relative}`) || relative.endsWith(`/${p}`));
  return matches.length === 1 ? matches[0]![1] : null;
}

async function hashFile(file: string, algorithm = 'sha256'): Promise<string> {
  const hash = createHash(algorithm);
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function isUrl(location: string): boolean {
  return /^https?:\/\//i.test(location);
}

async function download(url: string, target: string, progress: Progress): Promise<void> {
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(600_000) });
  } catch (err) {
    throw new UecError('UPSTREAM_FAILED', `cannot download ${url}: ${describeError(err)}; nothing was imported`, { cause: err });
  }
  if (!response.ok || !response.body) throw new UecError('UPSTREAM_FAILED', `cannot download ${url}: HTTP ${response.status}; nothing was imported`);
  const total = Number(response.headers.get('content-length')) || undefined;
  const out = fs.createWriteStream(target, { mode: 0o644 });
  let done = 0;
  try {
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      done += chunk.length;
      if (!out.write(chunk)) await new Promise((resolve) => out.once('drain', resolve));
      progress(`downloading ${url}`, done, total);
    }
  } catch (err) {
    throw new UecError('UPSTREAM_FAILED', `download of ${url} broke off after ${done} bytes: ${describeError(err)}; nothing was imported`, { cause: err });
  } finally {
    await new Promise((resolve) => out.end(resolve));
  }
  if (total !== undefined && done !== total) throw invalid(`${url}: got ${done} of ${total} bytes`);
}

async function fetchText(location: string): Promise<string | null> {
  if (isUrl(location)) {
    try {
      const response = await fetch(location, { signal: AbortSignal.timeout(30_000) });
      return response.ok ? await response.text() : null;
    } catch {
      return null;
    }
  }
  try {
    return await fs.promises.readFile(location, 'utf8');
  } catch {
    return null;
  }
}

/** SHA256SUMS beside a netboot.tar.gz, or one directory up (Debian's images/ layout). */
async function findTarballChecksum(location: string, explicit: string | undefined): Promise<{ digest: string | null; where: string | null }> {
  const base = isUrl(location) ? location.replace(/[?#].*$/, '') : path.resolve(location);
  const dir = path.posix.dirname(base);
  const candidates = explicit ? [{ file: explicit, relative: path.posix.basename(base) }] : [
    { file: `${dir}/SHA256SUMS`, relative: path.posix.basename(base) },
    { file: `${path.posix.dirname(dir)}/SHA256SUMS`, relative: `${path.posix.basename(dir)}/${path.posix.basename(base)}` },
  ];
  for (const candidate of candidates) {
    const text = await fetchText(candidate.file);
    if (text === null) {
      if (explicit) throw invalid(`cannot read checksum file ${explicit}`);
      continue;
    }
    const digest = selectChecksum(parseChecksums(text), candidate.relative);
    if (digest) return { digest, where: candidate.file };
    if (explicit) throw invalid(`${explicit} has no entry for ${candidate.relative}`);
  }
  return { digest: null, where: null };
}

async function untar(tarball: string, dest: string, what: string): Promise<void> {
  await fs.promises.mkdir(dest, { recursive: true });
  // GNU tar drops leading "/" and refuses ".." members; owners and modes are not kept.
  const result = await runCommand('tar', ['-xzf', tarball, '-C', dest, '--no-same-owner', '--no-same-permissions', '--delay-directory-restore'], { timeoutMs: 600_000 });
  if (result.code !== 0) {
    throw invalid(`${what} is not a complete gzip tar archive (tar: ${result.stderr.trim().split('\n').pop() ?? `exit ${result.code}`})`);
  }
}

/** Find the installer kernel and initrd in an unpacked tree (netboot or ISO layout). */
async function locateKernel(tree: string, arch: string | undefined): Promise<{ linux: string; initrd: string; arch: string | null } | null> {
  const dir = path.join(tree, 'debian-installer');
  const arches = arch ? [arch] : await fs.promises.readdir(dir).catch(() => [] as string[]);
  for (const a of arches.sort()) {
    const linux = path.join(dir, a, 'linux');
    const initrd = path.join(dir, a, 'initrd.gz');
    if ((await isRegularFile(linux)) && (await isRegularFile(initrd))) return { linux, initrd, arch: a };
  }
  const entries = await fs.promises.readdir(tree).catch(() => [] as string[]);
  for (const entry of entries.sort()) {
    const m = /^install\.([a-z0-9]+)$/.exec(entry);
    if (!m) continue;
    const linux = path.join(tree, entry, 'vmlinuz');
    const initrd = path.join(tree, entry, 'initrd.gz');
    if ((await isRegularFile(linux)) && (await isRegularFile(initrd))) return { linux, initrd, arch: ISO_ARCH[m[1]!] ?? null };
  }
  if ((await isRegularFile(path.join(tree, 'linux'))) && (await isRegularFile(path.join(tree, 'initrd.gz')))) {
    return { linux: path.join(tree, 'linux'), initrd: path.join(tree, 'initrd.gz'), arch: null };
  }
  return null;
}

async function isRegularFile(file: string): Promise<boolean> {
  const stat = await fs.promises.lstat(file).catch(() => null);
  return Boolean(stat?.isFile());
}

async function readReleaseInfo(files: string[]): Promise<ReturnType<typeof parseReleaseInfo>> {
  for (const file of files) {
    const text = await fs.promises.readFile(file, 'utf8').catch(() => null);
    const info = text === null ? null : parseReleaseInfo(text);
    if (info) return info;
  }
  return null;
}

async function listIso(iso: string): Promise<string[]> {
  if (!['/usr/bin/xorriso', '/bin/xorriso'].some((p) => fs.existsSync(p))) throw new UecError('USAGE', 'importing from an ISO needs xorriso: apt install xorriso');
  const result = await runCommand('xorriso', ['-indev', iso, '-find', '/', '-type', 'f'], { timeoutMs: 300_000 });
  if (result.code !== 0) throw invalid(`${iso} is not a readable ISO 9660 image (xorriso: ${result.stderr.trim().split('\n').filter((l) => /FAILURE|SORRY/.test(l)).pop() ?? `exit ${result.code}`})`);
  return result.stdout
    .split('\n')
    .map((l) => l.trim().replace(/^'(.*)'$/, '$1'))
    .filter((l) => l.startsWith('/'));
}

async function extractIso(iso: string, files: string[], dest: string): Promise<void> {
  const args = ['-osirrox', 'on', '-indev', iso];
  for (const f of files) args.push('-extract', f, path.join(dest, f));
  const result = await runCommand('xorriso', args, { timeoutMs: 600_000 });
  if (result.code !== 0) throw invalid(`cannot extract ${files.join(', ')} from ${iso} (xorriso exit ${result.code})`);
}

interface Unpacked {
  tree: string;
  label: string;
  verified: string;
  /** Checksums inside the source (ISO sha256sum.txt, dpkg md5sums) for files of the tree. */
  innerSums?: { algorithm: 'sha256' | 'md5'; sums: Map<string, string>; prefix: string; name: string };
  notes: string[];
}

async function unpackSource(options: ImportOptions, staging: string, progress: Progress): Promise<Unpacked> {
  const { source } = options;
  const systemRoot = options.systemRoot ?? '/';
  const notes: string[] = [];
  if (source.kind === 'package') {
    const { version, arch } = parseInstallerPackage(source.name);
    const base = path.join(systemRoot, 'usr/lib/debian-installer/images', version, arch);
    let tree: string | null = null;
    for (const flavour of ['text', 'gtk', '.']) {
      const candidate = path.join(base, flavour);
      if (await locateKernel(candidate, arch)) {
        tree = candidate;
        break;
      }
    }
    if (!tree) {
      const tarball = path.join(base, 'netboot.tar.gz');
      if (await isRegularFile(tarball)) {
        progress(`unpacking ${tarball}`);
        await untar(tarball, path.join(staging, 'tree'), tarball);
        return { tree: path.join(staging, 'tree'), label: `package ${source.name}`, verified: 'none', notes };
      }
      throw new UecError('IMAGE_UNKNOWN', `no installer tree from ${source.name} in ${base}: is the package installed?`);
    }
    const md5sums = await fs.promises.readFile(path.join(systemRoot, 'var/lib/dpkg/info', `${source.name}.md5sums`), 'utf8').catch(() => null);
    const sums = new Map<string, string>();
    if (md5sums) for (const line of md5sums.split('\n')) {
      const m = /^([0-9a-f]{32})\s+(.+)$/.exec(line.trim());
      if (m) sums.set(`/${m[2]}`, m[1]!);
    }
    if (!md5sums) notes.push(`no dpkg md5sums for ${source.name}: files not verified`);
    const prefix = path.relative(systemRoot, tree);
    return { tree, label: `package ${source.name}`, verified: md5sums ? 'dpkg md5sums' : 'none', innerSums: md5sums ? { algorithm: 'md5', sums, prefix: `/${prefix}`, name: `${source.name}.md5sums` } : undefined, notes };
  }
  if (source.kind === 'tarball') {
    let tarball = source.location;
    if (isUrl(source.location)) {
      tarball = path.join(staging, 'netboot.tar.gz');
      await download(source.location, tarball, progress);
    } else if (!(await isRegularFile(tarball))) {
      throw new UecError('USAGE', `${tarball} is not a file`);
    }
    const { digest, where } = await findTarballChecksum(source.location, options.checksums);
    let verified = 'none';
    if (digest) {
      progress(`verifying ${path.posix.basename(source.location)} against ${where}`);
      const actual = await hashFile(tarball);
      if (actual !== digest) throw invalid(`${source.location}: SHA256 ${actual} does not match ${digest} in ${where}`);
      verified = 'SHA256SUMS';
    } else {
      notes.push(`no SHA256SUMS found beside ${source.location}: not verified (give --checksums)`);
    }
    progress(`unpacking ${path.posix.basename(source.location)}`);
    await untar(tarball, path.join(staging, 'tree'), source.location);
    return { tree: path.join(staging, 'tree'), label: source.location, verified, notes };
  }
  // ISO: the netboot tarball if the image carries one, else a netboot tree, else install.<arch>/.
  if (!(await isRegularFile(source.file))) throw new UecError('USAGE', `${source.file} is not a file`);
  progress(`reading ${source.file}`);
  const files = await listIso(source.file);
  const tree = path.join(staging, 'tree');
  const sumsFile = files.find((f) => f === '/sha256sum.txt' || f === '/SHA256SUMS');
  const infoFiles = files.filter((f) => f === '/.disk/info' || f.endsWith('/version.info'));
  const netbootTar = files.find((f) => f.endsWith('/netboot.tar.gz'));
  let wanted: string[];
  if (netbootTar) wanted = [netbootTar];
  else {
    const kernel = files.find((f) => /\/debian-installer\/[a-z0-9]+\/linux$/.test(f)) ?? files.find((f) => /^\/install\.[a-z0-9]+\/vmlinuz$/.test(f));
    if (!kernel) throw invalid(`${source.file} holds no netboot.tar.gz, debian-installer/<arch>/linux or install.<arch>/vmlinuz`);
    wanted = [kernel, path.posix.join(path.posix.dirname(kernel), 'initrd.gz')];
    if (!files.includes(wanted[1]!)) throw invalid(`${source.file} has ${kernel} but no initrd.gz beside it`);
    if (kernel.startsWith('/install.')) notes.push(`${source.file} has no netboot tree: imported ${path.posix.dirname(kernel)}/ (the CD initrd; it expects the installer media)`);
  }
  progress(`extracting ${wanted.join(', ')}`);
  await extractIso(source.file, [...wanted, ...(sumsFile ? [sumsFile] : []), ...infoFiles], tree);
  let innerSums: Unpacked['innerSums'];
  if (sumsFile) {
    const sums = new Map<string, string>();
    for (const [p, d] of parseChecksums(await fs.promises.readFile(path.join(tree, sumsFile), 'utf8'))) sums.set(`/${p}`, d);
    innerSums = { algorithm: 'sha256', sums, prefix: '', name: sumsFile.slice(1) };
  } else notes.push(`${source.file} has no sha256sum.txt: not verified`);
  if (netbootTar) {
    const tarball = path.join(tree, netbootTar);
    if (innerSums) {
      const expected = innerSums.sums.get(netbootTar);
      if (expected && expected !== (await hashFile(tarball))) throw invalid(`${source.file}: ${netbootTar} does not match ${innerSums.name}`);
    }
    const inner = path.join(staging, 'netboot');
    await untar(tarball, inner, `${source.file}:${netbootTar}`);
    for (const f of infoFiles) await fs.promises.mkdir(path.dirname(path.join(inner, f)), { recursive: true }).then(() => fs.promises.copyFile(path.join(tree, f), path.join(inner, f)));
    return { tree: inner, label: `iso ${source.file}`, verified: innerSums ? innerSums.name : 'none', notes };
  }
  return { tree, label: `iso ${source.file}`, verified: innerSums ? innerSums.name : 'none', innerSums, notes };
}

async function verifyInner(unpacked: Unpacked, file: string): Promise<void> {
  const inner = unpacked.innerSums;
  if (!inner) return;
  const key = `${inner.prefix}/${path.relative(unpacked.tree, file)}`;
  const expected = inner.sums.get(key);
  if (!expected) return;
  const actual = await hashFile(file, inner.algorithm);
  if (actual !== expected) throw invalid(`${key.replace(/^\//, '')} does not match ${inner.name} (${inner.algorithm} ${actual}, expected ${expected})`);
}

async function copyFile(from: string, to: string, progress: Progress): Promise<ImageFile> {
  const hash = createHash('sha256');
  const stat = await fs.promises.stat(from);
  let done = 0;
  const out = fs.createWriteStream(to, { mode: 0o644, flags: 'wx' });
  try {
    for await (const chunk of fs.createReadStream(from)) {
      const buf = chunk as Buffer;
      hash.update(buf);
      done += buf.length;
      if (!out.write(buf)) await new Promise((resolve) => out.once('drain', resolve));
      progress(`copying ${path.basename(to)}`, done, stat.size);
    }
  } finally {
    await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  }
  const handle = await fs.promises.open(to, 'r');
  await handle.sync().finally(() => handle.close());
  return { name: path.basename(to), size: done, sha256: hash.digest('hex') };
}

export function imageDir(paths: Paths, os: string, release: string, arch: string): string {
  return paths.resolve(`${BOOT_PATHS.bootDir}/${imagePath(os, release, arch)}`);
}

export async function readImage(paths: Paths, os: string, release: string, arch: string): Promise<ImageRecord | null> {
  const text = await fs.promises.readFile(path.join(imageDir(paths, os, release, arch), 'image.json'), 'utf8').catch(() => null);
  if (text === null) return null;
  try {
    return JSON.parse(text) as ImageRecord;
  } catch {
    return null;
  }
}

/** Point `link` at `target` (a sibling name) with one rename; returns what it pointed at before. */
async function swapLink(link: string, target: string): Promise<string | null> {
  const stat = await fs.promises.lstat(link).catch(() => null);
  let previous: string | null = null;
  if (stat?.isSymbolicLink()) previous = await fs.promises.readlink(link);
  else if (stat) {
    // A plain directory (made by hand): move it aside so the link can take its place.
    previous = `.${path.basename(link)}-manual-${randomBytes(4).toString('hex')}`;
    await fs.promises.rename(link, path.join(path.dirname(link), previous));
  }
  const temp = path.join(path.dirname(link), `.${path.basename(link)}.link-${randomBytes(4).toString('hex')}`);
  await fs.promises.symlink(target, temp);
  try {
    await fs.promises.rename(temp, link);
  } catch (err) {
    await fs.promises.unlink(temp).catch(() => undefined);
    throw err;
  }
  return previous;
}

export async function importImage(options: ImportOptions): Promise<ImportResult> {
  const progress = options.progress ?? (() => undefined);
  const bootDir = options.paths.resolve(BOOT_PATHS.bootDir);
  await fs.promises.mkdir(bootDir, { recursive: true, mode: 0o755 });
  const staging = path.join(bootDir, `.staging-${randomBytes(6).toString('hex')}`);
  await fs.promises.mkdir(staging, { mode: 0o755 });
  let committedDir: string | null = null;
  try {
    const unpacked = await unpackSource(options, staging, progress);
    const found = await locateKernel(unpacked.tree, options.arch);
    if (!found) throw invalid(`${unpacked.label} holds no installer kernel and initrd.gz (debian-installer/<arch>/linux, install.<arch>/vmlinuz)`);
    const info = await readReleaseInfo([path.join(unpacked.tree, 'version.info'), path.join(unpacked.tree, '.disk/info'), path.join(path.dirname(found.linux), 'version.info')]);
    const os = checkPart('os', options.os ?? info?.os ?? options.defaults.os);
    const release = checkPart('release', options.release ?? info?.release ?? options.defaults.release);
    const arch = checkPart('arch', options.arch ?? found.arch ?? options.defaults.arch);
    for (const f of [found.linux, found.initrd]) await verifyInner(unpacked, f);

    const parent = path.dirname(imageDir(options.paths, os, release, arch));
    await fs.promises.mkdir(parent, { recursive: true, mode: 0o755 });
    const stage = path.join(staging, 'image');
    await fs.promises.mkdir(stage, { mode: 0o755 });
    const files: ImageFile[] = [];
    files.push(await copyFile(found.linux, path.join(stage, 'linux'), progress));
    files.push(await copyFile(found.initrd, path.join(stage, 'initrd.gz'), progress));
    if (files.some((f) => f.size === 0)) throw invalid(`${unpacked.label}: the kernel or initrd is empty`);
    const record: ImageRecord = { os, release, arch, source: unpacked.label, version: info?.version ?? '', verified: unpacked.verified, files };

    const current = await readImage(options.paths, os, release, arch);
    if (current && JSON.stringify(current.files) === JSON.stringify(files) && current.source === record.source) {
      progress(`${os}/${release}/${arch} is up to date`);
      return { image: current, outcome: 'unchanged', notes: unpacked.notes };
    }
    await fs.promises.writeFile(path.join(stage, 'image.json'), JSON.stringify(record, null, 2) + '\n', { mode: 0o644 });
    const name = `.${arch}-${randomBytes(6).toString('hex')}`;
    committedDir = path.join(parent, name);
    await fs.promises.rename(stage, committedDir);
    const previous = await swapLink(path.join(parent, arch), name);
    committedDir = null;
    if (previous && !previous.includes('/')) await fs.promises.rm(path.join(parent, previous), { recursive: true, force: true });
    progress(`imported ${os}/${release}/${arch}`);
    return { image: record, outcome: 'imported', notes: unpacked.notes };
  } catch (err) {
    if (committedDir) await fs.promises.rm(committedDir, { recursive: true, force: true }).catch(() => undefined);
    if (err instanceof UecError) throw err;
    throw new UecError('WRITE_FAILED', `image import failed: ${describeError(err)}; nothing was imported`, { cause: err });
  } finally {
    await fs.promises.rm(staging, { recursive: true, force: true }).catch(() => undefined);
  }
}

export async function listImages(paths: Paths): Promise<ImageRecord[]> {
  const root = paths.resolve(`${BOOT_PATHS.bootDir}/images`);
  const out: ImageRecord[] = [];
  const names = async (dir: string) => (await fs.promises.readdir(dir).catch(() => [] as string[])).filter((n) => !n.startsWith('.')).sort();
  for (const os of await names(root)) {
    for (const release of await names(path.join(root, os))) {
      for (const arch of await names(path.join(root, os, release))) {
        const image = await readImage(paths, os, release, arch);
        if (image) out.push(image);
      }
    }
  }
  return out;
}

export async function removeImage(paths: Paths, os: string, release: string, arch: string): Promise<void> {
  const link = imageDir(paths, os, release, arch);
  const stat = await fs.promises.lstat(link).catch(() => null);
  if (!stat) throw new UecError('IMAGE_UNKNOWN', `no image ${os}/${release}/${arch} (see uec-provisioning images list)`);
  const parent = path.dirname(link);
  if (stat.isSymbolicLink()) {
    const target = await fs.promises.readlink(link);
    await fs.promises.unlink(link);
    if (!target.includes('/')) await fs.promises.rm(path.join(parent, target), { recursive: true, force: true });
  } else {
    await fs.promises.rm(link, { recursive: true, force: true });
  }
  for (const dir of [parent, path.dirname(parent)]) await fs.promises.rmdir(dir).catch(() => undefined);
}
