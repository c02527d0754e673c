/**
 * services.ts without systemd: the pid-file signal fallback under a scratch root, with a
 * real dnsmasq as the daemon, and the UEC_PROVISIONING_SERVICE_CONTROL override.
 *
 * dnsmasq and the network: no DHCP/TFTP options, no config file, no upstream servers
 * (--no-resolv), and DNS bound to 127.0.0.1 only on an ephemeral port. A DNS port is
 * needed because with --port=0 dnsmasq never reads hosts files ("DNS disabled"), so a
 * SIGHUP would have nothing to show; a loopback-only listener sends nothing on the network.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import t, { type Test } from 'tap';
import { UecError } from '../../src/core/errors';
import type { Paths } from '../../src/core/paths';
import { createServiceControl, createSysvControl, type ServiceSpec } from '../../src/core/services';
import { stopChild, waitFor } from '../helpers/dbus-daemon';
import { put, scratchRoot } from '../helpers/scratch';

const DNSMASQ = '/usr/sbin/dnsmasq';
const SPEC: ServiceSpec = { name: 'uec-test-dnsmasq', unit: 'x.service', pidFile: '/run/uec-test/dnsmasq.pid', reloadSignal: 'SIGHUP' };
const CONTROL_ENV = 'UEC_PROVISIONING_SERVICE_CONTROL';

/** A scratch root (test/helpers/scratch.ts) whose /run/uec-test exists, and the resolved pid file. */
function rootWithRunDir(t: Test): { paths: Paths; pidFile: string } {
  const paths = scratchRoot(t);
  const pidFile = paths.resolve(SPEC.pidFile ?? '');
  fs.mkdirSync(path.dirname(pidFile), { recursive: true, mode: 0o755 });
  return { paths, pidFile };
}

async function freeLoopbackPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

function hostsLine(count: number, hostsFile: string): string {
  return `read ${hostsFile} - ${count} names`;
}

t.test('sysv, live dnsmasq from its pid file → SIGHUP, "reloaded", hosts file read again', async (t) => {
  const { paths, pidFile } = rootWithRunDir(t);
  const hostsFile = put(paths, '/etc/uec-test/hosts', '192.0.2.10 alpha.test\n');
  const logFile = paths.resolve('/var/log/uec-test-dnsmasq.log');
  fs.mkdirSync(path.dirname(logFile), { recursive: true, mode: 0o755 });

  const port = await freeLoopbackPort();
  const child = spawn(
    DNSMASQ,
    [
      '--keep-in-foreground',
      `--port=${port}`,
      '--listen-address=127.0.0.1',
      '--bind-interfaces',
      '--no-resolv',
      '--no-hosts',
      '--conf-file=/dev/null',
      `--pid-file=${pidFile}`,
      `--log-facility=${logFile}`,
      `--addn-hosts=${hostsFile}`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  t.teardown(() => stopChild(child));
  const alive = (): void => {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`dnsmasq exited (code ${child.exitCode}, signal ${child.signalCode}): ${output}${readText(logFile)}`);
    }
  };

  // Started: its pid file names it and it has read the hosts file once.
  await waitFor('dnsmasq to write its pid file and read the hosts file', () => {
    alive();
    return readText(pidFile).trim() === String(child.pid) && readText(logFile).includes(hostsLine(1, hostsFile));
  });

  // A second name, which only a re-read can notice (dnsmasq does not watch addn-hosts).
  fs.writeFileSync(hostsFile, '192.0.2.10 alpha.test\n192.0.2.11 beta.test\n');
  t.notOk(readText(logFile).includes(hostsLine(2, hostsFile)), 'the new hosts file is not read before the reload');

  const control = createSysvControl(paths);
  t.equal(control.kind, 'sysv');
  t.equal(await control.reload(SPEC), 'reloaded');

  const log = await waitFor('dnsmasq to re-read the hosts file', () => {
    alive();
    const text = readText(logFile);
    return text.includes(hostsLine(2, hostsFile)) && text;
  });
  t.equal(log.split('\n').filter((line) => line.includes(`read ${hostsFile} - `)).length, 2, 'hosts file read at start and once more on SIGHUP');
  t.equal(child.exitCode, null, 'dnsmasq survived the signal');
  t.equal(child.signalCode, null);
});

