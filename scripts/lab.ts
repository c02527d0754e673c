/**
 * scripts/lab: one command that shows uec-provisioning doing its job on this machine, inside
 * network namespaces of its own (uecl-*), never on the host's interfaces.
 *
 *   uecl-lan   bridge br0 (10.67.0.2 the lab's agent and forward, 10.67.0.3 the BMC), the
 *              machines' tap devices, ipmi_sim, and the veth end vappl (and vsite);
 *   uecl-appl  the appliance: the .debs of this checkout installed by apt in a Debian 12
 *              container booted with systemd (test/helpers/bookworm.ts), eth0 10.67.0.1;
 *   uecl-site  (--proxy) a plain dnsmasq as the site's DHCP server, 10.67.0.254.
 *
 * Pure parts in scripts/lab-plan.ts, the in-LAN agent in scripts/lab-agent.ts. What it left
 * behind after a crash is found by name (uecl-*), by its run directory and by the mounts
 * under it, and removed by `scripts/lab --down` (and before every start).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { bookwormImage, builtDebs, bootContainer, copyInto, type Container } from '../test/helpers/bookworm';
import type { TestNetwork } from '../test/helpers/netns';
import { REPO_ROOT } from '../test/helpers/scratch';
import { buildQemuArgv, holdVmLane } from '../test/helpers/vm';
import {
  LAB_HELP,
  LAB_PREFIX,
  LabUsageError,
  parseLabArgs,
  planLab,
  renderDebconf,
  renderIpmiSimCommands,
  renderIpmiSimConfig,
  renderShellCommand,
  selectLabProcess,
  selectStages,
  type LabArgs,
  type LabMachine,
  type LabNodeEvent,
  type LabPlan,
} from './lab-plan';

export const RUN_DIR = process.env.UEC_LAB_RUN_DIR ?? '/var/tmp/uec-provisioning-lab';
const CONTAINER_NAME = `${LAB_PREFIX}-appliance`;
const BMC_USER = 'admin';
const IMAGE_PACKAGE = 'debian-installer-12-netboot-amd64';
const LIMIT_NOTE =
  'This is as far as the lab goes: the Debian archive reachable from this machine serves every .deb but not most installer udebs (partman, debootstrap, grub-installer…), so the installer stops at "Download installer components" and no machine finishes installing here. On a network with a full archive or mirror the same deploy goes on to installed → deployed.';

const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s`;
function say(line: string): void {
  process.stdout.write(`lab [${elapsed()}]: ${line}\n`);
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(argv: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.stdin.on('error', () => undefined);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ code: null, stdout, stderr: `${stderr}${err.message}\n` });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}

async function must(argv: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<string> {
  const r = await run(argv, opts);
  if (r.code !== 0) throw new Error(`${argv.join(' ')} exited ${r.code}: ${(r.stderr || r.stdout).trim().slice(-1500)}`);
  return r.stdout;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- finding and removing what a lab left ----------------------------------------------

function processAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function cmdline(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

/** The pid of a running lab (its pid file, checked against its command line), or undefined. */
export function readRunningLab(): number | undefined {
  let pid: number;
  try {
    pid = Number(fs.readFileSync(path.join(RUN_DIR, 'lab.pid'), 'utf8').trim());
  } catch {
    return undefined;
  }
  if (!pid || pid === process.pid || !processAlive(pid) || !cmdline(pid).includes('lab.ts')) return undefined;
  return pid;
}

export function labNamespaces(): string[] {
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  return (r.stdout ?? '').split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n.startsWith(`${LAB_PREFIX}-`));
}

function labMounts(): string[] {
  return fs.readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1] ?? '').filter((m) => m.startsWith(`${RUN_DIR}/`));
}

function labCgroups(): string[] {
  const found: string[] = [];
  for (const h of ['/sys/fs/cgroup', '/sys/fs/cgroup/systemd', '/sys/fs/cgroup/unified']) {
    const dir = path.join(h, 'uec-tests');
    let names: string[] = [];
    try {
      names = fs.readdirSync(dir);
    } catch {
      continue;
    }
    for (const n of names) if (n.startsWith(`${CONTAINER_NAME}-`)) found.push(path.join(dir, n));
  }
  return found;
}

function removeCgroupTree(dir: string): void {
  let entries: fs.Dirent[] = [];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) if (e.isDirectory()) removeCgroupTree(path.join(dir, e.name));
  try {
    fs.rmdirSync(dir);
  } catch {
    // still busy: a later --down removes it
  }
}

/**
 * Removes everything a lab leaves: processes in its namespaces (qemu, ipmi_sim, dnsmasq,
 * the container's systemd and all below it, the agent), the namespaces (and with them every
 * interface the lab made), the overlay mount, the container's cgroups and the run
 * directory. Returns what it removed.
 */
