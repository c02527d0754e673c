/**
 * Boot-storm benchmark (part of `npm run bench`; issue 15 item 4): N simulated machines, all
 * started within the ramp (10 s), each doing what a BIOS PXE machine installing through
 * uec-provisioning does on the wire (scripts/bench-bootstorm/machine.sh): a real DHCP exchange
 * for its own MAC (perfdhcp), a TFTP fetch of its loader (curl), then over HTTP (curl) the iPXE
 * scripts, the kernel and initrd of the imported debian-installer-12-netboot-amd64, its preseed
 * and its installing/installed/deployed call-backs. Only C clients make load; Node only spawns
 * and times them (scripts/bench-bootstorm/launch.ts).
 *
 * Two phases in the same run, the same machines and the same bytes:
 * - product: the real dnsmasq with the configs `uec-provisioning apply dhcpd tftpd` rendered,
 *   the compiled `uec-provisioning serve`, and apache2 sending the kernel and initrd, as an admin
 *   with apache2 has it: `boot.image_server=apache2`, `boot.image_http_port=8080`, and the
 *   drop-in apply tftpd rendered (/etc/apache2/conf-available/uec-provisioning-boot.conf)
 *   included unchanged in a minimal server config;
 * - baseline: two dnsmasq with hand-written static configs (one DHCP only with dhcp-host lines,
 *   one TFTP only on the same boot tree, as the product's two) and apache2 serving what the
 *   product answered in the first phase as static files, on the same addresses and ports
 *   (scripts and call-backs on serve's, the images directory on 8080), so the URLs inside those
 *   bodies stay right.
 * A machine's answers in both phases are compared byte for byte.
 *
 * The network (test/helpers/netns.ts, torn down in `finally` and on exit or a signal):
 *   srv (servers, v0 10.80.0.1/16) ── rtr (10.80.0.2 | 10.81.0.1) ── mach (10.81.0.2, and
 *   one /32 per machine: its reserved address in 10.80.8.0/21)
 * The machines sit behind a router, as machines in another rack do: the server's neighbour
 * table holds the router only, so the service's ownership rule for routed clients applies
 * (docs/security.md: a routed client is the node when it comes from the node's reserved
 * address), and every machine's HTTP requests come from its own reservation. perfdhcp relays
 * each DHCP exchange with the machine's address as giaddr; it lies in the DHCP interface's
 * subnet (a more specific route on the server sends it to the router), so dnsmasq answers from
 * its range's subnet with the node's reservation. Nothing is weakened in the product.
 *
 * Env: BENCH_STORM_N (default "100,1000"), BENCH_STORM_RAMP_MS (default 10000), BENCH_STORM_CLIENT_NICE
 * (the machines' niceness, default 19: they share the servers' 2 cores), BENCH_CLI (another
 * build's dist/src/cli.js), BENCH_CPU_PROF=DIR (serve under `node --cpu-prof`), BENCH_STORM_KEEP=1 (keep
 * the scratch directory: configs, logs, every machine's bodies and transfers).
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ts from 'typescript';
import { createTestNetwork, netnsUnavailableReason, type NetnsProcess, type TestNetwork } from '../test/helpers/netns';
import type { LaunchResult, LaunchSpec, MachineRun } from './bench-bootstorm/launch';

const REPO = path.resolve(__dirname, '..');
const SERVER = '10.80.0.1';
const ROUTER_LAN = '10.80.0.2';
const ROUTER_FAR = '10.81.0.1';
const MACHINES_LINK = '10.81.0.2';
const FAR_NET = '10.80.8.0/21';
const PORT = 5248;
/** Where apache2 sends the kernels and initrds: `boot.image_http_port`, set explicitly. */
const IMAGE_PORT = 8080;
/** The URL path the product's apache2 drop-in aliases to the boot tree's images directory. */
const IMAGE_URL_PATH = '/uec-provisioning-images/';
const NETBOOT_PACKAGE = 'debian-installer-12-netboot-amd64';
/** The files each machine keeps, compared between the two phases. */
const BODIES = ['bootstrap.ipxe', 'node.ipxe', 'preseed', 'installing', 'installed', 'deployed'];

export interface StormOptions {
  n: number;
  rampMs: number;
  /** dist/src/cli.js of the build to measure. */
  cli?: string;
  /** Progress lines (stderr by default). */
  log?: (line: string) => void;
  cpuProfDir?: string;
  /** The machines' niceness, both phases (LaunchSpec.nice; default 19, 0 for none). */
  clientNice?: number;
}

export interface StormNode {
  hostname: string;
  systemId: string;
  mac: string;
  ipv4: string;
}

export interface ServerUsage {
  name: string;
  cpuSeconds: number;
  /** Peak RSS in KiB (VmHWM; summed over the process tree). */
  peakRssKiB: number;
}

export interface PhaseResult {
  name: 'product' | 'baseline';
  wallMs: number;
  machines: MachineRun[];
  errors: string[];
  servers: ServerUsage[];
  /** Machines that got their kernel and initrd, whole, from apache2 (its access log). */
  imagesFromApache: number;
  /** Per machine that finished, its HTTP seconds by step (machine.sh's transfers file). */
  httpSteps: HttpSteps[];
}

/** A machine's HTTP seconds: what serve answers (scripts, preseed, call-backs) and the images. */
export interface HttpSteps {
  /** The iPXE bootstrap and the node's own boot script. */
  scripts: number;
  /** The kernel and the initrd. */
  images: number;
  preseed: number;
  /** installing, installed and deployed. */
  callbacks: number;
}

