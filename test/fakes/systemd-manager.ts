/**
 * FAKE systemd Manager on D-Bus — systemd cannot run as PID 1 on this machine, so the tests
 * of systemd-dbus.ts talk to this stand-in instead, over a real dbus-daemon
 * (test/helpers/dbus-daemon.ts). It owns org.freedesktop.systemd1 and implements only what
 * the code under test calls:
 *
 *   /org/freedesktop/systemd1  org.freedesktop.systemd1.Manager
 *     GetUnit(s name) -> o                 NoSuchUnit error for units not configured
 *     ReloadOrTryRestartUnit(s, s) -> o    recorded, returns a job path
 *     TryRestartUnit(s, s) -> o            recorded, returns a job path
 *   /org/freedesktop/systemd1/unit/<escaped name>  org.freedesktop.systemd1.Unit
 *     ActiveState (s, read-only), through org.freedesktop.DBus.Properties.Get
 *
 * It does not start, stop or reload anything; a reload call leaves ActiveState unchanged.
 */
import * as dbus from 'dbus-next';

const SYSTEMD = 'org.freedesktop.systemd1';
const SYSTEMD_PATH = '/org/freedesktop/systemd1';
const MANAGER = 'org.freedesktop.systemd1.Manager';
const UNIT = 'org.freedesktop.systemd1.Unit';

/** systemd's object path for a unit: bus_label_escape, every byte outside [A-Za-z0-9] as _xx. */
export function unitObjectPath(unit: string): string {
  const label = [...Buffer.from(unit, 'utf8')]
    .map((byte, i) => {
      const c = String.fromCharCode(byte);
      const plain = /[A-Za-z]/.test(c) || (i > 0 && /[0-9]/.test(c));
      return plain ? c : `_${byte.toString(16).padStart(2, '0')}`;
    })
    .join('');
  return `${SYSTEMD_PATH}/unit/${label || '_'}`;
}

class UnitInterface extends dbus.interface.Interface {
  constructor(public activeState: string) {
    super(UNIT);
  }

  get ActiveState(): string {
    return this.activeState;
  }
}
UnitInterface.configureMembers({
  properties: { ActiveState: { signature: 's', access: dbus.interface.ACCESS_READ } },
});

class ManagerInterface extends dbus.interface.Interface {
  constructor(private readonly fake: FakeSystemdManager) {
    super(MANAGER);
  }

  GetUnit(name: string): string {
    if (!this.fake.units.has(name)) throw new dbus.DBusError('org.freedesktop.systemd1.NoSuchUnit', `Unit ${name} not loaded.`);
    return unitObjectPath(name);
  }

  ReloadOrTryRestartUnit(name: string, mode: string): string {
    this.fake.reloadCalls.push([name, mode]);
    return `${SYSTEMD_PATH}/job/${this.fake.reloadCalls.length}`;
  }

  TryRestartUnit(name: string, mode: string): string {
    this.fake.restartCalls.push([name, mode]);
    return `${SYSTEMD_PATH}/job/r${this.fake.restartCalls.length}`;
  }
}
ManagerInterface.configureMembers({
  methods: {
    GetUnit: { inSignature: 's', outSignature: 'o' },
    ReloadOrTryRestartUnit: { inSignature: 'ss', outSignature: 'o' },
    TryRestartUnit: { inSignature: 'ss', outSignature: 'o' },
  },
});

export class FakeSystemdManager {
  /** Every ReloadOrTryRestartUnit call, as [unit, mode], in order. */
  readonly reloadCalls: [string, string][] = [];
  /** Every TryRestartUnit call (services marked `restart`), as [unit, mode], in order. */
  readonly restartCalls: [string, string][] = [];
  /** The configured units, by name. */
  readonly units = new Map<string, UnitInterface>();

  private constructor(private readonly bus: dbus.MessageBus) {}

  /**
   * Connect to the bus at `address`, export the Manager and take the name
   * org.freedesktop.systemd1 (fails if someone else owns it).
   */
  static async start(address: string): Promise<FakeSystemdManager> {
    const bus = dbus.sessionBus({ busAddress: address });
    // A connection error (the bus went away first) must not become an uncaught 'error' event.
    bus.on('error', () => undefined);
    const fake = new FakeSystemdManager(bus);
    bus.export(SYSTEMD_PATH, new ManagerInterface(fake));
    try {
      const reply = await bus.requestName(SYSTEMD, dbus.NameFlag.DO_NOT_QUEUE);
      if (reply !== dbus.RequestNameReply.PRIMARY_OWNER) throw new Error(`could not own ${SYSTEMD} (RequestName reply ${reply})`);
    } catch (err) {
      bus.disconnect();
      throw err;
    }
    return fake;
  }

  /** Add a unit, or change the ActiveState of one already added. */
  setUnit(unit: string, activeState: string): void {
    const existing = this.units.get(unit);
    if (existing) {
      existing.activeState = activeState;
      return;
    }
    const iface = new UnitInterface(activeState);
    this.units.set(unit, iface);
    this.bus.export(unitObjectPath(unit), iface);
  }

  /** Give up the name (waiting at most timeoutMs for the bus to answer), then disconnect. */
  async stop(timeoutMs = 5_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.bus.releaseName(SYSTEMD),
        new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`ReleaseName got no answer within ${timeoutMs} ms`)), timeoutMs))),
      ]);
    } finally {
      clearTimeout(timer);
      this.bus.disconnect();
    }
  }
}
