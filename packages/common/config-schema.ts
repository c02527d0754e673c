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
