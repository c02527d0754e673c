/**
 * `npm run bench` (apply part), run as root; dnsmasq and the DHCP client run inside
 * throw-away network namespaces (test/helpers/netns.ts), nothing reaches the machine's network.
 *
 * With 1,000 / 10,000 / 100,000 nodes in the store (BENCH_APPLY_SIZES=1000,10000 to choose),
 * embedded and PostgreSQL (BENCH_APPLY_BACKENDS; PostgreSQL a durable server of its own):
 * - the full apply of dhcpd and tftpd (what `uec-provisioning apply` and a package install do);
 * - then, with dnsmasq serving all of them, a node added (addNode, the store commit) and the
 *   node apply of just that node (applyNodeChanges, as `nodes add` and serve do), and the time
 *   from the commit until dnsmasq has read the new reservation (its log, inotify) and until it
 *   offers it: a DHCP client in the client namespace (scripts/bench-apply/dhcp-probe.ts, one
 *   long-lived process) sends DHCPDISCOVERs with the new MAC until offered the reserved
 *   address. Median of BENCH_APPLY_REPEATS (default 5) adds, after one add not counted (a
 *   running serve is warm).
 * The client's own cost (one DISCOVER/OFFER for a MAC already reserved) is given apart: it is
 * part of the end-to-end time.
 */
import * as fs from 'node:fs';
import * as netSocket from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { main, type Io } from '../src/cli';
import { applyComponents, applyNodeChanges, type Session } from '../src/configurator/command';
import { loadComponents, mergeSchemas } from '../src/configurator/component';
import { createNode, type Node } from '../src/contract/node';
import { createLogger } from '../src/core/log';
import { staticNetworkFacts } from '../src/core/network-facts';
import { createPaths, type Paths } from '../src/core/paths';
import { createSysvControl } from '../src/core/services';
import { addNode } from '../src/region/node-ops';
import { createFileNodeStore, type NodeStore } from '../src/region/node-store';
import { createPostgresNodeStore } from '../src/region/node-store-postgresql';
import { checkPostgresAvailable, startPostgres } from '../test/helpers/postgresql';
import { createTestNetwork, netnsUnavailableReason } from '../test/helpers/netns';
import { DHCPD_PATHS } from '../packages/dhcpd/render';

const REPO = path.resolve(__dirname, '..');
process.env.UEC_PROVISIONING_TEMPLATES = path.join(REPO, 'templates');
// A /12: room for 100,000 fixed addresses below the proposed pool (its upper half).
const FACTS = staticNetworkFacts([{ name: 'prov0', mac: '52:54:00:48:00:01', up: true, loopback: false, virtual: true, ipv4: [{ address: '10.32.0.1', prefix: 12 }], ipv6: [] }], null);
const SIZES = (process.env.BENCH_APPLY_SIZES ?? '1000,10000,100000').split(',').map(Number);
// BENCH_APPLY_BACKENDS=embedded,postgresql (default both; postgresql only where it can run).
const BACKENDS = (process.env.BENCH_APPLY_BACKENDS ?? 'embedded,postgresql').split(',').filter((b): b is Backend => b === 'embedded' || b === 'postgresql');
type Backend = 'embedded' | 'postgresql';
const REPEATS = Number(process.env.BENCH_APPLY_REPEATS ?? 5);
const COMPONENTS = loadComponents();