/**
 * Pure: machine.sh's transfers file ("STATUS BYTES SECONDS" a line: TFTP, bootstrap, boot
 * script, kernel, initrd, preseed, three call-backs) → the HTTP seconds by step; null unless all
 * nine lines are there.
 */
export function parseHttpSteps(text: string): HttpSteps | null {
  const t = text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => Number(l.split(' ')[2]));
  if (t.length !== 9 || t.some((x) => !Number.isFinite(x))) return null;
  return { scripts: t[1]! + t[2]!, images: t[3]! + t[4]!, preseed: t[5]!, callbacks: t[6]! + t[7]! + t[8]! };
}

export interface StormResult {
  n: number;
  rampMs: number;
  nodes: StormNode[];
  product: PhaseResult;
  baseline: PhaseResult;
  /** Bodies that differ between the phases ("MACHINE/FILE"). */
  differingBodies: string[];
  /** Per machine, what it received from the product: file name (BODIES) → content. */
  bodies: Record<string, string>[];
  loadBefore: string;
  loadAfter: string;
}

/** Pure: machine index → its node (MAC, reserved address, hostname without the system id). */
export function selectStormNode(i: number): Omit<StormNode, 'systemId'> {
  const hex = (v: number) => v.toString(16).padStart(2, '0');
  return {
    hostname: `storm${String(i + 1).padStart(4, '0')}`,
    mac: `52:54:00:b5:${hex(i >> 8)}:${hex(i & 255)}`,
    ipv4: `10.80.${8 + Math.floor(i / 250)}.${(i % 250) + 1}`,
  };
}

/** Pure: a percentile (0..1) of unsorted samples (nearest rank). */
export function percentile(samples: number[], p: number): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

/**
 * Pure: the baseline's hand-written static dnsmasq configs, two processes as in the product: one
 * DHCP only (the dhcp-host lines), one TFTP only on the same boot tree. One dnsmasq doing both
 * let TFTP transfers starve behind DHCP at N = 1,000 (7 stuck for 257 s in one run).
 */
export function renderBaselineDnsmasq(opts: { dir: string; tftpRoot: string; loader: string; nodes: StormNode[] }): { dhcp: string; tftp: string } {
  const common = (what: string) => ['# Baseline of scripts/bench-bootstorm.ts: written by hand, nothing generated.', `# ${what} only.`, 'port=0', 'interface=v0', 'bind-interfaces', 'no-resolv', 'no-hosts'];
  return {
    dhcp: [
      ...common('DHCP'),
      `pid-file=${opts.dir}/baseline-dhcp.pid`,
      `dhcp-leasefile=${opts.dir}/baseline.leases`,
      'dhcp-range=10.80.1.1,10.80.1.254,255.255.0.0,12h',
      'dhcp-authoritative',
      'dhcp-option=option:router',
      `dhcp-option=option:dns-server,${SERVER}`,
      'dhcp-match=set:bios,option:client-arch,0',
      `dhcp-boot=tag:bios,${opts.loader},,${SERVER}`,
      ...opts.nodes.map((n) => `dhcp-host=${n.mac},${n.ipv4},${n.hostname}`),
      '',
    ].join('\n'),
    tftp: [...common('TFTP'), `pid-file=${opts.dir}/baseline-tftp.pid`, 'enable-tftp', `tftp-root=${opts.tftpRoot}`, ''].join('\n'),
  };
}

/** The access log format of both phases' apache2: "CLIENT METHOD PATH STATUS BYTES". */
const ACCESS_LOG_FORMAT = '"%a %m %U %>s %B"';

/**
 * Pure: the server part both phases' apache2 share (event MPM, the same tuning, its own pid
 * file, logs and mutex in the scratch directory, an access log the benchmark reads).
 */
export function renderApacheServer(opts: { dir: string; name: string; listen: string[] }): string[] {
  const mods = '/usr/lib/apache2/modules';
  return [
    `# ${opts.name}: scripts/bench-bootstorm.ts, nothing else is loaded.`,
    `LoadModule mpm_event_module ${mods}/mod_mpm_event.so`,
    `LoadModule authz_core_module ${mods}/mod_authz_core.so`,
    `LoadModule alias_module ${mods}/mod_alias.so`,
    'ServerName localhost',
    ...opts.listen.map((l) => `Listen ${l}`),
    `PidFile ${opts.dir}/${opts.name}.pid`,
    `ErrorLog ${opts.dir}/${opts.name}-error.log`,
    `LogFormat ${ACCESS_LOG_FORMAT} storm`,
    `CustomLog ${opts.dir}/${opts.name}-access.log storm`,
    `Mutex file:${opts.dir}`,
    'User www-data',
    'Group www-data',
    'KeepAlive On',
    // As the product's drop-in has it for the images: both phases send files with sendfile(2).
    'EnableSendfile On',
    'ServerLimit 16',
    'MaxRequestWorkers 800',
    'ThreadsPerChild 50',
  ];
}

/**
 * Pure: the product phase's apache2, as an admin with apache2 has it: the server part and the
 * drop-in `uec-provisioning apply tftpd` rendered, included as it is.
 */
export function renderProductApache(opts: { dir: string; dropIn: string }): string {
  return [...renderApacheServer({ dir: opts.dir, name: 'product-apache', listen: [`${SERVER}:${IMAGE_PORT}`] }), `Include ${opts.dropIn}`, ''].join('\n');
}

/**
 * Pure: the baseline apache2 config: static files, two rewrites for the iPXE scripts' URLs, and
 * the same images directory on the image port under the URL the product's boot scripts name.
 */
