/**
 * bootContainer() of bookworm.ts with two races closed, for the installed-appliance e2e test
 * (bookworm.ts belongs to the DEP-8 suite; fold this back into it when that suite settles):
 *
 * - systemd-nspawn's first child is its short-lived "outer child", which forks the container's
 *   init and exits; taking the first child of systemd-nspawn as PID 1 sometimes took that one,
 *   and every later nsenter failed. PID 1 here is the child whose command is systemd.
 * - a command that exits before reading its stdin (nsenter on a process that is gone) made
 *   the write to its stdin fail with EPIPE, an uncaught error; here it is ignored.
 *
 * Same contract otherwise: the container runs in the test's network namespace `ns`
 * (`--network-namespace-path`, never the host's network), keeps CAP_NET_ADMIN (dnsmasq needs
 * it for DHCP), and is stopped at teardown and on process exit.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import type { Container } from './bookworm';
import type { ExecResult, TeardownHost, TestNetwork } from './netns';

const ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C.UTF-8', DEBIAN_FRONTEND: 'noninteractive', DEBCONF_NONINTERACTIVE_SEEN: 'true', HOME: '/root' };

type ExecOpts = { input?: string; timeoutMs?: number; env?: Record<string, string> };

const live = new Set<ChildProcess>();
let exitHandler = false;

function execIn(pid: number, argv: string[], opts: ExecOpts = {}): Promise<ExecResult> {
  const envArgs = Object.entries({ ...ENV, ...opts.env }).map(([k, v]) => `${k}=${v}`);
  return new Promise((resolve) => {
    const child = spawn('nsenter', ['-t', String(pid), '-a', '/usr/bin/env', '-i', ...envArgs, ...argv], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    // A command that does not read its input (or is gone already): not an error of the test.
    child.stdin.on('error', () => undefined);
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 120_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ stdout, stderr: `${stderr}spawn failed: ${err.message}\n`, code: null, signal: null, timedOut });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ stdout, stderr, code, signal, timedOut });
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

export async function bootApplianceContainer(t: TeardownHost, net: TestNetwork, ns: string, root: string, options: { name?: string; timeoutMs?: number } = {}): Promise<Container> {
  if (!fs.existsSync(`/run/netns/${ns}`)) throw new Error(`no network namespace ${ns}`);
  void net;
  if (!exitHandler) {
    exitHandler = true;
    process.on('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
  let output = '';
  const child = spawn('systemd-nspawn', ['-q', '-D', root, '--boot', '--register=no', '--keep-unit', `--network-namespace-path=/run/netns/${ns}`, '--capability=CAP_NET_ADMIN', '-M', options.name ?? 'appliance'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  child.stdout?.on('data', (d: Buffer) => (output += d.toString('utf8')));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString('utf8')));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    }
    live.delete(child);
  };
  t.teardown(stop);

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
  return {
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
}
