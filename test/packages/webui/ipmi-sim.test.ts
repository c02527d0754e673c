/**
 * The product's IPMI power path (packages/webui/power.ts runIpmiPower: real ipmitool,
 * `-I lanplus`, the BMC's pinned cipher suite as `-C`, password through IPMI_PASSWORD) against
 * a real BMC: Debian's ipmi_sim with the lab's configuration (scripts/lab-plan.ts, written by
 * test/helpers/ipmi-sim.ts), whose power on starts a qemu attached to it by ipmi-bmc-extern and
 * whose power off stops it. The server and the BMC each sit in a namespace of the test's own,
 * linked by a veth pair; nothing is on the host's network. The qemu is paused (-S, no disk, no
 * network): only its power matters here. The web UI's API over the same path, with a BMC on
 * loopback: api.test.ts.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { planLab, renderShellCommand } from '../../../scripts/lab-plan';
import { IPMI_CIPHER_SUITES, parseBmc, parseCipherSuite, renderIpmiPowerArgs, runIpmiPower } from '../../../packages/webui/power';
import { ipmiSimUnavailableReason, livePid as alive, until, writeIpmiSimFiles } from '../../helpers/ipmi-sim';
import { createTestNetwork, netnsUnavailableReason } from '../../helpers/netns';
import { REPO_ROOT } from '../../helpers/scratch';

const BMC = '10.68.0.3';
const SERVER = '10.68.0.1';

function skipReason(): string | false {
  return netnsUnavailableReason() || ipmiSimUnavailableReason() || (!fs.existsSync('/usr/bin/qemu-system-x86_64') && 'qemu-system-x86 is not installed');
}

t.test('ipmitool arguments: -C only for a pinned cipher suite (3 or 17), the password never in argv; bad suites are refused naming them', async (t) => {
  const bmc = { address: '192.0.2.5', user: 'ADMIN', password: 's3cret' };
  t.same(renderIpmiPowerArgs(bmc, 'cycle'), ['-I', 'lanplus', '-H', '192.0.2.5', '-U', 'ADMIN', '-E', 'chassis', 'power', 'cycle'], 'no suite: ipmitool negotiates (17, else 3)');
  t.same(renderIpmiPowerArgs({ ...bmc, cipherSuite: 3 }, 'on'), ['-I', 'lanplus', '-C', '3', '-H', '192.0.2.5', '-U', 'ADMIN', '-E', 'chassis', 'power', 'on']);
  t.same(renderIpmiPowerArgs({ ...bmc, cipherSuite: 17 }, 'off').slice(0, 4), ['-I', 'lanplus', '-C', '17']);
  t.notOk(renderIpmiPowerArgs({ ...bmc, cipherSuite: 17 }, 'off').join(' ').includes('s3cret'), 'the password is not an argument');
  t.same(IPMI_CIPHER_SUITES, [3, 17]);
  for (const auto of [undefined, null, '', ' ', 'auto']) t.equal(parseCipherSuite(auto), undefined, `${JSON.stringify(auto)} → ipmitool's choice`);
  t.equal(parseCipherSuite('17'), 17);
  t.equal(parseCipherSuite(3), 3);
  for (const bad of ['0', '1', '4', '16', '18', '3.0', '03x', 'seventeen', '-3', 3.5]) {
    t.throws(() => parseCipherSuite(bad), { code: 'INVALID_VALUE', message: `BMC cipher suite ${JSON.stringify(bad)} is not "auto", 3 or 17` }, `${JSON.stringify(bad)} refused`);
  }
  t.same(parseBmc({ address: '192.0.2.5', user: 'ADMIN', password: 'pw', cipherSuite: '3' }), { address: '192.0.2.5', user: 'ADMIN', password: 'pw', cipherSuite: 3 });
  t.same(parseBmc({ address: '192.0.2.5', user: 'ADMIN', password: 'pw', cipherSuite: 'auto' }), { address: '192.0.2.5', user: 'ADMIN', password: 'pw' }, 'auto is stored as no suite');
  t.throws(() => parseBmc({ address: '192.0.2.5', user: 'ADMIN', password: 'pw', cipherSuite: '0' }), { code: 'INVALID_VALUE', message: /cipher suite "0"/ }, 'suite 0 (no authentication) refused');
  // A hand-edited bmc.json: refused before ipmitool runs (no ipmitool on this PATH would fail otherwise).
  await t.rejects(runIpmiPower({ ...bmc, cipherSuite: 4 }, 'on', { PATH: '/nonexistent' }), { code: 'POWER_FAILED', message: 'ipmitool power on on 192.0.2.5: BMC cipher suite 4 is not "auto", 3 or 17' });
});

t.test('runIpmiPower drives a real ipmi_sim over RMCP+: on starts the VM, cycle restarts it, off stops it; the pinned cipher suite is used, none works too (slowly); bad password, no BMC and an unoffered suite are POWER_FAILED', { skip: skipReason(), timeout: 180_000 }, async (t) => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'uec-ipmi-sim-'));
  t.teardown(() => fs.rmSync(work, { recursive: true, force: true }));
  const net = createTestNetwork(t, { name: 'ipmi' });
  const srv = await net.ns('srv');
  const bmcNs = await net.ns('bmc');
  await net.link({ ns: srv, ifname: 'eth0', cidr: `${SERVER}/24` }, { ns: bmcNs, ifname: 'eth0', cidr: `${BMC}/24` });
  await net.waitOperstate(srv, 'eth0');

  const vmPort = planLab({ machines: 2, proxy: false }).machines[1]!.bmcVmPort!;
  const pidFile = path.join(work, 'qemu.pid');
  const qemu = ['qemu-system-x86_64', '-machine', 'pc', '-accel', 'tcg', '-nodefaults', '-display', 'none', '-S', '-m', '32', '-pidfile', pidFile, '-chardev', `socket,id=ipmi0,host=127.0.0.1,port=${vmPort},reconnect=2`, '-device', 'ipmi-bmc-extern,chardev=ipmi0,id=bmc0', '-device', 'isa-ipmi-kcs,bmc=bmc0'];
  const sim = net.spawn(bmcNs, writeIpmiSimFiles(work, { address: BMC, vmPort, user: 'admin', password: 'bmc-secret', startCommand: renderShellCommand(qemu) }));
  t.teardown(async () => {
    await sim.stop();
    const pid = alive(pidFile);
    if (pid) process.kill(pid, 'SIGKILL');
  });

  // The product's module, run in the server's namespace as the web UI would run it.
  const power = path.join(REPO_ROOT, 'packages/webui/power.ts');
  // ipmi_sim offers no suite 17 and does not answer "Get Channel Cipher Suites": pinned to 3.
  const ipmi = (action: string, address = BMC, password = 'bmc-secret', cipherSuite: number | undefined = 3) =>
    net.exec(srv, [process.execPath, '-r', 'ts-node/register/transpile-only', '-e', `require(${JSON.stringify(power)}).runIpmiPower(${JSON.stringify({ address, user: 'admin', password, cipherSuite })}, ${JSON.stringify(action)}).then((out) => console.log(out), (e) => { console.error(e.code + ': ' + e.message); process.exit(14); })`], { cwd: REPO_ROOT, timeoutMs: 90_000, env: { PATH: process.env.PATH, HOME: process.env.HOME, NODE_OPTIONS: '' } });

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
  await until('the VM restarted by the cycle', () => ![undefined, vm].includes(alive(pidFile)), 30_000);
  t.pass('power cycle stopped the VM and started a new one');

  // No suite pinned: ipmitool asks the BMC for its suites, gets no answer from ipmi_sim, and
  // falls back to 3 after about 10 s. Slow, but it works: the default for real BMCs.
  const auto = await ipmi('cycle', BMC, 'bmc-secret', undefined);
  t.equal(auto.code, 0, auto.stderr);
  t.equal(auto.stdout.trim(), 'Chassis Power Control: Cycle', 'without a pinned suite, ipmitool negotiates and falls back to 3');

  const off = await ipmi('off');
  t.equal(off.code, 0, off.stderr);
  t.equal(off.stdout.trim(), 'Chassis Power Control: Down/Off');
  await until('the VM stopped by the BMC', () => alive(pidFile) === undefined, 30_000);
  t.pass('power off stopped the VM');

  const wrong = await ipmi('on', BMC, 'wrong-password');
  t.equal(wrong.code, 14);
  t.match(wrong.stderr, /^POWER_FAILED: ipmitool power on on 10\.68\.0\.3 \(cipher suite 3\) failed \(exit 1\): /, 'a wrong password is one POWER_FAILED line naming the BMC');
  t.notOk(wrong.stderr.includes('wrong-password'), 'the password is not in the message');
  t.equal(alive(pidFile), undefined, 'and the machine stays off');

  const nobody = await ipmi('on', '10.68.0.9');
  t.equal(nobody.code, 14);
  t.match(nobody.stderr, /^POWER_FAILED: ipmitool power on on 10\.68\.0\.9 \(cipher suite 3\) failed/, 'no BMC at the address: POWER_FAILED');

  const suite17 = await ipmi('on', BMC, 'bmc-secret', 17);
  t.equal(suite17.code, 14);
  t.match(suite17.stderr, /^POWER_FAILED: ipmitool power on on 10\.68\.0\.3 \(cipher suite 17\) failed \(exit 1\): /, 'the pinned suite is what ipmitool asks for: ipmi_sim has no 17');
  t.equal(alive(pidFile), undefined, 'and the machine stays off');
});
