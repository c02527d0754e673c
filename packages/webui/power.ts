/**
 * Powering machines: Wake-on-LAN magic packets, sent only to the provisioning interface's
 * directed broadcast address from a socket bound to that interface's address (node's dgram
 * has no SO_BINDTODEVICE; binding the source address picks the interface's route), and IPMI
 * chassis power through ipmitool for nodes with BMC details. The BMC details (address, user,
 * password, optional IPMI cipher suite) are kept root-only in their own 0600 file, never in
 * the node store, which the provisioning services and the API read.
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
  /**
   * The IPMI v2.0 cipher suite ipmitool asks for (`-C`). Absent: ipmitool's own choice, which
   * asks the BMC ("Get Channel Cipher Suites") and takes 17 if offered, else 3. Set it for a
   * BMC that does not answer that question (each call then waits about 10 s before falling back
   * to 3) or that must use one suite.
   */
  cipherSuite?: number;
}

/**
 * The cipher suites a BMC can be pinned to (IPMI v2.0 table 22-20), the two ipmitool's own
 * choice picks from: 17 (RAKP-HMAC-SHA256, HMAC-SHA256-128, AES-CBC-128) and 3 (RAKP-HMAC-SHA1,
 * HMAC-SHA1-96, AES-CBC-128; the one every IPMI v2.0 BMC must offer). The others have no
 * authentication (0), no integrity or no encryption, MD5 or xRC4.
 */
export const IPMI_CIPHER_SUITES: readonly number[] = [3, 17];

/** A cipher suite from a form, the API or bmc.json: '' / 'auto' / absent → undefined (pure). */
export function parseCipherSuite(input: unknown): number | undefined {
  if (input === undefined || input === null) return undefined;
  const text = String(input).trim();
  if (text === '' || text === 'auto') return undefined;
  const n = /^[0-9]{1,2}$/.test(text) ? Number(text) : NaN;
  if (!IPMI_CIPHER_SUITES.includes(n)) throw new UecError('INVALID_VALUE', `BMC cipher suite ${JSON.stringify(input)} is not "auto", ${IPMI_CIPHER_SUITES.join(' or ')}`);
  return n;
}

interface BmcFile {
  version: 1;
  bmcs: Record<string, Bmc>;
}

export function parseBmc(input: { address?: unknown; user?: unknown; password?: unknown; cipherSuite?: unknown }): Bmc {
  const address = String(input.address ?? '').trim();
  const user = String(input.user ?? '').trim();
  const password = String(input.password ?? '');
  if (checkIPv4(address) && checkHostname(address)) throw new UecError('INVALID_VALUE', `BMC address ${JSON.stringify(address)} is not an IPv4 address or host name`);
  if (!/^[A-Za-z0-9._@-]{1,32}$/.test(user)) throw new UecError('INVALID_VALUE', 'BMC user must be 1-32 letters, digits, ".", "_", "@" or "-"');
  // eslint-disable-next-line no-control-regex
  if (!/^[^\u0000-\u001f\u007f]{1,64}$/.test(password)) throw new UecError('INVALID_VALUE', 'BMC password must be 1-64 printable characters');
  const cipherSuite = parseCipherSuite(input.cipherSuite);
  return cipherSuite === undefined ? { address, user, password } : { address, user, password, cipherSuite };
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

/**
 * ipmitool's arguments for a chassis power action (pure): `-I lanplus`, the BMC's cipher suite
 * when it has one, and `-E`, so the password goes through the environment (IPMI_PASSWORD),
 * never argv. A cipher suite that is not one of IPMI_CIPHER_SUITES (a hand-edited bmc.json)
 * is refused, naming it.
 */
export function renderIpmiPowerArgs(bmc: Bmc, action: PowerAction): string[] {
  const suite = bmc.cipherSuite === undefined ? undefined : parseCipherSuite(bmc.cipherSuite);
  return ['-I', 'lanplus', ...(suite === undefined ? [] : ['-C', String(suite)]), '-H', bmc.address, '-U', bmc.user, '-E', 'chassis', 'power', action];
}

/** ipmitool -I lanplus [-C SUITE] … chassis power ACTION; the password goes through the environment (-E), never argv. */
export async function runIpmiPower(bmc: Bmc, action: PowerAction, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  let args: string[];
  try {
    args = renderIpmiPowerArgs(bmc, action);
  } catch (err) {
    throw new UecError('POWER_FAILED', `ipmitool power ${action} on ${bmc.address}: ${err instanceof UecError ? err.message : describeError(err)}`, { cause: err });
  }
  let result;
  try {
    result = await runCommand('ipmitool', args, { env: { ...env, IPMI_PASSWORD: bmc.password }, timeoutMs: 30_000 });
  } catch (err) {
    throw new UecError('POWER_FAILED', `ipmitool power ${action} on ${bmc.address}: ${describeError(err)}`, { cause: err });
  }
  const output = `${result.stdout}\n${result.stderr}`.trim().split('\n').find((l) => l.trim() !== '') ?? '';
  if (result.code !== 0) throw new UecError('POWER_FAILED', `ipmitool power ${action} on ${bmc.address}${bmc.cipherSuite === undefined ? '' : ` (cipher suite ${bmc.cipherSuite})`} failed (exit ${result.code}): ${output.slice(0, 200)}`);
  return output.slice(0, 200);
}
