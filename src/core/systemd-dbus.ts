/**
 * systemd over D-Bus (dbus-next): org.freedesktop.systemd1.Manager on the system bus.
 * ReloadOrTryRestartUnit reloads a running unit and leaves a stopped one stopped, the same
 * as `systemctl try-reload-or-restart`; a service marked `restart` gets TryRestartUnit
 * (`systemctl try-restart`) instead. A unit that is not active (or reloading) is left alone:
 * "not-running". The bus address comes from DBUS_SYSTEM_BUS_ADDRESS when set (tests start
 * their own dbus-daemon), else the standard system socket.
 *
 * Like `systemctl` without --no-block, a reload waits for its job. Before the call it adds a
 * match rule for the Manager's JobRemoved(u id, o job, s unit, s result) signal, calls
 * Subscribe (systemd emits job signals only while a client is subscribed) and starts
 * collecting every JobRemoved that systemd's own connection sends; the call returns the
 * job's object path, and the reload waits for the JobRemoved carrying that path, which may
 * already have been collected (it could in principle overtake the method reply). Result
 * "done" → "reloaded"; any other ("failed", "timeout", "canceled", "dependency", "skipped",
 * …) → UecError SERVICE_FAILED "systemd could not reload|restart UNIT: job result RESULT",
 * with the unit's ActiveState, SubState and Result when they can be read. The whole reload,
 * job included, is bounded by `jobTimeoutMs` (90 s by default; SERVICE_FAILED when it runs
 * out). A method call systemd refuses (a masked unit: UnitMasked) is SERVICE_FAILED too.
 * The apply engine restores the previous files on any of these errors.
 *
 * One inactive unit is started instead of left alone: an enabled unit that systemd skipped
 * because a Condition…= did not hold (UnitFileState "enabled", ConditionResult false), such
 * as the dnsmasq units, whose ConditionPathExists= names the config file that exists only
 * once an interface is chosen. Otherwise choosing one would start nothing until the next
 * boot. StartUnit, waited for like a reload; unless /usr/sbin/policy-rc.d forbids the start
 * (exit 101: "denied-by-policy"), as deb-systemd-invoke would. "reloaded" when the unit is
 * then active, "not-running" when its condition still fails. A unit the admin stopped ran
 * (its condition held) and stays stopped; a disabled or masked one is never started.
 */
import * as fs from 'node:fs';
import * as dbus from 'dbus-next';
import { UecError, describeError } from './errors';
import { runCommand } from './run-command';
import type { ReloadOutcome, ServiceControl, ServiceSpec } from './services';

