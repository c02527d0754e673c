/**
 * A real dbus-daemon on a private socket, for tests that talk D-Bus. It is configured as a
 * "system" bus with an allow-everything policy, listens only on a unix socket in its own
 * temp dir, and never touches the machine's real system bus. Point DBUS_SYSTEM_BUS_ADDRESS
 * at `address` for the duration of a test (useSystemBusAddress does that and restores it).
 *
 * The process helpers at the bottom (waitFor, stopChild) are shared with the tests that
 * start dnsmasq.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const DBUS_DAEMON = '/usr/bin/dbus-daemon';

export interface DbusDaemon {
  /** The address dbus-daemon printed, e.g. "unix:path=/tmp/x/bus.sock,guid=…". */
  readonly address: string;
  /** Its temp dir (config and socket). */
  readonly dir: string;
  /** Kill the daemon, wait for it to exit and remove the temp dir. Safe to call twice. */
  stop(): Promise<void>;
}

function busConfig(socketPath: string): string {
  return `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=${socketPath}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`;
}

export async function startDbusDaemon(timeoutMs = 10_000): Promise<DbusDaemon> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uec-dbus-'));
  // Daemons that drop privileges (dnsmasq runs as nobody) must reach the socket.
  fs.chmodSync(dir, 0o755);
  const configFile = path.join(dir, 'bus.conf');
  fs.writeFileSync(configFile, busConfig(path.join(dir, 'bus.sock')));

  const child = spawn(DBUS_DAEMON, [`--config-file=${configFile}`, '--nofork', '--print-address'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));

  const stop = async (): Promise<void> => {
    await stopChild(child);
    fs.rmSync(dir, { recursive: true, force: true });
  };

  try {
    const address = await new Promise<string>((resolve, reject) => {
      let stdout = '';
      const timer = setTimeout(() => reject(new Error(`dbus-daemon printed no address within ${timeoutMs} ms; stderr: ${stderr}`)), timeoutMs);
      child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
        stdout += chunk;
        const newline = stdout.indexOf('\n');
        if (newline >= 0) {
          clearTimeout(timer);
          resolve(stdout.slice(0, newline).trim());
        }
      });
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`dbus-daemon exited early (code ${code}, signal ${signal}); stderr: ${stderr}`));
      });
    });
    if (!address.startsWith('unix:')) throw new Error(`unexpected dbus-daemon address "${address}"`);
    return { address, dir, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * Set DBUS_SYSTEM_BUS_ADDRESS to `address`; the returned function puts back the previous
 * value (or removes the variable if it was unset).
 */
export function useSystemBusAddress(address: string): () => void {
  const had = Object.prototype.hasOwnProperty.call(process.env, 'DBUS_SYSTEM_BUS_ADDRESS');
  const previous = process.env.DBUS_SYSTEM_BUS_ADDRESS;
  process.env.DBUS_SYSTEM_BUS_ADDRESS = address;
  return () => {
    if (had) process.env.DBUS_SYSTEM_BUS_ADDRESS = previous;
    else delete process.env.DBUS_SYSTEM_BUS_ADDRESS;
  };
}

/** Poll `check` until it returns a value other than undefined/false, or fail after timeoutMs. */
export async function waitFor<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 10_000, intervalMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** SIGTERM a child we started and wait (bounded) for it to exit; SIGKILL if it will not. */
export async function stopChild(child: ChildProcess, timeoutMs = 5_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), timeoutMs)));
  const stubborn = await Promise.race([exited.then(() => false), timedOut]);
  clearTimeout(timer);
  if (stubborn) {
    child.kill('SIGKILL');
    await exited;
  }
}
