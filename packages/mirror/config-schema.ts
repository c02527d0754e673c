import type { ConfigSchema } from '../../src/core/config';
import { checkWord, quoteValue } from '../../src/core/formats';

export const MIRROR_MODES = ['upstream', 'proxy', 'mirror', 'iso'] as const;
export type MirrorMode = (typeof MIRROR_MODES)[number];

/** A word list: space-separated, at least one, each word passing `check`. */
function checkWords(check: (word: string) => string | null): (value: string) => string | null {
  return (value) => {
    const words = value.split(/\s+/).filter(Boolean);
    if (words.length === 0) return 'is empty; give at least one';
    for (const word of words) {
      const problem = check(word);
      if (problem) return `${quoteValue(word)} ${problem}`;
    }
    return null;
  };
}

export const checkSuites = checkWords(checkWord);
export const checkArchitectures = checkWords((w) => (/^[a-z0-9][a-z0-9-]*$/.test(w) ? null : 'is not a Debian architecture name'));
export const checkComponents = checkWords((w) => (/^[a-z0-9][a-z0-9.+-]*$/.test(w) ? null : 'is not a component name (lowercase letters, digits, ".", "+", "-")'));

/** apt-mirror and apache paths are built from the upstream URL: no query or fragment. */
export function checkUpstream(value: string): string | null {
  const url = new URL(value); // the url format has checked it parses
  return url.search || url.hash ? 'must not have a query or fragment' : null;
}

/** The [mirror] section of uec-provisioning-mirror. */
export const MIRROR_SCHEMA: ConfigSchema = {
  mirror: {
    package: 'uec-provisioning-mirror',
    keys: {
      mode: {
        type: 'enum',
        values: MIRROR_MODES,
        default: 'proxy',
        description:
          'Where installing machines get packages: upstream (the [archive] settings, no local copy), proxy (apt-cacher-ng on this server caches what installs fetch), mirror (apt-mirror keeps a full copy, served by apache2) or iso (a released installer ISO, served by apache2).',
      },
      upstream: {
        type: 'string',
        format: 'url',
        allowEmpty: true,
        default: '',
        check: checkUpstream,
        description: 'The archive apt-mirror copies in mirror mode; empty means [archive] main_archive.',
      },
      suites: {
        type: 'string',
        format: 'line',
        check: checkSuites,
        default: 'bookworm bookworm-updates',
        description: 'Space-separated suites (codenames) to mirror.',
      },
      architectures: {
        type: 'string',
        format: 'line',
        check: checkArchitectures,
        default: 'amd64',
        description: 'Space-separated architectures to mirror.',
      },
      components: {
        type: 'string',
        format: 'line',
        check: checkComponents,
        default: 'main',
        description: 'Space-separated components to mirror; <component>/debian-installer is added for each, so netboot installers find their udebs.',
      },
      keyring: {
        type: 'string',
        format: 'path',
        default: '/usr/share/keyrings/debian-archive-keyring.gpg',
        description: 'The keyring (gpgv) the upstream Release files must be signed with; a sync whose signatures fail keeps the last good copy.',
      },
      base_dir: {
        type: 'string',
        format: 'path',
        default: '/var/lib/uec-provisioning/mirror',
        description: 'Where the mirror (or the extracted ISO) lives: current (the served tree), staging (the next one), state.',
      },
      min_free_mb: {
        type: 'integer',
        min: 0,
        max: 100000000,
        default: 2048,
        description: 'A sync does not start when base_dir has less free space than this (MiB).',
      },
      threads: {
        type: 'integer',
        min: 1,
        max: 64,
        default: 4,
        description: 'Parallel downloads of apt-mirror.',
      },
      iso: {
        type: 'string',
        format: 'path',
        allowEmpty: true,
        default: '',
        description: 'In iso mode: the released installer ISO to serve (extracted by `uec-provisioning mirror sync`).',
      },
      host: {
        type: 'string',
        format: 'hostname',
        allowEmpty: true,
        default: '',
        description: 'The name or address installing machines reach this server\'s apache2 and apt-cacher-ng at; empty means the server address.',
      },
      http_port: {
        type: 'integer',
        min: 1,
        max: 65535,
        default: 80,
        description: 'The port apache2 listens on (used in the archive URL handed to preseeds).',
      },
      proxy_port: {
        type: 'integer',
        min: 1,
        max: 32767,
        default: 3142,
        description: 'The port apt-cacher-ng listens on in proxy mode. At most 32767: apt-cacher-ng 3.7 (Debian 12) cannot bind a higher port.',
      },
    },
  },
};