export function renderBaselineApache(opts: { dir: string; docroot: string; images: string }): string {
  const d = opts.docroot;
  return [
    ...renderApacheServer({ dir: opts.dir, name: 'baseline-apache', listen: [`${SERVER}:${PORT}`, `${SERVER}:${IMAGE_PORT}`] }),
    `LoadModule rewrite_module /usr/lib/apache2/modules/mod_rewrite.so`,
    `DocumentRoot ${d}`,
    `<Directory ${d}>`,
    '  Require all granted',
    '</Directory>',
    `Alias ${IMAGE_URL_PATH} ${opts.images}/`,
    `<Directory ${opts.images}>`,
    '  Require all granted',
    '</Directory>',
    // /boot/ipxe is a file and /boot/ipxe/node?mac=… a file per MAC: both by rewrite.
    'RewriteEngine On',
    `RewriteRule ^/boot/ipxe$ ${d}/ipxe/bootstrap.ipxe [L]`,
    'RewriteCond %{QUERY_STRING} (?:^|&)mac=([0-9a-f-]{17})(?:&|$)',
    `RewriteRule ^/boot/ipxe/node$ ${d}/ipxe/%1.ipxe [L]`,
    '',
  ].join('\n');
}

/** An image transfer in an apache2 access log (ACCESS_LOG_FORMAT). */
export interface ImageTransfer {
  client: string;
  file: string;
  status: number;
  bytes: number;
}

/** Pure: the GETs of a boot image's kernel or initrd in an apache2 access log. */
export function parseImageTransfers(accessLog: string): ImageTransfer[] {
  const transfers: ImageTransfer[] = [];
  for (const line of accessLog.split('\n')) {
    const [client, method, urlPathname, status, bytes] = line.split(' ');
    if (!client || method !== 'GET' || !urlPathname?.startsWith(IMAGE_URL_PATH)) continue;
    const file = urlPathname.slice(urlPathname.lastIndexOf('/') + 1);
    if (file !== 'linux' && file !== 'initrd.gz') continue;
    transfers.push({ client, file, status: Number(status), bytes: bytes === '-' ? 0 : Number(bytes) });
  }
  return transfers;
}

/**
 * Pure: what apache2's access log says about the N machines' kernels and initrds: the machines
 * (by address) that got both, whole, from it. The product phase passes when that is all of them.
 */
export function selectMachinesServedImages(transfers: ImageTransfer[], sizes: { kernel: number; initrd: number }): Set<string> {
  const got = new Map<string, Set<string>>();
  for (const t of transfers) {
    if (t.status !== 200 || t.bytes !== (t.file === 'linux' ? sizes.kernel : sizes.initrd)) continue;
    got.set(t.client, (got.get(t.client) ?? new Set()).add(t.file));
  }
  return new Set([...got].filter(([, files]) => files.size === 2).map(([client]) => client));
}

interface Proc {
  pid: number;
  ppid: number;
  /** utime + stime + cutime + cstime, in clock ticks. */
  ticks: number;
}

function readProcs(): Proc[] {
  const procs: Proc[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      // Fields after "(comm) ": [0] is field 3 of stat(5); ppid is 4, utime..cstime 14-17.
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      procs.push({ pid: Number(name), ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]) });
    } catch {
      // gone
    }
  }
  return procs;
}

/** The process and its descendants. */
function processTree(root: number, procs = readProcs()): Proc[] {
  const tree = procs.filter((p) => p.pid === root);
  for (let i = 0; i < tree.length; i++) tree.push(...procs.filter((p) => p.ppid === tree[i]!.pid));
  return tree;
}

/**
 * CPU seconds of a process tree: utime+stime of the living plus cutime+cstime (children
 * already reaped), so each process counts once however many came and went.
 */
function cpuSeconds(root: number): number {
  return processTree(root).reduce((sum, p) => sum + p.ticks, 0) / 100;
}

