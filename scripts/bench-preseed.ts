/**
 * Preseed service benchmark (part of `npm run bench`): requests per second and p50/p99
 * latency of GET /preseed/<id> with 1, 50 and 500 concurrent keep-alive clients, against
 * apache2 serving the same bytes as a static file in the same run, and the service's
 * memory idle and under load. Everything listens on 127.0.0.1 under a scratch root; the
 * service is the compiled one (`npm run build` first), started as `uec-provisioning serve`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';

const REPO = path.resolve(__dirname, '..');
const CLI = path.join(REPO, 'dist/src/cli.js');
const DURATION_MS = Number(process.env.BENCH_SECONDS ?? 5) * 1000;

interface LoadResult {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

async function load(url: string, concurrency: number, durationMs: number): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const latencies: number[] = [];
  let errors = 0;
  const deadline = Date.now() + durationMs;
  async function worker(): Promise<void> {
    while (Date.now() < deadline) {
      const start = process.hrtime.bigint();
      await new Promise<void>((resolve) => {
        const req = http.get(url, { agent }, (res) => {
          res.on('data', () => undefined);
          res.on('end', () => {
            if (res.statusCode !== 200) errors++;
            else latencies.push(Number(process.hrtime.bigint() - start) / 1e6);
            resolve();
          });
        });
        req.on('error', () => {
          errors++;
          resolve();
        });
      });
    }
  }
  const began = Date.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = (Date.now() - began) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * q))] ?? 0;
  return { rps: latencies.length / elapsed, p50: at(0.5), p99: at(0.99), errors };
}

function rssKiB(pid: number): { rss: number; hwm: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0);
  return { rss: field('VmRSS'), hwm: field('VmHWM') };
}

function run(args: string[], env: NodeJS.ProcessEnv): string {
  const r = spawnSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`uec-provisioning ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/**
 * The first match of `pattern` in the child's output; after it the output (a log line per
 * request) is drained and dropped, so neither the pipe nor this process's CPU slows the run.
 */
async function waitForLine(child: ChildProcess, pattern: RegExp): Promise<RegExpMatchArray> {
  let seen = '';
  return new Promise((resolve, reject) => {
    const onData = (d: Buffer) => {
      seen += d.toString();
      const m = pattern.exec(seen);
      if (!m) return;
      for (const stream of [child.stdout, child.stderr]) {
        stream?.off('data', onData);
        stream?.resume();
      }
      seen = '';
      resolve(m);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', () => reject(new Error(`exited before ${pattern}: ${seen}`)));
  });
}

function startApache(dir: string, docroot: string): Promise<{ child: ChildProcess; port: number }> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const mods = '/usr/lib/apache2/modules';
  const conf = [
    `LoadModule mpm_event_module ${mods}/mod_mpm_event.so`,
    `LoadModule authz_core_module ${mods}/mod_authz_core.so`,
    `ServerName localhost`,
    `Listen 127.0.0.1:${port}`,
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
  ].join('\n');
  fs.writeFileSync(path.join(dir, 'apache.conf'), `${conf}\n`);
  const child = spawn('/usr/sbin/apache2', ['-f', path.join(dir, 'apache.conf'), '-DFOREGROUND'], { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + 10_000;
    const poll = () => {
      http
        .get(`http://127.0.0.1:${port}/preseed`, (res) => {
          res.resume();
          resolve({ child, port });
        })
        .on('error', () => (Date.now() > deadline ? reject(new Error(`apache2 did not start: ${fs.readFileSync(path.join(dir, 'apache-error.log'), 'utf8')}`)) : setTimeout(poll, 100)));
    };
    poll();
  });
}

export async function benchPreseed(): Promise<string[]> {
  if (!fs.existsSync(CLI)) throw new Error('run npm run build first');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uec-bench-preseed-'));
  fs.chmodSync(dir, 0o755);
  const env = { ...process.env, UEC_PROVISIONING_ROOT: dir, UEC_PROVISIONING_TEMPLATES: path.join(REPO, 'templates'), UEC_PROVISIONING_LIB: path.join(REPO, 'dist'), UEC_PROVISIONING_SERVICE_CONTROL: 'none' };
  const children: ChildProcess[] = [];
  try {
    run(['config', 'set', 'server.interface=lo', 'server.address=127.0.0.1'], env);
    let systemId = '';
    for (let i = 0; i < 100; i++) {
      const hex = i.toString(16).padStart(2, '0');
      const id = run(['nodes', 'add', `bench${i}`, '--mac', `52:54:00:be:00:${hex}`, '--no-apply'], env).trim();
      if (i === 42) systemId = id;
    }
    run(['nodes', 'deploy', systemId, '--no-apply'], env);
    const server = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--listen', '127.0.0.1', '--json', '--no-apply'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(server);
    const port = Number((await waitForLine(server, /"port":(\d+)/))[1]);
    const url = `http://127.0.0.1:${port}/preseed/${systemId}`;
    const body = await new Promise<string>((resolve, reject) => {
      http.get(url, (res) => {
        let b = '';
        res.on('data', (d: Buffer) => (b += d.toString()));
        res.on('end', () => (res.statusCode === 200 ? resolve(b) : reject(new Error(`preseed ${res.statusCode}: ${b}`))));
      });
    });
    const docroot = path.join(dir, 'www');
    fs.mkdirSync(docroot, { mode: 0o755 });
    fs.writeFileSync(path.join(docroot, 'preseed'), body, { mode: 0o644 });
    const apache = await startApache(dir, docroot);
    children.push(apache.child);
    await new Promise((r) => setTimeout(r, 1000));
    const idle = rssKiB(server.pid!);
    const rows: string[] = [];
    for (const c of [1, 50, 500]) {
      await load(url, c, 1000); // warm-up
      const ours = await load(url, c, DURATION_MS);
      const theirs = await load(`http://127.0.0.1:${apache.port}/preseed`, c, DURATION_MS);
      rows.push(
        `| preseed, ${c} concurrent | ${ours.rps.toFixed(0)}/s, p50 ${ours.p50.toFixed(2)} ms, p99 ${ours.p99.toFixed(2)} ms | ${theirs.rps.toFixed(0)}/s, p50 ${theirs.p50.toFixed(2)} ms, p99 ${theirs.p99.toFixed(2)} ms | ${(ours.rps / theirs.rps).toFixed(2)} | ${ours.errors} / ${theirs.errors} |`,
      );
    }
    const loaded = rssKiB(server.pid!);
    rows.push(`| service memory | idle ${(idle.rss / 1024).toFixed(1)} MiB RSS | peak under load ${(loaded.hwm / 1024).toFixed(1)} MiB | | |`);
    return ['| measurement (same run) | uec-provisioning serve | apache2, same bytes static | ratio | errors (ours / apache) |', '|---|---|---|---|---|', ...rows];
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
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
