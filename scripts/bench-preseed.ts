/**
 * Preseed service benchmark (part of `npm run bench`), measured with wrk (a C load client):
 * requests per second, p50/p99 latency and errors of GET /preseed/<id> with 1, 50 and 500
 * keep-alive connections, against apache2 serving the same bytes as a static file, in the
 * same run, and against a bare node:http server sending the same bytes from memory (the floor of
 * any design on node:http); and the service's memory idle and under load.
 *
 * On a LAN of network namespaces (test/helpers/netns.ts), because the service serves a
 * node's preseed only to the node: the compiled `uec-provisioning serve` (`npm run build`
 * first) and a private apache2 run in the server namespace; wrk runs in the client namespace,
 * whose veth has the deploying node's MAC, so the server's neighbour table maps the client to
 * the node exactly as it would a real installer. Nothing leaves the namespaces; they are torn
 * down in `finally`, and on exit or a signal by the helper.
 *
 * The machine's other jobs come and go within a run, so each connection count is measured in
 * BENCH_ROUNDS rounds (default 3), each round the service, apache2 and the floor one after the
 * other; a cell is the round with the median rate, the ratio that of the medians, and the
 * per-round ratios are given beside it.
 *
 * BENCH_SECONDS (default 5) per measurement; BENCH_CLI=PATH another build's dist/src/cli.js; BENCH_ONLY=serve measures the service alone (for a profile); BENCH_CPU_PROF=DIR runs the service with
 * `node --cpu-prof --cpu-prof-dir=DIR` (the profile is written when it stops).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createTestNetwork, netnsUnavailableReason, type NetnsProcess, type TestNetwork } from '../test/helpers/netns';
import { runWrk, wrkAvailable, type WrkResult } from './wrk';

/** BENCH_CLI=/other/checkout/dist/src/cli.js measures another build (a before/after comparison). */
const CLI = path.resolve(process.env.BENCH_CLI ?? path.join(__dirname, '..', 'dist/src/cli.js'));
const REPO = path.resolve(path.dirname(CLI), '..', '..');
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 3));
const CPU_PROF = process.env.BENCH_CPU_PROF;
const SERVER = '10.79.0.1';
const CLIENT = '10.79.0.11';
const NODE_MAC = '52:54:00:be:00:2a';
const PORT = 5248;
const APACHE_PORT = 8080;
const FLOOR_PORT = 8081;

function rssKiB(pid: number): { rss: number; hwm: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0);
  return { rss: field('VmRSS'), hwm: field('VmHWM') };
}

