/**
 * FAKE systemd Manager on D-Bus, kept only for what real systemd cannot be made to do on
 * demand (a unit caught mid-reload, job results such as timeout or dependency, JobRemoved
 * before the method reply, a forged JobRemoved, a job that never ends); everything real
 * systemd can do is proven against it by debian/tests/systemd-dbus in the DEP-8 suite. The
 * unit tests of systemd-dbus.ts talk to this stand-in over a real dbus-daemon
 * (test/helpers/dbus-daemon.ts). It owns org.freedesktop.systemd1 and implements only what
 * the code under test calls:
 *
 *   /org/freedesktop/systemd1  org.freedesktop.systemd1.Manager
 *     GetUnit(s name) -> o                 NoSuchUnit error for units not configured
 *     Subscribe()                          counted; job signals are sent only after one
 *     ReloadOrTryRestartUnit(s, s) -> o    recorded, queues a job and returns its path
 *     TryRestartUnit(s, s) -> o            recorded, queues a job and returns its path
 *       (both: UnitMasked error for a unit set up as masked)
 *     signal JobRemoved(u id, o job, s unit, s result)   when a job ends
 *   /org/freedesktop/systemd1/unit/<escaped name>  org.freedesktop.systemd1.Unit
 *     ActiveState, SubState (s, read-only), through org.freedesktop.DBus.Properties.Get
 *   the same path, org.freedesktop.systemd1.Service
 *     Result (s, read-only)
 *
 * It does not start, stop or reload anything. A job ends with the unit's `jobResult`
 * ("done" unless set; null: it never ends), then the unit takes its `afterJob` state. As
 * real systemd does, JobRemoved follows the method reply, and another unit's job (result
 * "failed") ends just before it; `jobRemovedBeforeReply` sends the signal before the reply
 * instead, which systemd could in theory do. `onJob` lets a test act (send a spoofed
 * signal, say) as a job is queued.
 */
import * as dbus from 'dbus-next';

const SYSTEMD = 'org.freedesktop.systemd1';
const SYSTEMD_PATH = '/org/freedesktop/systemd1';
const MANAGER = 'org.freedesktop.systemd1.Manager';
const UNIT = 'org.freedesktop.systemd1.Unit';
const SERVICE = 'org.freedesktop.systemd1.Service';

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

export interface FakeUnitState {
  activeState: string;
  subState?: string;
  /** The service's Result property. */
  result?: string;
}

export interface FakeUnit extends FakeUnitState {
  /** How this unit's reload or restart jobs end: a JobRemoved result, or null for never. */
  jobResult: string | null;
  /** The state the unit takes when a job ends. */
  afterJob?: Partial<FakeUnitState>;
  /** Masked: the reload and restart calls fail with UnitMasked. */
  masked: boolean;
}

class UnitInterface extends dbus.interface.Interface {
  constructor(private readonly unit: FakeUnit) {
    super(UNIT);
  }

  get ActiveState(): string {
    return this.unit.activeState;
  }

  get SubState(): string {
    return this.unit.subState ?? (this.unit.activeState === 'active' ? 'running' : 'dead');
  }
}
UnitInterface.configureMembers({
  properties: {
    ActiveState: { signature: 's', access: dbus.interface.ACCESS_READ },
    SubState: { signature: 's', access: dbus.interface.ACCESS_READ },
  },
});

class ServiceInterface extends dbus.interface.Interface {
  constructor(private readonly unit: FakeUnit) {
    super(SERVICE);
  }

  get Result(): string {
    return this.unit.result ?? 'success';
  }
}
ServiceInterface.configureMembers({
  properties: { Result: { signature: 's', access: dbus.interface.ACCESS_READ } },
});

class ManagerInterface extends dbus.interface.Interface {
  constructor(private readonly fake: FakeSystemdManager) {
    super(MANAGER);
  }

