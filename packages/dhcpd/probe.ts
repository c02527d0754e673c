/**
 * Is another DHCP server answering on an interface? busybox udhcpc sends DHCPDISCOVER on
 * that interface only (a raw socket bound to it), takes the first answer, and releases the
 * lease it got at once (-R). Its script only prints what it was told: the interface's
 * addresses are never changed.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { UecError, describeError } from '../../src/core/errors';
import { runCommand } from '../../src/core/run-command';

export interface ProbeAnswer {
  /** The answering server's identifier (option 54), usually its address. */
  server: string;
  /** The address it offered. */
  offered: string;
  bootFile: string;
}

export interface ProbeResult {
  interface: string;
  answers: ProbeAnswer[];
}

const SCRIPT = `#!/bin/sh
# udhcpc event script of uec-provisioning dhcp probe: report, change nothing.
case "$1" in
bound|renew) echo "UEC-PROBE server=$serverid offered=$ip bootfile=$boot_file" ;;
esac
exit 0
`;

/** The answers in udhcpc's output (lines our script printed). Pure. */
export function parseProbeOutput(text: string): ProbeAnswer[] {
  const out: ProbeAnswer[] = [];
  for (const line of text.split('\n')) {
    const m = /^UEC-PROBE server=(\S*) offered=(\S*) bootfile=(\S*)/.exec(line.trim());
    if (m && !out.some((a) => a.server === m[1])) out.push({ server: m[1] ?? '', offered: m[2] ?? '', bootFile: m[3] ?? '' });
  }
  return out;
}

export const BUSYBOX = '/bin/busybox';

export async function probeDhcp(iface: string, options: { busybox?: string; tries?: number } = {}): Promise<ProbeResult> {
  const busybox = options.busybox ?? BUSYBOX;
  if (!fs.existsSync(busybox)) throw new UecError('VALIDATOR_MISSING', `cannot probe for DHCP servers: ${busybox} is not installed (install busybox)`);
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'uec-dhcp-probe-'));
  try {
    const script = path.join(dir, 'script');
    await fs.promises.writeFile(script, SCRIPT, { mode: 0o700 });
    const tries = String(options.tries ?? 2);
    // -n: give up after the tries; -q: stop at the first lease; -R: release it on exit;
    // -f: stay in the foreground; -C: no client id. Nothing is configured by the script.
    const result = await runCommand(busybox, ['udhcpc', '-i', iface, '-n', '-q', '-R', '-f', '-C', '-t', tries, '-T', '1', '-A', '1', '-s', script], { timeoutMs: 30_000 });
    const answers = parseProbeOutput(result.stdout);
    if (answers.length === 0 && /No such device|ioctl|can't bind|Operation not permitted/i.test(result.stderr)) {
      throw new UecError('CONFIG_INVALID_VALUE', `cannot probe for DHCP servers on ${iface}: ${result.stderr.trim().split('\n').pop() ?? ''}`);
    }
    return { interface: iface, answers };
  } catch (err) {
    if (err instanceof UecError) throw err;
    throw new UecError('INTERNAL', `DHCP probe on ${iface} failed: ${describeError(err)}`, { cause: err });
  } finally {
    await fs.promises.rm(dir, { recursive: true, force: true });
  }
}
