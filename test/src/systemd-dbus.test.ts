/**
 * systemd-dbus.ts against a real dbus-daemon (private socket, test/helpers/dbus-daemon.ts).
 * systemd itself cannot run here, so org.freedesktop.systemd1 is owned by the fake in
 * test/fakes/systemd-manager.ts; callBusMethod is also checked against a real third-party
 * service, dnsmasq's D-Bus interface (port=0 and no dhcp-range: it serves nothing).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as dbus from 'dbus-next';
import t, { type Test } from 'tap';
import { applyPlans, type FilePlan } from '../../src/core/apply';
import { UecError } from '../../src/core/errors';
import { SILENT_LOGGER } from '../../src/core/log';
import type { ServiceSpec } from '../../src/core/services';
import { callBusMethod, createSystemdControl } from '../../src/core/systemd-dbus';
import { FakeSystemdManager } from '../fakes/systemd-manager';
import { startDbusDaemon, stopChild, useSystemBusAddress, waitFor, type DbusDaemon } from '../helpers/dbus-daemon';
import { scratchRoot, snapshotTree } from '../helpers/scratch';

const DNSMASQ = '/usr/sbin/dnsmasq';
const DNSMASQ_NAME = 'uk.org.thekelleys.dnsmasq';

let daemon: DbusDaemon | undefined;

t.before(async () => {
  daemon = await startDbusDaemon();
  t.teardown(useSystemBusAddress(daemon.address));
});
t.teardown(async () => {
  await daemon?.stop();
});

function spec(unit: string): ServiceSpec {
  return { name: unit.replace(/\.service$/, ''), unit };
}

/** A client connection to the test bus, disconnected at the end of the test. */
function testBus(t: Test): dbus.MessageBus {
  const bus = dbus.systemBus();
  bus.on('error', (err) => t.fail(`test bus connection error: ${String(err)}`));
  t.teardown(() => bus.disconnect());
  return bus;
}

async function nameHasOwner(bus: dbus.MessageBus, name: string): Promise<boolean> {
  const [owned] = await callBusMethod(bus, {
    destination: 'org.freedesktop.DBus',
    path: '/org/freedesktop/DBus',
    interface: 'org.freedesktop.DBus',
    member: 'NameHasOwner',
    signature: 's',
    body: [name],
  });
  return owned === true;
}

async function startFake(t: Test): Promise<FakeSystemdManager> {
  if (!daemon) throw new Error('dbus-daemon not started');
  const fake = await FakeSystemdManager.start(daemon.address);
  t.teardown(() => fake.stop());
  return fake;
}

// Real systemd (debian/tests/systemd-dbus, run under systemd as PID 1 by the DEP-8 suite)
// proves the rest against the installed module: an active unit reloaded and its job
// awaited, a restart spec restarting it, inactive and unknown units left alone, a failed
// reload job, a failed restart and a masked unit reported. The stand-in Manager stays only
// for what real systemd cannot be made to do on demand: a unit caught mid-reload, job
// results other than done and failed, JobRemoved before the method reply, a forged
// JobRemoved, a job that never ends.

t.test('unit in the middle of a reload ("reloading") → reloaded again', async (t) => {
  const fake = await startFake(t);
  fake.setUnit('dnsmasq.service', 'reloading');
  t.equal(await createSystemdControl().reload(spec('dnsmasq.service')), 'reloaded');
  t.same(fake.reloadCalls, [['dnsmasq.service', 'replace']]);
});

/** The error a reload rejects with (fails the test if it resolves). */
async function reloadError(service: ServiceSpec, options: Parameters<typeof createSystemdControl>[0] = {}): Promise<UecError> {
  const err = await createSystemdControl(options)
    .reload(service)
    .then(
      (outcome) => new Error(`resolved with "${outcome}"`),
      (e: unknown) => e,
    );
  if (!(err instanceof UecError)) throw err;
  return err;
}

t.test('every job result but "done" is a failure', async (t) => {
  const fake = await startFake(t);
  for (const result of ['timeout', 'canceled', 'dependency', 'skipped', 'invalid']) {
    fake.setUnit('dnsmasq.service', 'active', { jobResult: result });
    const err = await reloadError(spec('dnsmasq.service'));
    t.equal(err.code, 'SERVICE_FAILED', result);
    t.match(err.message, new RegExp(`^systemd could not reload dnsmasq\\.service: job result ${result} \\(ActiveState=active, SubState=running, Result=success\\)$`));
  }
});

t.test('JobRemoved sent before the method reply is still matched', async (t) => {
  const fake = await startFake(t);
  fake.jobRemovedBeforeReply = true;
  fake.setUnit('dnsmasq.service', 'active');
  t.equal(await createSystemdControl().reload(spec('dnsmasq.service')), 'reloaded');
  fake.setUnit('dnsmasq.service', 'active', { jobResult: 'failed' });
  t.match((await reloadError(spec('dnsmasq.service'))).message, /job result failed/);
});

