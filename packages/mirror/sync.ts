/**
 * `uec-provisioning mirror sync`: fill a staging tree beside the served one, verify it, then
 * switch atomically. The served tree (`current`, a symlink to trees/<generation>) is only
 * ever replaced by a tree whose Release signatures (gpgv, the configured keyring), index
 * checksums and pool files all check out; anything else leaves it as it was.
 *
 *   1. lock; check the upstream answers and has every suite, component and architecture
 *   2. check free space (mirror.min_free_mb)
 *   3. staging: hard links to the current tree's pool files (unchanged files are not fetched
 *      again), or the staging tree an interrupted run left (resume)
 *   4. apt-mirror fills staging from the generated mirror.list (progress from wget's logs);
 *      kept index files that differ from the upstream's current Release are dropped first
 *   5. gpgv each suite's InRelease and Release; SHA256 of every index file against Release
 *   6. index files copied in (fresh inodes: the served tree's files are never written to)
 *   7. every pool file of every Packages file present with its size; new files' SHA256 checked
 *   8. pool files no index names are dropped; rename staging → trees/<gen>, swap `current`
 *
 * ISO mode extracts the installer ISO with xorriso into staging instead of step 4-7, checks
 * it is a Debian installer image, and switches the same way.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { atomicWrite } from '../../src/core/atomic-write';
import { UecError, describeError } from '../../src/core/errors';
import type { Logger } from '../../src/core/log';
import type { Paths } from '../../src/core/paths';
import { runCommand } from '../../src/core/run-command';
import type { Template } from '../../src/core/template';
import { mirrorLayout, mirroredComponents, upstreamTreePath, type MirrorLayout, type MirrorSettings } from './model';
import { NO_PROGRESS, type ProgressSink } from './progress';
import { parsePackages, parseRelease, type PoolEntry, type ReleaseFile } from './release';
import { renderMirrorList } from './render';

export interface SyncState {
  mode: string;
  source: string;
  result: 'ok' | 'failed';
  code?: string;
  error?: string;
  started: string;
  finished: string;
  /** The generation `current` points to after this run. */
  generation: string | null;
  /** Files and bytes fetched from upstream by this run. */
  fetchedFiles: number;
  fetchedBytes: number;
  /** Files in the served tree's pool (mirror) or tree (iso). */
  files: number;
}

export interface SyncOptions {
  paths: Paths;
  settings: MirrorSettings;
  mirrorListTemplate: Template;
  log: Logger;
  progress?: ProgressSink;
  now?: () => Date;
}

export interface SyncResult extends SyncState {
  result: 'ok';
}

interface ResolvedLayout extends MirrorLayout {
  base: string;
}

function resolvedLayout(paths: Paths, settings: MirrorSettings): ResolvedLayout {
  const base = paths.resolve(settings.baseDir);
  return { ...mirrorLayout(base), base };
}

// ---------------------------------------------------------------------------- helpers

async function exists(p: string): Promise<boolean> {
  return fs.promises.lstat(p).then(
    () => true,
    () => false,
  );
}

function isNoSpace(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === 'ENOSPC' || (err as NodeJS.ErrnoException)?.code === 'EDQUOT';
}