const SYSTEMD = 'org.freedesktop.systemd1';
const SYSTEMD_PATH = '/org/freedesktop/systemd1';
const MANAGER = 'org.freedesktop.systemd1.Manager';
const UNIT = 'org.freedesktop.systemd1.Unit';
const SERVICE = 'org.freedesktop.systemd1.Service';
const PROPERTIES = 'org.freedesktop.DBus.Properties';
const BUS = { destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus' };
const JOB_REMOVED_MATCH = `type='signal',sender='${SYSTEMD}',path='${SYSTEMD_PATH}',interface='${MANAGER}',member='JobRemoved'`;

/** How long a reload may take, job included, unless the options say otherwise. */
export const DEFAULT_JOB_TIMEOUT_MS = 90_000;
/** How long the unit's state may take to read, for the message of a failed job. */
const DETAILS_TIMEOUT_MS = 2_000;

/** Call one method on the system bus and return its reply body. */
export async function callBusMethod(
  bus: dbus.MessageBus,
  call: { destination: string; path: string; interface: string; member: string; signature?: string; body?: unknown[] },
): Promise<unknown[]> {
  const reply = await bus.call(
    new dbus.Message({
      destination: call.destination,
      path: call.path,
      interface: call.interface,
      member: call.member,
      signature: call.signature ?? '',
      body: call.body ?? [],
    }),
  );
  return (reply?.body as unknown[] | undefined) ?? [];
}

export function connectSystemBus(): dbus.MessageBus {
  return dbus.systemBus();
}

async function getProperty(bus: dbus.MessageBus, objectPath: string, iface: string, name: string): Promise<string> {
  const [variant] = await callBusMethod(bus, { destination: SYSTEMD, path: objectPath, interface: PROPERTIES, member: 'Get', signature: 'ss', body: [iface, name] });
  return String((variant as dbus.Variant).value);
}

async function unitActiveState(bus: dbus.MessageBus, unit: string): Promise<string | null> {
  try {
    const [unitPath] = await callBusMethod(bus, { destination: SYSTEMD, path: SYSTEMD_PATH, interface: MANAGER, member: 'GetUnit', signature: 's', body: [unit] });
    return await getProperty(bus, String(unitPath), UNIT, 'ActiveState');
  } catch (err) {
    if ((err as { type?: string }).type === 'org.freedesktop.systemd1.NoSuchUnit') return null;
    throw err;
  }
}

const POLICY_RC_D = '/usr/sbin/policy-rc.d';

/** Enabled, and skipped by systemd because a Condition…= failed at its last start. */
async function skippedByCondition(bus: dbus.MessageBus, unit: string): Promise<boolean> {
  try {
    const [unitPath] = await callBusMethod(bus, { destination: SYSTEMD, path: SYSTEMD_PATH, interface: MANAGER, member: 'LoadUnit', signature: 's', body: [unit] });
    return (await getProperty(bus, String(unitPath), UNIT, 'UnitFileState')) === 'enabled' && (await getProperty(bus, String(unitPath), UNIT, 'ConditionResult')) === 'false';
  } catch {
    return false;
  }
}

/** Does the local policy-rc.d (when there is one) allow starting `name`? Exit 101: no. */
async function policyAllowsStart(name: string): Promise<boolean> {
  if (!fs.existsSync(POLICY_RC_D)) return true;
  const r = await runCommand(POLICY_RC_D, [name, 'start']).catch(() => null);
  return r?.code !== 101;
}

/** " (ActiveState=failed, SubState=failed, Result=exit-code)", or what of it can be read quickly. */
async function describeUnitState(bus: dbus.MessageBus, unit: string): Promise<string> {
  const read = async (): Promise<string[]> => {
    const [unitPath] = await callBusMethod(bus, { destination: SYSTEMD, path: SYSTEMD_PATH, interface: MANAGER, member: 'GetUnit', signature: 's', body: [unit] });
    const wanted: [string, string][] = [[UNIT, 'ActiveState'], [UNIT, 'SubState']];
    if (unit.endsWith('.service')) wanted.push([SERVICE, 'Result']);
    const parts: string[] = [];
    for (const [iface, name] of wanted) {
      const value = await getProperty(bus, String(unitPath), iface, name).catch(() => null);
      if (value !== null) parts.push(`${name}=${value}`);
    }
    return parts;
  };
  const parts = await withTimeout(read(), DETAILS_TIMEOUT_MS, () => new Error('no answer')).catch(() => [] as string[]);
  return parts.length > 0 ? ` (${parts.join(', ')})` : '';
}

/** `promise`, or the error `onTimeout` makes if it has not settled within `ms`. */
async function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  try {
    return await Promise.race([promise, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Every JobRemoved signal on the connection from the moment it is created, with its job, so
 * that one arriving before the reply that names its job is not lost. Only signals sent by
 * `owner` (systemd's unique bus name, set once known) count: anyone on the bus may send a
 * signal that looks like systemd's.
 */
class JobRemovedCollector {
  private readonly seen: { sender: string; job: string; result: string }[] = [];
  private wake: (() => void) | undefined;
  owner: string | undefined;

  constructor(private readonly bus: dbus.MessageBus) {
    bus.on('message', this.onMessage);
  }

  private readonly onMessage = (msg: dbus.Message): void => {
    if (msg.type !== dbus.MessageType.SIGNAL || msg.path !== SYSTEMD_PATH || msg.interface !== MANAGER || msg.member !== 'JobRemoved') return;
    const [, job, , result] = msg.body as [number, string, string, string];
    this.seen.push({ sender: msg.sender, job: String(job), result: String(result) });
    this.wake?.();
  };

  /** The result of `job`, once systemd has removed it. */
  async result(job: string): Promise<string> {
    for (;;) {
      const found = this.seen.find((s) => s.job === job && s.sender === this.owner);
      if (found) return found.result;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  close(): void {
    this.bus.removeListener('message', this.onMessage);
    this.wake = undefined;
  }
}

export interface SystemdControlOptions {
  /** The system bus connection (a fresh one per reload, disconnected after it). */
  connect?: () => dbus.MessageBus;
  /** How long a reload may take, waiting for its job included (default 90 s). */
  jobTimeoutMs?: number;
}

export function createSystemdControl(options: SystemdControlOptions = {}): ServiceControl {
  const connect = options.connect ?? connectSystemBus;
  const jobTimeoutMs = options.jobTimeoutMs ?? DEFAULT_JOB_TIMEOUT_MS;
  return {
    kind: 'systemd',
    async reload(service: ServiceSpec): Promise<ReloadOutcome> {
      let verb = service.restart ? 'restart' : 'reload';
      let bus: dbus.MessageBus | undefined;
      let jobs: JobRemovedCollector | undefined;
      let job: string | undefined;
      try {
        const connected = (bus = connect());
        // dbus-next reports a failed connection only as an 'error' event: turn it into a rejection.
        const connectionFailed = new Promise<never>((_, reject) => connected.on('error', reject));
        const collector = (jobs = new JobRemovedCollector(connected));
        const reload = async (): Promise<ReloadOutcome> => {
          const state = await unitActiveState(connected, service.unit);
          let method = service.restart ? 'TryRestartUnit' : 'ReloadOrTryRestartUnit';
          if (state !== 'active' && state !== 'reloading') {
            if (!(await skippedByCondition(connected, service.unit))) return 'not-running';
            if (!(await policyAllowsStart(service.name))) return 'denied-by-policy';
            method = 'StartUnit';
            verb = 'start';
          }
          await callBusMethod(connected, { ...BUS, member: 'AddMatch', signature: 's', body: [JOB_REMOVED_MATCH] });
          await callBusMethod(connected, { destination: SYSTEMD, path: SYSTEMD_PATH, interface: MANAGER, member: 'Subscribe' });
          const [owner] = await callBusMethod(connected, { ...BUS, member: 'GetNameOwner', signature: 's', body: [SYSTEMD] });
          collector.owner = String(owner);
          const [jobPath] = await callBusMethod(connected, { destination: SYSTEMD, path: SYSTEMD_PATH, interface: MANAGER, member: method, signature: 'ss', body: [service.unit, 'replace'] });
          job = String(jobPath);
          const result = await collector.result(job);
          if (result === 'done') {
            if (method !== 'StartUnit') return 'reloaded';
            return (await unitActiveState(connected, service.unit)) === 'active' ? 'reloaded' : 'not-running';
          }
          throw new UecError('SERVICE_FAILED', `systemd could not ${verb} ${service.unit}: job result ${result}${await describeUnitState(connected, service.unit)}`);
        };
        const timedOut = new Error('timed out');
        try {
          return await withTimeout(Promise.race([reload(), connectionFailed]), jobTimeoutMs, () => timedOut);
        } catch (err) {
          if (err !== timedOut) throw err;
          const what = job ? `job ${job} did not finish within ${jobTimeoutMs / 1000} s${await describeUnitState(connected, service.unit)}` : `no answer within ${jobTimeoutMs / 1000} s`;
          throw new UecError('SERVICE_FAILED', `systemd could not ${verb} ${service.unit}: ${what}`);
        }
      } catch (err) {
        if (err instanceof UecError) throw err;
        throw new UecError('SERVICE_FAILED', `systemd could not ${verb} ${service.unit}: ${describeError(err)}`, { cause: err });
      } finally {
        jobs?.close();
        bus?.disconnect();
      }
    },
  };
}