export async function sweepLab(): Promise<string[]> {
  const removed: string[] = [];
  const namespaces = labNamespaces();
  for (let round = 0; round < 3; round++) {
    const pids = namespaces.flatMap((ns) => (spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout ?? '').split(/\s+/).filter(Boolean).map(Number)).filter((p) => p > 0 && p !== process.pid);
    if (pids.length === 0) break;
    for (const pid of pids) {
      if (round === 0) removed.push(`process ${pid} (${cmdline(pid).slice(0, 60).trim()})`);
      try {
        process.kill(pid, round === 0 ? 'SIGTERM' : 'SIGKILL');
      } catch {
        // gone
      }
    }
    await sleep(round === 0 ? 1500 : 500);
  }
  // systemd-nspawn itself runs in the host namespace: it exits with its container.
  for (let i = 0; i < 50 && processesMatching('systemd-nspawn', CONTAINER_NAME).length > 0; i++) await sleep(100);
  for (const pid of processesMatching('systemd-nspawn', CONTAINER_NAME)) {
    removed.push(`systemd-nspawn ${pid}`);
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  for (const ns of namespaces) {
    spawnSync('ip', ['netns', 'del', ns]);
    removed.push(`namespace ${ns}`);
  }
  for (const m of labMounts().reverse()) {
    spawnSync('umount', ['-R', '-l', m]);
    removed.push(`mount ${m}`);
  }
  for (const cg of labCgroups()) {
    removeCgroupTree(cg);
    removed.push(`cgroup ${cg}`);
  }
  if (fs.existsSync(RUN_DIR)) {
    fs.rmSync(RUN_DIR, { recursive: true, force: true });
    removed.push(`directory ${RUN_DIR}`);
  }
  return removed;
}

function processesMatching(comm: string, arg: string): number[] {
  return fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number).filter((pid) => {
    try {
      return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === comm && cmdline(pid).includes(arg);
    } catch {
      return false;
    }
  });
}

async function down(): Promise<number> {
  const running = readRunningLab();
  if (running) {
    say(`stopping the running lab (pid ${running}); it tears itself down`);
    process.kill(running, 'SIGTERM');
    for (let i = 0; i < 600 && processAlive(running); i++) await sleep(100);
    if (processAlive(running)) {
      say(`pid ${running} did not stop within 60 s: killing it`);
      process.kill(running, 'SIGKILL');
    }
  }
  const removed = await sweepLab();
  say(removed.length ? `removed: ${removed.join('; ')}` : 'nothing of a lab was left');
  return 0;
}

// ---- the network namespace facts the lab checks itself --------------------------------

export function netnsOf(pid: number | 'self'): string {
  try {
    return fs.readlinkSync(`/proc/${pid}/ns/net`);
  } catch {
    return '';
  }
}

/** Host interfaces: name → master (or ''), from `ip -j link` in the lab's own namespace (the host's). */
export function hostLinks(): Map<string, string> {
  const r = spawnSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' });
  const links = JSON.parse(r.stdout || '[]') as { ifname: string; master?: string }[];
  return new Map(links.map((l) => [l.ifname, l.master ?? '']));
}

/** The command name of the parent of the running qemu with this MAC ('' when none runs). */
function parentOfVm(mac: string): string {
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (!fs.readFileSync(`/proc/${d}/comm`, 'utf8').startsWith('qemu-system') || !cmdline(Number(d)).includes(`mac=${mac}`)) continue;
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1];
      // ip netns exec execs the command: a VM the lab started is the lab's own child.
      return fs.readFileSync(`/proc/${ppid}/comm`, 'utf8').trim();
    } catch {
      // gone meanwhile
    }
  }
  return '';
}

// ---- the lab ---------------------------------------------------------------------------

/** What `uec-provisioning --json nodes why NODE` answers (the parts the lab checks). */
interface WhyAnswer {
  source: string;
  trace: { at: string; source: string; what: string }[];
  verdict: { code: string; summary: string };
}

interface NodeSummary {
  systemId: string;
  hostname: string;
  macs: string[];
  status: string;
  stage?: string;
}
interface NodeDetail extends NodeSummary {
  events: LabNodeEvent[];
}

class Lab {
  private readonly teardowns: (() => unknown)[] = [];
  private readonly vms = new Map<string, ChildProcess>();
  private readonly wolSeen: { mac: string; from: string; port: number }[] = [];
  private readonly checks: { ok: boolean; what: string }[] = [];
  private container: Container | undefined;
  private token = '';
  private adminPassword = '';
  private bmcPassword = '';
  private relay: net.Server | undefined;
  private agent: ChildProcess | undefined;
  private hostLinksBefore = hostLinks();
  readonly hostNetns = netnsOf('self');
  private tearingDown: Promise<void> | undefined;

  constructor(readonly args: LabArgs, readonly plan: LabPlan) {}

  teardown(fn: () => unknown): void {
    this.teardowns.push(fn);
  }

  async tearDown(): Promise<void> {
    this.tearingDown ??= (async () => {
      say('tearing down');
      this.relay?.close();
      for (const vm of this.vms.values()) vm.kill('SIGKILL');
      for (const fn of this.teardowns.reverse()) {
        try {
          await fn();
        } catch (err) {
          say(`teardown step failed: ${(err as Error).message}`);
        }
      }
      const removed = await sweepLab();
      say(`down (${removed.filter((r) => r.startsWith('namespace')).length} namespaces removed)`);
    })();
    return this.tearingDown;
  }

  check(ok: boolean, what: string): void {
    this.checks.push({ ok, what });
    say(`${ok ? 'ok' : 'NOT OK'} - ${what}`);
  }