/** Run a local step; a full disk becomes MIRROR_FAILED naming the step. */
async function local<T>(what: string, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (err) {
    if (err instanceof UecError) throw err;
    const reason = isNoSpace(err) ? 'the disk is full' : describeError(err);
    throw new UecError('MIRROR_FAILED', `${what}: ${reason}; the served tree is unchanged`, { cause: err });
  }
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function* walkFiles(dir: string, rel = ''): AsyncGenerator<string> {
  let entries: fs.Dirent[];
  try {
    entries = await fs.promises.readdir(path.join(dir, rel), { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  for (const entry of entries) {
    const r = rel ? `${rel}/${entry.name}` : entry.name;
    if (entry.isDirectory()) yield* walkFiles(dir, r);
    else if (entry.isFile()) yield r;
  }
}

/** Remove a tree, also the read-only directories xorriso extracts. */
export async function removeTree(dir: string): Promise<void> {
  if (!(await exists(dir))) return;
  await runCommand('chmod', ['-R', 'u+rwX', dir], { timeoutMs: 600_000 });
  await fs.promises.rm(dir, { recursive: true, force: true });
}

// ------------------------------------------------------------------------- upstream

function httpGet(url: string, timeoutMs = 15_000): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const client = url.startsWith('https:') ? https : http;
    const req = client.get(url, { timeout: timeoutMs, headers: { 'user-agent': 'uec-provisioning-mirror' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
    req.on('error', reject);
  });
}

/** A suite's Release as the upstream serves it now (not yet verified). */
interface AnnouncedRelease {
  release: ReleaseFile;
  text: Buffer;
}

/**
 * Before anything local changes: the upstream answers, and each suite's Release names the
 * configured components and architectures. (Signatures are checked on what apt-mirror fetched;
 * the unverified Releases returned here only decide which kept index files to fetch again.)
 */
export async function checkUpstream(settings: MirrorSettings): Promise<Map<string, AnnouncedRelease>> {
  const releases = new Map<string, AnnouncedRelease>();
  for (const suite of settings.suites) {
    const url = `${settings.upstream}/dists/${suite}/Release`;
    let answer: { status: number; body: Buffer };
    try {
      answer = await httpGet(url);
    } catch (err) {
      throw new UecError('UPSTREAM_FAILED', `cannot reach the upstream archive ${settings.upstream} (${describeError(err)}); nothing was changed`, { cause: err });
    }
    if (answer.status === 404) throw new UecError('UPSTREAM_FAILED', `the upstream archive ${settings.upstream} has no suite "${suite}" (${url}: 404); check mirror.suites`);
    if (answer.status !== 200) throw new UecError('UPSTREAM_FAILED', `the upstream archive answered ${answer.status} for ${url}; nothing was changed`);
    const release = parseRelease(answer.body.toString('utf8'));
    const components = (release.fields.get('Components') ?? '').split(/\s+/);
    const architectures = (release.fields.get('Architectures') ?? '').split(/\s+/);
    for (const c of settings.components) {
      if (!components.includes(c)) throw new UecError('UPSTREAM_FAILED', `suite "${suite}" of ${settings.upstream} has no component "${c}" (it has: ${components.join(' ')})`);
    }
    for (const a of settings.architectures) {
      if (!architectures.includes(a)) throw new UecError('UPSTREAM_FAILED', `suite "${suite}" of ${settings.upstream} has no architecture "${a}" (it has: ${architectures.join(' ')})`);
    }
    releases.set(suite, { release, text: answer.body });
  }
  return releases;
}

// ---------------------------------------------------------------------------- space

export async function freeMegabytes(dir: string): Promise<number> {
  let probe = dir;
  while (!(await exists(probe)) && probe !== path.dirname(probe)) probe = path.dirname(probe);
  const st = await fs.promises.statfs(probe);
  return Math.floor((st.bavail * st.bsize) / (1024 * 1024));
}

export async function checkFreeSpace(dir: string, minFreeMb: number, label: string): Promise<void> {
  const free = await freeMegabytes(dir);
  if (free < minFreeMb) {
    throw new UecError('MIRROR_FAILED', `only ${free} MiB free under ${label}, mirror.min_free_mb asks for ${minFreeMb} MiB; free some space or lower mirror.min_free_mb; the served tree is unchanged`);
  }
}

// ----------------------------------------------------------------------------- lock

async function acquireLock(file: string): Promise<() => Promise<void>> {
  await fs.promises.mkdir(path.dirname(file), { recursive: true });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await fs.promises.open(file, 'wx', 0o644);
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      return () => fs.promises.rm(file, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number((await fs.promises.readFile(file, 'utf8').catch(() => '')).trim());
      let alive = false;
      if (Number.isInteger(pid) && pid > 0) {
        try {
          process.kill(pid, 0);
          alive = true;
        } catch {
          alive = false;
        }
      }
      if (alive) throw new UecError('MIRROR_FAILED', `another mirror sync is running (pid ${pid}, lock ${file})`);
      await fs.promises.rm(file, { force: true }); // stale lock of a run that died
    }
  }
  throw new UecError('MIRROR_FAILED', `cannot take the sync lock ${file}`);
}

// -------------------------------------------------------------------------- staging

/** Hard-link every pool file of the served tree into staging (unless already there). */
async function seedStaging(layout: ResolvedLayout, treePath: string): Promise<number> {
  const fromPool = path.join(layout.current, treePath, 'pool');
  const toPool = path.join(layout.staging, treePath, 'pool');
  let linked = 0;
  if (!(await exists(fromPool))) return 0;
  const realFrom = await fs.promises.realpath(fromPool);
  for await (const rel of walkFiles(realFrom)) {
    const target = path.join(toPool, rel);
    if (await exists(target)) continue;
    await fs.promises.mkdir(path.dirname(target), { recursive: true });
    await fs.promises.link(path.join(realFrom, rel), target);
    linked++;
  }
  return linked;
}

/**
 * Keep the suite's kept files only where they match the upstream's current Release: its
 * Release files when Release is byte-identical (nothing was published since), each index
 * file when its size and SHA256 are what Release lists. Everything else is fetched again.
 */
async function dropOutdatedIndexes(skelDists: string, releases: Map<string, AnnouncedRelease>): Promise<number> {
  let dropped = 0;
  for (const [suite, { release, text }] of releases) {
    const dir = path.join(skelDists, suite);
    if (!(await exists(dir))) continue;
    const kept = await fs.promises.readFile(path.join(dir, 'Release')).catch(() => null);
    const unchanged = kept !== null && kept.equals(text);
    for await (const rel of walkFiles(dir)) {
      if (unchanged && ['InRelease', 'Release', 'Release.gpg'].includes(rel)) continue;
      const want = release.sha256.get(rel);
      const file = path.join(dir, rel);
      if (want) {
        const st = await fs.promises.stat(file);
        if (st.size === want.size && (await sha256File(file)) === want.sha256) continue;
      }
      await fs.promises.rm(file, { force: true });
      dropped++;
    }
  }
  return dropped;
}

// ------------------------------------------------------------------------ apt-mirror

interface AptMirrorOutcome {
  fetchedFiles: number;
  fetchedBytes: number;
  log: string;
}

const SIZE_UNITS: Record<string, number> = { bytes: 1, B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, TiB: 1024 ** 4 };

/** Sum of "saved [N/N]" lines in wget's logs of one stage: files and bytes fetched. */
async function readWgetLogs(varDir: string, stage: string): Promise<{ files: number; bytes: number; noSpace: boolean }> {
  let files = 0;
  let bytes = 0;
  let noSpace = false;
  const names = await fs.promises.readdir(varDir).catch(() => [] as string[]);
  for (const name of names) {
    if (!name.startsWith(`${stage}-log.`)) continue;
    const text = await fs.promises.readFile(path.join(varDir, name), 'utf8').catch(() => '');
    for (const m of text.matchAll(/saved \[(\d+)(?:\/\d+)?\]/g)) {
      files++;
      bytes += Number(m[1]);
    }
    if (/No space left on device/.test(text)) noSpace = true;
  }
  return { files, bytes, noSpace };
}

async function runAptMirror(listFile: string, layout: ResolvedLayout, progress: ProgressSink, log: Logger): Promise<AptMirrorOutcome> {
  // Old wget logs would be counted again.
  for (const name of await fs.promises.readdir(layout.var).catch(() => [] as string[])) {
    if (/^(index|archive|translation|dep11|cnf)-(log|urls)\./.test(name)) await fs.promises.rm(path.join(layout.var, name), { force: true });
  }
  let output = '';
  let totalFiles = 0;
  let totalBytes = 0;
  let archiveStage = false;
  const child = spawn('apt-mirror', [listFile], { env: { ...process.env, LC_ALL: 'C' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const onLine = (line: string) => {
    const size = /^([\d.]+) (bytes|B|KiB|MiB|GiB|TiB) will be downloaded into archive/.exec(line);
    if (size) totalBytes = Math.round(Number(size[1]) * (SIZE_UNITS[size[2] ?? 'B'] ?? 1));
    const files = /^Downloading (\d+) archive files/.exec(line);
    if (files) {
      totalFiles = Number(files[1]);
      archiveStage = true;
      progress.stage(`downloading ${totalFiles} package file(s)`);
    }
    const index = /^Downloading (\d+) index files/.exec(line);
    if (index) progress.stage(`downloading ${index[1]} index file(s)`);
  };
  let pending = '';
  const collect = (chunk: Buffer) => {
    const text = chunk.toString('utf8');
    output += text;
    pending += text;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) onLine(line.trim());
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', (c: Buffer) => (output += c.toString('utf8')));
  const timer = setInterval(() => {
    if (!archiveStage) return;
    void readWgetLogs(layout.var, 'archive').then((done) => progress.update({ files: done.files, totalFiles, bytes: done.bytes, totalBytes }));
  }, 500);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  }).finally(() => clearInterval(timer));
  const archive = await readWgetLogs(layout.var, 'archive');
  const index = await readWgetLogs(layout.var, 'index');
  if (archiveStage) progress.update({ files: archive.files, totalFiles, bytes: archive.bytes, totalBytes });
  progress.done();
  log.debug('apt-mirror finished', { code });
  if (archive.noSpace || index.noSpace) throw new UecError('MIRROR_FAILED', `the disk under ${layout.base} filled up during the download; the served tree is unchanged and the next sync resumes`);
  if (code !== 0) {
    const said = output.split('\n').find((l) => /apt-mirror:|error|can't/i.test(l)) ?? `exit ${code}`;
    throw new UecError('MIRROR_FAILED', `apt-mirror failed: ${said.trim()}; the served tree is unchanged`);
  }
  return { fetchedFiles: archive.files + index.files, fetchedBytes: archive.bytes + index.bytes, log: output };
}

// ---------------------------------------------------------------------- verification

async function gpgv(keyring: string, args: string[], what: string): Promise<void> {
  const result = await runCommand('gpgv', ['--keyring', keyring, ...args], { env: { ...process.env, LC_ALL: 'C' } });
  if (result.code !== 0) {
    const reason = result.stderr.split('\n').find((l) => /BAD signature|No public key|Can't check|not a detached|no signature|verify signatures failed/i.test(l)) ?? `gpgv exit ${result.code}`;
    throw new UecError('UPSTREAM_FAILED', `${what}: signature check failed (${reason.replace(/^gpgv: /, '').trim()}); the served tree is unchanged`);
  }
}

/** gpgv both signed forms the suite has; returns the verified Release content. */
async function verifySuite(distsDir: string, suite: string, keyring: string, upstream: string): Promise<ReleaseFile> {
  const dir = path.join(distsDir, suite);
  const inRelease = path.join(dir, 'InRelease');
  const release = path.join(dir, 'Release');
  const detached = path.join(dir, 'Release.gpg');
  let verified: string | null = null;
  if (await exists(inRelease)) {
    const out = `${inRelease}.verified`;
    try {
      await gpgv(keyring, ['--output', out, inRelease], `${upstream} dists/${suite}/InRelease`);
      verified = await fs.promises.readFile(out, 'utf8');
    } finally {
      await fs.promises.rm(out, { force: true });
    }
  }
  if (await exists(release)) {
    if (!(await exists(detached))) {
      if (verified === null) throw new UecError('UPSTREAM_FAILED', `${upstream} dists/${suite}: Release is not signed (no InRelease, no Release.gpg)`);
      // Release without its signature: served only if identical to the signed InRelease content.
      if ((await fs.promises.readFile(release, 'utf8')) !== verified) throw new UecError('UPSTREAM_FAILED', `${upstream} dists/${suite}/Release differs from the signed InRelease`);
    } else {
      await gpgv(keyring, [detached, release], `${upstream} dists/${suite}/Release`);
      verified ??= await fs.promises.readFile(release, 'utf8');
    }
  }
  if (verified === null) throw new UecError('UPSTREAM_FAILED', `${upstream} has no Release or InRelease for suite "${suite}"`);
  const parsed = parseRelease(verified);
  for (const [name, want] of parsed.sha256) {
    const file = path.join(dir, name);
    const st = await fs.promises.stat(file).catch(() => null);
    if (!st) continue; // not every listed index is fetched (Contents, other architectures)
    if (st.size !== want.size || (await sha256File(file)) !== want.sha256) {
      throw new UecError('UPSTREAM_FAILED', `${upstream} dists/${suite}/${name} does not match the checksum in its signed Release; the served tree is unchanged`);
    }
  }
  return parsed;
}

async function readIndex(file: string): Promise<string | null> {
  if (await exists(file)) return fs.promises.readFile(file, 'utf8');
  if (await exists(`${file}.gz`)) return zlib.gunzipSync(await fs.promises.readFile(`${file}.gz`)).toString('utf8');
  if (await exists(`${file}.xz`)) {
    const result = await runCommand('xz', ['-dc', `${file}.xz`], { timeoutMs: 300_000 });
    if (result.code === 0) return result.stdout;
  }
  return null;
}

/** Every pool file the suites' Packages files name (checked against the signed Release). */
async function listPoolEntries(distsDir: string, settings: MirrorSettings, releases: Map<string, ReleaseFile>): Promise<PoolEntry[]> {
  const entries = new Map<string, PoolEntry>();
  for (const suite of settings.suites) {
    const release = releases.get(suite);
    for (const component of mirroredComponents(settings)) {
      for (const arch of settings.architectures) {
        const rel = `${component}/binary-${arch}/Packages`;
        const listed = release && [...release.sha256.keys()].some((k) => k.startsWith(rel));
        const text = await readIndex(path.join(distsDir, suite, rel));
        if (text === null) {
          if (listed) throw new UecError('UPSTREAM_FAILED', `${settings.upstream} dists/${suite}/${rel} is listed in Release but could not be fetched`);
          continue; // e.g. no debian-installer part in this suite
        }
        for (const entry of parsePackages(text)) entries.set(entry.filename, entry);
      }
    }
  }
  return [...entries.values()].sort((a, b) => (a.filename < b.filename ? -1 : 1));
}

async function copyTree(from: string, to: string): Promise<void> {
  await fs.promises.mkdir(to, { recursive: true });
  for (const entry of await fs.promises.readdir(from, { withFileTypes: true })) {
    const a = path.join(from, entry.name);
    const b = path.join(to, entry.name);
    if (entry.isDirectory()) await copyTree(a, b);
    else if (entry.isFile() && !entry.name.endsWith('.verified')) {
      await fs.promises.copyFile(a, b);
      const st = await fs.promises.stat(a);
      await fs.promises.utimes(b, st.atime, st.mtime);
    }
  }
}

// --------------------------------------------------------------------------- switch

/** Point `current` at staging's content (renamed to trees/<gen>); the old tree is removed. */
async function switchCurrent(layout: ResolvedLayout, generation: string): Promise<string> {
  await fs.promises.mkdir(layout.trees, { recursive: true });
  let tree = path.join(layout.trees, generation);
  for (let n = 1; await exists(tree); n++) tree = path.join(layout.trees, `${generation}-${n}`); // two syncs in one millisecond
  await fs.promises.rename(layout.staging, tree);
  const previous = await fs.promises.readlink(layout.current).catch(() => null);
  const temp = path.join(layout.base, `.current.${process.pid}.tmp`);
  await fs.promises.rm(temp, { force: true });
  await fs.promises.symlink(path.relative(layout.base, tree), temp);
  await fs.promises.rename(temp, layout.current);
  if (previous) {
    const old = path.resolve(layout.base, previous);
    if (old !== tree && path.dirname(old) === layout.trees) await removeTree(old);
  }
  return path.basename(tree);
}

function generationName(now: Date): string {
  return now.toISOString().replace(/[-:.]/g, '');
}

export async function readSyncState(paths: Paths, settings: MirrorSettings): Promise<SyncState | null> {
  const text = await fs.promises.readFile(resolvedLayout(paths, settings).state, 'utf8').catch(() => null);
  if (text === null) return null;
  try {
    return JSON.parse(text) as SyncState;
  } catch {
    return null;
  }
}

async function writeState(layout: ResolvedLayout, state: SyncState): Promise<void> {
  await atomicWrite(layout.state, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o644 }).catch(() => undefined);
}

async function countFiles(dir: string): Promise<number> {
  let n = 0;
  for await (const _ of walkFiles(dir)) n++;
  return n;
}

// ---------------------------------------------------------------------------- mirror

async function syncMirror(options: SyncOptions, layout: ResolvedLayout, generation: string): Promise<Omit<SyncState, 'started' | 'finished' | 'mode' | 'source' | 'result'>> {
  const { settings, log } = options;
  const progress = options.progress ?? NO_PROGRESS;
  const treePath = upstreamTreePath(settings.upstream);
  const keyring = options.paths.resolve(settings.keyring);
  if (!(await exists(keyring))) throw new UecError('CONFIG_INVALID_VALUE', `mirror.keyring ${settings.keyring} does not exist; nothing was changed`);

  progress.stage(`checking ${settings.upstream}`);
  const announced = await checkUpstream(settings);
  await checkFreeSpace(layout.base, settings.minFreeMb, settings.baseDir);

  const resuming = await exists(layout.staging);
  progress.stage(resuming ? 'resuming the staging tree an earlier sync left' : 'preparing the staging tree');
  await local('preparing the staging tree', async () => {
    for (const dir of [layout.staging, layout.skel, layout.var]) await fs.promises.mkdir(dir, { recursive: true });
    const linked = await seedStaging(layout, treePath);
    log.debug('staging seeded with hard links', { linked });
  });
  const listFile = path.join(layout.var, 'mirror.list');
  await local('writing the apt-mirror list', () =>
    atomicWrite(listFile, renderMirrorList(settings, options.mirrorListTemplate, { base: layout.base, staging: layout.staging, skel: layout.skel, var: layout.var }), { mode: 0o644 }),
  );

  const skelDists = path.join(layout.skel, treePath, 'dists');
  // apt-mirror's wget -N asks with If-Modified-Since, to the second: files upstream rewrote
  // within the second of the last sync would be kept stale (and fail verification on every
  // later sync). Kept files that differ from the upstream's current Release are fetched again.
  const dropped = await local('dropping outdated index files', () => dropOutdatedIndexes(skelDists, announced));
  log.debug('kept index files that will be fetched again', { dropped });

  const fetched = await runAptMirror(listFile, layout, progress, log);

  progress.stage('verifying signatures and checksums');
  const releases = new Map<string, ReleaseFile>();
  for (const suite of settings.suites) {
    try {
      releases.set(suite, await verifySuite(skelDists, suite, keyring, settings.upstream));
    } catch (err) {
      // Never keep indexes that failed: wget -N would otherwise trust them next time.
      await removeTree(path.join(skelDists, suite)).catch(() => undefined);
      throw err;
    }
  }
  const stagingTree = path.join(layout.staging, treePath);
  await local('copying the index files into staging', async () => {
    await removeTree(path.join(stagingTree, 'dists'));
    for (const suite of settings.suites) await copyTree(path.join(skelDists, suite), path.join(stagingTree, 'dists', suite));
  });
  const entries = await listPoolEntries(path.join(stagingTree, 'dists'), settings, releases);
  const missing: string[] = [];
  for (const entry of entries) {
    const file = path.join(stagingTree, entry.filename);
    const st = await fs.promises.stat(file).catch(() => null);
    if (!st || st.size !== entry.size) {
      missing.push(entry.filename);
      continue;
    }
    if (st.nlink === 1 && entry.sha256 && (await sha256File(file)) !== entry.sha256) {
      await fs.promises.rm(file, { force: true }); // fetched again next time
      throw new UecError('UPSTREAM_FAILED', `${settings.upstream}/${entry.filename} does not match the SHA256 in its signed index; the served tree is unchanged`);
    }
  }
  if (missing.length > 0) {
    const free = await freeMegabytes(layout.base);
    if (free < 1) throw new UecError('MIRROR_FAILED', `the disk under ${settings.baseDir} is full: ${missing.length} package file(s) could not be stored (first: ${missing[0]}); the served tree is unchanged and the next sync resumes`);
    throw new UecError('UPSTREAM_FAILED', `${missing.length} package file(s) could not be fetched from ${settings.upstream} (first: ${missing[0]}); the served tree is unchanged and the next sync resumes`);
  }
  progress.stage('switching to the new tree');
  const wanted = new Set(entries.map((e) => e.filename));
  await local('pruning files no index names', async () => {
    for await (const rel of walkFiles(path.join(stagingTree, 'pool'))) {
      if (!wanted.has(`pool/${rel}`)) await fs.promises.rm(path.join(stagingTree, 'pool', rel), { force: true });
    }
  });
  const served = await local('switching the served tree', () => switchCurrent(layout, generation));
  return { generation: served, fetchedFiles: fetched.fetchedFiles, fetchedBytes: fetched.fetchedBytes, files: entries.length };
}

// ------------------------------------------------------------------------------- iso

async function syncIso(options: SyncOptions, layout: ResolvedLayout, generation: string): Promise<Omit<SyncState, 'started' | 'finished' | 'mode' | 'source' | 'result'>> {
  const { settings } = options;
  const progress = options.progress ?? NO_PROGRESS;
  const iso = options.paths.resolve(settings.iso);
  const st = await fs.promises.stat(iso).catch(() => null);
  if (!st?.isFile()) throw new UecError('CONFIG_INVALID_VALUE', `mirror.iso ${settings.iso} is not a file; nothing was changed`);
  await checkFreeSpace(layout.base, settings.minFreeMb + Math.ceil(st.size / (1024 * 1024)), settings.baseDir);
  await removeTree(layout.staging); // an extraction is not resumable: start clean
  await local('preparing the staging tree', () => fs.promises.mkdir(layout.staging, { recursive: true }));
  progress.stage(`extracting ${settings.iso}`);
  const result = await runCommand('xorriso', ['-osirrox', 'on', '-indev', iso, '-extract', '/', layout.staging], { timeoutMs: 3_600_000, env: { ...process.env, LC_ALL: 'C' } });
  const fail = async (error: UecError): Promise<never> => {
    await removeTree(layout.staging);
    throw error;
  };
  if (result.code !== 0) {
    if (/No space left|ENOSPC|disk full/i.test(result.stderr)) await fail(new UecError('MIRROR_FAILED', `the disk under ${settings.baseDir} filled up extracting ${settings.iso}; the served tree is unchanged`));
    const said = result.stderr.split('\n').find((l) => /FAILURE|SORRY|NOT READY/.test(l)) ?? `xorriso exit ${result.code}`;
    await fail(new UecError('IMAGE_INVALID', `${settings.iso} is not a readable ISO 9660 image (${said.trim()}); the served tree is unchanged`));
  }
  const info = await fs.promises.readFile(path.join(layout.staging, '.disk', 'info'), 'utf8').catch(() => null);
  const hasDists = await exists(path.join(layout.staging, 'dists'));
  const installers = (await fs.promises.readdir(layout.staging).catch(() => [] as string[])).filter((n) => /^install(\.[a-z0-9]+)?$/.test(n));
  if (info === null || !hasDists || installers.length === 0) {
    const lacks = [info === null ? '.disk/info' : '', hasDists ? '' : 'dists/', installers.length ? '' : 'install*/'].filter(Boolean).join(', ');
    await fail(new UecError('IMAGE_INVALID', `${settings.iso} is not a Debian installer image (it lacks ${lacks}); the served tree is unchanged`));
  }
  progress.stage(`switching to ${info?.trim()}`);
  const served = await local('switching the served tree', () => switchCurrent(layout, generation));
  return { generation: served, fetchedFiles: 0, fetchedBytes: 0, files: await countFiles(layout.current + '/') };
}

/** One sync (mirror mode) or ISO extraction (iso mode); the state file records the outcome. */
export async function syncMirrorTree(options: SyncOptions): Promise<SyncResult> {
  const { settings } = options;
  if (settings.mode !== 'mirror' && settings.mode !== 'iso') {
    throw new UecError('USAGE', `mirror sync needs mirror.mode mirror or iso (it is ${settings.mode}); see dpkg-reconfigure uec-provisioning-mirror`);
  }
  const layout = resolvedLayout(options.paths, settings);
  const now = options.now ?? (() => new Date());
  const started = now();
  await local(`creating ${settings.baseDir}`, () => fs.promises.mkdir(layout.base, { recursive: true, mode: 0o755 }));
  const release = await local('taking the sync lock', () => acquireLock(layout.lock));
  const base = { mode: settings.mode, source: settings.mode === 'iso' ? settings.iso : settings.upstream, started: started.toISOString() };
  try {
    const outcome = settings.mode === 'iso' ? await syncIso(options, layout, generationName(started)) : await syncMirror(options, layout, generationName(started));
    const state: SyncResult = { ...base, result: 'ok', finished: now().toISOString(), ...outcome };
    await writeState(layout, state);
    return state;
  } catch (err) {
    const previous = await readSyncState(options.paths, settings);
    const error = err instanceof UecError ? err : new UecError('MIRROR_FAILED', describeError(err), { cause: err });
    await writeState(layout, {
      ...base,
      result: 'failed',
      code: error.code,
      error: error.message,
      finished: now().toISOString(),
      generation: previous?.generation ?? null,
      fetchedFiles: 0,
      fetchedBytes: 0,
      files: previous?.files ?? 0,
    });
    throw error;
  } finally {
    await release();
  }
}
