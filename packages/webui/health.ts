/**
 * What the Dashboard, Images and Node pages read from the rest of the machine. The DHCP, TFTP
 * and mirror parts are separate packages: their settings are read through the effective
 * config when their section exists, and the part is shown as "not installed" otherwise.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BOOT_PATHS } from '../../src/edge/boot';
import type { EffectiveConfig } from '../../src/core/config';
import { formatValue } from '../../src/core/config';
import type { Paths } from '../../src/core/paths';

export interface HealthItem {
  name: string;
  state: 'ok' | 'warn' | 'missing';
  detail: string;
}

export interface ImageEntry {
  os: string;
  release: string;
  arch: string;
  files: string[];
  bytes: number;
  importedAt: string;
}

function setting(config: EffectiveConfig, key: string): string | undefined {
  const s = config.settings.get(key);
  return s === undefined ? undefined : formatValue(s.value);
}

function hasSection(config: EffectiveConfig, section: string): boolean {
  for (const key of config.settings.keys()) if (key.startsWith(`${section}.`)) return true;
  return false;
}

/** Names of running processes (comm), from /proc. */
export async function listProcessNames(proc = '/proc'): Promise<Set<string>> {
  const names = new Set<string>();
  for (const entry of await fs.promises.readdir(proc).catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue;
    const comm = await fs.promises.readFile(path.join(proc, entry, 'comm'), 'utf8').catch(() => '');
    if (comm) names.add(comm.trim());
  }
  return names;
}

/**
 * Names of the directories in `d`, following symlinks: `images import` stores each image as a
 * symlink <arch> → a sibling directory .<arch>-<id>. Dot-names are skipped: those siblings,
 * the temporary .<arch>.link-<id> an import renames over the link, and .<arch>-manual-<id>.
 * A link whose directory is gone is no image.
 */
async function listDirectories(d: string): Promise<string[]> {
  const names: string[] = [];
  for (const entry of await fs.promises.readdir(d, { withFileTypes: true }).catch(() => [])) {
    if (entry.name.startsWith('.')) continue;
    const target = entry.isSymbolicLink() ? await fs.promises.stat(path.join(d, entry.name)).catch(() => undefined) : entry;
    if (target?.isDirectory()) names.push(entry.name);
  }
  return names.sort();
}

/** Imported netboot images: <boot>/images/<os>/<release>/<arch>/ (a directory or a link to one). */
export async function listImages(paths: Paths): Promise<ImageEntry[]> {
  const root = path.join(paths.resolve(BOOT_PATHS.bootDir), 'images');
  const out: ImageEntry[] = [];
  for (const os of await listDirectories(root)) {
    for (const release of await listDirectories(path.join(root, os))) {
      for (const arch of await listDirectories(path.join(root, os, release))) {
        const dir = path.join(root, os, release, arch);
        const files: string[] = [];
        let bytes = 0;
        let newest = 0;
        for (const name of (await fs.promises.readdir(dir).catch(() => [] as string[])).sort()) {
          const stat = await fs.promises.stat(path.join(dir, name)).catch(() => undefined);
          if (!stat?.isFile()) continue;
          files.push(name);
          bytes += stat.size;
          newest = Math.max(newest, stat.mtimeMs);
        }
        out.push({ os, release, arch, files, bytes, importedAt: newest ? new Date(newest).toISOString() : '' });
      }
    }
  }
  return out;
}

export const LEASE_FILE_CANDIDATES = ['/var/lib/uec-provisioning/dhcpd/dnsmasq.leases', '/var/lib/misc/dnsmasq.leases'];

export interface Lease {
  expires: string;
  mac: string;
  ipv4: string;
  hostname: string;
  file: string;
}

/** dnsmasq's lease file: "expiry mac ip hostname client-id" per line (pure). */
export function parseLeases(text: string, file: string): Lease[] {
  const leases: Lease[] = [];
  for (const line of text.split('\n')) {
    const [expiry, mac, ip, hostname] = line.trim().split(/\s+/);
    if (!expiry || !mac || !ip || !/^\d+$/.test(expiry)) continue;
    leases.push({ expires: expiry === '0' ? 'never' : new Date(Number(expiry) * 1000).toISOString(), mac: mac.toLowerCase(), ipv4: ip, hostname: hostname ?? '*', file });
  }
  return leases;
}