  GetUnit(name: string): string {
    if (!this.fake.units.has(name)) throw new dbus.DBusError('org.freedesktop.systemd1.NoSuchUnit', `Unit ${name} not loaded.`);
    return unitObjectPath(name);
  }

  Subscribe(): void {
    this.fake.subscribeCalls++;
  }

  ReloadOrTryRestartUnit(name: string, mode: string): string {
    this.fake.reloadCalls.push([name, mode]);
    return this.fake.queueJob(name);
  }

  TryRestartUnit(name: string, mode: string): string {
    this.fake.restartCalls.push([name, mode]);
    return this.fake.queueJob(name);
  }
}
ManagerInterface.configureMembers({
  methods: {
    GetUnit: { inSignature: 's', outSignature: 'o' },
    Subscribe: { inSignature: '', outSignature: '' },
    ReloadOrTryRestartUnit: { inSignature: 'ss', outSignature: 'o' },
    TryRestartUnit: { inSignature: 'ss', outSignature: 'o' },
  },
});

export class FakeSystemdManager {
  /** Every ReloadOrTryRestartUnit call, as [unit, mode], in order. */
  readonly reloadCalls: [string, string][] = [];
  /** Every TryRestartUnit call (services marked `restart`), as [unit, mode], in order. */
  readonly restartCalls: [string, string][] = [];
  /** How many times Subscribe was called. */
  subscribeCalls = 0;
  /** Send JobRemoved before the method reply that names the job. */
  jobRemovedBeforeReply = false;
  /** Called with each job's path and the caller's unique bus name as it is queued, before the reply. */
  onJob: ((job: string, caller: string) => void) | undefined;
  private caller = '';
  /** The configured units, by name. */
  readonly units = new Map<string, FakeUnit>();
  private nextJobId = 1;

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
    // Note who calls (dbus-next hands interface methods only the arguments); false: not handled here.
    bus.addMethodHandler((msg: dbus.Message) => {
      fake.caller = msg.sender;
      return false;
    });
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

  /**
   * Add a unit, or change one already added: its ActiveState, and optionally how its jobs
   * end, its state after a job, its SubState and Result, and whether it is masked.
   */
  setUnit(unit: string, activeState: string, options: Partial<Omit<FakeUnit, 'activeState'>> = {}): void {
    const existing = this.units.get(unit);
    if (existing) {
      Object.assign(existing, { activeState }, options);
      return;
    }
    const state: FakeUnit = { activeState, jobResult: 'done', masked: false, ...options };
    this.units.set(unit, state);
    this.bus.export(unitObjectPath(unit), new UnitInterface(state));
    this.bus.export(unitObjectPath(unit), new ServiceInterface(state));
  }

  /** Queue a reload or restart job of `name`; its JobRemoved follows (or precedes) the reply. */
  queueJob(name: string): string {
    const unit = this.units.get(name);
    if (!unit) throw new dbus.DBusError('org.freedesktop.systemd1.NoSuchUnit', `Unit ${name} not loaded.`);
    if (unit.masked) throw new dbus.DBusError('org.freedesktop.systemd1.UnitMasked', `Unit ${name} is masked.`);
    const id = this.nextJobId++;
    const job = `${SYSTEMD_PATH}/job/${id}`;
    this.onJob?.(job, this.caller);
    const finish = () => {
      if (unit.jobResult === null) return;
      Object.assign(unit, unit.afterJob ?? {});
      this.emitJobRemoved(id + 1000, `${SYSTEMD_PATH}/job/${id + 1000}`, 'other.service', 'failed');
      this.emitJobRemoved(id, job, name, unit.jobResult);
    };
    if (this.jobRemovedBeforeReply) finish();
    else setTimeout(finish, 20);
    return job;
  }

  private emitJobRemoved(id: number, job: string, unit: string, result: string): void {
    if (this.subscribeCalls === 0) return;
    this.bus.send(dbus.Message.newSignal(SYSTEMD_PATH, MANAGER, 'JobRemoved', 'uoss', [id, job, unit, result]));
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
