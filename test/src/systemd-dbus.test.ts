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
import { UecError } from '../../src/errors';
import type { ServiceSpec } from '../../src/services';
import { callBusMethod, createSystemdControl } from '../../src/systemd-dbus';
import { FakeSystemdManager } from '../fakes/systemd-manager';
import { startDbusDaemon, stopChild, useSystemBusAddress, waitFor, type DbusDaemon } from '../helpers/dbus-daemon';

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

t.test('active unit → ReloadOrTryRestartUnit(unit, "replace") once, "reloaded"', async (t) => {
  const fake = await startFake(t);
  fake.setUnit('dnsmasq.service', 'active');
  fake.setUnit('apache2.service', 'active');
  const control = createSystemdControl();
  t.equal(control.kind, 'systemd');
  t.equal(await control.reload(spec('dnsmasq.service')), 'reloaded');
  t.same(fake.reloadCalls, [['dnsmasq.service', 'replace']]);
});

t.test('service marked restart → TryRestartUnit(unit, "replace"), no reload call', async (t) => {
  const fake = await startFake(t);
  fake.setUnit('uec-provisioning-dhcpd.service', 'active');
  t.equal(await createSystemdControl().reload({ ...spec('uec-provisioning-dhcpd.service'), restart: true }), 'reloaded');
  t.same(fake.restartCalls, [['uec-provisioning-dhcpd.service', 'replace']]);
  t.same(fake.reloadCalls, []);
});

t.test('unit in the middle of a reload ("reloading") → reloaded again', async (t) => {
  const fake = await startFake(t);
  fake.setUnit('dnsmasq.service', 'reloading');
  t.equal(await createSystemdControl().reload(spec('dnsmasq.service')), 'reloaded');
  t.same(fake.reloadCalls, [['dnsmasq.service', 'replace']]);
});

t.test('inactive unit → "not-running", no reload call', async (t) => {
  const fake = await startFake(t);
  fake.setUnit('dnsmasq.service', 'inactive');
  t.equal(await createSystemdControl().reload(spec('dnsmasq.service')), 'not-running');
  t.same(fake.reloadCalls, []);
});

t.test('unknown unit (NoSuchUnit) → "not-running", no reload call', async (t) => {
  const fake = await startFake(t);
  fake.setUnit('apache2.service', 'active');
  t.equal(await createSystemdControl().reload(spec('dnsmasq.service')), 'not-running');
  t.same(fake.reloadCalls, []);
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
