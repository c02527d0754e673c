/**
 * A real BMC for the tests: Debian's ipmi_sim (openipmi) with the lab's own configuration
 * (scripts/lab-plan.ts renderIpmiSimConfig: RMCP+ on UDP 623, one admin user, the machine's
 * start command as its startcmd). A chassis power on runs the start command, power off stops
 * it (ipmi_sim asks the machine, then after poweroff_wait sends SIGTERM), cycle does both.
 *
 * writeIpmiSimFiles writes the files and returns ipmi_sim's argv, for a test that runs it in a
 * network namespace of its own (test/packages/webui/ipmi-sim.test.ts, with a qemu as the
 * machine). startLoopbackBmc runs one in this namespace on a loopback address of its own
 * (127.68.X.Y, port 623: the product's BMC details have no port, and 127.0.0.0/8 is all
 * loopback), with a `sleep` standing in for the machine, whose pid the test can watch.
 * Loopback only: nothing reaches a real interface.
 */
import { spawn } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { renderIpmiSimCommands, renderIpmiSimConfig, type LabMachine } from '../../scripts/lab-plan';
import type { TeardownHost } from './netns';

export const IPMI_SIM = '/usr/bin/ipmi_sim';
export const IPMITOOL = '/usr/bin/ipmitool';

/** Why a test needing ipmi_sim and ipmitool cannot run here, or false. */
export function ipmiSimUnavailableReason(): string | false {
  return (!fs.existsSync(IPMI_SIM) && 'openipmi (ipmi_sim) is not installed') || (!fs.existsSync(IPMITOOL) && 'ipmitool is not installed') || false;
}

export interface IpmiSimFiles {
  /** The BMC's RMCP+ address (UDP 623). */
  address: string;
  /** TCP port on 127.0.0.1 where ipmi_sim waits for the machine's ipmi-bmc-extern (qemu). */
  vmPort: number;
  user: string;
  password: string;
  /** Run through sh by ipmi_sim on power on. */
  startCommand: string;
}

/** Writes lan.conf, bmc.emu and state/ into `dir`; returns the argv that runs ipmi_sim on them. */
export function writeIpmiSimFiles(dir: string, opts: IpmiSimFiles): string[] {
  const machine: LabMachine = { label: 'test', firmware: 'bios', mac: '52:54:00:68:00:01', tap: 'tap0', power: 'ipmi', bmcAddress: opts.address, bmcVmPort: opts.vmPort, enlists: true };
  fs.writeFileSync(path.join(dir, 'lan.conf'), renderIpmiSimConfig(machine, { user: opts.user, password: opts.password, startCommand: opts.startCommand }), { mode: 0o600 });
  fs.writeFileSync(path.join(dir, 'bmc.emu'), renderIpmiSimCommands());
  fs.mkdirSync(path.join(dir, 'state'), { recursive: true });
  return ['ipmi_sim', '-n', '-c', path.join(dir, 'lan.conf'), '-f', path.join(dir, 'bmc.emu'), '-s', path.join(dir, 'state')];
}

/** The pid in `pidFile` while that process lives (a zombie counts as gone), else undefined. */
export function livePid(pidFile: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z' ? undefined : pid;
  } catch {
    return undefined;
  }
}

/** Polls `fn` every 200 ms until it is true; throws naming `what` after `timeoutMs`. */
export async function until(what: string, fn: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export interface IpmitoolResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * The test's own hand on a BMC (not the product's code): real ipmitool with cipher suite 3
 * (ipmi_sim offers no 17 and does not answer "Get Channel Cipher Suites").
 */
export function runIpmitool(bmc: { address: string; user: string; password: string }, args: string[]): Promise<IpmitoolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(IPMITOOL, ['-I', 'lanplus', '-C', '3', '-H', bmc.address, '-U', bmc.user, '-E', ...args], { env: { PATH: process.env.PATH, IPMI_PASSWORD: bmc.password }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export interface LoopbackBmc {
  address: string;
  user: string;
  password: string;
  /** The pid of the machine's stand-in while it is powered on. */
  machinePid(): number | undefined;
  /** `chassis power status` read back with ipmitool. */
  powerStatus(): Promise<'on' | 'off'>;
  /** ipmi_sim's own output so far (for failure messages). */
  log(): string;
}

async function freeLoopbackAddress(): Promise<string> {
  for (let i = 0; i < 20; i++) {
    const address = `127.68.${1 + Math.floor(Math.random() * 254)}.${2 + Math.floor(Math.random() * 253)}`;
    const free = await new Promise<boolean>((resolve) => {
      const socket = dgram.createSocket('udp4');
      socket.once('error', () => resolve(false));
      socket.bind({ address, port: 623, exclusive: true }, () => socket.close(() => resolve(true)));
    });
    if (free) return address;
  }
  throw new Error('no free 127.68.X.Y:623 for ipmi_sim');
}

async function freeTcpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

/**
 * ipmi_sim on a loopback address of its own in this namespace, answering ipmitool once it is
 * up; its machine is a `sleep` it starts on power on. Stopped (machine and BMC) at teardown.
 */
export async function startLoopbackBmc(t: TeardownHost, opts: { user: string; password: string }): Promise<LoopbackBmc> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uec-bmc-'));
  const pidFile = path.join(dir, 'machine.pid');
  fs.writeFileSync(path.join(dir, 'machine.sh'), `echo $$ >${pidFile}\nexec sleep 3600 </dev/null >/dev/null 2>&1\n`);
  const address = await freeLoopbackAddress();
  const argv = writeIpmiSimFiles(dir, { address, vmPort: await freeTcpPort(), user: opts.user, password: opts.password, startCommand: `/bin/sh ${path.join(dir, 'machine.sh')}` });
  const sim = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  sim.stdout.on('data', (d: Buffer) => (output += d.toString('utf8')));
  sim.stderr.on('data', (d: Buffer) => (output += d.toString('utf8')));
  const exited = new Promise<void>((resolve) => sim.once('exit', () => resolve()));
  t.teardown(async () => {
    const pid = livePid(pidFile);
    if (pid) process.kill(pid, 'SIGKILL');
    if (sim.exitCode === null && sim.signalCode === null) sim.kill('SIGTERM');
    await exited;
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const bmc: LoopbackBmc = {
    address,
    user: opts.user,
    password: opts.password,
    machinePid: () => livePid(pidFile),
    async powerStatus() {
      const r = await runIpmitool(bmc, ['chassis', 'power', 'status']);
      const state = /Chassis Power is (on|off)/.exec(r.stdout)?.[1];
      if (r.code !== 0 || !state) throw new Error(`ipmitool chassis power status on ${address} (exit ${r.code}): ${r.stdout}${r.stderr}`);
      return state as 'on' | 'off';
    },
    log: () => output,
  };
  await until(`ipmi_sim on ${address} to answer`, async () => {
    if (sim.exitCode !== null) throw new Error(`ipmi_sim exited ${sim.exitCode}: ${output}`);
    return (await runIpmitool(bmc, ['chassis', 'power', 'status'])).code === 0;
  }, 20_000);
  return bmc;
}