t.test('sysv, no pid file → "not-running"', async (t) => {
  const { paths, pidFile } = rootWithRunDir(t);
  t.notOk(fs.existsSync(pidFile));
  t.equal(await createSysvControl(paths).reload(SPEC), 'not-running');
});

t.test('sysv, pid file naming a dead process → "not-running"', async (t) => {
  const { paths, pidFile } = rootWithRunDir(t);
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await new Promise<void>((resolve, reject) => child.once('error', reject).once('exit', () => resolve()));
  const pid = child.pid;
  if (pid === undefined) throw new Error('no pid for the short-lived child');
  t.notOk(fs.existsSync(`/proc/${pid}`), `pid ${pid} is gone`);
  fs.writeFileSync(pidFile, `${pid}\n`);
  t.equal(await createSysvControl(paths).reload(SPEC), 'not-running');
});

t.test('sysv, garbage in the pid file → "not-running"', async (t) => {
  const { paths, pidFile } = rootWithRunDir(t);
  const control = createSysvControl(paths);
  for (const garbage of ['not a pid\n', '', '   \n', '1234abc\n', '12 34\n']) {
    fs.writeFileSync(pidFile, garbage);
    t.equal(await control.reload(SPEC), 'not-running', JSON.stringify(garbage));
  }
});

t.test('createServiceControl and UEC_PROVISIONING_SERVICE_CONTROL', async (t) => {
  const paths = scratchRoot(t);

  t.test('"bogus" → UecError USAGE', async (t) => {
    const err = await createServiceControl(paths, { [CONTROL_ENV]: 'bogus' }).then(
      (control) => new Error(`resolved with kind "${control.kind}"`),
      (e: unknown) => e,
    );
    t.type(err, UecError);
    t.equal((err as UecError).code, 'USAGE');
    t.match((err as UecError).message, /"bogus"/);
  });

  t.test('"none" → kind none, every reload "not-running"', async (t) => {
    const control = await createServiceControl(paths, { [CONTROL_ENV]: 'none' });
    t.equal(control.kind, 'none');
    t.equal(await control.reload(SPEC), 'not-running');
  });

  t.test('"sysv" → kind sysv', async (t) => {
    const control = await createServiceControl(paths, { [CONTROL_ENV]: 'sysv' });
    t.equal(control.kind, 'sysv');
    t.equal(await control.reload(SPEC), 'not-running', 'no pid file under the scratch root');
  });

  t.test('unset, scratch root → kind sysv (systemd is only used on the real root)', async (t) => {
    const control = await createServiceControl(paths, {});
    t.equal(control.kind, 'sysv');
  });
});

t.test('sysv under a scratch root, a service that reads its file only on restart → "restart-needed", not signalled', async (t) => {
  const { paths, pidFile } = rootWithRunDir(t);
  // A live process that records any SIGHUP it gets (dnsmasq would re-read only its hosts files).
  const child = spawn(process.execPath, ['-e', "process.on('SIGHUP', () => { console.log('HUP'); }); setInterval(() => {}, 1000);"], { stdio: ['ignore', 'pipe', 'ignore'] });
  t.teardown(() => void child.kill('SIGKILL'));
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
  await new Promise((r) => setTimeout(r, 300));
  fs.writeFileSync(pidFile, `${child.pid}\n`);
  t.equal(await createSysvControl(paths).reload({ ...SPEC, restart: true }), 'restart-needed');
  await new Promise((r) => setTimeout(r, 300));
  t.equal(out, '', 'no SIGHUP: it would not make dnsmasq read its main configuration');
  t.equal(child.exitCode, null, 'the process is untouched');
  t.equal(await createSysvControl(paths).reload(SPEC), 'reloaded', 'a plain reload spec is still signalled');
  await new Promise((r) => setTimeout(r, 300));
  t.equal(out, 'HUP\n');
});
