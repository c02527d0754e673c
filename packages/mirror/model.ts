/**
 * The mirror's typed model: the [mirror] settings checked as a whole (lists split and each
 * word checked, the upstream URL resolved), plus the paths every part agrees on. Pure.
 */
import type { EffectiveConfig } from '../../src/core/config';
import { UecError } from '../../src/core/errors';
import { checkUrl, quoteValue } from '../../src/core/formats';
import { MIRROR_MODES, checkArchitectures, checkComponents, checkSuites, checkUpstream, type MirrorMode } from './config-schema';

/** The generated apt-mirror configuration (fixed path: its presence enables the nightly sync). */
export const MIRROR_LIST_FILE = '/var/lib/uec-provisioning/mirror.list';
export const APACHE_CONF_FILE = '/etc/apache2/conf-available/uec-provisioning-mirror.conf';
export const ACNG_CONF_FILE = '/etc/apt-cacher-ng/zz_uec-provisioning.conf';
export const CRON_FILE = '/etc/cron.d/uec-provisioning-mirror';
/** Where apache2 serves the mirror or the ISO tree. */
export const SERVED_PATH = '/uec-provisioning/archive';

export interface MirrorSettings {
  mode: MirrorMode;
  upstream: string;
  suites: string[];
  architectures: string[];
  /** Components as configured. */
  components: string[];
  keyring: string;
  baseDir: string;
  minFreeMb: number;
  threads: number;
  iso: string;
  /** '' means the server address. */
  host: string;
  httpPort: number;
  proxyPort: number;
}

export interface MirrorLayout {
  /** The served tree: a symlink to trees/<generation>, switched atomically. */
  current: string;
  /** The next tree, built beside the live one; left in place for resuming after a failure. */
  staging: string;
  trees: string;
  /** apt-mirror's own index and work directories. */
  skel: string;
  var: string;
  state: string;
  lock: string;
}

export function mirrorLayout(baseDir: string): MirrorLayout {
  return {
    current: `${baseDir}/current`,
    staging: `${baseDir}/staging`,
    trees: `${baseDir}/trees`,
    skel: `${baseDir}/skel`,
    var: `${baseDir}/var`,
    state: `${baseDir}/state.json`,
    lock: `${baseDir}/sync.lock`,
  };
}

/** A word list, checked by the same function as the schema's, so what config set accepts renders. */
function splitWords(config: EffectiveConfig, key: string, check: (value: string) => string | null): string[] {
  const raw = config.getString(key);
  const problem = check(raw);
  if (problem) throw new UecError('CONFIG_INVALID_VALUE', `${key}: ${problem}`);
  return [...new Set(raw.split(/\s+/).filter(Boolean))];
}

/** The model from the effective configuration; every problem names the key. */
export function parseMirrorSettings(config: EffectiveConfig): MirrorSettings {
  const mode = config.getString('mirror.mode');
  if (!(MIRROR_MODES as readonly string[]).includes(mode)) {
    throw new UecError('CONFIG_INVALID_VALUE', `mirror.mode ${JSON.stringify(mode)} must be one of: ${MIRROR_MODES.join(', ')}`);
  }
  const upstream = (config.getString('mirror.upstream') || config.getString('archive.main_archive')).replace(/\/+$/, '');
  const problem = checkUrl(upstream);
  const urlProblem = problem ?? checkUpstream(upstream);
  if (urlProblem) throw new UecError('CONFIG_INVALID_VALUE', `mirror.upstream ${quoteValue(upstream)} ${urlProblem}`);
  const settings: MirrorSettings = {
    mode: mode as MirrorMode,
    upstream,
    suites: splitWords(config, 'mirror.suites', checkSuites),
    architectures: splitWords(config, 'mirror.architectures', checkArchitectures),
    components: splitWords(config, 'mirror.components', checkComponents),
    keyring: config.getString('mirror.keyring'),
    baseDir: config.getString('mirror.base_dir').replace(/\/+$/, ''),
    minFreeMb: config.getNumber('mirror.min_free_mb'),
    threads: config.getNumber('mirror.threads'),
    iso: config.getString('mirror.iso'),
    host: config.getString('mirror.host'),
    httpPort: config.getNumber('mirror.http_port'),
    proxyPort: config.getNumber('mirror.proxy_port'),
  };
  if (settings.mode === 'iso' && !settings.iso) throw new UecError('CONFIG_INVALID_VALUE', 'mirror.mode is iso but mirror.iso (the path of the installer ISO) is empty');
  if (settings.baseDir === '' || settings.baseDir === '/') throw new UecError('CONFIG_INVALID_VALUE', 'mirror.base_dir must be a directory of its own, not /');
  return settings;
}

/** The directory wget (and so apt-mirror) stores an URL's files under: host[:port]/path. */
export function upstreamTreePath(upstream: string): string {
  const url = new URL(upstream);
  const dir = url.pathname.replace(/\/+$/, '');
  return `${url.host}${dir}`;
}

/** Components apt-mirror fetches: each configured one and its debian-installer part. */
export function mirroredComponents(settings: MirrorSettings): string[] {
  return settings.components.flatMap((c) => [c, `${c}/debian-installer`]);
}

/** The URL installing machines use for this server's apache2 (no trailing slash). */
export function servedArchiveUrl(host: string, httpPort: number): string {
  return `http://${host}${httpPort === 80 ? '' : `:${httpPort}`}${SERVED_PATH}`;
}

export function proxyUrl(host: string, proxyPort: number): string {
  return `http://${host}:${proxyPort}/`;
}
