/**
 * The compiled web UI for the benchmarks (scripts/bench-webui.ts, scripts/bench-store.ts):
 * creates the `admin` account under `root`, starts `uec-provisioning webui serve` on
 * 127.0.0.1 (a port of its own), logs in, and hands back the base URL, the session cookie,
 * the process's resident memory and a stop function. Whatever store region.store names under
 * `root` is the one the web UI reads.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createPaths } from '../src/core/paths';
import { createAccountStore } from '../packages/webui/accounts';

const REPO = path.resolve(__dirname, '..');
export const CLI = path.join(REPO, 'dist/src/cli.js');
const PASSWORD = 'bench-password';

export interface BenchWebui {
  /** http://127.0.0.1:PORT/uec-provisioning */
  base: string;
  /** `name=value` of the logged-in session. */
  cookie: string;
  pid: number;
  /** VmRSS of the web UI process now, MiB. */
  rssMiB(): number;
  /** SIGTERM and wait for the exit (SIGKILL after 5 s, with a warning on stderr). */
  stop(): Promise<void>;
}

/** VmRSS of a process, MiB (0 when it is gone). */
export function readRssMiB(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

export async function startBenchWebui(root: string): Promise<BenchWebui> {
  await createAccountStore(createPaths(root)).create('admin', 'admin', PASSWORD);
  const child = spawn(process.execPath, [CLI, 'webui', 'serve', '--root', root, '--port', '0', '--listen', '127.0.0.1', '--json'], {
    env: { PATH: process.env.PATH, UEC_PROVISIONING_TEMPLATES: path.join(REPO, 'templates') },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  process.once('exit', kill); // the benchmark interrupted: no web UI left behind
  /** SIGTERM, as systemd stops it; SIGKILL and a warning when it has not exited 5 s later. */
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const late = await Promise.race([exited.then(() => false), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), 5000)))]);
    clearTimeout(timer);
    if (late) {
      process.stderr.write(`bench: webui serve (pid ${child.pid}) had not exited 5 s after SIGTERM; killed\n`);
      kill();
      await exited;
    }
    process.removeListener('exit', kill);
  };
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /"port":(\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      child.on('exit', (code, signal) => reject(new Error(`webui serve exited (${code ?? signal}) before it listened`)));
    });
    const base = `http://127.0.0.1:${port}/uec-provisioning`;
    const login = await fetch(`${base}/api/session`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ user: 'admin', password: PASSWORD }) });
    if (!login.ok) throw new Error(`web UI login: ${login.status} ${await login.text()}`);
    const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]!;
    return { base, cookie, pid: child.pid!, rssMiB: () => readRssMiB(child.pid!), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
