/**
 * The lab as CI runs it: `scripts/lab --machines 2 --ci` (enlist → deploy over the REST API
 * → Wake-on-LAN and IPMI power-on → netboot → preseed → installing, each stage checked by the
 * lab from the product's timeline and the daemons' journals, then torn down), watched from
 * outside: the host's interfaces are listed all along and none may be added or given a
 * master, and no qemu, ipmi_sim or dnsmasq of the lab may run in the host's network
 * namespace. Then a lab killed with SIGKILL is cleaned up by `scripts/lab --down`.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { bookwormUnavailableReason } from '../helpers/bookworm';
import { netnsUnavailableReason } from '../helpers/netns';
import { REPO_ROOT } from '../helpers/scratch';
import { selectLabProcess } from '../../scripts/lab-plan';
import { holdVmLane, vmUnavailableReason } from '../helpers/vm';

const RUN_DIR = '/var/tmp/uec-provisioning-lab';
const LAB = path.join(REPO_ROOT, 'scripts/lab');

function skipReason(): string | false {
  return (
    netnsUnavailableReason() ||
    vmUnavailableReason() ||
    bookwormUnavailableReason() ||
    (!fs.existsSync('/usr/bin/ipmi_sim') && 'openipmi (ipmi_sim) is not installed') ||
    (!fs.existsSync('/usr/bin/ipmitool') && 'ipmitool is not installed') ||
    (!fs.existsSync('/usr/share/OVMF/OVMF_CODE_4M.ms.fd') && 'ovmf is not installed')
  );
}

/** The host namespace's interfaces: name → master ('' for none). */
function hostLinks(): Map<string, string> {
  const links = JSON.parse(spawnSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' }).stdout || '[]') as { ifname: string; master?: string }[];
  return new Map(links.map((l) => [l.ifname, l.master ?? '']));
}

function labNamespaces(): string[] {
  return spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n.startsWith('uecl-'));
}

/** qemu, ipmi_sim and dnsmasq processes of the lab (selectLabProcess: by their arguments and cgroup) and their network namespaces. */
function labProcesses(): { pid: number; comm: string; netns: string }[] {
  const found: { pid: number; comm: string; netns: string }[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const comm = fs.readFileSync(`/proc/${d}/comm`, 'utf8').trim();
      const cmdline = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ');
      const cgroup = fs.readFileSync(`/proc/${d}/cgroup`, 'utf8');
      // The lab's own predicate: other jobs' dnsmasq in namespaces of their own are not the lab's.
      if (comm !== 'node' && selectLabProcess({ comm, cmdline, cgroup }, RUN_DIR)) found.push({ pid: Number(d), comm, netns: fs.readlinkSync(`/proc/${d}/ns/net`) });
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

function leftovers(): string[] {
  const mounts = fs.readFileSync('/proc/mounts', 'utf8').split('\n').filter((l) => l.includes(RUN_DIR));
  return [...labNamespaces().map((n) => `namespace ${n}`), ...mounts.map((m) => `mount ${m.split(' ')[1]}`), ...(fs.existsSync(RUN_DIR) ? [`directory ${RUN_DIR}`] : []), ...labProcesses().map((p) => `${p.comm} ${p.pid}`)];
}

/** Runs scripts/lab outside tap's loaders; resolves with its exit and output. */
function runLab(args: string[], opts: { onLine?: (line: string, child: ReturnType<typeof spawn>) => void } = {}): Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }> {
  const env = { ...process.env, UEC_LAB_VM_LANE: 'held' } as NodeJS.ProcessEnv;
  delete env.NODE_OPTIONS;
  const child = spawn(LAB, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const onData = (d: Buffer) => {
    const text = d.toString('utf8');
    output += text;
    for (const line of text.split('\n')) if (line) opts.onLine?.(line, child);
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, output })));
}

t.setTimeout(2_400_000);

