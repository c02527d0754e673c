/**
 * The boot storm's launcher, run by scripts/bench-bootstorm.ts inside the machines' network
 * namespace (`ip netns exec NS node launch.ts SPEC.json`): starts one machine.sh per simulated
 * machine, evenly spread over the ramp, and times each from its start to its exit. It only
 * spawns and waits; every packet is sent by the machines' C clients (perfdhcp, curl).
 * Prints one JSON object (LaunchResult) on stdout.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';

export interface LaunchSpec {
  script: string;
  /** Start the last machine this many milliseconds after the first. */
  rampMs: number;
  env: Record<string, string>;
  /** machine.sh's arguments, one list per machine. */
  machines: string[][];
  /**
   * The machines' niceness (nice(1)), the same in both phases. On a real network the clients
   * are other computers; here a thousand of them share the servers' 2 cores, and at load 40-60
   * the run queue, not the servers' work, decides how long a request waits. 0: as before.
   */
  nice?: number;
}

export interface MachineRun {
  /** Milliseconds from the storm's start to this machine's start. */
  startMs: number;
  /** Milliseconds from its start to its exit. */
  ms: number;
  /** machine.sh's last line: "ok IP TFTP_S HTTP_S" or "error STEP: WHAT". */
  line: string;
}

export interface LaunchResult {
  wallMs: number;
  machines: MachineRun[];
}

function runOne(spec: LaunchSpec, args: string[], t0: bigint): Promise<MachineRun> {
  return new Promise((resolve) => {
    const start = process.hrtime.bigint();
    const argv = spec.nice ? ['nice', '-n', String(spec.nice), 'sh', spec.script, ...args] : ['sh', spec.script, ...args];
    const child = spawn(argv[0]!, argv.slice(1), { env: { ...process.env, ...spec.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (out += s));
    const done = (why: string) => {
      const end = process.hrtime.bigint();
      const lines = out.trim().split('\n');
      const last = lines[lines.length - 1] ?? '';
      resolve({ startMs: Number(start - t0) / 1e6, ms: Number(end - start) / 1e6, line: /^(ok|error) /.test(last) ? last : `error machine: ${why}: ${out.trim().slice(0, 300)}` });
    };
    child.on('error', (err) => done(err.message));
    child.on('close', (code, signal) => done(`exit ${code ?? signal}`));
  });
}

async function main(): Promise<void> {
  const spec = JSON.parse(fs.readFileSync(process.argv[2] ?? '', 'utf8')) as LaunchSpec;
  const n = spec.machines.length;
  const t0 = process.hrtime.bigint();
  const runs = spec.machines.map(
    (args, i) =>
      new Promise<MachineRun>((resolve) => {
        setTimeout(() => resolve(runOne(spec, args, t0)), n > 1 ? (spec.rampMs * i) / (n - 1) : 0);
      }),
  );
  const machines = await Promise.all(runs);
  const result: LaunchResult = { wallMs: Number(process.hrtime.bigint() - t0) / 1e6, machines };
  process.stdout.write(JSON.stringify(result));
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`launch: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exitCode = 1;
  });
}