function ms(since: bigint): number {
  return Number(process.hrtime.bigint() - since) / 1e6;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

/** Node k's MAC and fixed address: unique for k < 2^24 and below 10.40.0.0 (the pool). */
function macOf(k: number): string {
  return `52:54:01:${[k >> 16, (k >> 8) & 255, k & 255].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;
}
function ipOf(k: number): string {
  const n = k + 256;
  return `10.${32 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;
}

function sessionFor(paths: Paths, store: NodeStore): Session {
  const io: Io = { stdout: () => undefined, stderr: (s) => process.stderr.write(s), env: { UEC_PROVISIONING_SERVICE_CONTROL: 'sysv' } };
  const log = createLogger({ level: 'warn', json: false, write: io.stderr });
  return { io, paths, log, json: false, components: COMPONENTS, schema: mergeSchemas(COMPONENTS), network: () => FACTS, nodeStore: () => store };
}

async function cli(root: string, args: string[]): Promise<void> {
  let err = '';
  const io: Io = { stdout: () => undefined, stderr: (s) => (err += s), env: { UEC_PROVISIONING_SERVICE_CONTROL: 'none' } };
  const code = await main(['--root', root, ...args], io, { network: FACTS });
  if (code !== 0) throw new Error(`${args.join(' ')}: exit ${code}: ${err}`);
}

/** Asks the prober (dhcp-probe.ts, in the client namespace) for one DISCOVER/OFFER exchange. */
async function connectProbe(socketPath: string): Promise<(mac: string) => Promise<string>> {
  const socket = netSocket.createConnection(socketPath);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let buffered = '';
  const waiting: ((line: string) => void)[] = [];
  socket.on('data', (chunk) => {
    buffered += chunk.toString('utf8');
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines) waiting.shift()?.(line);
  });
  return (mac) =>
    new Promise<string>((resolve) => {
      waiting.push(resolve);
      socket.write(`${mac}\n`);
    });
}

interface SizeResult {
  backend: Backend;
  size: number;
  fill: number;
  fullApply: number;
  dnsmasqStart: number;
  commit: number;
  nodeApply: number;
  read: number;
  served: number;
  client: number;
  written: string;
}

async function benchSize(size: number, backend: Backend): Promise<SizeResult> {
  const teardowns: (() => unknown)[] = [];
  const host = { teardown: (fn: () => unknown) => teardowns.push(fn) };
  // BENCH_APPLY_REUSE=DIR: a root an earlier run left with `size` nodes stored and applied
  // (development: the full apply of 100,000 nodes takes long); it is kept afterwards.
  const reuse = process.env.BENCH_APPLY_REUSE;
  const dir = reuse ?? fs.mkdtempSync(path.join(os.tmpdir(), 'uec-bench-apply-'));
  fs.chmodSync(dir, 0o755);
  try {
    const paths = createPaths(dir);
    let store: NodeStore;
    if (backend === 'postgresql') {
      // Its own durable server (fsync on, as a site runs it), one database per size.
      const server = await startPostgres(host, { durable: true });
      store = createPostgresNodeStore(await server.createDatabase());
      teardowns.push(() => store.close());
    } else store = createFileNodeStore(paths);
    const session = sessionFor(paths, store);
    let t0 = process.hrtime.bigint();
    let fill = NaN;
    let fullApply = NaN;
    if (!reuse) {
      await cli(dir, ['config', 'set', 'dhcp.mode=full', 'dhcp.interface=prov0', 'server.interface=prov0', 'dhcp.dns_servers=10.32.0.1', 'dhcp.ping_check=false']);
      await store.update((nodes) => {
        const now = new Date();
        for (let k = 0; k < size; k++) {
          nodes.push(createNode({ hostname: `bulk${k}`, macs: [macOf(k)], ipv4: ipOf(k) }, now, { systemId: `node-b${k.toString(36).padStart(6, '0')}`, token: 'x'.repeat(32) }));
        }
      });
      fill = ms(t0);
      t0 = process.hrtime.bigint();
      await applyComponents(session, ['dhcpd', 'tftpd']);
      fullApply = ms(t0);
    }

    const net = createTestNetwork(host, { name: 'bapply' });
    const srv = await net.ns('srv');
    const cl = await net.ns('cli');
    await net.link({ ns: srv, ifname: 'prov0', cidr: '10.32.0.1/12' }, { ns: cl, ifname: 'c0' });
    await net.addr(cl, 'c0', '10.32.0.2/12');
    // Only inside the client namespace: its DISCOVERs leave by c0, the one link to the server.
    await net.ip(cl, ['route', 'add', '255.255.255.255/32', 'dev', 'c0']);
    const control = path.join(dir, 'probe.sock');
    const probe = net.spawn(cl, [process.execPath, '-r', 'ts-node/register/transpile-only', path.join(__dirname, 'bench-apply', 'dhcp-probe.ts'), control], { cwd: REPO });
    await probe.waitForOutput(/dhcp-probe ready/, 60_000);
    const offer = await connectProbe(control);
    t0 = process.hrtime.bigint();
    const dnsmasq = net.spawn(srv, ['dnsmasq', '--keep-in-foreground', '--log-facility=-', `--conf-file=${paths.resolve(DHCPD_PATHS.configFile)}`]);
    await dnsmasq.waitForOutput(/DHCP, IP range/, 600_000);
    const pidFile = paths.resolve(DHCPD_PATHS.pidFile);
    while (!fs.existsSync(pidFile)) await new Promise((r) => setTimeout(r, 10));
    // Ready once the last bulk node's reservation is offered (dnsmasq has read them all).
    while ((await offer(macOf(size - 1))) !== ipOf(size - 1)) await new Promise((r) => setTimeout(r, 100));
    const dnsmasqStart = ms(t0);

    const clientTimes: number[] = [];
    for (let i = 0; i < REPEATS; i++) {
      const t = process.hrtime.bigint();
      if ((await offer(macOf(size - 1))) !== ipOf(size - 1)) throw new Error('a reserved MAC was not offered its reservation');
      clientTimes.push(ms(t));
    }

    const services = createSysvControl(paths);
    const rows = { commit: [] as number[], nodeApply: [] as number[], read: [] as number[], served: [] as number[] };
    let written = '';
    const first = reuse ? size + 100 + (await store.countByStatus()).ready - size : size;
    for (let i = -1; i < REPEATS; i++) {
      const k = first + 1 + i;
      const start = process.hrtime.bigint();
      const node: Node = await addNode(store, { hostname: `new${k}`, macs: [macOf(k)], ipv4: ipOf(k) });
      const commit = ms(start);
      // The client asks from the commit on, while the apply runs, as a booting machine would.
      let readAt = NaN;
      const read = dnsmasq.waitForOutput(new RegExp(`read \\S*hosts\\.d/${node.systemId}`), 60_000).then(() => (readAt = ms(start)));
      const offered = (async () => {
        while ((await offer(macOf(k))) !== ipOf(k));
        return ms(start);
      })();
      const a0 = process.hrtime.bigint();
      const results = await applyNodeChanges(session, [{ systemId: node.systemId, node }], { services });
      const nodeApply = ms(a0);
      written = results.map((r) => `${r.component} ${r.written.length} file(s)${r.reloaded.length ? `, reloaded ${r.reloaded.join(' ')}` : ''}`).join('; ');
      const served = await offered;
      await read;
      if (i < 0) continue; // the warm-up add
      rows.commit.push(commit);
      rows.nodeApply.push(nodeApply);
      rows.served.push(served);
      rows.read.push(readAt);
    }
    await dnsmasq.stop();
    return {
      backend,
      size,
      fill,
      fullApply,
      dnsmasqStart,
      commit: median(rows.commit),
      nodeApply: median(rows.nodeApply),
      read: median(rows.read),
      served: median(rows.served),
      client: median(clientTimes),
      written,
    };
  } finally {
    for (const fn of teardowns.reverse()) await fn();
    if (!reuse) fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function run(): Promise<void> {
  const why = netnsUnavailableReason();
  if (why) {
    process.stdout.write(`bench-apply skipped: ${why}\n`);
    return;
  }
  const results: SizeResult[] = [];
  for (const backend of BACKENDS) {
    if (backend === 'postgresql' && checkPostgresAvailable()) {
      process.stderr.write(`bench-apply: PostgreSQL left out: ${checkPostgresAvailable()}\n`);
      continue;
    }
    for (const size of SIZES) {
      const r = await benchSize(size, backend);
      results.push(r);
      process.stderr.write(`bench-apply ${backend} ${size} nodes: ${JSON.stringify(r)}\n`);
    }
  }
  const f = (n: number) => (Number.isNaN(n) ? '–' : n >= 1000 ? `${(n / 1000).toFixed(1)} s` : `${n.toFixed(1)} ms`);
  const lines = [
    '',
    `### node apply (median of ${REPEATS} adds; load average ${os.loadavg()[0]?.toFixed(1)})`,
    '',
    `| backend | nodes in the store | store commit (addNode) | node apply (${results[0]?.written ?? ''}) | commit → dnsmasq read it | commit → offered its reservation | one DISCOVER/OFFER alone | full apply dhcpd + tftpd |`,
    '|---|---|---|---|---|---|---|---|',
    ...results.map((r) => `| ${r.backend} | ${r.size.toLocaleString('en')} | ${f(r.commit)} | ${f(r.nodeApply)} | ${f(r.read)} | ${f(r.served)} | ${f(r.client)} | ${f(r.fullApply)} |`),
    '',
  ];
  process.stdout.write(lines.join('\n'));
}

run().catch((err: unknown) => {
  process.stderr.write(`bench-apply failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