t.test('scripts/lab --machines 2 --ci: enlist, deploy, WoL and IPMI power-on, netboot, preseed, installing; nothing on the host\'s interfaces', { skip: skipReason(), timeout: 1_800_000 }, async (t) => {
  // The lab boots VMs: it takes its turn in the machine's VM lane (held here, for the lab).
  await holdVmLane(t);
  t.same(leftovers(), [], 'no lab is running or left over before the test');
  const before = hostLinks();
  const changes = new Set<string>();
  const inHost = new Set<string>();
  let seenProcesses = 0;
  const hostNetns = fs.readlinkSync('/proc/self/ns/net');
  const watch = setInterval(() => {
    for (const [name, master] of hostLinks()) {
      if (!before.has(name)) changes.add(`${name} added`);
      else if (before.get(name) !== master) changes.add(`${name} given master ${master}`);
    }
    const procs = labProcesses();
    seenProcesses = Math.max(seenProcesses, procs.length);
    for (const p of procs) if (p.netns === hostNetns) inHost.add(`${p.comm} ${p.pid}`);
  }, 1000);
  t.teardown(() => clearInterval(watch));
  const started = Date.now();
  const r = await runLab(['--machines', '2', '--ci']);
  clearInterval(watch);
  const secs = ((Date.now() - started) / 1000).toFixed(0);
  t.comment(`scripts/lab --machines 2 --ci: ${secs} s`);
  const first = /first machine installing (\d+) s after the command/.exec(r.output)?.[1];
  t.comment(`first machine installing ${first ?? '?'} s after the command`);
  t.equal(r.code, 0, `the lab's own checks passed:\n${r.output.split('\n').filter((l) => / (ok|NOT OK) - |passed|failed/.test(l)).join('\n')}`);
  for (const what of [/ok - m1 \(bios\) enlisted by netbooting, status new/, /ok - m2 \(uefi\) enlisted by netbooting, status new/, /ok - POST \/api\/deploy with the API token: all 2 deploying/, /ok - .*: the product powered it on by Wake-on-LAN/, /ok - m1: the agent received the magic packet/, /ok - .*: the product powered it on by IPMI through ipmi_sim/, /ok - .*: timeline power → netboot → preseed → installing/, /ok - .*: uec-provisioning's journal shows the installing call-back/, /ok - .*: uec-provisioning nodes why reads the journal: its DHCP answer, then installing; verdict in-progress/, /ok - \d+ lab processes .* none in the host's network namespace/, /\d+ passed, 0 failed/]) {
    t.match(r.output, what, `the lab checked ${what.source.replace(/\\/g, '')}`);
  }
  t.match(r.output, /the installer stops at "Download installer components"/, 'it says plainly where the lab stops');
  t.ok(seenProcesses >= 2, `the watcher saw the lab's processes (${seenProcesses} at most at once)`);
  t.same([...inHost], [], 'no qemu, ipmi_sim or dnsmasq of the lab ran in the host\'s network namespace');
  t.same([...changes], [], 'no host interface was added or given a master while the lab ran');
  t.same([...hostLinks().keys()].sort(), [...before.keys()].sort(), 'the host has the same interfaces after');
  t.same(leftovers(), [], 'torn down: no namespace, mount, run directory or process left');
});

t.test('a lab killed with SIGKILL is removed by scripts/lab --down', { skip: skipReason(), timeout: 600_000 }, async (t) => {
  await holdVmLane(t);
  const r = await runLab(['--machines', '1', '--ci'], {
    onLine: (line, child) => {
      if (/appliance container booted/.test(line)) child.kill('SIGKILL');
    },
  });
  t.equal(r.signal, 'SIGKILL', `the lab was killed once its container ran (exit ${r.code}):\n${r.output.split('\n').slice(-15).join('\n')}`);
  t.ok(leftovers().some((l) => l.startsWith('namespace uecl-')), `it left its namespaces behind (${leftovers().join(', ')})`);
  const down = await runLab(['--down']);
  t.equal(down.code, 0, down.output);
  t.match(down.output, /removed: .*namespace uecl-lan.*mount .*overlay\/root/s, 'it names what it removed');
  t.same(leftovers(), [], 'nothing left');
  const again = await runLab(['--down']);
  t.match(again.output, /nothing of a lab was left/, 'a second --down finds nothing');
});
