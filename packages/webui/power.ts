/**
 * Powering machines: Wake-on-LAN magic packets, sent only to the provisioning interface's
 * directed broadcast address from a socket bound to that interface's address (node's dgram
 * has no SO_BINDTODEVICE; binding the source address picks the interface's route), and IPMI
 * chassis power through ipmitool for nodes with BMC details. The BMC details (address, user,
 * password) are kept root-only in their own 0600 file, never in the node store, which the
 * provisioning services and the API read.
 */
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import { atomicWrite } from '../../src/core/atomic-write';
import { createFileLock } from '../../src/core/file-lock';
import { UecError, describeError } from '../../src/core/errors';
import { checkHostname, checkIPv4 } from '../../src/core/formats';
import { parseMac } from '../../src/contract/node';
import type { Paths } from '../../src/core/paths';
import { runCommand } from '../../src/core/run-command';

export const BMC_FILE = '/var/lib/uec-provisioning/bmc.json';

export const POWER_ACTIONS = ['on', 'off', 'cycle'] as const;
export type PowerAction = (typeof POWER_ACTIONS)[number];

/** 6 × 0xff, then the MAC 16 times: 102 bytes (pure). */
export function buildMagicPacket(mac: string): Buffer {
  const bytes = Buffer.from(parseMac(mac).replace(/:/g, ''), 'hex');
  const packet = Buffer.alloc(6 + 16 * 6, 0xff);
  for (let i = 0; i < 16; i++) bytes.copy(packet, 6 + i * 6);
  return packet;
}

/** The directed broadcast of an IPv4 address and prefix: 10.0.0.1/24 → 10.0.0.255 (pure). */
export function directedBroadcast(address: string, prefix: number): string {
  const reason = checkIPv4(address);
  if (reason) throw new UecError('INVALID_VALUE', `address ${JSON.stringify(address)} ${reason}`);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) throw new UecError('INVALID_VALUE', `prefix ${prefix} is not 0-32`);
  const n = address.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
  const host = prefix >= 31 ? 0 : 2 ** (32 - prefix) - 1;
  const b = (n - (n % (host + 1)) + host) >>> 0;
  return [24, 16, 8, 0].map((s) => (b >>> s) & 255).join('.');
}

export interface WakeTarget {
  /** The provisioning interface's address: the socket is bound to it. */
  address: string;
  prefix: number;
  port: number;
  repeat: number;
  intervalMs?: number;
}

/** Send the magic packet for `mac` `repeat` times to the directed broadcast of `target`. */
export async function sendWakeOnLan(mac: string, target: WakeTarget): Promise<{ broadcast: string; sent: number }> {
  const packet = buildMagicPacket(mac);
  const broadcast = directedBroadcast(target.address, target.prefix);
  const socket = dgram.createSocket('udp4');
  const fail = (err: unknown): UecError => new UecError('POWER_FAILED', `Wake-on-LAN for ${mac} to ${broadcast}:${target.port} from ${target.address}: ${describeError(err)}`, { cause: err });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind({ address: target.address, port: 0, exclusive: true }, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    socket.setBroadcast(true);
    let sent = 0;
    for (let i = 0; i < target.repeat; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, target.intervalMs ?? 1000));
      await new Promise<void>((resolve, reject) => socket.send(packet, target.port, broadcast, (err) => (err ? reject(err) : resolve())));
      sent++;
    }
    return { broadcast, sent };
  } catch (err) {
    throw fail(err);
  } finally {
    socket.close();
  }
}

export interface Bmc {
  address: string;
  user: string;
  password: string;
}

interface BmcFile {
  version: 1;
  bmcs: Record<string, Bmc>;
}

export function parseBmc(input: { address?: unknown; user?: unknown; password?: unknown }): Bmc {
  const address = String(input.address ?? '').trim();
  const user = String(input.user ?? '').trim();
  const password = String(input.password ?? '');
  if (checkIPv4(address) && checkHostname(address)) throw new UecError('INVALID_VALUE', `BMC address ${JSON.stringify(address)} is not an IPv4 address or host name`);
  if (!/^[A-Za-z0-9._@-]{1,32}$/.test(user)) throw new UecError('INVALID_VALUE', 'BMC user must be 1-32 letters, digits, ".", "_", "@" or "-"');
  // eslint-disable-next-line no-control-regex
  if (!/^[^\u0000-\u001f\u007f]{1,64}$/.test(password)) throw new UecError('INVALID_VALUE', 'BMC password must be 1-64 printable characters');
  return { address, user, password };
}

export interface BmcStore {
  get(systemId: string): Promise<Bmc | undefined>;
  set(systemId: string, bmc: Bmc | null): Promise<void>;
  /** The system ids that have BMC details. */
  ids(): Promise<Set<string>>;
}

export function createBmcStore(paths: Paths): BmcStore {
  const file = paths.resolve(BMC_FILE);
  async function read(): Promise<BmcFile> {
    try {
      const data = JSON.parse(await fs.promises.readFile(file, 'utf8')) as BmcFile;
      if (data?.version !== 1 || typeof data.bmcs !== 'object') throw new Error('not a version 1 BMC file');
      return data;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, bmcs: {} };
      throw new UecError('POWER_FAILED', `cannot read ${BMC_FILE}: ${describeError(err)}`, { cause: err });
    }
  }
  let queue: Promise<unknown> = Promise.resolve();
  const fileLock = createFileLock(file, { what: BMC_FILE, fail: (message, cause) => new UecError('POWER_FAILED', message, { cause }), dirMode: 0o755 });
  return {
    async get(systemId) {
      return (await read()).bmcs[systemId];
    },
    async ids() {
      return new Set(Object.keys((await read()).bmcs));
    },
    set(systemId, bmc) {
      // The web UI and `webui bmc` commands write it: one cross-process lock (src/core/file-lock.ts).
      const run = queue.then(() => fileLock.withLock(async () => {
        const data = await read();
        if (bmc) data.bmcs[systemId] = bmc;
        else delete data.bmcs[systemId];
        try {
          await atomicWrite(file, `${JSON.stringify(data, null, 1)}\n`, { mode: 0o600 });
        } catch (err) {
          throw new UecError('POWER_FAILED', `cannot write ${BMC_FILE}: ${describeError(err)}`, { cause: err });
        }
      }));
      queue = run.catch(() => undefined);
      return run;
    },
  };
}

/** ipmitool -I lanplus … chassis power ACTION; the password goes through the environment (-E), never argv. */
export async function runIpmiPower(bmc: Bmc, action: PowerAction, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const args = ['-I', 'lanplus', '-H', bmc.address, '-U', bmc.user, '-E', 'chassis', 'power', action];
  let result;
  try {
    result = await runCommand('ipmitool', args, { env: { ...env, IPMI_PASSWORD: bmc.password }, timeoutMs: 30_000 });
  } catch (err) {
    throw new UecError('POWER_FAILED', `ipmitool power ${action} on ${bmc.address}: ${describeError(err)}`, { cause: err });
  }
  const output = `${result.stdout}\n${result.stderr}`.trim().split('\n').find((l) => l.trim() !== '') ?? '';
  if (result.code !== 0) throw new UecError('POWER_FAILED', `ipmitool power ${action} on ${bmc.address} failed (exit ${result.code}): ${output.slice(0, 200)}`);
  return output.slice(0, 200);
}
