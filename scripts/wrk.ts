/**
 * The HTTP load client of the benchmarks: wrk (Debian package `wrk`), a C load generator, so
 * the client costs little next to the servers it measures (a Node client on the same two
 * cores limited both servers and flattered the slower one). Developer helper, never used by
 * the packages.
 */
import { execFile, spawnSync } from 'node:child_process';

export interface WrkResult {
  rps: number;
  /** Milliseconds. */
  p50: number;
  p99: number;
  requests: number;
  /** Answers other than 2xx/3xx. */
  non2xx: number;
  /** connect + read + write + timeout socket errors. */
  socketErrors: number;
  /** wrk's own line, e.g. "connect 0, read 12, write 0, timeout 0", or ''. */
  socketErrorDetail: string;
}

/** Pure: "1.23ms", "456.00us", "2.01s" → milliseconds. */
export function parseWrkDuration(value: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(value.trim());
  if (!m) throw new Error(`wrk: cannot read the duration ${JSON.stringify(value)}`);
  const n = Number(m[1]);
  const unit = m[2];
  return unit === 'us' ? n / 1000 : unit === 'ms' ? n : unit === 's' ? n * 1000 : n * 60_000;
}

/** Pure: wrk --latency's report → the figures the benchmarks print. */
export function parseWrkOutput(out: string): WrkResult {
  const num = (re: RegExp) => Number(re.exec(out)?.[1] ?? 0);
  const pct = (p: string) => {
    const m = new RegExp(`^\\s*${p}%\\s+(\\S+)`, 'm').exec(out);
    if (!m) throw new Error(`wrk: no ${p}% latency in its output:\n${out}`);
    return parseWrkDuration(m[1]!);
  };
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  if (!rps) throw new Error(`wrk: no Requests/sec in its output:\n${out}`);
  return {
    rps: Number(rps[1]),
    p50: pct('50'),
    p99: pct('99'),
    requests: num(/(\d+) requests in/),
    non2xx: num(/Non-2xx or 3xx responses: (\d+)/),
    socketErrors: sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0,
    socketErrorDetail: sock ? sock[0].replace('Socket errors: ', '') : '',
  };
}

export interface WrkRun {
  url: string;
  connections: number;
  seconds: number;
  /** Default: 1 for one connection, else 2 (the benchmark machine has 2 cores). */
  threads?: number;
  headers?: string[];
  /** Prefix for the command, e.g. ['ip', 'netns', 'exec', NS]. */
  prefix?: string[];
}

/** Runs wrk --latency once and reads its report. */
export function runWrk(r: WrkRun): Promise<WrkResult> {
  const threads = r.threads ?? Math.min(2, r.connections);
  const argv = [...(r.prefix ?? []), 'wrk', '--latency', `-t${threads}`, `-c${r.connections}`, `-d${r.seconds}s`, '--timeout', '10s', ...(r.headers ?? []).flatMap((h) => ['-H', h]), r.url];
  return new Promise((resolve, reject) => {
    execFile(argv[0]!, argv.slice(1), { timeout: (r.seconds + 30) * 1000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`${argv.join(' ')}: ${stderr || err.message}`));
      try {
        resolve(parseWrkOutput(stdout));
      } catch (e) {
        reject(e);
      }
    });
  });
}

/** True when wrk is installed. */
export function wrkAvailable(): boolean {
  return spawnSync('wrk', ['--version']).error === undefined;
}
