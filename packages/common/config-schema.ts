import type { ConfigSchema } from '../../src/config';

/** The settings every uec-provisioning machine has; components add their own sections. */
export const COMMON_SCHEMA: ConfigSchema = {
  server: {
    package: 'uec-provisioning-common',
    keys: {
      interface: {
        type: 'string',
        format: 'interface',
        allowEmpty: true,
        default: '',
        description: 'The network interface that faces the machines to install; empty means the interface of the default route.',
      },
      address: {
        type: 'string',
        format: 'ipv4',
        allowEmpty: true,
        default: '',
        description: 'The IPv4 address installing machines use to reach this server; empty means the first address of the interface.',
      },
      http_port: {
        type: 'integer',
        min: 1,
        max: 65535,
        default: 5248,
        description: 'TCP port of the provisioning HTTP service (boot scripts, preseeds, metadata).',
      },
    },
  },
  boot: {
    package: 'uec-provisioning-common',
    keys: {
      bios_loader: {
        type: 'enum',
        values: ['ipxe', 'pxelinux'],
        default: 'ipxe',
        description: 'First-stage loader for BIOS machines: ipxe (undionly.kpxe, kernel and initrd then come over HTTP) or pxelinux (everything over TFTP).',
      },
      uefi_loader: {
        type: 'enum',
        values: ['ipxe', 'shim'],
        default: 'ipxe',
        description: 'First-stage loader for UEFI machines: ipxe (ipxe.efi; Secure Boot must be off) or shim (Debian\'s signed shim and GRUB; works with Secure Boot).',
      },
      kernel_args: {
        type: 'string',
        format: 'kernel-args',
        allowEmpty: true,
        default: '',
        description: 'Extra kernel arguments for every installer boot, for example console=ttyS0,115200.',
      },
      domain: {
        type: 'string',
        format: 'hostname',
        allowEmpty: true,
        default: '',
        description: 'DNS domain given to installed machines; empty means none (d-i then does not ask).',
      },
    },
  },
  archive: {
    package: 'uec-provisioning-common',
    keys: {
      main_archive: {
        type: 'string',
        format: 'url',
        default: 'http://deb.debian.org/debian',
        description: 'The Debian archive installing machines use when uec-provisioning-mirror does not provide a local one.',
      },
      ports_archive: {
        type: 'string',
        format: 'url',
        default: 'http://deb.debian.org/debian',
        description: 'The archive for architectures other than amd64 and i386 (Debian serves all from one archive).',
      },
      http_proxy: {
        type: 'string',
        format: 'url',
        allowEmpty: true,
        default: '',
        description: 'An HTTP proxy installing machines use to reach the archive; empty means none (uec-provisioning-mirror in proxy mode sets its own).',
      },
    },
  },
  log: {
    package: 'uec-provisioning-common',
    keys: {
      level: {
        type: 'enum',
        values: ['debug', 'info', 'warn', 'error'],
        default: 'info',
        description: 'The least severe messages the services and the CLI log.',
      },
    },
  },
};
