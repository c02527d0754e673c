/**
 * A clean Debian 12 for tests that install the .debs as a sysadmin would, and run them
 * under real systemd.
 *
 * - `bookwormImage()` / `builtDebs()`: the cached debootstrapped image and the .debs of this
 *   checkout (scripts/bookworm-image, scripts/build-debs; both built once and shared).
 * - `overlayRoot(t)`: a writable copy of the image (overlayfs over the read-only image),
 *   unmounted and removed at teardown.
 * - `chrootRun(root, argv)`: runs a command in that root with no network at all (a fresh
 *   network namespace with only loopback), in its own mount and pid namespaces with /proc:
 *   apt installs from the image's cache, offline. A `policy-rc.d` in the root keeps services
 *   from starting there (`prepareChroot`).
 * - `bootContainer(t, net, ns, root)`: boots the root with systemd as PID 1 under
 *   `systemd-nspawn --boot`, inside the test's network namespace `ns` (never the host's
 *   network: an installed dhcpd would answer the real LAN), and runs commands in it with
 *   nsenter. Each container gets a cgroup of its own. Stopped at teardown; on exit or
 *   SIGINT/SIGTERM/SIGHUP/SIGALRM (tap's timeout), when teardowns do not run, containers
 *   are killed and overlays unmounted by this module's own handlers (as netns.ts does for
 *   the namespaces).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ExecResult, TeardownHost, TestNetwork } from './netns';
import { REPO_ROOT } from './scratch';

export interface BuildResult {
  dir: string;
  debs: string[];
}

function runScript(script: string): string {
  const r = spawnSync('bash', [path.join(REPO_ROOT, 'scripts', script)], { encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0) throw new Error(`scripts/${script} exited ${r.status}: ${r.stderr.slice(-3000)}`);
  return r.stdout.trim().split('\n').pop() ?? '';
}

/** Why the installed-appliance tests cannot run here, or false. */
export function bookwormUnavailableReason(): string | false {
  if (process.getuid?.() !== 0) return 'needs root';
  for (const tool of ['/usr/sbin/debootstrap', '/usr/bin/systemd-nspawn', '/usr/bin/nsenter', '/usr/bin/unshare']) {
    if (!fs.existsSync(tool)) return `${tool} is missing (scripts/run-tests installs it)`;
  }
  return false;
}

/** The cached clean bookworm image (built on first use: a few minutes). */
export function bookwormImage(): string {
  return runScript('bookworm-image');
}

/** The .debs of this checkout, built once per checkout content. */
export function builtDebs(): BuildResult {
  const dir = runScript('build-debs');
  return { dir, debs: fs.readdirSync(dir).filter((f) => f.endsWith('.deb')).sort().map((f) => path.join(dir, f)) };
}

/** The binary packages debian/control declares. */
export const PACKAGES = fs.readFileSync(path.join(REPO_ROOT, 'debian/control'), 'utf8')
  .split('\n')
  .filter((l) => l.startsWith('Package: '))
  .map((l) => l.slice('Package: '.length).trim());

