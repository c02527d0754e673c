import type { ConfigSchema } from '../../src/core/config';
import { checkDatabaseUrl } from '../../src/region/open-store';

/**
 * region.authorized_keys_file is served to every installing machine, and the web UI's admins
 * may change it: it is confined to files only root can create, named for what they hold, so
 * it can never publish /etc/shadow, a host key or the secrets under /var/lib/uec-provisioning.
 */
export function checkAuthorizedKeysFile(value: string): string | null {
  return /^\/etc\/uec-provisioning\/authorized_keys[A-Za-z0-9._-]*$/.test(value)
    ? null
    : 'must be a file directly in /etc/uec-provisioning/ whose name starts with "authorized_keys" (such as /etc/uec-provisioning/authorized_keys)';
}

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
      image_server: {
        type: 'enum',
        values: ['auto', 'provisioning', 'apache2'],
        default: 'auto',
        description:
          'Who sends iPXE machines the installer kernel and initrd over HTTP: apache2 (at /uec-provisioning-images/ on boot.image_http_port, with sendfile: many machines at once), provisioning (the provisioning HTTP service itself), or auto: apache2 while the drop-in uec-provisioning-tftpd writes for it is enabled, otherwise provisioning.',
      },
      image_http_port: {
        type: 'integer',
        min: 1,
        max: 65535,
        default: 80,
        description: 'The port apache2 listens on, for the kernel and initrd URLs when apache2 sends them.',
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
  region: {
    package: 'uec-provisioning-common',
    keys: {
      url: {
        type: 'string',
        format: 'url',
        allowEmpty: true,
        default: '',
        description: 'The URL installing machines reach the region at (metadata, enlistment); empty means http://<server address>:<http_port>.',
      },
      deploy_timeout: {
        type: 'integer',
        min: 60,
        max: 604800,
        default: 7200,
        description: 'Seconds a node may stay in deploying before it is marked failed.',
      },
      max_new_nodes: {
        type: 'integer',
        min: 0,
        max: 100000,
        default: 100,
        description:
          'Enlistment is open to any machine that netboots, so at most this many nodes may wait in status new; further unknown machines are answered 429 until an admin deploys or removes some. 0 turns automatic enlistment off.',
      },
      admin_user: {
        type: 'string',
        format: 'word',
        default: 'debian',
        description: 'The user the installer creates on deployed machines (password locked; log in with the SSH keys below).',
      },
      authorized_keys_file: {
        type: 'string',
        format: 'path',
        default: '/etc/uec-provisioning/authorized_keys',
        check: checkAuthorizedKeysFile,
        description:
          'SSH public keys installed for admin_user on every deployed machine. It must be a file directly in /etc/uec-provisioning/ whose name starts with authorized_keys (for example authorized_keys.lab): its lines are served to installing machines, so no other file can be published this way.',
      },
      accept_shared_key: {
        type: 'boolean',
        default: true,
        description:
          'Accept the shared provisioning key from other hosts (edges not yet given their own key with `uec-provisioning edges add`). From this host it is always accepted. Set it to false once every edge has its own key.',
      },
      store: {
        type: 'enum',
        values: ['embedded', 'postgresql'],
        default: 'embedded',
        description:
          'Where the region keeps its nodes: embedded (files under /var/lib/uec-provisioning) or postgresql (the database below). Move a live site with `uec-provisioning region migrate --to postgresql|embedded`, which sets this key.',
      },
      database_url: {
        type: 'string',
        allowEmpty: true,
        default: '',
        check: checkDatabaseUrl,
        description: 'The PostgreSQL database as a postgresql:// URL without a password; empty means database_host, database_port, database_name and database_user.',
      },
      database_host: {
        type: 'string',
        allowEmpty: true,
        default: '',
        check: (value) => (/^[A-Za-z0-9._:/-]+$/.test(value) ? null : 'is not a host name, address or socket directory'),
        description: 'PostgreSQL host name, address, or unix socket directory; empty means /run/postgresql (the local server).',
      },
      database_port: {
        type: 'integer',
        min: 1,
        max: 65535,
        default: 5432,
        description: 'PostgreSQL port.',
      },
      database_name: {
        type: 'string',
        format: 'word',
        default: 'uecprovisioning',
        description: 'PostgreSQL database name (dbconfig-common creates it).',
      },
      database_user: {
        type: 'string',
        format: 'word',
        default: 'uecprovisioning',
        description: 'PostgreSQL user.',
      },
      database_password_file: {
        type: 'string',
        format: 'path',
        allowEmpty: true,
        default: '',
        description:
          'A file of mode 0600 whose first line is the PostgreSQL password (with dbconfig-common, the postinst of uec-provisioning-common writes /var/lib/uec-provisioning/secrets/database.password); empty means no password (peer or trust authentication). The password is never in the configuration or the logs.',
      },
    },
  },
  provisioning: {
    package: 'uec-provisioning-common',
    keys: {
      region_url: {
        type: 'string',
        format: 'url',
        allowEmpty: true,
        default: '',
        description: 'Where this provisioning server asks the region for node context; empty means the region on this machine (http://127.0.0.1:<http_port>).',
      },
      key_file: {
        type: 'string',
        format: 'path',
        default: '/var/lib/uec-provisioning/secrets/provisioning.key',
        description: 'The shared key this provisioning server presents to the region (created on first start when the region runs here).',
      },
      edge_key_file: {
        type: 'string',
        format: 'path',
        allowEmpty: true,
        default: '',
        description:
          "This provisioning server's own key (0600), printed once by `uec-provisioning edges add NAME --subnet CIDR` on the region; when set it is presented instead of the shared key. Empty means the shared key (provisioning.key_file).",
      },
      context_cache_seconds: {
        type: 'integer',
        min: 0,
        max: 300,
        default: 5,
        description: 'How long a node context fetched from the region is reused for preseeds (boot scripts always ask the region).',
      },
      region_timeout_ms: {
        type: 'integer',
        min: 100,
        max: 60000,
        default: 3000,
        description: 'How long to wait for the region before answering 503 with Retry-After.',
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
