/**
 * Pure render: the mirror model and its loaded templates in, file plans out. Which files
 * exist depends on the mode; a file a mode does not plan is removed by the apply engine.
 */
import type { FilePlan } from '../../src/core/apply';
import { ARCHIVE_OVERRIDE_FILE, renderArchiveOverride, type ArchiveSettings } from '../../src/core/archive';
import { checkLine } from '../../src/core/formats';
import type { ServiceSpec } from '../../src/core/services';
import { UecError } from '../../src/core/errors';
import { refusingEscaper, renderTemplate, type Template } from '../../src/core/template';
import {
  ACNG_CONF_FILE,
  APACHE_CONF_FILE,
  CRON_FILE,
  MIRROR_LIST_FILE,
  SERVED_PATH,
  mirrorLayout,
  mirroredComponents,
  proxyUrl,
  servedArchiveUrl,
  upstreamTreePath,
  type MirrorSettings,
} from './model';

export const MIRROR_TEMPLATES = {
  mirrorList: 'mirror/mirror.list.mustache',
  apache: 'mirror/apache.conf.mustache',
  acng: 'mirror/apt-cacher-ng.conf.mustache',
  cron: 'mirror/cron.mustache',
} as const;

export type MirrorTemplates = Record<keyof typeof MIRROR_TEMPLATES, Template>;

export const APACHE2: ServiceSpec = { name: 'apache2', unit: 'apache2.service', pidFile: '/run/apache2/apache2.pid', reloadSignal: 'SIGUSR1' };
export const APT_CACHER_NG: ServiceSpec = { name: 'apt-cacher-ng', unit: 'apt-cacher-ng.service' };

/** Values were checked by the model; the escaper refuses anything that could still break a line. */
const escape = refusingEscaper('mirror configuration', (v) => checkLine(v) ?? (/[<>"]/.test(v) ? 'contains "<", ">" or a quote' : null));

export interface RenderInputs {
  settings: MirrorSettings;
  templates: MirrorTemplates;
  /** The host installing machines reach this server at (mirror.host or the server address). */
  host: string;
  /** The [archive] settings, used as they are in upstream mode and for the proxy's upstream. */
  archive: { main_archive: string; ports_archive: string };
}

function portOf(url: string): number {
  const u = new URL(url);
  return u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : 80;
}

/** The effective archive settings for preseeds; null in upstream mode (the [archive] ones apply). */
export function selectArchiveSettings(inputs: RenderInputs): ArchiveSettings | null {
  const { settings, host, archive } = inputs;
  switch (settings.mode) {
    case 'upstream':
      return null;
    case 'proxy':
      return { main_archive: archive.main_archive, ports_archive: archive.ports_archive, http_proxy: proxyUrl(host, settings.proxyPort), source: 'mirror (proxy)' };
    case 'mirror':
    case 'iso': {
      const url = servedArchiveUrl(host, settings.httpPort);
      return { main_archive: url, ports_archive: url, http_proxy: '', source: `mirror (${settings.mode})` };
    }
  }
}

/** apt-mirror's list for the given directories (the system ones, or resolved under --root). */
export function renderMirrorList(settings: MirrorSettings, template: Template, dirs: { base: string; staging: string; skel: string; var: string }): string {
  const components = mirroredComponents(settings).join(' ');
  const lines = settings.suites.flatMap((suite) => settings.architectures.map((arch) => ({ arch, suite, upstream: settings.upstream, components })));
  return renderTemplate(template, { base_dir: dirs.base, staging: dirs.staging, skel: dirs.skel, var: dirs.var, threads: String(settings.threads), lines }, escape);
}

export function renderMirrorPlans(inputs: RenderInputs): FilePlan[] {
  const { settings, templates, host } = inputs;
  const layout = mirrorLayout(settings.baseDir);
  const serving = settings.mode === 'mirror' || settings.mode === 'iso';
  const tree = settings.mode === 'mirror' ? `${layout.current}/${upstreamTreePath(settings.upstream)}` : layout.current;
  const plans: FilePlan[] = [
    {
      path: APACHE_CONF_FILE,
      mode: 0o644,
      validate: 'apache2',
      services: [APACHE2],
      content: renderTemplate(
        templates.apache,
        { serving, mode: settings.mode, served_url: servedArchiveUrl(host, settings.httpPort), served_path: SERVED_PATH, tree, base_dir: settings.baseDir },
        escape,
      ),
    },
  ];
  if (settings.mode === 'mirror') {
    plans.push({
      path: MIRROR_LIST_FILE,
      mode: 0o644,
      content: renderMirrorList(settings, templates.mirrorList, { base: settings.baseDir, staging: layout.staging, skel: layout.skel, var: layout.var }),
    });
    plans.push({ path: CRON_FILE, mode: 0o644, content: renderTemplate(templates.cron, { minute: '30', hour: '3' }, escape) });
  }
  if (settings.mode === 'proxy') {
    const ports = [...new Set([80, portOf(inputs.archive.main_archive), portOf(inputs.archive.ports_archive)])].sort((a, b) => a - b);
    // apt-cacher-ng 3.7 (Debian 12) reads ports as signed 16-bit numbers: an upstream on a port
    // above 32767 is refused at every request (measured), so say so now instead.
    for (const [key, url] of [['archive.main_archive', inputs.archive.main_archive], ['archive.ports_archive', inputs.archive.ports_archive]] as const) {
      if (portOf(url) > 32767) throw new UecError('CONFIG_INVALID_VALUE', `${key}: ${url} uses port ${portOf(url)}; apt-cacher-ng (proxy mode) cannot reach ports above 32767`);
    }
    plans.push({
      path: ACNG_CONF_FILE,
      mode: 0o644,
      validate: 'apt-cacher-ng',
      services: [APT_CACHER_NG],
      content: renderTemplate(templates.acng, { port: String(settings.proxyPort), allowed_ports: ports.join(' ') }, escape),
    });
  }
  const archive = selectArchiveSettings(inputs);
  if (archive) plans.push({ path: ARCHIVE_OVERRIDE_FILE, mode: 0o644, content: renderArchiveOverride(archive) });
  return plans.sort((a, b) => (a.path < b.path ? -1 : 1));
}
