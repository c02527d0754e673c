import type { ConfigSchema } from '../../src/core/config';
import { DEFAULT_TRUSTED_PROXIES, checkTrustedProxies } from './client-address';

/** The [webui] section: where the web front end listens and how it powers machines on. */
export const WEBUI_SCHEMA: ConfigSchema = {
  webui: {
    package: 'uec-provisioning-webui',
    keys: {
      port: {
        type: 'integer',
        min: 1,
        max: 65535,
        default: 5249,
        description: 'TCP port of the web front end and its REST API (also reached through apache2 at /uec-provisioning/).',
      },
      listen: {
        type: 'string',
        format: 'ipv4',
        allowEmpty: true,
        default: '127.0.0.1',
        description: 'The IPv4 address the web front end listens on. The default, 127.0.0.1, lets only the apache2 reverse proxy (/uec-provisioning/) reach it; 0.0.0.0 or empty means every address.',
      },
      trusted_proxies: {
        type: 'string',
        allowEmpty: true,
        default: DEFAULT_TRUSTED_PROXIES,
        check: checkTrustedProxies,
        description: 'Addresses of reverse proxies (IPv4 or IPv6, separated by spaces) whose X-Forwarded-For and X-Forwarded-Proto the web front end believes: the client address (login throttle, logs) and the Secure cookie flag come from them. Default: loopback, the apache2 drop-in. Empty: believe no proxy.',
      },
      session_hours: {
        type: 'integer',
        min: 1,
        max: 720,
        default: 12,
        description: 'How long a login session lasts without activity.',
      },
      login_attempts: {
        type: 'integer',
        min: 1,
        max: 100,
        default: 5,
        description: 'Failed logins allowed per user name from one client address before each further attempt waits 1 s, 2 s, 4 s … (at most 5 minutes); one client address may fail 4 times this many within 15 minutes, across user names.',
      },
      wol_repeat: {
        type: 'integer',
        min: 1,
        max: 10,
        default: 3,
        description: 'How many Wake-on-LAN packets a power-on sends (one second apart).',
      },
      wol_port: {
        type: 'integer',
        min: 1,
        max: 65535,
        default: 9,
        description: 'UDP port of the Wake-on-LAN magic packet (9, discard, or 7).',
      },
    },
  },
};