function peakRssKiB(root: number): number {
  let total = 0;
  for (const p of processTree(root)) {
    try {
      total += Number(/^VmHWM:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${p.pid}/status`, 'utf8'))?.[1] ?? 0);
    } catch {
      // gone
    }
  }
  return total;
}

function loadAverage(): string {
  return os.loadavg().map((l) => l.toFixed(2)).join(' ');
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Why the benchmark cannot run here, or false. */
export function bootStormUnavailableReason(cli: string): string | false {
  const netns = netnsUnavailableReason();
  if (netns) return netns;
  for (const [tool, pkg] of [
    ['perfdhcp', 'kea-admin'],
    ['curl', 'curl'],
    ['dnsmasq', 'dnsmasq-base'],
    ['apache2', 'apache2'],
  ] as const) {
    if (spawnSync('sh', ['-c', `command -v ${tool} || test -x /usr/sbin/${tool}`]).status !== 0) return `${tool} is not installed (apt-get install ${pkg})`;
  }
  if (!fs.existsSync('/usr/lib/debian-installer/images/12/amd64')) return `${NETBOOT_PACKAGE} is not installed`;
  if (!fs.existsSync(cli)) return `${cli} does not exist: run npm run build first`;
  return false;
}

function runCli(cli: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`uec-provisioning ${args.join(' ')}: exit ${code}: ${err.trim()}`))));
  });
}

/** Runs `body` over `items` with at most `limit` at a time. */
async function pool<T, R>(items: T[], limit: number, body: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await body(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

async function buildNetwork(net: TestNetwork, n: number, dir: string): Promise<{ srv: string; mach: string }> {
  const srv = await net.ns('srv');
  const rtr = await net.ns('rtr');
  const mach = await net.ns('mach');
  await net.link({ ns: srv, ifname: 'v0', cidr: `${SERVER}/16` }, { ns: rtr, ifname: 'r0', cidr: `${ROUTER_LAN}/16` });
  await net.link({ ns: rtr, ifname: 'r1', cidr: `${ROUTER_FAR}/30` }, { ns: mach, ifname: 'm0', cidr: `${MACHINES_LINK}/30` });
  // Forwarding inside the router's namespace only; no namespace has a way out.
  const sysctl = await net.exec(rtr, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
  if (sysctl.code !== 0) throw new Error(`router: ${sysctl.stderr}`);
  await net.ip(rtr, ['route', 'add', FAR_NET, 'via', MACHINES_LINK]);
  await net.ip(srv, ['route', 'add', FAR_NET, 'via', ROUTER_LAN]);
  await net.ip(mach, ['route', 'add', '10.80.0.0/16', 'via', ROUTER_FAR]);
  const batch = path.join(dir, 'machine-addresses.ip');
  fs.writeFileSync(batch, Array.from({ length: n }, (_, i) => `addr add ${selectStormNode(i).ipv4}/32 dev m0\n`).join(''));
  const added = await net.exec(mach, ['ip', '-batch', batch]);
  if (added.code !== 0) throw new Error(`machine addresses: ${added.stderr}`);
  return { srv, mach };
}

async function runPhase(opts: {
  name: PhaseResult['name'];
  net: TestNetwork;
  mach: string;
  dir: string;
  nodes: StormNode[];
  rampMs: number;
  loader: string;
  sizes: Record<string, string>;
  servers: { name: string; proc: NetnsProcess }[];
  /** dnsmasq's lease file: which address each MAC got. */
  leaseFile: string;
  /** The access log of the apache2 that sends the kernels and initrds. */
  apacheAccessLog: string;
  clientNice: number;
}): Promise<PhaseResult> {
  const bodyDirs = opts.nodes.map((_, i) => path.join(opts.dir, opts.name, `m${i}`));
  for (const d of bodyDirs) fs.mkdirSync(d, { recursive: true });
  const spec: LaunchSpec = {
    script: path.join(__dirname, 'bench-bootstorm', 'machine.sh'),
    rampMs: opts.rampMs,
    env: opts.sizes,
    machines: opts.nodes.map((node, i) => [bodyDirs[i]!, node.mac, node.ipv4, node.hostname, SERVER, String(PORT), opts.loader]),
    nice: opts.clientNice,
  };
  const specFile = path.join(opts.dir, `${opts.name}-spec.json`);
  fs.writeFileSync(specFile, JSON.stringify(spec));
  const before = opts.servers.map((s) => cpuSeconds(s.proc.pid));
  // The launcher as plain JavaScript: a test runner's loader hooks reach child processes, and
  // some of them refuse a .ts entry point.
  const launcher = path.join(opts.dir, 'launch.js');
  const source = fs.readFileSync(path.join(__dirname, 'bench-bootstorm', 'launch.ts'), 'utf8');
  fs.writeFileSync(launcher, ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 } }).outputText);
  const launched = await opts.net.exec(opts.mach, [process.execPath, launcher, specFile], { env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' }, timeoutMs: 3_600_000 });
  const servers = opts.servers.map((s, i) => ({ name: s.name, cpuSeconds: cpuSeconds(s.proc.pid) - before[i]!, peakRssKiB: peakRssKiB(s.proc.pid) }));
  if (launched.code !== 0) throw new Error(`launcher: exit ${launched.code}: ${launched.stderr}`);
  const result = JSON.parse(launched.stdout) as LaunchResult;
  const errors: string[] = [];
  const leases = parseLeases(fs.existsSync(opts.leaseFile) ? fs.readFileSync(opts.leaseFile, 'utf8') : '');
  result.machines.forEach((m, i) => {
    const node = opts.nodes[i]!;
    if (!m.line.startsWith('ok ')) errors.push(`${node.hostname}: ${m.line}`);
    else if (leases.get(node.mac) !== node.ipv4) errors.push(`${node.hostname}: leased ${leases.get(node.mac) ?? 'nothing'}, reserved ${node.ipv4}`);
  });
  const fromApache = selectMachinesServedImages(parseImageTransfers(fs.existsSync(opts.apacheAccessLog) ? fs.readFileSync(opts.apacheAccessLog, 'utf8') : ''), {
    kernel: Number(opts.sizes.KERNEL_SIZE),
    initrd: Number(opts.sizes.INITRD_SIZE),
  });
  const imagesFromApache = opts.nodes.filter((node) => fromApache.has(node.ipv4)).length;
  const httpSteps = bodyDirs.flatMap((d, i) => {
    const file = path.join(d, 'transfers');
    const steps = result.machines[i]?.line.startsWith('ok ') && fs.existsSync(file) ? parseHttpSteps(fs.readFileSync(file, 'utf8')) : null;
    return steps ? [steps] : [];
  });
  return { name: opts.name, wallMs: result.wallMs, machines: result.machines, errors, servers, imagesFromApache, httpSteps };
}

/** Pure: a dnsmasq lease file ("EXPIRY MAC IP HOSTNAME CLIENT-ID" lines) → MAC → IP. */
export function parseLeases(text: string): Map<string, string> {
  const leases = new Map<string, string>();
  for (const line of text.split('\n')) {
    const [, mac, ip] = line.split(' ');
    if (mac && ip) leases.set(mac.toLowerCase(), ip);
  }
  return leases;
}

/** Pure: the path part of a URL the machine fetched ("/preseed/ID"). */
function urlPath(url: string): string {
  return new URL(url).pathname;
}

/** The drop-in `apply tftpd` renders for apache2 (a system path). */
const DROP_IN = '/etc/apache2/conf-available/uec-provisioning-boot.conf';
/** The images directory the drop-in aliases, as a system path. */
const SYSTEM_IMAGES = '/var/lib/uec-provisioning/boot/images';

/**
 * The drop-in as apache2 can include it here. apply under a root prefix writes paths resolved
 * under that root (as the tftpd config's tftp-root), and then the file is included as it is.
 * If it names the system path of the images instead, which does not exist on this host (and
 * may not be created or bound there), a copy in the scratch directory with that one path put
 * under the root is included, and says so.
 */
function selectIncludableDropIn(dropIn: string, root: string, dir: string): string {
  const text = fs.readFileSync(dropIn, 'utf8');
  const resolved = path.join(root, SYSTEM_IMAGES);
  if (text.includes(resolved)) return dropIn;
  if (!text.includes(SYSTEM_IMAGES)) throw new Error(`${dropIn} names neither ${resolved} nor ${SYSTEM_IMAGES}`);
  const copy = path.join(dir, 'uec-provisioning-boot.conf');
  fs.writeFileSync(copy, `# ${dropIn} with ${SYSTEM_IMAGES} put under the benchmark's root\n${text.split(SYSTEM_IMAGES).join(resolved)}`);
  return copy;
}

/** Lays out what the product answered as the baseline's static files. */
function writeBaselineDocroot(docroot: string, bootTree: string, productDir: string, nodes: StormNode[]): void {
  fs.mkdirSync(path.join(docroot, 'ipxe'), { recursive: true, mode: 0o755 });
  fs.symlinkSync(bootTree, path.join(docroot, 'boot'));
  const put = (urlPathname: string, from: string) => {
    const to = path.join(docroot, urlPathname);
    if (!to.startsWith(docroot + path.sep)) throw new Error(`baseline: ${urlPathname} is outside the docroot`);
    fs.mkdirSync(path.dirname(to), { recursive: true, mode: 0o755 });
    fs.copyFileSync(from, to);
    fs.chmodSync(to, 0o644);
  };
  nodes.forEach((node, i) => {
    const m = path.join(productDir, `m${i}`);
    if (i === 0) put('/ipxe/bootstrap.ipxe', path.join(m, 'bootstrap.ipxe'));
    put(`/ipxe/${node.mac.replace(/:/g, '-')}.ipxe`, path.join(m, 'node.ipxe'));
    const script = fs.readFileSync(path.join(m, 'node.ipxe'), 'utf8');
    const preseedUrl = /\burl=(\S+)/.exec(script)?.[1];
    if (!preseedUrl) throw new Error(`baseline: no preseed URL in ${node.hostname}'s boot script`);
    put(urlPath(preseedUrl), path.join(m, 'preseed'));
    const preseed = fs.readFileSync(path.join(m, 'preseed'), 'utf8');
    const installed = /late_command string wget -q -O \/dev\/null '([^']+)'/.exec(preseed)?.[1];
    if (!installed) throw new Error(`baseline: no call-back URL in ${node.hostname}'s preseed`);
    const status = urlPath(installed).replace(/\/installed$/, '');
    for (const s of ['installing', 'installed', 'deployed']) put(`${status}/${s}`, path.join(m, s));
  });
}

export async function runBootStorm(options: StormOptions): Promise<StormResult> {
  const cli = path.resolve(options.cli ?? path.join(REPO, 'dist/src/cli.js'));
  const repo = path.resolve(path.dirname(cli), '..', '..');
  const log = options.log ?? ((line: string) => process.stderr.write(`bench-bootstorm: ${line}\n`));
  const why = bootStormUnavailableReason(cli);
  if (why) throw new Error(`bench-bootstorm cannot run: ${why}`);
  const teardowns: (() => unknown)[] = [];
  const host = { teardown: (fn: () => unknown) => teardowns.push(fn) };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uec-bench-bootstorm-'));
  fs.chmodSync(dir, 0o755);
  const root = path.join(dir, 'root');
  fs.mkdirSync(root, { mode: 0o755 });
  const env = { PATH: process.env.PATH, UEC_PROVISIONING_ROOT: root, UEC_PROVISIONING_TEMPLATES: path.join(repo, 'templates'), UEC_PROVISIONING_LIB: path.join(repo, 'dist'), UEC_PROVISIONING_SERVICE_CONTROL: 'none' };
  const running: NetnsProcess[] = [];
  try {
    const net = createTestNetwork(host, { name: 'storm' });
    const { srv, mach } = await buildNetwork(net, options.n, dir);

    // The product, set up as an admin would, through its CLI.
    log(`setting up ${options.n} nodes`);
    // apache2 installed: apply tftpd renders the images' drop-in where apache2 reads it. The image
    // server is chosen explicitly (auto would choose it too once the drop-in is enabled).
    for (const d of ['conf-available', 'conf-enabled']) fs.mkdirSync(path.join(root, 'etc/apache2', d), { recursive: true, mode: 0o755 });
    await runCli(cli, ['config', 'set', 'server.interface=v0', `server.address=${SERVER}`, 'dhcp.mode=full', 'dhcp.interface=v0', 'dhcp.range_start=10.80.1.1', 'dhcp.range_end=10.80.1.254', `dhcp.dns_servers=${SERVER}`, 'boot.image_server=apache2', `boot.image_http_port=${IMAGE_PORT}`], env);
    const nodes: StormNode[] = await pool(
      Array.from({ length: options.n }, (_, i) => selectStormNode(i)),
      3,
      async (node) => ({ ...node, systemId: (await runCli(cli, ['nodes', 'add', node.hostname, '--mac', node.mac, '--ipv4', node.ipv4, '--subarch', 'bios', '--no-apply'], env)).trim() }),
    );
    for (let i = 0; i < nodes.length; i += 200) await runCli(cli, ['nodes', 'deploy', ...nodes.slice(i, i + 200).map((n) => n.systemId), '--no-apply'], env);
    await runCli(cli, ['images', 'import', '--package', NETBOOT_PACKAGE], env);
    await runCli(cli, ['images', 'loaders'], env);
    // apply reads the interface's subnet, so it runs where v0 is.
    const applied = await net.exec(srv, [process.execPath, cli, 'apply', 'dhcpd', 'tftpd'], { env, timeoutMs: 600_000 });
    if (applied.code !== 0) throw new Error(`apply dhcpd tftpd: ${applied.stderr}`);
    const dhcpConf = path.join(root, 'etc/uec-provisioning/dnsmasq-dhcpd.conf');
    const tftpConf = path.join(root, 'etc/uec-provisioning/dnsmasq-tftpd.conf');
    const loader = /^dhcp-boot=tag:!ipxe,tag:bios,([^,]+),/m.exec(fs.readFileSync(dhcpConf, 'utf8'))?.[1];
    if (!loader) throw new Error(`${dhcpConf} names no BIOS loader`);
    const bootTree = path.join(root, 'var/lib/uec-provisioning/boot');
    const images = path.join(bootTree, 'images');
    const dropIn = path.join(root, DROP_IN);
    if (!fs.existsSync(dropIn)) throw new Error(`apply tftpd wrote no ${DROP_IN} under the root (does this build know boot.image_server?)`);
    // What an admin's a2enconf does.
    fs.symlinkSync(`../conf-available/${path.basename(DROP_IN)}`, path.join(root, 'etc/apache2/conf-enabled', path.basename(DROP_IN)));
    const image = path.join(bootTree, 'images/debian/bookworm/amd64');
    const sizes = {
      LOADER_SIZE: String(fs.statSync(path.join(bootTree, loader)).size),
      KERNEL_SIZE: String(fs.statSync(path.join(image, 'linux')).size),
      INITRD_SIZE: String(fs.statSync(path.join(image, 'initrd.gz')).size),
    };
    // Both phases start with the files in the page cache.
    for (const f of ['linux', 'initrd.gz']) fs.readFileSync(path.join(image, f));
    fs.mkdirSync(path.join(root, 'run/uec-provisioning-tftpd'), { recursive: true });
    fs.mkdirSync(path.join(root, 'run/uec-provisioning-dhcpd'), { recursive: true });
    const loadBefore = loadAverage();

    log(`product phase: ${options.n} machines over ${options.rampMs} ms`);
    const dhcpd = net.spawn(srv, ['dnsmasq', '--keep-in-foreground', '--log-facility=-', `--conf-file=${dhcpConf}`]);
    running.push(dhcpd);
    await dhcpd.waitForOutput(/DHCP, IP range/, 30_000);
    const tftpd = net.spawn(srv, ['dnsmasq', '--keep-in-foreground', '--log-facility=-', `--conf-file=${tftpConf}`]);
    running.push(tftpd);
    await tftpd.waitForOutput(/TFTP root is/, 30_000);
    const serveLog = path.join(dir, 'serve.log');
    const prof = options.cpuProfDir ? `--cpu-prof --cpu-prof-dir=${JSON.stringify(path.resolve(options.cpuProfDir))} ` : '';
    const serve = net.spawn(srv, ['sh', '-c', `exec ${JSON.stringify(process.execPath)} ${prof}${JSON.stringify(cli)} serve --port ${PORT} --listen ${SERVER} --json --no-apply >${JSON.stringify(serveLog)} 2>&1`], { env });
    running.push(serve);
    await until('the service to listen', () => fs.existsSync(serveLog) && fs.readFileSync(serveLog, 'utf8').includes(`"port":${PORT}`));
    const leaseFile = /^dhcp-leasefile=(.+)$/m.exec(fs.readFileSync(dhcpConf, 'utf8'))?.[1];
    if (!leaseFile) throw new Error(`${dhcpConf} names no lease file`);
    fs.writeFileSync(path.join(dir, 'product-apache.conf'), renderProductApache({ dir, dropIn: selectIncludableDropIn(dropIn, root, dir) }));
    const imageApache = net.spawn(srv, ['/usr/sbin/apache2', '-f', path.join(dir, 'product-apache.conf'), '-DFOREGROUND']);
    running.push(imageApache);
    const kernelUrl = `http://${SERVER}:${IMAGE_PORT}${IMAGE_URL_PATH}debian/bookworm/amd64/linux`;
    await until('apache2 to send the kernel', async () => (await net.exec(srv, ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', kernelUrl])).stdout === '200', 20_000);
    // That check's own GET is in the access log from the server's address, no machine's.
    // What both phases share: the same machines, network, files and client niceness.
    const same = { clientNice: options.clientNice ?? 19, net, mach, dir, nodes, rampMs: options.rampMs, loader, sizes };
    const product = await runPhase({
      ...same,
      name: 'product',
      leaseFile,
      apacheAccessLog: path.join(dir, 'product-apache-access.log'),
      servers: [
        { name: 'dnsmasq dhcpd', proc: dhcpd },
        { name: 'dnsmasq tftpd', proc: tftpd },
        { name: 'uec-provisioning serve', proc: serve },
        { name: 'apache2 (images)', proc: imageApache },
      ],
    });
    for (const p of [imageApache, serve, tftpd, dhcpd]) await p.stop(10_000);

    log('baseline phase');
    const docroot = path.join(dir, 'www');
    writeBaselineDocroot(docroot, bootTree, path.join(dir, 'product'), nodes);
    const baselineDnsmasq = renderBaselineDnsmasq({ dir, tftpRoot: bootTree, loader, nodes });
    fs.writeFileSync(path.join(dir, 'baseline-dhcp.conf'), baselineDnsmasq.dhcp);
    fs.writeFileSync(path.join(dir, 'baseline-tftp.conf'), baselineDnsmasq.tftp);
    const staticDhcp = net.spawn(srv, ['dnsmasq', '--keep-in-foreground', '--log-facility=-', `--conf-file=${path.join(dir, 'baseline-dhcp.conf')}`]);
    running.push(staticDhcp);
    await staticDhcp.waitForOutput(/DHCP, IP range/, 30_000);
    const staticTftp = net.spawn(srv, ['dnsmasq', '--keep-in-foreground', '--log-facility=-', `--conf-file=${path.join(dir, 'baseline-tftp.conf')}`]);
    running.push(staticTftp);
    await staticTftp.waitForOutput(/TFTP root is/, 30_000);
    fs.writeFileSync(path.join(dir, 'baseline-apache.conf'), renderBaselineApache({ dir, docroot, images }));
    const apache = net.spawn(srv, ['/usr/sbin/apache2', '-f', path.join(dir, 'baseline-apache.conf'), '-DFOREGROUND']);
    running.push(apache);
    await until('apache2 to answer', async () => (await net.exec(srv, ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', `http://${SERVER}:${PORT}/boot/ipxe`])).stdout === '200', 20_000);
    const baseline = await runPhase({
      ...same,
      name: 'baseline',
      leaseFile: path.join(dir, 'baseline.leases'),
      apacheAccessLog: path.join(dir, 'baseline-apache-access.log'),
      servers: [
        { name: 'dnsmasq DHCP (static)', proc: staticDhcp },
        { name: 'dnsmasq TFTP (static)', proc: staticTftp },
        { name: 'apache2 (static)', proc: apache },
      ],
    });
    for (const p of [apache, staticTftp, staticDhcp]) await p.stop(10_000);
    const loadAfter = loadAverage();

    const differingBodies: string[] = [];
    nodes.forEach((_, i) => {
      for (const f of BODIES) {
        const a = path.join(dir, 'product', `m${i}`, f);
        const b = path.join(dir, 'baseline', `m${i}`, f);
        if (!fs.existsSync(a) || !fs.existsSync(b) || !fs.readFileSync(a).equals(fs.readFileSync(b))) differingBodies.push(`m${i}/${f}`);
      }
    });
    const bodies = nodes.map((_, i) => {
      const m = path.join(dir, 'product', `m${i}`);
      return Object.fromEntries(BODIES.filter((f) => fs.existsSync(path.join(m, f))).map((f) => [f, fs.readFileSync(path.join(m, f), 'utf8')]));
    });
    return { n: options.n, rampMs: options.rampMs, nodes, product, baseline, differingBodies, bodies, loadBefore, loadAfter };
  } finally {
    for (const p of running) await p.stop(10_000);
    for (const fn of teardowns.reverse()) await fn();
    if (process.env.BENCH_STORM_KEEP) log(`kept ${dir}`);
    else fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The parts of a V8 .cpuprofile (node --cpu-prof) the summary reads. */
export interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string }; children?: number[] }[];
  samples: number[];
  timeDeltas: number[];
}

type Frame = { functionName: string; url: string };

/** What a sample's leaf alone says (V8's pseudo-frames, and the socket write natives). */
const LEAF_CATEGORIES: [string, (f: Frame) => boolean][] = [
  ['idle', (f) => f.functionName === '(idle)'],
  ['garbage collection', (f) => f.functionName === '(garbage collector)'],
  ['socket writes (kernel, initrd, answers)', (f) => f.url === '' && /^(writeBuffer|writev|writeUtf8String|writeLatin1String)$/.test(f.functionName)],
];

/** Otherwise the first rule, in this order, that any frame of the sample's stack matches. */
const STACK_CATEGORIES: [string, (f: Frame) => boolean][] = [
  ['node store: journal reads and appends, index lookups, copies, locks', (f) => /\/(region\/node-store|core\/atomic-write|core\/file-lock)\.js$/.test(f.url)],
  ['roles read from disk per request', (f) => /\/contract\/roles\.js$/.test(f.url)],
  ['file reads for streaming (fs.createReadStream)', (f) => f.url.endsWith('fs/streams')],
  // Continuations of fs.promises calls start at the root: whose read it was is lost.
  ['whole-file reads and closes through fs.promises (the node store file, role files)', (f) => f.url.endsWith('fs/promises')],
  ['neighbour table and address claims', (f) => /\/(core\/neighbours|core\/read-neighbour-sync|contract\/node-address|edge\/ownership-cache)\.js$/.test(f.url)],
  ['preseed and boot script rendering', (f) => /\/(edge\/preseed|edge\/boot|core\/template)\.js$/.test(f.url)],
  ['HTTP, routing, logging, metrics', (f) => /^node:(_http|net|internal\/streams|internal\/stream_base)/.test(f.url) || /\/(core\/http-|core\/log|core\/metrics|cli\/serve|edge\/provisioning|region\/region)/.test(f.url)],
];

/** Pure: a CPU profile → milliseconds per category (the rules above, then "other"), largest first. */
export function summarizeCpuProfile(profile: CpuProfile): { category: string; ms: number }[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const categoryOf = new Map<number, string>();
  const classify = (id: number): string => {
    const known = categoryOf.get(id);
    if (known) return known;
    const stack: Frame[] = [];
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const frame = byId.get(cur)?.callFrame;
      if (frame) stack.push(frame);
    }
    const leaf = stack[0];
    const category = (leaf && LEAF_CATEGORIES.find(([, match]) => match(leaf))?.[0]) ?? STACK_CATEGORIES.find(([, match]) => stack.some(match))?.[0] ?? 'other';
    categoryOf.set(id, category);
    return category;
  };
  const totals = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const c = classify(id);
    totals.set(c, (totals.get(c) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
  });
  return [...totals].map(([category, ms]) => ({ category, ms })).sort((a, b) => b.ms - a.ms);
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

/** Pure: the README table rows of one storm. */
export function renderStormTable(r: StormResult): string[] {
  const row = (label: string, a: string, b: string, ratio = '') => `| ${label} | ${a} | ${b} | ${ratio} |`;
  const ratio = (a: number, b: number) => (b > 0 ? (a / b).toFixed(2) : '–');
  const times = (p: PhaseResult) => p.machines.map((m) => m.ms);
  const part = (p: PhaseResult, k: 1 | 2 | 3) => p.machines.filter((m) => m.line.startsWith('ok ')).map((m) => Number(m.line.split(' ')[k]) * 1000);
  const cpu = (p: PhaseResult) => p.servers.reduce((s, x) => s + x.cpuSeconds, 0);
  const steps = (p: PhaseResult) => (['scripts', 'images', 'preseed', 'callbacks'] as const).map((k) => `${percentile(p.httpSteps.map((x) => x[k]), 0.5).toFixed(3)} s`).join(' / ');
  const usage = (p: PhaseResult) => p.servers.map((s) => `${s.name} ${s.cpuSeconds.toFixed(2)} s, ${(s.peakRssKiB / 1024).toFixed(0)} MiB`).join('; ');
  const a = r.product;
  const b = r.baseline;
  return [
    `| N = ${r.n} (started over ${seconds(r.rampMs)}) | uec-provisioning | baseline (static) | ratio |`,
    '|---|---|---|---|',
    row('wall time (first start → last machine done)', seconds(a.wallMs), seconds(b.wallMs), ratio(a.wallMs, b.wallMs)),
    row('per machine p50 / p99', `${seconds(percentile(times(a), 0.5))} / ${seconds(percentile(times(a), 0.99))}`, `${seconds(percentile(times(b), 0.5))} / ${seconds(percentile(times(b), 0.99))}`, `${ratio(percentile(times(a), 0.5), percentile(times(b), 0.5))} / ${ratio(percentile(times(a), 0.99), percentile(times(b), 0.99))}`),
    row('of which DHCP / TFTP / all HTTP, p50', [1, 2, 3].map((k) => seconds(percentile(part(a, k as 1 | 2 | 3), 0.5))).join(' / '), [1, 2, 3].map((k) => seconds(percentile(part(b, k as 1 | 2 | 3), 0.5))).join(' / ')),
    row('of which HTTP: boot scripts / kernel + initrd / preseed / call-backs, p50', steps(a), steps(b)),
    row('errors', String(a.errors.length), String(b.errors.length)),
    row('machines whose kernel and initrd apache2 sent (its access log)', String(a.imagesFromApache), String(b.imagesFromApache)),
    row('server CPU seconds (all servers)', cpu(a).toFixed(2), cpu(b).toFixed(2), ratio(cpu(a), cpu(b))),
    row('per server: CPU, peak RSS', usage(a), usage(b)),
  ];
}

async function main(): Promise<void> {
  const ns = (process.env.BENCH_STORM_N ?? '100,1000').split(',').map(Number);
  const rampMs = Number(process.env.BENCH_STORM_RAMP_MS ?? 10_000);
  const cli = path.resolve(process.env.BENCH_CLI ?? path.join(REPO, 'dist/src/cli.js'));
  const why = bootStormUnavailableReason(cli);
  if (why) {
    console.log(`bench-bootstorm skipped: ${why}`);
    return;
  }
  for (const n of ns) {
    const clientNice = Number(process.env.BENCH_STORM_CLIENT_NICE ?? 19);
    const r = await runBootStorm({ n, rampMs, cli, cpuProfDir: process.env.BENCH_CPU_PROF, clientNice });
    console.log(['', `load average ${r.loadBefore} before, ${r.loadAfter} after; machines at nice ${clientNice}; bodies differing between the phases: ${r.differingBodies.length}`, '', ...renderStormTable(r), ''].join('\n'));
    for (const e of [...r.product.errors, ...r.baseline.errors].slice(0, 20)) console.log(`error: ${e}`);
    const prof = process.env.BENCH_CPU_PROF;
    const newest = prof ? fs.readdirSync(prof).filter((f) => f.endsWith('.cpuprofile')).map((f) => path.join(prof, f)).sort((x, y) => fs.statSync(y).mtimeMs - fs.statSync(x).mtimeMs)[0] : undefined;
    if (newest) {
      // Sample intervals are wall time, so on a busy machine they add up to more than the CPU
      // seconds measured from /proc: the shares are what to read.
      const parts = summarizeCpuProfile(JSON.parse(fs.readFileSync(newest, 'utf8')) as CpuProfile).filter((p) => p.category !== 'idle');
      const busy = parts.reduce((sum, p) => sum + p.ms, 0);
      console.log(`\nuec-provisioning serve, where its time went (${newest}, from its start to its stop):\n\n| part | share of the busy samples |\n|---|---|`);
      for (const { category, ms } of parts) console.log(`| ${category} | ${((100 * ms) / busy).toFixed(1)} % |`);
    }
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