/** A writable copy of `image` (overlayfs), removed at teardown. Returns the merged root. */
export function overlayRoot(t: TeardownHost, image: string): string {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'uec-bookworm-'));
  for (const d of ['upper', 'work', 'root']) fs.mkdirSync(path.join(base, d));
  const root = path.join(base, 'root');
  const r = spawnSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${image},upperdir=${base}/upper,workdir=${base}/work`, root], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`overlay mount failed: ${r.stderr}`);
  fs.chmodSync(root, 0o755);
  liveOverlays.set(root, base);
  installCleanupHandlers();
  t.teardown(() => {
    spawnSync('umount', ['-R', root]);
    fs.rmSync(base, { recursive: true, force: true });
    liveOverlays.delete(root);
  });
  return root;
}

const CHROOT_ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C.UTF-8', DEBIAN_FRONTEND: 'noninteractive', DEBCONF_NONINTERACTIVE_SEEN: 'true', HOME: '/root' };

/**
 * Runs argv inside `root` offline: its own network, mount and pid namespaces, /proc and
 * /sys mounted. The network looks like a server's (a veth eth0 with an address and a
 * default route, so the packages can guess their interface) but nothing can leave it.
 */
export function chrootRun(root: string, argv: string[], opts: { input?: string; env?: Record<string, string> } = {}): ExecResult {
  const envArgs = Object.entries({ ...CHROOT_ENV, ...opts.env }).map(([k, v]) => `${k}=${v}`);
  const setup = [
    'set -e',
    'ip link add eth0 type veth peer name eth0-peer',
    'ip addr add 192.0.2.10/24 dev eth0',
    'ip link set eth0 up',
    'ip link set eth0-peer up',
    'ip route add default via 192.0.2.1',
    `mount -t sysfs sysfs "${root}/sys"`,
    `exec chroot "${root}" /usr/bin/env -i "$@"`,
  ].join('\n');
  const r = spawnSync('unshare', ['--net', '--mount', '--pid', '--fork', `--mount-proc=${root}/proc`, 'sh', '-c', setup, 'chroot-run', ...envArgs, ...argv], {
    encoding: 'utf8',
    input: opts.input,
    maxBuffer: 256 << 20,
  });
  return { stdout: r.stdout ?? '', stderr: r.stderr ?? '', code: r.status, signal: r.signal, timedOut: false };
}

/** Like chrootRun, but throws with the output's tail when the command fails. */
export function chrootMust(root: string, argv: string[], opts: { input?: string; env?: Record<string, string> } = {}): string {
  const r = chrootRun(root, argv, opts);
  if (r.code !== 0) throw new Error(`${argv.join(' ')} exited ${r.code}:\n${(r.stdout + r.stderr).slice(-4000)}`);
  return r.stdout;
}

/**
 * Readies a root for chroot installs: a policy-rc.d refusing every service start, as on this
 * host, and dpkg without fsync (a throw-away root: this halves the install time here).
 */
export function prepareChroot(root: string): void {
  fs.writeFileSync(path.join(root, 'usr/sbin/policy-rc.d'), '#!/bin/sh\n# added by the uec-provisioning tests: no service starts in this chroot\nexit 101\n', { mode: 0o755 });
  fs.writeFileSync(path.join(root, 'etc/dpkg/dpkg.cfg.d/uec-tests-unsafe-io'), '# throw-away test root\nforce-unsafe-io\n');
}

/** Copies files into the root under `dir` (created), returning their paths inside the root. */
export function copyInto(root: string, dir: string, files: string[]): string[] {
  fs.mkdirSync(path.join(root, dir), { recursive: true });
  return files.map((f) => {
    const inside = path.posix.join(dir, path.basename(f));
    fs.copyFileSync(f, path.join(root, inside));
    return inside;
  });
}

export interface Container {
  /** The container's PID 1 (systemd), as seen from the host. */
  readonly pid: number;
  readonly root: string;
  /** Runs argv inside the container (all its namespaces) to completion; never throws on a status. */
  exec(argv: string[], opts?: { input?: string; timeoutMs?: number; env?: Record<string, string> }): Promise<ExecResult>;
  /** Like exec, but rejects with the output's tail on a non-zero status. */
  must(argv: string[], opts?: { input?: string; timeoutMs?: number; env?: Record<string, string> }): Promise<string>;
  /** systemd-nspawn's own output so far. */
  log(): string;
  stop(): Promise<void>;
}

/**
 * systemd's cgroup hierarchies on this machine: the cgroup2 root, or on a hybrid layout the
 * name=systemd one and the unified one.
 */
function systemdCgroupHierarchies(): string[] {
  if (fs.existsSync('/sys/fs/cgroup/cgroup.procs')) return ['/sys/fs/cgroup'];
  return ['/sys/fs/cgroup/systemd', '/sys/fs/cgroup/unified'].filter((d) => fs.existsSync(path.join(d, 'cgroup.procs')));
}

/** Removes a cgroup directory and the groups below it (rmdir, deepest first); false if some remain. */
function removeCgroupTree(dir: string): boolean {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return true;
  }
  for (const e of entries) if (e.isDirectory()) removeCgroupTree(path.join(dir, e.name));
  try {
    fs.rmdirSync(dir);
    return true;
  } catch {
    return false;
  }
}

/** A v1 cgroup stays busy for a moment after its last task exits: retry for up to 5 s. */
async function removeCgroups(dirs: string[]): Promise<void> {
  for (let i = 0; i < 50; i++) {
    if (dirs.map(removeCgroupTree).every(Boolean)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

let containerCount = 0;
const liveContainers = new Map<ChildProcess, string[]>();
/** Overlay root → its scratch directory, until its teardown has run. */
const liveOverlays = new Map<string, string>();
const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGALRM'];
let handlersInstalled = false;

/**
 * On exit or a signal (tap's timeout is SIGALRM) the teardowns do not run: kill every
 * container (its PID 1 and so everything in it dies with systemd-nspawn), then unmount and
 * remove the overlays and the containers' cgroups. Synchronous, as exit handlers must be.
 */
function cleanupNow(): void {
  for (const child of liveContainers.keys()) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const [child, cgroups] of liveContainers) {
    for (let i = 0; i < 50 && child.pid !== undefined && processAlive(child.pid); i++) spawnSync('sleep', ['0.1']);
    for (let i = 0; i < 20 && !cgroups.map(removeCgroupTree).every(Boolean); i++) spawnSync('sleep', ['0.1']);
  }
  liveContainers.clear();
  for (const [root, base] of liveOverlays) {
    spawnSync('umount', ['-R', '-l', root]);
    fs.rmSync(base, { recursive: true, force: true });
  }
  liveOverlays.clear();
}

/** Running (a zombie counts as gone: nothing reaps it inside a synchronous handler). */
function processAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function onSignal(signal: NodeJS.Signals): void {
  cleanupNow();
  for (const s of SIGNALS) process.removeListener(s, onSignal);
  // Die of the same signal, as if it had not been caught (netns.ts does the same).
  process.kill(process.pid, signal);
}

function installCleanupHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', cleanupNow);
  for (const s of SIGNALS) process.on(s, onSignal);
}

function execIn(pid: number, argv: string[], opts: { input?: string; timeoutMs?: number; env?: Record<string, string> } = {}): Promise<ExecResult> {
  const envArgs = Object.entries({ ...CHROOT_ENV, ...opts.env }).map(([k, v]) => `${k}=${v}`);
  return new Promise((resolve) => {
    const child = spawn('nsenter', ['-t', String(pid), '-a', '/usr/bin/env', '-i', ...envArgs, ...argv], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 120_000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ stdout, stderr, code, signal, timedOut });
    });
    // A command that does not read its input (or nsenter on a process already gone).
    child.stdin.on('error', () => undefined);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ stdout, stderr: `${stderr}spawn failed: ${err.message}\n`, code: null, signal: null, timedOut });
    });
    child.stdin.end(opts.input ?? '');
  });
}

function commandOf(pid: string): string {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/**
 * Boots `root` with systemd as PID 1 inside the network namespace `ns` of `net` and waits
 * until `systemctl is-system-running --wait` answers. Stopped before the namespace goes.
 */
export async function bootContainer(t: TeardownHost, net: TestNetwork, ns: string, root: string, options: { name?: string; timeoutMs?: number } = {}): Promise<Container> {
  if (!fs.existsSync(`/run/netns/${ns}`)) throw new Error(`no network namespace ${ns}`);
  installCleanupHandlers();
  const name = options.name ?? 'appliance';
  let output = '';
  // CAP_NET_ADMIN: systemd-nspawn keeps it only with a network of the container's own, and
  // does not count --network-namespace-path as one; the namespace is the test's, and dnsmasq
  // refuses to serve DHCP without it.
  // A cgroup of its own: without systemd on the host, systemd-nspawn puts the container in
  // "payload" below its own cgroup, the same for every container started from one cgroup,
  // and two containers' systemd would then share (and stop each other's) unit cgroups.
  const cgroupName = `${name}-${process.pid}-${++containerCount}`;
  const cgroups = systemdCgroupHierarchies().map((h) => path.join(h, 'uec-tests', cgroupName));
  for (const dir of cgroups) fs.mkdirSync(dir, { recursive: true });
  const nspawn = ['systemd-nspawn', '-q', '-D', root, '--boot', '--register=no', '--keep-unit', `--network-namespace-path=/run/netns/${ns}`, '--capability=CAP_NET_ADMIN', '-M', name];
  const child = spawn('sh', ['-c', 'for g in $UEC_CGROUPS; do echo $$ > "$g/cgroup.procs" || exit 1; done; exec "$@"', 'container', ...nspawn], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, UEC_CGROUPS: cgroups.join(' ') },
  });
  liveContainers.set(child, cgroups);
  child.stdout?.on('data', (d: Buffer) => (output += d.toString('utf8')));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString('utf8')));
  const exited = new Promise<void>((resolve) => child.on('exit', () => void removeCgroups(cgroups).then(resolve)));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) {
      await exited;
      liveContainers.delete(child);
      return;
    }
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    await exited;
    clearTimeout(timer);
    liveContainers.delete(child);
  };
  // Registered before the network's own teardown runs (tap runs teardowns in reverse order
  // of registration only within one test; stop first either way).
  t.teardown(stop);
  void net;

  // PID 1 of the container is the child of systemd-nspawn whose command is systemd (its
  // first child may be the short-lived "outer child" that forks the container's init).
  const deadline = Date.now() + (options.timeoutMs ?? 90_000);
  let pid = 0;
  while (!pid) {
    if (child.exitCode !== null) throw new Error(`systemd-nspawn exited ${child.exitCode}: ${output.slice(-2000)}`);
    if (Date.now() > deadline) throw new Error(`the container did not start: ${output.slice(-2000)}`);
    const children = spawnSync('pgrep', ['-P', String(child.pid)], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean);
    const init = children.find((p) => commandOf(p) === 'systemd');
    if (init) pid = Number(init);
    else await new Promise((r) => setTimeout(r, 200));
  }
  for (;;) {
    const r = await execIn(pid, ['systemctl', 'is-system-running', '--wait'], { timeoutMs: Math.max(1000, deadline - Date.now()) });
    const state = r.stdout.trim();
    if (state === 'running' || state === 'degraded') break;
    if (Date.now() > deadline) throw new Error(`the container's systemd did not come up (${state}): ${output.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
  const container: Container = {
    pid,
    root,
    exec: (argv, opts) => execIn(pid, argv, opts),
    async must(argv, opts) {
      const r = await execIn(pid, argv, opts);
      if (r.code !== 0) throw new Error(`${argv.join(' ')} exited ${r.code}${r.timedOut ? ' (timed out)' : ''}:\n${(r.stdout + r.stderr).slice(-4000)}`);
      return r.stdout;
    },
    log: () => output,
    stop,
  };
  return container;
}
