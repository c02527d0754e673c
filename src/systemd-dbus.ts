/**
 * systemd over D-Bus (dbus-next): org.freedesktop.systemd1.Manager on the system bus.
 * ReloadOrTryRestartUnit reloads a running unit and leaves a stopped one stopped, the same
 * as `systemctl try-reload-or-restart`; a service marked `restart` gets TryRestartUnit
 * (`systemctl try-restart`) instead. The bus address comes from DBUS_SYSTEM_BUS_ADDRESS
 * when set (tests start their own dbus-daemon), else the standard system socket.
 */
import * as dbus from 'dbus-next';
import { UecError, describeError } from './errors';
import type { ReloadOutcome, ServiceControl, ServiceSpec } from './services';

const SYSTEMD = 'org.freedesktop.systemd1';
const SYSTEMD_PATH = '/org/freedesktop/systemd1';
const MANAGER = 'org.freedesktop.systemd1.Manager';
const UNIT = 'org.freedesktop.systemd1.Unit';
const PROPERTIES = 'org.freedesktop.DBus.Properties';

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

async function unitActiveState(bus: dbus.MessageBus, unit: string): Promise<string | null> {
  try {
    const [unitPath] = await callBusMethod(bus, { destination: SYSTEMD, path: SYSTEMD_PATH, interface: MANAGER, member: 'GetUnit', signature: 's', body: [unit] });
    const [variant] = await callBusMethod(bus, { destination: SYSTEMD, path: String(unitPath), interface: PROPERTIES, member: 'Get', signature: 'ss', body: [UNIT, 'ActiveState'] });
    return String((variant as dbus.Variant).value);
  } catch (err) {
    if ((err as { type?: string }).type === 'org.freedesktop.systemd1.NoSuchUnit') return null;
    throw err;
  }
}

export function createSystemdControl(connect: () => dbus.MessageBus = connectSystemBus): ServiceControl {
  return {
    kind: 'systemd',
    async reload(service: ServiceSpec): Promise<ReloadOutcome> {
      let bus: dbus.MessageBus | undefined;
      try {
        const connected = (bus = connect());
        // dbus-next reports a failed connection only as an 'error' event: turn it into a rejection.
        const connectionFailed = new Promise<never>((_, reject) => connected.on('error', reject));
        const reload = async (): Promise<ReloadOutcome> => {
          const state = await unitActiveState(connected, service.unit);
          if (state !== 'active' && state !== 'reloading') return 'not-running';
          await callBusMethod(connected, { destination: SYSTEMD, path: SYSTEMD_PATH, interface: MANAGER, member: service.restart ? 'TryRestartUnit' : 'ReloadOrTryRestartUnit', signature: 'ss', body: [service.unit, 'replace'] });
          return 'reloaded';
        };
        return await Promise.race([reload(), connectionFailed]);
      } catch (err) {
        throw new UecError('SERVICE_FAILED', `systemd could not reload ${service.unit}: ${describeError(err)}`, { cause: err });
      } finally {
        bus?.disconnect();
      }
    },
  };
}