t.test('a JobRemoved for the same job from another sender does not count, broadcast or sent to the caller', async (t) => {
  const fake = await startFake(t);
  fake.setUnit('dnsmasq.service', 'active', { jobResult: 'failed' });
  const spoofer = testBus(t);
  const spoof = (job: string, destination?: string) =>
    spoofer.send(new dbus.Message({ type: dbus.MessageType.SIGNAL, path: '/org/freedesktop/systemd1', interface: 'org.freedesktop.systemd1.Manager', member: 'JobRemoved', signature: 'uoss', body: [1, job, 'dnsmasq.service', 'done'], destination }));
  fake.onJob = (job) => spoof(job);
  t.match((await reloadError(spec('dnsmasq.service'))).message, /job result failed/, 'broadcast');
  // A signal addressed to the connection passes every match rule: only its sender tells.
  fake.onJob = (job, caller) => spoof(job, caller);
  t.match((await reloadError(spec('dnsmasq.service'))).message, /job result failed/, 'unicast');
});

t.test('a job that never ends → SERVICE_FAILED after jobTimeoutMs', async (t) => {
  const fake = await startFake(t);
  fake.setUnit('apache2.service', 'active', { jobResult: null, subState: 'reloading' });
  const started = Date.now();
  const err = await reloadError(spec('apache2.service'), { jobTimeoutMs: 300 });
  t.ok(Date.now() - started >= 300, 'waited for the timeout');
  t.equal(err.code, 'SERVICE_FAILED');
  t.match(err.message, /^systemd could not reload apache2\.service: job \/org\/freedesktop\/systemd1\/job\/\d+ did not finish within 0\.3 s \(ActiveState=active, SubState=reloading, Result=success\)$/);
});

t.test('apply: a reload job that fails restores the previous files and reloads each service onto them', async (t) => {
  const fake = await startFake(t);
  const paths = scratchRoot(t);
  const APACHE = spec('apache2.service');
  const DNSMASQ = spec('dnsmasq.service');
  const plans = (range: string): FilePlan[] => [
    { path: '/etc/apache2/conf-available/uec-test.conf', content: `# ${range}\n`, mode: 0o644, services: [APACHE] },
    { path: '/etc/dnsmasq.d/uec-test.conf', content: `port=0\ndhcp-range=${range}\n`, mode: 0o644, services: [DNSMASQ] },
  ];
  const apply = (range: string) => applyPlans({ paths, component: 'test', plans: plans(range), services: createSystemdControl(), log: SILENT_LOGGER });
  fake.setUnit('apache2.service', 'active');
  fake.setUnit('dnsmasq.service', 'active');
  t.same((await apply('10.9.0.10,10.9.0.50,12h')).reloaded, ['apache2', 'dnsmasq']);
  const before = snapshotTree(paths.root);
  fake.reloadCalls.length = 0;
  fake.setUnit('dnsmasq.service', 'active', { jobResult: 'failed', afterJob: { activeState: 'failed', subState: 'failed', result: 'exit-code' } });
  await t.rejects(apply('10.9.0.10,10.9.0.70,12h'), {
    code: 'SERVICE_FAILED',
    message: 'systemd could not reload dnsmasq.service: job result failed (ActiveState=failed, SubState=failed, Result=exit-code); previous files restored',
  });
  t.same(snapshotTree(paths.root), before, 'previous files back');
  t.same(
    fake.reloadCalls.map(([unit]) => unit),
    ['apache2.service', 'dnsmasq.service', 'apache2.service'],
    'apache2, reloaded onto the new files, is reloaded onto the old ones; dnsmasq, now failed, is not-running',
  );
});

t.test('no systemd manager on the bus → UecError SERVICE_FAILED', async (t) => {
  const bus = testBus(t);
  // The fakes of earlier tests released the name; make sure nobody owns it now.
  await waitFor('org.freedesktop.systemd1 to have no owner', async () => !(await nameHasOwner(bus, 'org.freedesktop.systemd1')));
  const err = await createSystemdControl()
    .reload(spec('dnsmasq.service'))
    .then(
      (outcome) => new Error(`resolved with "${outcome}"`),
      (e: unknown) => e,
    );
  t.type(err, UecError);
  t.equal((err as UecError).code, 'SERVICE_FAILED');
  t.match((err as UecError).message, /dnsmasq\.service/);
  t.match(String((err as UecError).cause), /org\.freedesktop\.systemd1/);
});

t.test('callBusMethod: GetVersion from a real dnsmasq on the test bus', async (t) => {
  if (!daemon) throw new Error('dbus-daemon not started');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uec-dnsmasq-dbus-'));
  fs.chmodSync(dir, 0o755);
  // Safe flags only: no DNS port, no DHCP/TFTP, no config file; stays in the foreground.
  const child = spawn(
    DNSMASQ,
    ['--keep-in-foreground', '--enable-dbus', '--port=0', '--no-resolv', '--no-hosts', '--conf-file=/dev/null', `--pid-file=${path.join(dir, 'pid')}`, '--log-facility=-'],
    { env: { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: daemon.address }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  t.teardown(async () => {
    await stopChild(child);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const bus = testBus(t);
  await waitFor(`dnsmasq to own ${DNSMASQ_NAME}`, async () => {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`dnsmasq exited (code ${child.exitCode}, signal ${child.signalCode}): ${output}`);
    return nameHasOwner(bus, DNSMASQ_NAME);
  });

  const reply = await callBusMethod(bus, { destination: DNSMASQ_NAME, path: '/uk/org/thekelleys/dnsmasq', interface: DNSMASQ_NAME, member: 'GetVersion' });
  t.equal(reply.length, 1);
  t.match(reply[0], /^2\./);
});
