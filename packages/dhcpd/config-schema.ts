import { isIPv4 } from 'node:net';
import type { ConfigSchema } from '../../src/core/config';
import { quoteValue } from '../../src/core/formats';

/**
 * [dhcp] dns_servers: IPv4 addresses separated by commas or blanks, as the model reads them
 * (parseDnsServers), so `config set` refuses what apply would refuse later.
 */
export function checkDnsServers(value: string): string | null {
  const bad = value.split(/[\s,]+/).filter(Boolean).find((item) => !isIPv4(item));
  return bad === undefined ? null : `${quoteValue(bad)} is not an IPv4 address`;
}

export const DHCP_MODES = ['off', 'proxy', 'full'] as const;
export type DhcpMode = (typeof DHCP_MODES)[number];

/** [dhcp]: the dedicated dnsmasq instance of uec-provisioning-dhcpd. */
export const DHCP_SCHEMA: ConfigSchema = {
  dhcp: {
    package: 'uec-provisioning-dhcpd',
    keys: {
      mode: {
        type: 'enum',
        values: DHCP_MODES,
        default: 'off',
        description:
          'off: answer no DHCP at all. proxy: proxy-DHCP beside the site\'s DHCP server, giving only boot information. full: hand out addresses from range_start-range_end (check first: uec-provisioning dhcp probe).',
      },
      interface: {
        type: 'string',
        format: 'interface',
        allowEmpty: true,
        default: '',
        description: 'The only interface DHCP is answered on. Empty means DHCP is off whatever the mode: nothing is answered on an interface nobody chose.',
      },
      range_start: {
        type: 'string',
        format: 'ipv4',
        allowEmpty: true,
        default: '',
        description: 'First address of the full-mode pool; empty (with range_end empty) means the range proposed from the interface subnet (uec-provisioning dhcp propose-range).',
      },
      range_end: {
        type: 'string',
        format: 'ipv4',
        allowEmpty: true,
        default: '',
        description: 'Last address of the full-mode pool; empty means proposed (see range_start).',
      },
      lease_time: {
        type: 'integer',
        min: 120,
        max: 31536000,
        default: 43200,
        description: 'Lease time in seconds for full mode.',
      },
      router: {
        type: 'string',
        format: 'ipv4',
        allowEmpty: true,
        default: '',
        description: 'Default gateway given in full mode; empty means the default route\'s gateway when it is in the interface subnet, else none.',
      },
      dns_servers: {
        type: 'string',
        format: 'line',
        allowEmpty: true,
        default: '',
        check: checkDnsServers,
        description:
          'Name servers given in full mode, comma-separated IPv4 addresses. Empty means this machine\'s own upstream name servers (from /run/systemd/resolve/resolv.conf or /etc/resolv.conf, loopback ones skipped). The Debian installer stops without one.',
      },
      ping_check: {
        type: 'boolean',
        default: true,
        description:
          'Ping each new address before offering it (dnsmasq\'s default, catches address conflicts). false (no-ping) answers a boot storm of hundreds of machines far faster.',
      },
      log_dhcp: {
        type: 'boolean',
        default: false,
        description: 'Log every DHCP exchange in detail (dnsmasq log-dhcp).',
      },
    },
  },
};
