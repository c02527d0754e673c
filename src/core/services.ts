/**
 * Reloading the daemons whose files changed. With systemd running, through its D-Bus API
 * (systemd-dbus.ts); otherwise invoke-rc.d (which honours policy-rc.d), or a signal to the
 * pid in the service's pid file (under a --root scratch tree, where no init script runs).
 */
import * as fs from 'node:fs';
import { UecError, describeError } from './errors';
import { readFileIfExists } from './fs-ops';
import type { Paths } from './paths';
import { runCommand } from './run-command';

export interface ServiceSpec {
  /** The name a sysadmin uses: the init script and the unit without ".service". */
  name: string;
  /** The systemd unit, for example "dnsmasq.service". */
  unit: string;
  /** System path of the pid file, for the signal fallback. */
  pidFile?: string;
  /** The signal that makes the daemon re-read its files (dnsmasq: SIGHUP). */
  reloadSignal?: NodeJS.Signals;
  /**
   * True when the daemon re-reads the file only on a restart (dnsmasq and its main config):
   * the service is restarted, not reloaded. With a pid file only, nothing here may restart
   * it: the outcome is "restart-needed", and the process is not signalled.
   */
  restart?: boolean;
  /**
   * True when the daemon notices new files by itself (dnsmasq's dhcp-hostsdir, inotify): a
   * file that did not exist before needs no reload; a changed or removed one still does.
   */
  picksUpNewFiles?: boolean;
}

/**
 * "restart-needed": the daemon runs but only a restart makes it read the changed file, and
 * nothing here may restart it (a pid file under a scratch root): a signal would not do.
 */
export type ReloadOutcome = 'reloaded' | 'not-running' | 'denied-by-policy' | 'restart-needed';

export interface ServiceControl {
  readonly kind: 'systemd' | 'sysv' | 'none';
  reload(service: ServiceSpec): Promise<ReloadOutcome>;
}

/**
 * Signal the process in a pid file; "not-running" when there is no live process. A service
 * that re-reads its file only on a restart (dnsmasq's main configuration: SIGHUP re-reads
 * only its hosts and lease files) is not signalled: "restart-needed".
 */
export async function signalPidFile(paths: Paths, service: ServiceSpec): Promise<ReloadOutcome> {
  if (!service.pidFile || !service.reloadSignal) return 'not-running';
  const text = (await readFileIfExists(paths.resolve(service.pidFile)))?.toString('utf8').trim();
  // 0 or a negative number would signal a whole process group: only a real pid counts.
  if (!text || !/^[1-9]\d{0,9}$/.test(text)) return 'not-running';
  try {
    if (service.restart) {
      process.kill(Number(text), 0);
      return 'restart-needed';
    }
    process.kill(Number(text), service.reloadSignal);
    return 'reloaded';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return 'not-running';
    throw new UecError('SERVICE_FAILED', `cannot signal ${service.name} (pid ${text}): ${describeError(err)}`, { cause: err });
  }
}

/** Without systemd: invoke-rc.d on the real root, the pid file under a scratch root. */
export function createSysvControl(paths: Paths): ServiceControl {
  return {
    kind: 'sysv',
    async reload(service) {
      const initScript = paths.resolve(`/etc/init.d/${service.name}`);
      if (paths.root === '/' && fs.existsSync(initScript) && fs.existsSync('/usr/sbin/invoke-rc.d')) {
        const action = service.restart ? 'restart' : 'force-reload';
        const result = await runCommand('/usr/sbin/invoke-rc.d', ['--quiet', service.name, action]);
        const said = `${result.stderr}${result.stdout}`;
        if (/policy-rc\.d denied/.test(said)) return 'denied-by-policy';
        if (result.code === 0) return 'reloaded';
        throw new UecError('SERVICE_FAILED', `invoke-rc.d ${service.name} ${action} failed (exit ${result.code}): ${said.trim().split('\n')[0] ?? ''}`);
      }
      return signalPidFile(paths, service);
    },
  };
}

export const NO_SERVICE_CONTROL: ServiceControl = {
  kind: 'none',
  reload: async () => 'not-running',
};

/** Is systemd the init system? The same check as sd_booted(3). */
export function systemdIsRunning(): boolean {
  return fs.existsSync('/run/systemd/system');
}

/**
 * The service control for this machine. UEC_PROVISIONING_SERVICE_CONTROL (systemd, sysv or
 * none) overrides the detection, for tests and for building images.
 */
export async function createServiceControl(paths: Paths, env: NodeJS.ProcessEnv = process.env): Promise<ServiceControl> {
  const forced = env.UEC_PROVISIONING_SERVICE_CONTROL;
  if (forced === 'none') return NO_SERVICE_CONTROL;
  if (forced === 'sysv') return createSysvControl(paths);
  if (forced === 'systemd' || (forced === undefined && paths.root === '/' && systemdIsRunning())) {
    const { createSystemdControl } = await import('./systemd-dbus');
    return createSystemdControl();
  }
  if (forced !== undefined) throw new UecError('USAGE', `UEC_PROVISIONING_SERVICE_CONTROL must be systemd, sysv or none, not "${forced}"`);
  return createSysvControl(paths);
}