  async up(): Promise<void> {
    const { plan } = this;
    fs.mkdirSync(RUN_DIR, { recursive: true, mode: 0o755 });
    fs.chmodSync(RUN_DIR, 0o755);
    fs.writeFileSync(path.join(RUN_DIR, 'lab.pid'), `${process.pid}\n`);
    this.adminPassword = crypto.randomBytes(9).toString('base64url');
    this.bmcPassword = crypto.randomBytes(9).toString('base64url');

    // The namespaces first: without them there is no lab (and nothing else is touched).
    for (const ns of [plan.namespaces.lan, plan.namespaces.appliance, ...(plan.namespaces.site ? [plan.namespaces.site] : [])]) {
      const r = await run(['ip', 'netns', 'add', ns]);
      if (r.code !== 0) throw new Error(`cannot create network namespace ${ns} (${r.stderr.trim()}): the lab runs only inside namespaces of its own, so it stops here`);
      await must(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
      await must(['ip', 'netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=0', 'net.ipv6.conf.all.forwarding=0']);
    }
    say(`namespaces ${Object.values(plan.namespaces).join(', ')}`);

    say('building the .debs (scripts/build-debs, cached) and the bookworm image (scripts/bookworm-image, cached)');
    const debs = builtDebs();
    const image = bookwormImage();
    say(`${debs.debs.length} .debs in ${debs.dir}; image ${image}`);

    const lan = plan.namespaces.lan;
    const appl = plan.namespaces.appliance;
    await must(['ip', '-n', lan, 'link', 'add', 'br0', 'type', 'bridge']);
    await must(['ip', '-n', lan, 'addr', 'add', `${plan.labAddress}/24`, 'dev', 'br0']);
    for (const m of plan.machines) if (m.bmcAddress) await must(['ip', '-n', lan, 'addr', 'add', `${m.bmcAddress}/24`, 'dev', 'br0']);
    await must(['ip', '-n', lan, 'link', 'set', 'br0', 'up']);
    // veth ends created directly inside their namespaces, never in the host's.
    await must(['ip', 'link', 'add', 'eth0', 'netns', appl, 'type', 'veth', 'peer', 'name', 'vappl', 'netns', lan]);
    await must(['ip', '-n', appl, 'addr', 'add', `${plan.applianceAddress}/24`, 'dev', 'eth0']);
    await must(['ip', '-n', appl, 'link', 'set', 'eth0', 'up']);
    await must(['ip', '-n', lan, 'link', 'set', 'vappl', 'master', 'br0', 'up']);
    for (const m of plan.machines) {
      await must(['ip', '-n', lan, 'tuntap', 'add', 'dev', m.tap, 'mode', 'tap']);
      await must(['ip', '-n', lan, 'link', 'set', m.tap, 'master', 'br0', 'up']);
    }

    // The machine's one VM lane (one VM-heavy job at a time: test/helpers/vm.ts), unless the
    // caller holds it for us (test/e2e/lab.test.ts: UEC_LAB_VM_LANE=held).
    if (process.env.UEC_LAB_VM_LANE !== 'held') {
      say('waiting for the machine\'s VM lane (held by VM tests while they run)');
      await holdVmLane(this);
    }

    // The appliance: an overlay of the clean image, booted with systemd in uecl-appl.
    const base = path.join(RUN_DIR, 'overlay');
    for (const d of ['upper', 'work', 'root']) fs.mkdirSync(path.join(base, d), { recursive: true });
    const root = path.join(base, 'root');
    await must(['mount', '-t', 'overlay', 'overlay', '-o', `lowerdir=${image},upperdir=${base}/upper,workdir=${base}/work`, root]);
    fs.chmodSync(root, 0o755);
    const debPaths = copyInto(root, '/root/debs', debs.debs);
    // A throw-away root: dpkg without fsync (about halves the install here).
    fs.writeFileSync(path.join(root, 'etc/dpkg/dpkg.cfg.d/uec-lab-unsafe-io'), '# throw-away lab root (scripts/lab)\nforce-unsafe-io\n');
    // bootContainer checks the namespace by its path; the network object is not used.
    this.container = await bootContainer(this, undefined as unknown as TestNetwork, appl, root, { name: CONTAINER_NAME });
    const c = this.container;
    say(`appliance container booted (systemd running in ${appl})`);
    await c.must(['debconf-set-selections'], { input: renderDebconf(plan, this.adminPassword) });
    await c.must(['apt-get', 'install', '-y', '-q', ...debPaths], { timeoutMs: 600_000 });
    say('apt installed the six packages with Recommends; systemd started the daemons');
    if (plan.siteAddress && plan.namespaces.site) await this.startSiteDhcp();
    // iPXE first: unknown UEFI machines enlist through it (chained from GRUB, ipxe.efi hangs at
    // "initialising devices": seen in the lab); shim comes after enlisting (enlist()).
    await this.cli(['config', 'set', `dhcp.router=${plan.applianceAddress}`, `dhcp.dns_servers=${plan.applianceAddress}`, 'boot.kernel_args=console=ttyS0,115200', 'boot.uefi_loader=ipxe']);
    await this.cli(['apply']);
    await this.cli(['images', 'import', '--package', IMAGE_PACKAGE], 300_000);
    this.token = (await this.cli(['webui', 'token', 'create', 'admin', 'lab'])).trim();
    say(`configured with the CLI: gateway and DNS ${plan.applianceAddress}, serial console, UEFI loader ipxe, ${IMAGE_PACKAGE} imported, an API token`);

    await this.startAgent();
    await this.startRelay();
    for (const m of plan.machines) {
      // A blank disk: a sparse raw file (the firmware finds nothing on it and netboots).
      fs.closeSync(fs.openSync(this.diskOf(m), 'w'));
      fs.truncateSync(this.diskOf(m), 8 * 1024 ** 3);
      if (m.power === 'ipmi') await this.startBmc(m);
    }
    say(`${plan.machines.length} machines with blank 8 GiB disks, powered off: ${plan.machines.map((m) => `${m.label} ${m.firmware} ${m.mac} (${m.power === 'ipmi' ? `IPMI BMC ${m.bmcAddress}` : 'Wake-on-LAN'})`).join(', ')}`);
  }

  private cli(args: string[], timeoutMs = 120_000): Promise<string> {
    return this.container!.must(['uec-provisioning', ...args], { timeoutMs });
  }

  private journal(unit: string): Promise<string> {
    return this.container!.must(['journalctl', '--no-pager', '-o', 'cat', '-u', unit]);
  }

  private diskOf(m: LabMachine): string {
    return path.join(RUN_DIR, `disk-${m.label}.img`);
  }

  private serialOf(m: LabMachine): string {
    return path.join(RUN_DIR, `serial-${m.label}.log`);
  }

  private qemuArgv(m: LabMachine): string[] {
    return buildQemuArgv(
      { tap: m.tap, mac: m.mac, firmware: m.firmware, workDir: RUN_DIR, noOptionRom: m.firmware !== 'bios' },
      this.serialOf(m),
      { disk: this.diskOf(m), keepVars: true, ...(m.bmcVmPort ? { bmc: { host: '127.0.0.1', port: m.bmcVmPort } } : {}) },
    );
  }

  private async startSiteDhcp(): Promise<void> {
    const site = this.plan.namespaces.site!;
    await must(['ip', 'link', 'add', 'eth0', 'netns', site, 'type', 'veth', 'peer', 'name', 'vsite', 'netns', this.plan.namespaces.lan]);
    await must(['ip', '-n', site, 'addr', 'add', `${this.plan.siteAddress}/24`, 'dev', 'eth0']);
    await must(['ip', '-n', site, 'link', 'set', 'eth0', 'up']);
    await must(['ip', '-n', this.plan.namespaces.lan, 'link', 'set', 'vsite', 'master', 'br0', 'up']);
    const log = fs.openSync(path.join(RUN_DIR, 'site-dnsmasq.log'), 'a');
    const [first, last] = this.plan.dhcpRange;
    spawn('ip', ['netns', 'exec', site, 'dnsmasq', '--keep-in-foreground', '--log-facility=-', '--log-dhcp', '--port=0', '--no-resolv', '--no-hosts', '--bind-interfaces', '--interface=eth0', `--dhcp-range=${first},${last},1h`, `--dhcp-option=option:router,${this.plan.applianceAddress}`, `--dhcp-option=option:dns-server,${this.plan.applianceAddress}`, `--dhcp-leasefile=${path.join(RUN_DIR, 'site.leases')}`, `--pid-file=${path.join(RUN_DIR, 'site-dnsmasq.pid')}`, '--no-ping'], { stdio: ['ignore', log, log] });
    say(`the site's own DHCP server: a plain dnsmasq on ${this.plan.siteAddress} (${site}); the appliance answers as proxy-DHCP only`);
  }

  private async startAgent(): Promise<void> {
    const sock = path.join(RUN_DIR, 'webui.sock');
    const agent = spawn('ip', ['netns', 'exec', this.plan.namespaces.lan, process.execPath, '-r', 'ts-node/register/transpile-only', path.join(REPO_ROOT, 'scripts/lab-agent.ts'), sock, `${this.plan.applianceAddress}:80`], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    this.agent = agent;
    const lines = readline.createInterface({ input: agent.stdout! });
    const ready = new Promise<void>((resolve, reject) => {
      agent.once('exit', (code) => reject(new Error(`the lab agent exited ${code}`)));
      lines.on('line', (line) => {
        fs.appendFileSync(path.join(RUN_DIR, 'agent.log'), `${new Date().toISOString()} ${line}\n`);
        let e: { event?: string; mac?: string; from?: string; port?: number; message?: string };
        try {
          e = JSON.parse(line) as typeof e;
        } catch {
          return;
        }
        if (e.event === 'ready') resolve();
        else if (e.event === 'wol' && e.mac) this.onWake(e.mac, e.from ?? '', e.port ?? 0);
        else if (e.event === 'error') say(`agent: ${e.message}`);
      });
    });
    await ready;
    say(`agent on the LAN: Wake-on-LAN listener on UDP 9 and 7 (${this.plan.namespaces.lan})`);
  }

  private onWake(mac: string, from: string, port: number): void {
    this.wolSeen.push({ mac, from, port });
    const m = this.plan.machines.find((x) => x.mac === mac);
    if (!m) return say(`Wake-on-LAN for ${mac} from ${from}: no such machine on the lab's LAN`);
    if (m.power !== 'wol') return say(`Wake-on-LAN for ${m.label} from ${from}: it has a BMC; ignored`);
    if (this.vms.has(m.label)) return;
    say(`Wake-on-LAN magic packet for ${mac} from ${from} (UDP ${port}): powering on ${m.label}`);
    this.powerOn(m);
  }

  /** A Wake-on-LAN machine's power button: its qemu, in the LAN namespace. */
  private powerOn(m: LabMachine): void {
    const log = fs.openSync(path.join(RUN_DIR, `qemu-${m.label}.log`), 'a');
    const child = spawn('ip', ['netns', 'exec', this.plan.namespaces.lan, ...this.qemuArgv(m)], { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    this.vms.set(m.label, child);
    child.on('exit', (code, signal) => {
      this.vms.delete(m.label);
      if (!this.tearingDown) say(`${m.label} powered off (qemu ${signal ?? `exited ${code}`})`);
    });
  }

  private async startBmc(m: LabMachine): Promise<void> {
    const dir = path.join(RUN_DIR, `bmc-${m.label}`);
    fs.mkdirSync(path.join(dir, 'state'), { recursive: true });
    const startCommand = `${renderShellCommand(this.qemuArgv(m))} >>${path.join(RUN_DIR, `qemu-${m.label}.log`)} 2>&1`;
    fs.writeFileSync(path.join(dir, 'lan.conf'), renderIpmiSimConfig(m, { user: BMC_USER, password: this.bmcPassword, startCommand }), { mode: 0o600 });
    fs.writeFileSync(path.join(dir, 'bmc.emu'), renderIpmiSimCommands());
    const log = fs.openSync(path.join(dir, 'ipmi_sim.log'), 'a');
    spawn('ip', ['netns', 'exec', this.plan.namespaces.lan, 'ipmi_sim', '-n', '-c', path.join(dir, 'lan.conf'), '-f', path.join(dir, 'bmc.emu'), '-s', path.join(dir, 'state')], { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    for (let i = 0; i < 50; i++) {
      if ((await this.ipmi(m, 'status')).code === 0) return say(`${m.label}'s BMC: ipmi_sim on ${m.bmcAddress}:623 (RMCP+), user ${BMC_USER}; power on starts its qemu, power off stops it`);
      await sleep(200);
    }
    throw new Error(`ipmi_sim for ${m.label} did not answer on ${m.bmcAddress}`);
  }

  /**
   * The lab's own hand on a BMC (the technician's): real ipmitool in the LAN namespace. With
   * cipher suite 3 given: ipmi_sim does not answer "Get Channel Cipher Suites", and without
   * -C each ipmitool call spends about 10 s finding that out before it falls back to suite 3
   * (the product's calls, which give no -C, do: docs/lab.md).
   */
  private ipmi(m: LabMachine, action: 'on' | 'off' | 'status'): Promise<RunResult> {
    return new Promise((resolve) => {
      const child = spawn('ip', ['netns', 'exec', this.plan.namespaces.lan, 'ipmitool', '-I', 'lanplus', '-C', '3', '-H', m.bmcAddress!, '-U', BMC_USER, '-E', 'chassis', 'power', action], { env: { ...process.env, IPMI_PASSWORD: this.bmcPassword }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });
  }

  private async isOn(m: LabMachine): Promise<boolean> {
    if (m.power === 'wol') return this.vms.has(m.label);
    return /Chassis Power is on/.test((await this.ipmi(m, 'status')).stdout);
  }

  private async startRelay(): Promise<void> {
    const sock = path.join(RUN_DIR, 'webui.sock');
    const server = net.createServer({ allowHalfOpen: true }, (client) => {
      const upstream = net.connect({ path: sock, allowHalfOpen: true });
      client.pipe(upstream).pipe(client);
      const close = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on('error', close);
      upstream.on('error', close);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(new Error(`cannot listen on 127.0.0.1:${this.args.port} for the web UI forward (${err.message}); choose another with --port`)));
      server.listen(this.args.port, '127.0.0.1', () => resolve());
    });
    this.relay = server;
  }

  get base(): string {
    return `http://127.0.0.1:${this.args.port}/uec-provisioning`;
  }

  async api<T>(method: string, apiPath: string, body?: unknown): Promise<{ status: number; json: T }> {
    const r = await fetch(`${this.base}/api${apiPath}`, {
      method,
      headers: { Authorization: `Bearer ${this.token}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await r.text();
    let json: unknown = text;
    try {
      json = JSON.parse(text);
    } catch {
      // not JSON: kept as text
    }
    return { status: r.status, json: json as T };
  }

  async nodes(): Promise<NodeSummary[]> {
    const r = await this.api<{ nodes: NodeSummary[] }>('GET', '/nodes?per=1000');
    if (r.status !== 200) throw new Error(`GET /api/nodes: ${r.status}`);
    return r.json.nodes;
  }

  async node(id: string): Promise<NodeDetail> {
    const r = await this.api<NodeDetail>('GET', `/nodes/${id}`);
    if (r.status !== 200) throw new Error(`GET /api/nodes/${id}: ${r.status}`);
    return r.json;
  }

  /**
   * The machines arrive as a technician racks them: each is powered on once, netboots,
   * enlists as new and powers itself off. A Secure Boot machine cannot enlist (the product
   * chains unknown UEFI machines to unsigned iPXE), so it is added by MAC with the CLI.
   */
  async enlist(): Promise<Map<string, NodeSummary>> {
    const enlisting = this.plan.machines.filter((m) => m.enlists);
    say(`powering on ${enlisting.map((m) => m.label).join(', ')} once, as a technician would: unknown to the appliance, they netboot and enlist`);
    for (const m of enlisting) {
      if (m.power === 'wol') this.powerOn(m);
      else if ((await this.ipmi(m, 'on')).code !== 0) throw new Error(`ipmitool power on of ${m.label}'s BMC failed`);
    }
    const found = new Map<string, NodeSummary>();
    const deadline = Date.now() + 420_000;
    while (found.size < enlisting.length) {
      if (Date.now() > deadline) throw new Error(`not enlisted within 420 s: ${enlisting.filter((m) => !found.has(m.label)).map((m) => m.label).join(', ')}`);
      for (const n of await this.nodes()) {
        const m = enlisting.find((x) => n.macs.includes(x.mac));
        if (m && !found.has(m.label)) {
          found.set(m.label, n);
          say(`${m.label} enlisted as ${n.hostname} (${n.systemId}), status ${n.status}`);
        }
      }
      await sleep(2000);
    }
    // The enlist script powers the machine off where its iPXE can (Debian's iPXE builds have
    // no poweroff command: they go back to the firmware, which has nothing else to boot);
    // anything still on after 20 s is switched off, by its BMC or its power cord.
    await Promise.all(enlisting.map(async (m) => {
      for (let i = 0; i < 10 && (await this.isOn(m)); i++) await sleep(2000);
      if (await this.isOn(m)) {
        say(`${m.label} still on after enlisting (no poweroff in this iPXE): switching it off${m.power === 'ipmi' ? ' with ipmitool' : ''}`);
        if (m.power === 'wol') this.vms.get(m.label)?.kill('SIGTERM');
        else await this.ipmi(m, 'off');
        // ipmi_sim asks the guest first and stops qemu a few seconds later: off means off.
        for (let i = 0; i < 30 && (await this.isOn(m)); i++) await sleep(1000);
        if (await this.isOn(m)) throw new Error(`${m.label} did not power off`);
      }
    }));
    if (this.plan.uefiLoader === 'shim') {
      // Secure Boot machines need Debian's signed shim → GRUB: the admin switches the UEFI loader.
      await this.cli(['config', 'set', 'boot.uefi_loader=shim']);
      await this.cli(['apply']);
      say('UEFI loader switched to shim (uec-provisioning config set boot.uefi_loader=shim; apply): Secure Boot machines boot Debian\'s signed shim → GRUB → kernel');
    }
    for (const m of this.plan.machines.filter((x) => !x.enlists)) {
      await this.cli(['nodes', 'add', `lab-${m.label}`, '--mac', m.mac, '--arch', 'amd64', '--subarch', 'uefi']);
      const n = (await this.nodes()).find((x) => x.macs.includes(m.mac))!;
      found.set(m.label, n);
      say(`${m.label} (Secure Boot) added by MAC as ${n.hostname}: with Secure Boot on, an unknown machine cannot enlist through iPXE`);
    }
    for (const m of this.plan.machines.filter((x) => x.power === 'ipmi')) {
      const n = found.get(m.label)!;
      // Suite 3 pinned, as an admin does for a BMC that offers no suite 17: ipmi_sim does not
      // answer ipmitool's question for its suites, which costs each unpinned call about 10 s.
      const r = await this.api('PUT', `/nodes/${n.systemId}/bmc`, { address: m.bmcAddress, user: BMC_USER, password: this.bmcPassword, cipher_suite: 3 });
      if (r.status !== 200) throw new Error(`PUT BMC details for ${n.hostname}: ${r.status}`);
      say(`${n.hostname}: BMC details entered (${m.bmcAddress}, user ${BMC_USER}, cipher suite 3), as on the node page`);
    }
    return found;
  }

  banner(nodes: Map<string, NodeSummary>): void {
    const lines = [
      '',
      'The lab is up.',
      `  Web UI:   ${this.base}/   (forwarded from the LAN; user admin, password ${this.adminPassword})`,
      '  Machines (powered off):',
      ...this.plan.machines.map((m) => `    ${m.label} ${m.firmware.padEnd(11)} ${m.mac}  ${nodes.get(m.label)?.hostname ?? '?'} (${nodes.get(m.label)?.status ?? '?'})  power: ${m.power === 'ipmi' ? `IPMI, BMC ${m.bmcAddress} (ipmi_sim)` : 'Wake-on-LAN'}`),
      '  Deploy page: select the machines, role "server", Deploy. They power on, netboot, fetch',
      '  their preseeds and report installing; each node page shows its stages.',
      `  Logs: ${RUN_DIR}/ (serial-*.log, agent.log, bmc-*/ipmi_sim.log); the appliance:`,
      `  nsenter -t ${this.container?.pid} -a journalctl -f`,
      '  Ctrl-C here, or scripts/lab --down, tears everything down.',
      '',
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  }

  /** Prints each node's new stages as they come; resolves when every node is installing (or later). */
  async watch(ids: string[], timeoutMs: number, onStage?: (n: NodeDetail, stage: string) => Promise<void>): Promise<Map<string, NodeDetail>> {
    // Stages count from now: the enlistment boot's events came before.
    const since = Date.now() - 1000;
    const seen = new Map<string, string[]>();
    const done = new Map<string, NodeDetail>();
    const deadline = Date.now() + timeoutMs;
    let told = false;
    while (done.size < ids.length && Date.now() < deadline) {
      for (const id of ids) {
        const n = await this.node(id).catch((err: Error) => {
          say(`reading node ${id}: ${err.message}`);
          return undefined;
        });
        if (!n) continue;
        const stages = selectStages(n.events, since);
        const before = seen.get(id) ?? [];
        for (const s of stages.filter((x) => !before.includes(x))) {
          const e = n.events.find((x) => x.type === s);
          say(`${n.hostname}: ${s}${e ? ` — ${e.message}` : ''}`);
          if (onStage) await onStage(n, s);
        }
        seen.set(id, stages);
        if (stages.includes('installing') && !done.has(id)) {
          done.set(id, n);
          if (!told) {
            told = true;
            say(`first machine installing ${((Date.now() - started) / 1000).toFixed(0)} s after the command`);
          }
        }
      }
      if (done.size < ids.length) await sleep(2000);
    }
    if (done.size > 0 && done.size === ids.length) say(LIMIT_NOTE);
    return done;
  }

  /** The --ci scenario's checks from the product's timeline, its daemons' logs and the processes. */
  async ci(nodes: Map<string, NodeSummary>, screenshot?: string): Promise<boolean> {
    const ids = this.plan.machines.map((m) => nodes.get(m.label)!.systemId);
    for (const m of this.plan.machines.filter((x) => x.enlists)) this.check(nodes.get(m.label)?.status === 'new', `${m.label} (${m.firmware}) enlisted by netbooting, status new`);
    const deploy = await this.api<{ deployed?: NodeSummary[]; powerOn?: boolean; error?: string }>('POST', '/deploy', { nodes: ids, role: 'server', release: 'bookworm' });
    this.check(deploy.status === 200 && deploy.json.deployed?.length === ids.length && deploy.json.deployed.every((n) => n.status === 'deploying') && deploy.json.powerOn === true, `POST /api/deploy with the API token: all ${ids.length} deploying, power on (${deploy.status})`);
    const deployedAt = Date.now() - 1000;
    let shot = false;
    const startedBy = new Map<string, string>();
    const done = await this.watch(ids, 900_000, async (n, stage) => {
      // Who started a machine's VM: the lab (after a magic packet) or its BMC's ipmi_sim.
      const m = this.plan.machines.find((x) => n.macs.includes(x.mac));
      if (m && !startedBy.has(m.label) && (stage === 'netboot' || stage === 'preseed')) startedBy.set(m.label, parentOfVm(m.mac));
      if (screenshot && !shot && stage === 'preseed') {
        shot = true;
        await this.screenshot(screenshot, n.systemId).catch((err: Error) => say(`screenshot failed: ${err.message}`));
      }
    });
    const dhcp = await this.journal('uec-provisioning-dhcpd');
    const served = await this.journal('uec-provisioning');
    const apacheLog = await this.container!.must(['cat', '/var/log/apache2/access.log']).catch((err: Error) => `(unreadable: ${err.message})`);
    for (const m of this.plan.machines) {
      const n = done.get(nodes.get(m.label)!.systemId) ?? (await this.node(nodes.get(m.label)!.systemId));
      const stages = selectStages(n.events, deployedAt);
      const power = n.events.find((e) => e.type === 'power' && /^power on by/.test(e.message));
      if (m.power === 'wol') {
        this.check(Boolean(power && /Wake-on-LAN: \d+ packet\(s\) for .* to 10\.67\.0\.255 on eth0/.test(power.message)), `${n.hostname}: the product powered it on by Wake-on-LAN (${power?.message ?? 'no power event'})`);
        this.check(this.wolSeen.some((w) => w.mac === m.mac && w.from === this.plan.applianceAddress && w.port === 9), `${m.label}: the agent received the magic packet for ${m.mac} from the appliance on UDP 9 and started the VM`);
        this.check(startedBy.get(m.label) === 'node', `${m.label}: its qemu was started by the lab (parent ${startedBy.get(m.label) ?? 'not seen'})`);
      } else {
        this.check(startedBy.get(m.label) === 'ipmi_sim', `${m.label}: its qemu was started by its BMC, ipmi_sim (parent ${startedBy.get(m.label) ?? 'not seen'})`);
        this.check(Boolean(power && new RegExp(`power on by IPMI \\(${m.bmcAddress!.replace(/\./g, '\\.')}\\): Chassis Power Control: Up/On`).test(power.message)), `${n.hostname}: the product powered it on by IPMI through ipmi_sim (${power?.message ?? 'no power event'})`);
      }
      const want = m.firmware === 'uefi-secure' || this.plan.uefiLoader === 'shim' && m.firmware !== 'bios' ? ['power', 'preseed', 'installing'] : ['power', 'netboot', 'preseed', 'installing'];
      this.check(want.every((s) => stages.includes(s)) && want.map((s) => stages.indexOf(s)).every((v, i, a) => i === 0 || v > a[i - 1]!), `${n.hostname}: timeline ${stages.join(' → ')} (wanted ${want.join(' → ')})`);
      const lease = this.plan.siteAddress ? new RegExp(`PXE\\(eth0\\) .*${m.mac} proxy`) : new RegExp(`DHCPACK\\(eth0\\) 10\\.67\\.0\\.\\d+ ${m.mac} ${n.hostname}`);
      this.check(lease.test(dhcp), `${n.hostname}: dhcpd's journal shows its ${this.plan.siteAddress ? 'proxy-DHCP answer' : 'lease'}`);
      if (want.includes('netboot')) {
        // iPXE machines: apache2 sent the kernel and initrd (boot.image_server=auto with the
        // drop-in uec-provisioning-tftpd enabled), to this machine's leased address.
        const ip = this.plan.siteAddress ? '10\\.67\\.0\\.\\d+' : (new RegExp(`DHCPACK\\(eth0\\) (10\\.67\\.0\\.\\d+) ${m.mac}`).exec(dhcp)?.[1] ?? 'none').replace(/\./g, '\\.');
        const sent = ['linux', 'initrd.gz'].filter((f) => new RegExp(`^${ip} \\S+ \\S+ \\[[^\\]]+\\] "GET /uec-provisioning-images/debian/bookworm/amd64/${f.replace('.', '\\.')} HTTP/1\\.1" 200 \\d+`, 'm').test(apacheLog));
        this.check(sent.length === 2, `${n.hostname}: apache2 sent it the kernel and initrd (${sent.join(', ') || 'neither'} in /var/log/apache2/access.log)`);
      }
      this.check(new RegExp(`node ${n.hostname} \\(${n.systemId}\\): preseed install preseed fetched`).test(served), `${n.hostname}: uec-provisioning's journal shows the preseed fetched`);
      this.check(new RegExp(`node ${n.hostname} \\(${n.systemId}\\) reported installing`).test(served), `${n.hostname}: uec-provisioning's journal shows the installing call-back`);
      // The installed `nodes why` reads the same journal: the machine's DHCP and its stages, in order.
      const why = await this.cli(['--json', 'nodes', 'why', n.systemId]).then((out) => JSON.parse(out) as WhyAnswer, (err: Error) => ({ source: `failed: ${err.message}`, trace: [], verdict: { code: 'none', summary: '' } }));
      const whySeen = why.trace.map((e) => `${e.source}:${/^DHCP[A-Z]+|^PXE/.exec(e.what)?.[0] ?? e.what.split(' ')[0]}`);
      const acked = why.trace.findIndex((e) => e.source === 'dhcp' && (this.plan.siteAddress ? /PXE|proxy/ : /DHCPACK/).test(e.what));
      const installingAt = why.trace.findIndex((e) => e.source === 'timeline' && /^installing:/.test(e.what));
      this.check(why.source === 'journal' && acked >= 0 && installingAt > acked && why.verdict.code === 'in-progress', `${n.hostname}: uec-provisioning nodes why reads the journal: its DHCP answer, then installing; verdict ${why.verdict.code} (${why.verdict.summary}; ${whySeen.join(', ')})`);
    }
    if (this.plan.siteAddress) {
      const site = fs.readFileSync(path.join(RUN_DIR, 'site-dnsmasq.log'), 'utf8');
      this.check(this.plan.machines.every((m) => new RegExp(`DHCPACK\\(eth0\\) 10\\.67\\.0\\.\\d+ ${m.mac}`).test(site)), 'the site\'s DHCP server leased every machine\'s address');
    }
    this.checkIsolation();
    const passed = this.checks.filter((x) => x.ok).length;
    const failed = this.checks.length - passed;
    say(`${passed} passed, ${failed} failed`);
    return failed === 0;
  }

  /** Nothing the lab started is in the host's network namespace, and no host interface changed. */
  checkIsolation(): void {
    const procs = fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number).filter((pid) => {
      const comm = (() => {
        try {
          return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
        } catch {
          return '';
        }
      })();
      const cgroup = (() => {
        try {
          return fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8');
        } catch {
          return '';
        }
      })();
      return selectLabProcess({ comm, cmdline: cmdline(pid), cgroup }, RUN_DIR);
    });
    const inHost = procs.filter((pid) => netnsOf(pid) === this.hostNetns && !cmdline(pid).startsWith('ip netns exec'));
    this.check(procs.length > 0 && inHost.length === 0, `${procs.length} lab processes (qemu, ipmi_sim, dnsmasq, agent), none in the host's network namespace ${this.hostNetns}`);
    const after = hostLinks();
    const added = [...after.keys()].filter((k) => !this.hostLinksBefore.has(k));
    const enslaved = [...after].filter(([k, master]) => master !== (this.hostLinksBefore.get(k) ?? ''));
    this.check(added.length === 0 && enslaved.length === 0, `no host interface added (${added.join(', ') || 'none'}) or given a master (${enslaved.map(([k]) => k).join(', ') || 'none'})`);
  }

  async screenshot(file: string, systemId: string): Promise<void> {
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
    try {
      const page = await browser.newPage({ viewport: { width: 1200, height: 760 } });
      await page.goto(`${this.base}/login`);
      await page.fill('#user', 'admin');
      await page.fill('#password', this.adminPassword);
      await page.press('#password', 'Enter');
      await page.waitForURL(`${this.base}/`);
      await page.goto(`${this.base}/deploy`);
      await page.waitForTimeout(1500);
      await page.screenshot({ path: file, fullPage: false });
      const nodeShot = file.replace(/(\.png)?$/, '-node.png');
      await page.goto(`${this.base}/nodes/${systemId}`);
      await page.waitForTimeout(1500);
      await page.screenshot({ path: nodeShot, fullPage: false });
      say(`screenshots mid-deploy: the Deploy page ${file}, a node page ${nodeShot}`);
    } finally {
      await browser.close();
    }
  }
}

async function main(argv: string[]): Promise<number> {
  let args: LabArgs;
  try {
    args = parseLabArgs(argv);
  } catch (err) {
    if (err instanceof LabUsageError) {
      process.stderr.write(`scripts/lab: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  if (args.mode === 'help') {
    process.stdout.write(`${LAB_HELP}\n`);
    return 0;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('scripts/lab: needs root (it creates network namespaces, a container and VMs)\n');
    return 1;
  }
  if (args.mode === 'down') return down();
  const missing = ['/usr/bin/qemu-system-x86_64', '/usr/bin/ipmi_sim', '/usr/bin/ipmitool', '/usr/bin/systemd-nspawn', '/usr/sbin/debootstrap', '/usr/share/OVMF/OVMF_CODE_4M.ms.fd', '/usr/lib/ipxe/qemu/efi-virtio.rom'].filter((f) => !fs.existsSync(f));
  if (missing.length) {
    process.stderr.write(`scripts/lab: missing ${missing.join(', ')} (scripts/run-tests installs the packages: qemu-system-x86, openipmi, ipmitool, systemd-container, debootstrap, ovmf, ipxe-qemu)\n`);
    return 1;
  }
  const running = readRunningLab();
  if (running) {
    process.stderr.write(`scripts/lab: a lab is already running (pid ${running}); scripts/lab --down stops it\n`);
    return 1;
  }
  const stale = await sweepLab();
  if (stale.length) say(`removed what an earlier lab left: ${stale.join('; ')}`);

  const screenshot = process.env.UEC_LAB_SCREENSHOT;
  const lab = new Lab(args, planLab(args));
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    say(`${signal}: stopping`);
    void lab.tearDown().then(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  try {
    await lab.up();
    const nodes = await lab.enlist();
    if (args.ci) {
      const ok = await lab.ci(nodes, screenshot);
      await lab.tearDown();
      return ok ? 0 : 1;
    }
    lab.banner(nodes);
    await lab.watch([...nodes.values()].map((n) => n.systemId), 365 * 86_400_000);
    say('every machine is installing; the lab stays up until Ctrl-C or scripts/lab --down');
    await new Promise(() => undefined);
    return 0;
  } catch (err) {
    if (stopping) await new Promise(() => undefined);
    say(`failed: ${(err as Error).message}`);
    await lab.tearDown();
    return 1;
  }
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => process.exit(code));
}