/** The leases of a node's MACs, from the dhcpd lease file if there is one. */
export async function loadLeases(paths: Paths, config: EffectiveConfig, macs: string[]): Promise<Lease[] | null> {
  for (const file of LEASE_FILE_CANDIDATES) {
    let text: string;
    try {
      text = await fs.promises.readFile(paths.resolve(file), 'utf8');
    } catch {
      continue;
    }
    return parseLeases(text, file).filter((l) => macs.includes(l.mac));
  }
  return null;
}

export interface HealthOptions {
  paths: Paths;
  config: EffectiveConfig;
  processNames?: () => Promise<Set<string>>;
}

function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export async function loadHealth(options: HealthOptions): Promise<HealthItem[]> {
  const { paths, config } = options;
  const items: HealthItem[] = [];
  const dhcpInstalled = hasSection(config, 'dhcp');
  if (dhcpInstalled) {
    const running = (await (options.processNames ?? listProcessNames)()).has('dnsmasq');
    items.push({ name: 'dnsmasq', state: running ? 'ok' : 'warn', detail: running ? 'running' : 'not running' });
    const mode = setting(config, 'dhcp.mode') ?? 'off';
    const iface = setting(config, 'dhcp.interface') ?? '';
    const serving = mode !== 'off' && iface !== '';
    items.push({ name: 'DHCP', state: serving ? 'ok' : 'warn', detail: iface ? `mode ${mode}, interface ${iface}` : `mode ${mode}, no interface chosen: DHCP is off` });
  } else {
    items.push({ name: 'dnsmasq', state: 'missing', detail: 'uec-provisioning-dhcpd not installed' });
    items.push({ name: 'DHCP', state: 'missing', detail: 'uec-provisioning-dhcpd not installed' });
  }
  const images = await listImages(paths);
  items.push({
    name: 'Images',
    state: images.length > 0 ? 'ok' : hasSection(config, 'tftpd') ? 'warn' : 'missing',
    detail: images.length > 0 ? `${images.length} imported (${images.map((i) => `${i.release}/${i.arch}`).join(', ')})` : hasSection(config, 'tftpd') ? 'none imported' : 'uec-provisioning-tftpd not installed',
  });
  if (hasSection(config, 'mirror')) {
    const mode = setting(config, 'mirror.mode') ?? 'unknown';
    if (mode === 'proxy') {
      items.push({ name: 'Mirror', state: 'ok', detail: 'mode proxy (apt-cacher-ng, nothing to sync)' });
    } else {
      const sync = await lastMirrorSync(paths, config);
      const state = sync === null ? 'warn' : sync.result === 'ok' ? 'ok' : 'warn';
      const last = sync === null ? 'never' : `${sync.finished} ${sync.result}${sync.error ? `: ${sync.error}` : ''}`;
      items.push({ name: 'Mirror', state, detail: `mode ${mode}, last sync ${last}` });
    }
  } else {
    items.push({ name: 'Mirror', state: 'missing', detail: 'uec-provisioning-mirror not installed' });
  }
  try {
    const stat = await fs.promises.statfs(paths.resolve('/var/lib/uec-provisioning')).catch(() => fs.promises.statfs(paths.resolve('/')));
    const free = stat.bavail * stat.bsize;
    const total = stat.blocks * stat.bsize;
    items.push({ name: 'Free disk', state: free / total < 0.05 ? 'warn' : 'ok', detail: `${formatBytes(free)} free of ${formatBytes(total)} (/var/lib/uec-provisioning)` });
  } catch {
    items.push({ name: 'Free disk', state: 'warn', detail: 'unknown' });
  }
  return items;
}

/**
 * The mirror's last sync, from the state file uec-provisioning-mirror writes
 * (<mirror.base_dir>/state.json). Read here rather than imported so the web UI runs without
 * the mirror package installed.
 */
async function lastMirrorSync(paths: Paths, config: EffectiveConfig): Promise<{ finished: string; result: string; error?: string } | null> {
  const baseDir = (setting(config, 'mirror.base_dir') ?? '/var/lib/uec-provisioning/mirror').replace(/\/+$/, '');
  const text = await fs.promises.readFile(paths.resolve(`${baseDir}/state.json`), 'utf8').catch(() => null);
  if (text === null) return null;
  try {
    const state = JSON.parse(text) as { finished?: unknown; result?: unknown; error?: unknown };
    if (typeof state.finished !== 'string' || typeof state.result !== 'string') return null;
    return { finished: state.finished, result: state.result, error: typeof state.error === 'string' ? state.error : undefined };
  } catch {
    return null;
  }
}
