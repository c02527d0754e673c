/**
 * uec-provisioning-mirror: where installing machines get their packages. Four modes
 * ([mirror] mode): upstream (nothing local), proxy (apt-cacher-ng), mirror (apt-mirror,
 * served by apache2) and iso (a released installer ISO, served by apache2). The
 * configurator plans the daemons' drop-ins and the archive override file that the region
 * hands to preseeds; `mirror sync` and `mirror status` are its commands.
 */
import type { Component, ComponentContext } from '../../src/configurator/component';
import { loadServerAddress } from '../../src/core/server-address';
import { loadTemplate } from '../../src/core/template';
import { MIRROR_COMMANDS } from './commands';
import { MIRROR_SCHEMA } from './config-schema';
import { parseMirrorSettings } from './model';
import { MIRROR_TEMPLATES, renderMirrorPlans, type MirrorTemplates } from './render';

export async function loadMirrorTemplates(context: Pick<ComponentContext, 'templates'>): Promise<MirrorTemplates> {
  const entries = await Promise.all(Object.entries(MIRROR_TEMPLATES).map(async ([key, name]) => [key, await loadTemplate(context.templates, name)] as const));
  return Object.fromEntries(entries) as MirrorTemplates;
}

/** The host machines reach this server at: mirror.host, else the server address (only asked when needed). */
export async function selectMirrorHost(context: Pick<ComponentContext, 'config' | 'network'>, configured: string): Promise<string> {
  if (configured) return configured;
  return (await loadServerAddress(context.config, context.network)).address;
}

export const component: Component = {
  name: 'mirror',
  package: 'uec-provisioning-mirror',
  summary: 'package source for installs: apt proxy, apt-mirror or ISO, served by apache2',
  configSchema: MIRROR_SCHEMA,
  commands: MIRROR_COMMANDS,
  async plan(context) {
    const settings = parseMirrorSettings(context.config);
    const host = settings.mode === 'upstream' ? 'localhost' : await selectMirrorHost(context, settings.host);
    const templates = await loadMirrorTemplates(context);
    const archive = { main_archive: context.config.getString('archive.main_archive'), ports_archive: context.config.getString('archive.ports_archive') };
    const plans = renderMirrorPlans({ settings, templates, host, archive });
    context.log.debug(`mirror mode ${settings.mode}: ${plans.length} file(s) planned`);
    return plans;
  },
};
