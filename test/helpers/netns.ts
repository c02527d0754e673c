/**
 * Throw-away network namespaces for tests that need real interfaces: veth pairs, bridges,
 * tap devices, and processes (dnsmasq, qemu, node) running inside them.
 *
 * Safety rules this helper keeps, so that nothing a test does can reach the machine's
 * real network:
 * - every command runs as `ip -n NS …` or `ip netns exec NS …` on a namespace this helper
 *   created; a name it did not create is refused, so the root namespace is never touched;
 * - veth ends are created directly inside their namespaces (`ip link add … netns NS`),
 *   never in the root namespace and then moved;
 * - each namespace gets loopback up and IPv4/IPv6 forwarding off; the helper adds no
 *   routes (a test may add a default route inside its own namespace: there is no path out);
 * - teardown runs from `t.teardown` and also from process 'exit' and SIGINT/SIGTERM/
 *   SIGHUP/SIGALRM (tap's timeout signal): spawned processes are killed, then anything
 *   else left in the namespace (`ip netns pids`), then the namespace is deleted, which
 *   removes every interface in it.
 *
 * Names are `uect-<pid>-<n>[-<name>]-<label>`: unique per process and per network, and
 * recognisable, so `sweepStaleNamespaces()` can remove what a SIGKILLed run left behind.
 * Needs root and iproute2.
 */
