import type { ConfigSchema } from '../../src/config';

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
        default: '',
        description: 'The IPv4 address the web front end listens on; empty means every address. Set 127.0.0.1 to allow only the apache2 reverse proxy.',
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
        description: 'Failed logins allowed per user name and per client address within 15 minutes before further attempts are refused.',
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
