import type { ConfigSchema } from '../../src/core/config';

/** [tftpd]: the dedicated TFTP dnsmasq, the boot loaders it serves, and image import defaults. */
export const TFTPD_SCHEMA: ConfigSchema = {
  tftpd: {
    package: 'uec-provisioning-tftpd',
    keys: {
      listen: {
        type: 'enum',
        values: ['interface', 'all'],
        default: 'interface',
        description: 'Where TFTP answers: interface (only the addresses of server.interface) or all (every address of every interface; still never the wildcard socket).',
      },
      secure_boot_loaders: {
        type: 'boolean',
        default: true,
        description: 'Copy Debian\'s signed shim (shimx64.efi) and network GRUB (grubx64.efi) into the TFTP root when shim-signed and grub-efi-amd64-signed are installed.',
      },
      default_os: {
        type: 'string',
        format: 'word',
        default: 'debian',
        description: 'The os an imported image is stored under when its source does not say (images import --os overrides).',
      },
      default_release: {
        type: 'string',
        format: 'word',
        default: 'bookworm',
        description: 'The release (codename, as nodes name it) an imported image is stored under when its source does not say (images import --release overrides).',
      },
      default_arch: {
        type: 'enum',
        values: ['amd64', 'arm64', 'i386'],
        default: 'amd64',
        description: 'The architecture an imported image is stored under when its source does not say (images import --arch overrides).',
      },
    },
  },
};
