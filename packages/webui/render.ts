import type { FilePlan } from '../../src/core/apply';
import { renderTemplate, type Template } from '../../src/core/template';

export const APACHE_CONF = '/etc/apache2/conf-available/uec-provisioning-webui.conf';
export const APACHE_SERVICE = { name: 'apache2', unit: 'apache2.service', pidFile: '/run/apache2/apache2.pid', reloadSignal: 'SIGUSR1' as NodeJS.Signals };

/** The apache2 reverse-proxy drop-in for the web UI's port (pure). */
export function renderApacheConf(template: Template, port: number): FilePlan {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`bad port ${port}`);
  return {
    path: APACHE_CONF,
    content: renderTemplate(template, { port: String(port) }, (v) => v),
    mode: 0o644,
    validate: 'apache2',
    services: [APACHE_SERVICE],
  };
}