function cpuSeconds(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  // utime and stime are fields 14 and 15 of stat(5); [0] here is field 3.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function cli(args: string[], env: NodeJS.ProcessEnv): string {
  const r = spawnSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`uec-provisioning ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

function apacheConf(dir: string, docroot: string): string {
  const mods = '/usr/lib/apache2/modules';
  return [
    `LoadModule mpm_event_module ${mods}/mod_mpm_event.so`,
    `LoadModule authz_core_module ${mods}/mod_authz_core.so`,
    `ServerName localhost`,
    `Listen ${SERVER}:${APACHE_PORT}`,
    `PidFile ${dir}/apache.pid`,
    `ErrorLog ${dir}/apache-error.log`,
    `Mutex file:${dir}`,
    `User www-data`,
    `Group www-data`,
    `KeepAlive On`,
    `MaxKeepAliveRequests 0`,
    `ServerLimit 16`,
    `MaxRequestWorkers 800`,
    `ThreadsPerChild 50`,
    `DocumentRoot ${docroot}`,
    `<Directory ${docroot}>`,
    `  Require all granted`,
    `</Directory>`,
    '',
  ].join('\n');
}

/** curl inside the client namespace: status and body. */
async function curl(net: TestNetwork, ns: string, url: string): Promise<{ status: number; body: string }> {
  const r = await net.exec(ns, ['curl', '-s', '--max-time', '20', '-w', '\n%{http_code}', url], { timeoutMs: 30_000 });
  const lines = r.stdout.split('\n');
  const status = Number(lines.pop());
  return { status, body: lines.join('\n') };
}

async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The run with the median rate (the upper one of an even count). */
function median(runs: WrkResult[]): WrkResult {
  return [...runs].sort((a, b) => a.rps - b.rps)[Math.floor(runs.length / 2)]!;
}

function describe(r: WrkResult): string {
  return `${r.rps.toFixed(0)}/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms`;
}

export async function benchPreseed(): Promise<string[]> {
  const why = netnsUnavailableReason() || (wrkAvailable() ? false : 'wrk is not installed (apt-get install wrk)');
  if (why) return [`bench-preseed skipped: ${why}`];
  if (!fs.existsSync(CLI)) throw new Error('run npm run build first');
  const teardowns: (() => unknown)[] = [];
  const host = { teardown: (fn: () => unknown) => teardowns.push(fn) };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uec-bench-preseed-'));
  fs.chmodSync(dir, 0o755);
  const env = { PATH: process.env.PATH, UEC_PROVISIONING_ROOT: dir, UEC_PROVISIONING_TEMPLATES: path.join(REPO, 'templates'), UEC_PROVISIONING_LIB: path.join(REPO, 'dist'), UEC_PROVISIONING_SERVICE_CONTROL: 'none' };
  let server: NetnsProcess | undefined;
  try {
    const net = createTestNetwork(host, { name: 'preseed' });
    const srv = await net.ns('srv');
    const cl = await net.ns('cli');
    await net.link({ ns: srv, ifname: 'v0', cidr: `${SERVER}/24` }, { ns: cl, ifname: 'eth0', mac: NODE_MAC, cidr: `${CLIENT}/24` });

    cli(['config', 'set', 'server.interface=v0', `server.address=${SERVER}`], env);
    let systemId = '';
    for (let i = 0; i < 100; i++) {
      const mac = `52:54:00:be:00:${i.toString(16).padStart(2, '0')}`;
      const id = cli(['nodes', 'add', `bench${i}`, '--mac', mac, '--no-apply'], env).trim();
      if (mac === NODE_MAC) systemId = id;
    }
    cli(['nodes', 'deploy', systemId, '--no-apply'], env);

    // The service's log (a line per request) goes to a file, as journald would take it, so
    // neither a pipe nor this process's CPU takes part in the run.
    const logFile = path.join(dir, 'serve.log');
    const prof = CPU_PROF ? `--cpu-prof --cpu-prof-dir=${JSON.stringify(path.resolve(CPU_PROF))} ` : '';
    server = net.spawn(srv, ['sh', '-c', `exec ${JSON.stringify(process.execPath)} ${prof}${JSON.stringify(CLI)} serve --port ${PORT} --listen ${SERVER} --json --no-apply >${JSON.stringify(logFile)} 2>&1`], { env });
    await until('the service to listen', () => fs.existsSync(logFile) && fs.readFileSync(logFile, 'utf8').includes(`"port":${PORT}`));
    const url = `http://${SERVER}:${PORT}/preseed/${systemId}`;
    const first = await curl(net, cl, url);
    if (first.status !== 200) throw new Error(`the node's own preseed: ${first.status} ${first.body}`);

    const docroot = path.join(dir, 'www');
    fs.mkdirSync(docroot, { mode: 0o755 });
    fs.writeFileSync(path.join(docroot, 'preseed'), first.body, { mode: 0o644 });
    fs.writeFileSync(path.join(dir, 'apache.conf'), apacheConf(dir, docroot));
    net.spawn(srv, ['/usr/sbin/apache2', '-f', path.join(dir, 'apache.conf'), '-DFOREGROUND']);
    const apacheUrl = `http://${SERVER}:${APACHE_PORT}/preseed`;
    await until('apache2 to answer', async () => (await curl(net, cl, apacheUrl)).status === 200, 10_000);
    const served = await curl(net, cl, apacheUrl);
    if (served.body !== first.body) throw new Error('apache2 does not serve the same bytes');

    // The floor of any design on node:http: the same bytes from memory, nothing else per request.
    const floorScript = `require('http').createServer((q, r) => { r.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': B.length, 'Cache-Control': 'no-store' }); r.end(B); }).listen(${FLOOR_PORT}, '${SERVER}'); const B = require('fs').readFileSync(${JSON.stringify(path.join(docroot, 'preseed'))});`;
    net.spawn(srv, [process.execPath, '-e', floorScript]);
    const floorUrl = `http://${SERVER}:${FLOOR_PORT}/preseed`;
    await until('the node:http floor to answer', async () => (await curl(net, cl, floorUrl)).status === 200, 10_000);
    await new Promise((r) => setTimeout(r, 1000));
    const idle = rssKiB(server.pid);
    const wrk = (u: string, connections: number, seconds: number) => runWrk({ url: u, connections, seconds, prefix: ['ip', 'netns', 'exec', cl] });
    const rows: string[] = [];
    let cpuUnderLoad = 0;
    let secondsUnderLoad = 0;
    const loads: string[] = [os.loadavg()[0]!.toFixed(1)];
    for (const c of [1, 50, 500]) {
      const runs: { ours: WrkResult; theirs?: WrkResult; floor?: WrkResult }[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        await wrk(url, c, 1); // warm-up
        const cpu0 = cpuSeconds(server.pid);
        const ours = await wrk(url, c, SECONDS);
        cpuUnderLoad += cpuSeconds(server.pid) - cpu0;
        secondsUnderLoad += SECONDS;
        if (process.env.BENCH_ONLY === 'serve') {
          runs.push({ ours });
          continue;
        }
        await wrk(apacheUrl, c, 1);
        const theirs = await wrk(apacheUrl, c, SECONDS);
        await wrk(floorUrl, c, 1);
        const floor = await wrk(floorUrl, c, SECONDS);
        runs.push({ ours, theirs, floor });
      }
      loads.push(os.loadavg()[0]!.toFixed(1));
      const ours = median(runs.map((r) => r.ours));
      const errors = (r: WrkResult) => `${r.non2xx}${r.socketErrors ? ` (socket errors: ${r.socketErrorDetail})` : ''}`;
      if (process.env.BENCH_ONLY === 'serve') {
        rows.push(`| ${c} | ${describe(ours)} | | | | ${runs.map((r) => errors(r.ours)).join(', ')} |`);
        continue;
      }
      const theirs = median(runs.map((r) => r.theirs!));
      const floor = median(runs.map((r) => r.floor!));
      const perRound = runs.map((r) => (r.ours.rps / r.theirs!.rps).toFixed(2)).join(', ');
      rows.push(`| ${c} | ${describe(ours)} | ${describe(theirs)} | ${(ours.rps / theirs.rps).toFixed(2)} (rounds: ${perRound}) | ${describe(floor)} | ${runs.map((r) => `${errors(r.ours)} / ${errors(r.theirs!)}`).join('; ')} |`);
    }
    const loaded = rssKiB(server.pid);
    rows.push(
      `| service memory | idle ${(idle.rss / 1024).toFixed(0)} MiB RSS, peak under load ${(loaded.hwm / 1024).toFixed(0)} MiB; CPU ${(cpuUnderLoad / secondsUnderLoad).toFixed(2)} cores while loaded | | | | |`,
    );
    return [
      `${ROUNDS} rounds of ${SECONDS} s per server and connection count; load average (1 min) at the start and after each connection count: ${loads.join(' → ')}`,
      '',
      '| connections (wrk, same run, median of the rounds) | uec-provisioning serve | apache2, same bytes static | ratio (median; each round) | node:http, same bytes from memory (floor) | non-2xx (ours / apache), per round |',
      '|---|---|---|---|---|---|',
      ...rows,
    ];
  } finally {
    if (server) await server.stop(10_000); // SIGTERM first: --cpu-prof writes its profile on a clean exit
    for (const fn of teardowns.reverse()) await fn();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  benchPreseed().then(
    (rows) => console.log(rows.join('\n')),
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
