/**
 * The product's IPMI power path (packages/webui/power.ts runIpmiPower: real ipmitool,
 * `-I lanplus`, password through IPMI_PASSWORD) against a real BMC: Debian's ipmi_sim with
 * the lab's configuration (scripts/lab-plan.ts), whose power on starts a qemu attached to it
 * by ipmi-bmc-extern and whose power off stops it. The server and the BMC each sit in a
 * namespace of the test's own, linked by a veth pair; nothing is on the host's network.
 * The qemu is paused (-S, no disk, no network): only its power matters here.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { planLab, renderIpmiSimCommands, renderIpmiSimConfig, renderShellCommand } from '../../../scripts/lab-plan';
import { createTestNetwork, netnsUnavailableReason } from '../../helpers/netns';
import { REPO_ROOT } from '../../helpers/scratch';

const BMC = '10.68.0.3';
const SERVER = '10.68.0.1';

function skipReason(): string | false {
  return (
    netnsUnavailableReason() ||
    (!fs.existsSync('/usr/bin/ipmi_sim') && 'openipmi (ipmi_sim) is not installed') ||
    (!fs.existsSync('/usr/bin/ipmitool') && 'ipmitool is not installed') ||
    (!fs.existsSync('/usr/bin/qemu-system-x86_64') && 'qemu-system-x86 is not installed')
  );
}

function alive(pidFile: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z' ? undefined : pid;
  } catch {
    return undefined;
  }
}

async function until(what: string, fn: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

t.test('runIpmiPower drives a real ipmi_sim over RMCP+: on starts the VM, cycle, off stops it; bad password and no BMC are POWER_FAILED', { skip: skipReason(), timeout: 180_000 }, async (t) => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'uec-ipmi-sim-'));
  t.teardown(() => fs.rmSync(work, { recursive: true, force: true }));
  const net = createTestNetwork(t, { name: 'ipmi' });
  const srv = await net.ns('srv');
  const bmcNs = await net.ns('bmc');
  await net.link({ ns: srv, ifname: 'eth0', cidr: `${SERVER}/24` }, { ns: bmcNs, ifname: 'eth0', cidr: `${BMC}/24` });
  await net.waitOperstate(srv, 'eth0');

  const machine = { ...planLab({ machines: 2, proxy: false }).machines[1]!, bmcAddress: BMC };
  const pidFile = path.join(work, 'qemu.pid');
  const qemu = ['qemu-system-x86_64', '-machine', 'pc', '-accel', 'tcg', '-nodefaults', '-display', 'none', '-S', '-m', '32', '-pidfile', pidFile, '-chardev', `socket,id=ipmi0,host=127.0.0.1,port=${machine.bmcVmPort},reconnect=2`, '-device', 'ipmi-bmc-extern,chardev=ipmi0,id=bmc0', '-device', 'isa-ipmi-kcs,bmc=bmc0'];
  fs.writeFileSync(path.join(work, 'lan.conf'), renderIpmiSimConfig(machine, { user: 'admin', password: 'bmc-secret', startCommand: renderShellCommand(qemu) }));
  fs.writeFileSync(path.join(work, 'bmc.emu'), renderIpmiSimCommands());
  fs.mkdirSync(path.join(work, 'state'));
  const sim = net.spawn(bmcNs, ['ipmi_sim', '-n', '-c', path.join(work, 'lan.conf'), '-f', path.join(work, 'bmc.emu'), '-s', path.join(work, 'state')]);
  t.teardown(async () => {
    await sim.stop();
    const pid = alive(pidFile);
    if (pid) process.kill(pid, 'SIGKILL');
  });

  // The product's module, run in the server's namespace as the web UI would run it.
  const power = path.join(REPO_ROOT, 'packages/webui/power.ts');
  const ipmi = (action: string, address = BMC, password = 'bmc-secret') =>
    net.exec(srv, [process.execPath, '-r', 'ts-node/register/transpile-only', '-e', `require(${JSON.stringify(power)}).runIpmiPower({ address: ${JSON.stringify(address)}, user: 'admin', password: ${JSON.stringify(password)} }, ${JSON.stringify(action)}).then((out) => console.log(out), (e) => { console.error(e.code + ': ' + e.message); process.exit(14); })`], { cwd: REPO_ROOT, timeoutMs: 90_000, env: { PATH: process.env.PATH, HOME: process.env.HOME, NODE_OPTIONS: '' } });

  // ipmi_sim needs a moment to listen.
  let first = await ipmi('on');
  for (let i = 0; i < 10 && first.code !== 0; i++) {
    await new Promise((r) => setTimeout(r, 500));
    first = await ipmi('on');
  }
  t.equal(first.code, 0, first.stderr);
  t.equal(first.stdout.trim(), 'Chassis Power Control: Up/On', 'power on: ipmitool\'s answer, as the web UI records it');
  await until('the VM started by the BMC', () => alive(pidFile) !== undefined, 20_000);
  const vm = alive(pidFile)!;
  t.pass(`ipmi_sim started the machine's qemu (pid ${vm})`);
  t.equal(fs.readlinkSync(`/proc/${vm}/ns/net`), fs.readlinkSync(`/proc/${sim.pid}/ns/net`), 'the VM runs in the BMC\'s namespace');
  t.not(fs.readlinkSync(`/proc/${vm}/ns/net`), fs.readlinkSync('/proc/self/ns/net'), 'not in the host\'s');

  const cycle = await ipmi('cycle');
  t.equal(cycle.code, 0, cycle.stderr);
  t.equal(cycle.stdout.trim(), 'Chassis Power Control: Cycle');

  const off = await ipmi('off');
  t.equal(off.code, 0, off.stderr);
  t.equal(off.stdout.trim(), 'Chassis Power Control: Down/Off');
  await until('the VM stopped by the BMC', () => alive(pidFile) === undefined, 30_000);
  t.pass('power off stopped the VM');

  const wrong = await ipmi('on', BMC, 'wrong-password');
  t.equal(wrong.code, 14);
  t.match(wrong.stderr, /^POWER_FAILED: ipmitool power on on 10\.68\.0\.3 failed \(exit 1\): /, 'a wrong password is one POWER_FAILED line naming the BMC');
  t.notOk(wrong.stderr.includes('wrong-password'), 'the password is not in the message');
  t.equal(alive(pidFile), undefined, 'and the machine stays off');

  const nobody = await ipmi('on', '10.68.0.9');
  t.equal(nobody.code, 14);
  t.match(nobody.stderr, /^POWER_FAILED: ipmitool power on on 10\.68\.0\.9 failed/, 'no BMC at the address: POWER_FAILED');
});
