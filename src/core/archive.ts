/**
 * The package source installing machines use: `main_archive`, `ports_archive` and
 * `http_proxy`, as the region's context view hands them to the preseed renderer.
 *
 * The admin's preferred upstream is the [archive] section (uec-provisioning-common). When
 * uec-provisioning-mirror is installed and in proxy, mirror or iso mode, its configurator
 * plans one more file, ARCHIVE_OVERRIDE_FILE, holding the effective values (its own apache
 * URL, or apt-cacher-ng as proxy); being a planned file it is written atomically and removed
 * when the mode changes back to upstream or the package is removed. Neither side imports
 * the other: they share this file format only.
 */
import type { EffectiveConfig } from './config';
import { UecError, describeError } from './errors';
import { readFileIfExists } from './fs-ops';
import { checkUrl } from './formats';
import type { Paths } from './paths';

export const ARCHIVE_OVERRIDE_FILE = '/var/lib/uec-provisioning/archive-settings.json';

export interface ArchiveSettings {
  main_archive: string;
  ports_archive: string;
  /** '' when no proxy. */
  http_proxy: string;
  /** Who decided: "config" ([archive] settings) or the component that wrote the override file. */
  source: string;
}

/** The file content the mirror configurator plans (pure). */
export function renderArchiveOverride(settings: ArchiveSettings): string {
  for (const key of ['main_archive', 'ports_archive', 'http_proxy'] as const) {
    const value = settings[key];
    if (value === '' && key === 'http_proxy') continue;
    const problem = checkUrl(value);
    if (problem) throw new UecError('INVALID_VALUE', `${key} ${JSON.stringify(value)} ${problem}`);
  }
  return `${JSON.stringify(settings, null, 2)}\n`;
}

/** The effective settings: the override file when present and valid, else [archive]. */
export async function loadArchiveSettings(paths: Paths, config: EffectiveConfig): Promise<ArchiveSettings> {
  const file = paths.resolve(ARCHIVE_OVERRIDE_FILE);
  const text = await readFileIfExists(file);
  if (text !== null) {
    let data: ArchiveSettings;
    try {
      data = JSON.parse(text.toString()) as ArchiveSettings;
      renderArchiveOverride(data);
    } catch (err) {
      throw new UecError('CONFIG_INVALID_VALUE', `${ARCHIVE_OVERRIDE_FILE} is not valid (${describeError(err)}); run: uec-provisioning apply mirror`, { cause: err });
    }
    return data;
  }
  return {
    main_archive: config.getString('archive.main_archive'),
    ports_archive: config.getString('archive.ports_archive'),
    http_proxy: config.getString('archive.http_proxy'),
    source: 'config',
  };
}