import { spawn as spawnChild, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** What `t.teardown` needs: any tap Test (or anything else with a teardown hook). */
export interface TeardownHost {
  teardown(fn: () => unknown): void;
}

export interface ExecOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Written to the process's stdin, which is then closed. */
  input?: string;
  /** Kill the process (SIGKILL) after this long; default 60 s. */
  timeoutMs?: number;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  /** Exit status, or null when the process was killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
}

export interface SpawnOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

export interface NetnsProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Everything written so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves with the match once stdout+stderr match `pattern`; rejects on exit or timeout. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then SIGKILL after `graceMs` (default 3 s); resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
}

/** One end of `link`: the namespace, the interface name, and optionally its MAC and CIDR. */
export interface LinkEnd {
  ns: string;
  ifname: string;
  mac?: string;
  cidr?: string;
}

export interface TestNetwork {
  /** `uect-<pid>-<n>[-<name>]`: the prefix of every namespace of this network. */
  readonly id: string;
  /** Creates a namespace (loopback up, forwarding off) and returns its full name. */
  ns(label?: string): Promise<string>;
  /** A veth pair with one end created directly in each namespace (they may be the same one). */
  veth(nsA: string, ifA: string, nsB: string, ifB: string): Promise<void>;
  /** A veth pair between two namespaces, each end with its optional MAC and address, both up. */
  link(a: LinkEnd, b: LinkEnd): Promise<void>;
  /** A bridge inside `ns` (down; call `up`). */
  bridge(ns: string, name: string): Promise<void>;
  /** Makes `ifname` a port of `bridgeName`; both inside `ns`. */
  attach(ns: string, ifname: string, bridgeName: string): Promise<void>;
  /** A tap device inside `ns`, for `qemu -netdev tap,ifname=NAME,script=no,downscript=no`. */
  tap(ns: string, name: string): Promise<void>;
  /** Sets an interface's MAC address (before or after it is up). */
  mac(ns: string, ifname: string, mac: string): Promise<void>;
  /** `ip addr add CIDR dev IFNAME` inside `ns`. */
  addr(ns: string, ifname: string, cidr: string): Promise<void>;
  /** `ip link set dev IFNAME up` inside `ns`. */
  up(ns: string, ifname: string): Promise<void>;
  /** Polls /sys/class/net/IFNAME/operstate inside `ns` until it reads `state` (default "up"). */
  waitOperstate(ns: string, ifname: string, state?: string, timeoutMs?: number): Promise<void>;
  /** Any `ip -n NS …` command; throws with ip's stderr when it fails. */
  ip(ns: string, args: string[]): Promise<string>;
  /** Runs `argv` inside `ns` to completion. Never throws on a non-zero status: check `code`. */
  exec(ns: string, argv: string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Starts a long-running process inside `ns`; it is stopped at teardown. */
  spawn(ns: string, argv: string[], opts?: SpawnOptions): NetnsProcess;
  /** Stops every process, then deletes every namespace. Idempotent. */
  destroy(): Promise<void>;
}

const IP = 'ip';
const PREFIX = 'uect';
const LABEL = /^[a-z0-9]{1,10}$/;
/** Linux IFNAMSIZ is 16 including the NUL. */
const IFNAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;
const STALE = new RegExp(`^${PREFIX}-(\\d+)-\\d+(?:-[a-z0-9]+)*$`);

let networkCount = 0;
const liveNetworks = new Set<NetworkImpl>();

/** Why namespace tests cannot run here, or false when they can: use as tap's `skip`. */
export function netnsUnavailableReason(): string | false {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  const probe = spawnSync(IP, ['netns', 'list'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) return `\`ip netns list\` failed: ${probe.error?.message ?? probe.stderr.trim()}`;
  return false;
}

/** Names in `ip netns list` (the part before any " (id: N)"). */
export function listNamespaces(): string[] {
  const r = spawnSync(IP, ['netns', 'list'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) throw new Error(`ip netns list failed: ${r.error?.message ?? r.stderr.trim()}`);
  return r.stdout
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name !== '');
}

/**
 * Deletes `uect-<pid>-…` namespaces whose creating process is gone (a run that was
 * SIGKILLed could not clean up). Namespaces of live processes are left alone.
 * Returns the names removed.
 */
export function sweepStaleNamespaces(): string[] {
  const removed: string[] = [];
  for (const name of listNamespaces()) {
    const pid = Number(STALE.exec(name)?.[1]);
    if (!pid || processAlive(pid)) continue;
    killNamespacePidsSync(name);
    spawnSync(IP, ['netns', 'del', name]);
    removed.push(name);
  }
  return removed;
}

/** A set of namespaces torn down when `t` ends (or the process exits or is interrupted). */
export function createTestNetwork(t: TeardownHost, options: { name?: string } = {}): TestNetwork {
  if (options.name !== undefined && !LABEL.test(options.name)) {
    throw new Error(`network name ${JSON.stringify(options.name)}: use 1-10 of [a-z0-9]`);
  }
  const id = `${PREFIX}-${process.pid}-${++networkCount}${options.name ? `-${options.name}` : ''}`;
  const network = new NetworkImpl(id);
  liveNetworks.add(network);
  installProcessHandlers();
  t.teardown(() => network.destroy());
  return network;
}

class NetworkImpl implements TestNetwork {
  readonly id: string;
  /** In creation order; deleted in reverse. */
  private readonly namespaces: string[] = [];
  private readonly processes = new Set<NetnsProcessImpl>();
  private destroying: Promise<void> | undefined;

  constructor(id: string) {
    this.id = id;
  }

  async ns(label?: string): Promise<string> {
    this.assertLive();
    const suffix = label ?? `ns${this.namespaces.length}`;
    if (!LABEL.test(suffix)) throw new Error(`namespace label ${JSON.stringify(suffix)}: use 1-10 of [a-z0-9]`);
    const name = `${this.id}-${suffix}`;
    if (this.namespaces.includes(name)) throw new Error(`namespace ${name} already exists in this network`);
    await run(IP, ['netns', 'add', name]);
    // Tracked as soon as it exists, so a failure below still tears it down.
    this.namespaces.push(name);
    await this.ip(name, ['link', 'set', 'dev', 'lo', 'up']);
    await run(IP, ['netns', 'exec', name, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=0', 'net.ipv6.conf.all.forwarding=0']);
    return name;
  }

  async veth(nsA: string, ifA: string, nsB: string, ifB: string): Promise<void> {
    this.assertOwned(nsA);
    this.assertOwned(nsB);
    assertIfname(ifA);
    assertIfname(ifB);
    await run(IP, ['link', 'add', ifA, 'netns', nsA, 'type', 'veth', 'peer', 'name', ifB, 'netns', nsB]);
  }

  async link(a: LinkEnd, b: LinkEnd): Promise<void> {
    await this.veth(a.ns, a.ifname, b.ns, b.ifname);
    for (const end of [a, b]) {
      if (end.mac) await this.mac(end.ns, end.ifname, end.mac);
      if (end.cidr) await this.addr(end.ns, end.ifname, end.cidr);
      await this.up(end.ns, end.ifname);
    }
  }

  async bridge(ns: string, name: string): Promise<void> {
    assertIfname(name);
    await this.ip(ns, ['link', 'add', 'name', name, 'type', 'bridge']);
  }

  async attach(ns: string, ifname: string, bridgeName: string): Promise<void> {
    assertIfname(ifname);
    assertIfname(bridgeName);
    await this.ip(ns, ['link', 'set', 'dev', ifname, 'master', bridgeName]);
  }

  async tap(ns: string, name: string): Promise<void> {
    assertIfname(name);
    await this.ip(ns, ['tuntap', 'add', 'dev', name, 'mode', 'tap']);
  }

  async mac(ns: string, ifname: string, mac: string): Promise<void> {
    assertIfname(ifname);
    if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(mac)) throw new Error(`not a MAC address: ${JSON.stringify(mac)}`);
    await this.ip(ns, ['link', 'set', 'dev', ifname, 'address', mac]);
  }

  async addr(ns: string, ifname: string, cidr: string): Promise<void> {
    assertIfname(ifname);
    await this.ip(ns, ['addr', 'add', cidr, 'dev', ifname]);
  }

  async up(ns: string, ifname: string): Promise<void> {
    assertIfname(ifname);
    await this.ip(ns, ['link', 'set', 'dev', ifname, 'up']);
  }

  async waitOperstate(ns: string, ifname: string, state = 'up', timeoutMs = 5000): Promise<void> {
    assertIfname(ifname);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await this.exec(ns, ['cat', `/sys/class/net/${ifname}/operstate`], { timeoutMs });
      const last = r.code === 0 ? r.stdout.trim() : r.stderr.trim();
      if (last === state) return;
      if (Date.now() > deadline) throw new Error(`${ns}/${ifname}: operstate is ${JSON.stringify(last)}, waited ${timeoutMs} ms for ${state}`);
      await sleep(50);
    }
  }

  async ip(ns: string, args: string[]): Promise<string> {
    this.assertOwned(ns);
    return run(IP, ['-n', ns, ...args]);
  }

  async exec(ns: string, argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    this.assertOwned(ns);
    if (argv.length === 0) throw new Error('exec: empty argv');
    return execFile(IP, ['netns', 'exec', ns, ...argv], opts);
  }

  spawn(ns: string, argv: string[], opts: SpawnOptions = {}): NetnsProcess {
    this.assertOwned(ns);
    if (argv.length === 0) throw new Error('spawn: empty argv');
    // `ip netns exec` execs argv after entering the namespace, so the pid is argv's own.
    const child = spawnChild(IP, ['netns', 'exec', ns, ...argv], {
      cwd: opts.cwd,
      env: opts.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const proc = new NetnsProcessImpl(child, `${ns}: ${argv.join(' ')}`);
    this.processes.add(proc);
    void proc.exited.then(() => this.processes.delete(proc));
    return proc;
  }

  destroy(): Promise<void> {
    this.destroying ??= this.destroyNow();
    return this.destroying;
  }

  private async destroyNow(): Promise<void> {
    await Promise.all([...this.processes].map((p) => p.stop()));
    for (const ns of [...this.namespaces].reverse()) {
      await killNamespacePids(ns);
      await run(IP, ['netns', 'del', ns]).catch((err: unknown) => {
        // Already gone (say, deleted by the exit handler) is fine; anything else is not.
        if (listNamespaces().includes(ns)) throw err;
      });
      this.namespaces.splice(this.namespaces.indexOf(ns), 1);
    }
    // Only now: if anything above threw, the exit handler still has this network to retry.
    liveNetworks.delete(this);
    if (liveNetworks.size === 0) removeProcessHandlers();
  }

  /** For the process exit and signal handlers: no awaiting possible there. */
  destroySync(): void {
    for (const p of this.processes) p.killSync();
    for (const ns of [...this.namespaces].reverse()) {
      killNamespacePidsSync(ns);
      spawnSync(IP, ['netns', 'del', ns]);
    }
    this.namespaces.length = 0;
    liveNetworks.delete(this);
  }

  private assertLive(): void {
    if (this.destroying) throw new Error(`network ${this.id} has been destroyed`);
  }

  private assertOwned(ns: string): void {
    this.assertLive();
    if (!this.namespaces.includes(ns)) {
      throw new Error(`${JSON.stringify(ns)} is not a namespace of test network ${this.id}; refusing to touch it`);
    }
  }
}

class NetnsProcessImpl implements NetnsProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private out = '';
  private err = '';
  private done = false;
  private readonly listeners = new Set<() => void>();

  constructor(child: ChildProcess, private readonly what: string) {
    this.child = child;
    this.pid = child.pid ?? -1;
    child.stdout?.setEncoding('utf8').on('data', (s: string) => this.append('out', s));
    child.stderr?.setEncoding('utf8').on('data', (s: string) => this.append('err', s));
    this.exited = new Promise((resolve) => {
      child.on('error', (e) => {
        this.err += `spawn failed: ${e.message}\n`;
        this.finish();
        resolve({ code: null, signal: null });
      });
      child.on('close', (code, signal) => {
        this.finish();
        resolve({ code, signal });
      });
    });
  }

  stdout(): string {
    return this.out;
  }

  stderr(): string {
    return this.err;
  }

  waitForOutput(pattern: RegExp, timeoutMs = 30000): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const m = (this.out + this.err).match(pattern);
        if (m) {
          cleanup();
          resolve(m);
        } else if (this.done) {
          cleanup();
          reject(new Error(`${this.what} exited before printing ${pattern}; output:\n${this.out}${this.err}`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${this.what}: no ${pattern} within ${timeoutMs} ms; output:\n${this.out}${this.err}`));
      }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        this.listeners.delete(check);
      };
      this.listeners.add(check);
      check();
    });
  }

  async stop(graceMs = 3000): Promise<void> {
    if (this.done) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  killSync(): void {
    if (!this.done) this.child.kill('SIGKILL');
  }

  private append(stream: 'out' | 'err', s: string): void {
    if (stream === 'out') this.out += s;
    else this.err += s;
    for (const l of [...this.listeners]) l();
  }

  private finish(): void {
    this.done = true;
    for (const l of [...this.listeners]) l();
  }
}

// ---- process-level cleanup ---------------------------------------------------------

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGALRM'];
let handlersInstalled = false;

function destroyAllSync(): void {
  for (const network of [...liveNetworks]) network.destroySync();
}

function onExit(): void {
  destroyAllSync();
}

function onSignal(signal: NodeJS.Signals): void {
  destroyAllSync();
  removeProcessHandlers();
  // Die of the same signal, as if we had never caught it (other listeners, such as
  // tap's signal-exit, get their turn on the re-raised signal).
  process.kill(process.pid, signal);
}

function installProcessHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', onExit);
  for (const s of SIGNALS) process.on(s, onSignal);
}

function removeProcessHandlers(): void {
  if (!handlersInstalled) return;
  handlersInstalled = false;
  process.removeListener('exit', onExit);
  for (const s of SIGNALS) process.removeListener(s, onSignal);
}

// ---- small utilities -----------------------------------------------------------------

function assertIfname(name: string): void {
  if (!IFNAME.test(name)) throw new Error(`interface name ${JSON.stringify(name)}: 1-15 of [A-Za-z0-9_.-]`);
}

/** True while `pid` exists and is not a zombie (a dead run's process not yet reaped). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    // /proc/PID/stat: "PID (comm) STATE …"; comm may hold spaces and parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function namespacePidsSync(ns: string): number[] {
  const r = spawnSync(IP, ['netns', 'pids', ns], { encoding: 'utf8' });
  return (r.stdout ?? '').split(/\s+/).filter(Boolean).map(Number).filter((pid) => pid > 0 && pid !== process.pid);
}

function killNamespacePidsSync(ns: string): void {
  for (const pid of namespacePidsSync(ns)) signalPid(pid, 'SIGKILL');
}

/** SIGTERM everything left in the namespace, wait up to 2 s, then SIGKILL what remains. */
async function killNamespacePids(ns: string): Promise<void> {
  let pids = namespacePidsSync(ns);
  if (pids.length === 0) return;
  for (const pid of pids) signalPid(pid, 'SIGTERM');
  const deadline = Date.now() + 2000;
  while (pids.length > 0 && Date.now() < deadline) {
    await sleep(50);
    pids = namespacePidsSync(ns);
  }
  for (const pid of pids) signalPid(pid, 'SIGKILL');
}

function signalPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function execFile(file: string, args: string[], opts: ExecOptions): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = spawnChild(file, args, {
      cwd: opts.cwd,
      env: opts.env,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout?.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 60000);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ stdout, stderr: stderr + `spawn failed: ${err.message}\n`, code: null, signal: null, timedOut });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ stdout, stderr, code, signal, timedOut });
    });
  });
}

/** Runs a command to completion and returns stdout; throws with stderr on failure. */
async function run(file: string, args: string[]): Promise<string> {
  const r = await execFile(file, args, { timeoutMs: 30000 });
  if (r.code !== 0) {
    const why = r.timedOut ? 'timed out' : r.code === null ? `killed by ${r.signal}` : `exit ${r.code}`;
    throw new Error(`${file} ${args.join(' ')}: ${why}: ${r.stderr.trim()}`);
  }
  return r.stdout;
}
