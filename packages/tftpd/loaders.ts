/**
 * First-stage boot loaders from Debian's own packages, copied (not linked) into the TFTP
 * root: dnsmasq serves only what lies inside tftp-root, and a copy keeps working while a
 * package is half-upgraded. Re-run by the dpkg trigger when those packages change.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { atomicWrite, removeFile } from '../../src/core/atomic-write';
import { BOOT_PATHS } from '../../src/edge/boot';
import { UecError, describeError } from '../../src/core/errors';
import { readFileIfExists } from '../../src/core/fs-ops';
import type { Paths } from '../../src/core/paths';

export interface LoaderSpec {
  /** File name at the TFTP root (what DHCP hands out, what shim and pxelinux fetch). */
  name: string;
  /** Where the Debian package installs it. */
  source: string;
  package: string;
  /** Optional loaders are skipped (and a stale copy removed) when their package is missing. */
  optional: boolean;
  /** Only with [tftpd] secure_boot_loaders. */
  secureBoot?: boolean;
}

export const LOADERS: readonly LoaderSpec[] = [
  { name: 'undionly.kpxe', source: '/usr/lib/ipxe/undionly.kpxe', package: 'ipxe', optional: false },
  { name: 'ipxe.efi', source: '/usr/lib/ipxe/ipxe.efi', package: 'ipxe', optional: false },
  { name: 'pxelinux.0', source: '/usr/lib/PXELINUX/pxelinux.0', package: 'pxelinux', optional: false },
  { name: 'ldlinux.c32', source: '/usr/lib/syslinux/modules/bios/ldlinux.c32', package: 'syslinux-common', optional: false },
  { name: 'shimx64.efi', source: '/usr/lib/shim/shimx64.efi.signed', package: 'shim-signed', optional: true, secureBoot: true },
  { name: 'mmx64.efi', source: '/usr/lib/shim/mmx64.efi.signed', package: 'shim-signed', optional: true, secureBoot: true },
  { name: 'grubx64.efi', source: '/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed', package: 'grub-efi-amd64-signed', optional: true, secureBoot: true },
];

export type LoaderOutcome = 'copied' | 'unchanged' | 'skipped' | 'removed';

export interface LoaderResult {
  name: string;
  source: string;
  outcome: LoaderOutcome;
  note?: string;
}

export interface InstallLoadersOptions {
  paths: Paths;
  /** Where the packages' files are read from: "/" on a real system; a scratch tree in tests. */
  sourceRoot?: string;
  secureBoot: boolean;
  loaders?: readonly LoaderSpec[];
}

/** Copy every loader whose bytes differ; skip missing optional ones; idempotent. */
export async function installLoaders(options: InstallLoadersOptions): Promise<LoaderResult[]> {
  const sourceRoot = options.sourceRoot ?? '/';
  const bootDir = options.paths.resolve(BOOT_PATHS.bootDir);
  await fs.promises.mkdir(bootDir, { recursive: true, mode: 0o755 });
  const results: LoaderResult[] = [];
  for (const loader of options.loaders ?? LOADERS) {
    const target = path.join(bootDir, loader.name);
    const wanted = !loader.secureBoot || options.secureBoot;
    let content: Buffer | null = null;
    if (wanted) {
      try {
        // Follows symlinks: ipxe ships /usr/lib/ipxe/ipxe.efi as a link to /boot/ipxe.efi.
        content = await readFileIfExists(path.join(sourceRoot, loader.source));
      } catch (err) {
        throw new UecError('WRITE_FAILED', `cannot read boot loader ${loader.source}: ${describeError(err)}`, { cause: err });
      }
    }
    if (content === null) {
      if (wanted && !loader.optional) {
        throw new UecError('WRITE_FAILED', `boot loader ${loader.source} is missing: reinstall ${loader.package}`);
      }
      const removed = await removeFile(target);
      const why = wanted ? `${loader.package} is not installed` : 'tftpd.secure_boot_loaders is off';
      results.push({ name: loader.name, source: loader.source, outcome: removed ? 'removed' : 'skipped', note: why });
      continue;
    }
    const current = await readFileIfExists(target);
    const mode = current === null ? null : (fs.statSync(target).mode & 0o7777);
    if (current !== null && current.equals(content) && mode === 0o644) {
      results.push({ name: loader.name, source: loader.source, outcome: 'unchanged' });
      continue;
    }
    try {
      await atomicWrite(target, content, { mode: 0o644 });
    } catch (err) {
      throw new UecError('WRITE_FAILED', `cannot copy ${loader.source} to ${options.paths.systemPathOf(target)}: ${describeError(err)}`, { cause: err });
    }
    results.push({ name: loader.name, source: loader.source, outcome: 'copied' });
  }
  return results;
}
