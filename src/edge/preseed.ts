/**
 * Preseeds, rendered by the provisioning server from the region's node context.
 *
 * Lookup: for a preseed of TYPE (install, commissioning, enlist) the first existing file of
 *   TYPE_OS_ARCH_SUBARCH_RELEASE_HOSTNAME, TYPE_OS_ARCH_SUBARCH_RELEASE, TYPE_OS_ARCH_SUBARCH,
 *   TYPE_OS_ARCH, TYPE_OS, TYPE_role-ROLE, TYPE, generic
 * (each NAME.mustache) in /etc/uec-provisioning/preseeds/ (the admin's), then in the shipped
 * templates/preseeds/. A role's own preseed lines and late commands reach every template
 * through the view, so role-specific files are rarely needed.
 *
 * Every value passes the one-line check: nothing can add a line to a preseed.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { NodeContext } from '../contract/context';
import { UecError, describeError } from '../core/errors';
import { checkLine } from '../core/formats';
import type { Paths } from '../core/paths';
import { createRecentLoader, type RecentOptions } from '../core/recent';
import { refusingEscaper, renderTemplate, templateDirs, type Template } from '../core/template';
import { tokenMatches } from '../contract/node';

export const PRESEED_TYPES = ['install', 'commissioning', 'enlist'] as const;
export type PreseedType = (typeof PRESEED_TYPES)[number];

export const ADMIN_PRESEED_DIR = '/etc/uec-provisioning/preseeds';

export interface PreseedDirs {
  admin: string;
  shipped: string;
}

export function preseedDirs(paths: Paths): PreseedDirs {
  return { admin: paths.resolve(ADMIN_PRESEED_DIR), shipped: path.join(templateDirs(paths).shipped, 'preseeds') };
}

export interface PreseedSelector {
  type: PreseedType;
  os?: string;
  arch?: string;
  subarch?: string;
  release?: string;
  hostname?: string;
  role?: string;
}

/** Template names, most specific first (pure). */
export function selectPreseedCandidates(s: PreseedSelector): string[] {
  const parts = [s.os, s.arch, s.subarch, s.release, s.hostname];
  const names: string[] = [];
  const known = parts.findIndex((p) => !p);
  const depth = known === -1 ? parts.length : known;
  for (let n = depth; n >= 1; n--) names.push([s.type, ...parts.slice(0, n)].join('_'));
  if (s.role) names.push(`${s.type}_role-${s.role}`);
  names.push(s.type, 'generic');
  return names;
}

/** The preseed type a node's status calls for. */
export function selectPreseedType(context: NodeContext | null): PreseedType {
  if (!context) return 'enlist';
  return context.commissioning ? 'commissioning' : 'install';
}

/** The first candidate that exists, admin's directory before the shipped one (read now, nothing kept). */
export function loadPreseedTemplate(dirs: PreseedDirs, candidates: string[]): Promise<Template> {
  return createPreseedTemplateLoader(dirs, { maxAgeMs: 0 })(candidates);
}

/**
 * loadPreseedTemplate for a server's request paths: each directory is listed at most once a
 * second and each template file read at most once a second, so a preseed costs no failed opens
 * of the more specific names (per-hostname ones rarely exist) and machines sharing a template
 * share one Template object. An added, edited or removed template is seen within the second.
 */
export function createPreseedTemplateLoader(dirs: PreseedDirs, options: RecentOptions = {}): (candidates: string[]) => Promise<Template> {
  const sources = [
    [dirs.admin, ADMIN_PRESEED_DIR],
    [dirs.shipped, 'templates/preseeds'],
  ] as const;
  const listings = new Map(
    sources.map(([dir]) => [
      dir,
      createRecentLoader(async () => {
        try {
          return new Set(await fs.promises.readdir(dir));
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Set<string>();
          throw new UecError('TEMPLATE_NOT_FOUND', `cannot list preseed templates in ${dir}: ${describeError(err)}`, { cause: err });
        }
      }, options),
    ]),
  );
  const files = new Map<string, () => Promise<Template | null>>();
  const readTemplate = (dir: string, systemDir: string, name: string): Promise<Template | null> => {
    const file = path.join(dir, `${name}.mustache`);
    let load = files.get(file);
    if (!load) {
      load = createRecentLoader(async () => {
        try {
          return { name: `preseeds/${name}.mustache`, file: `${systemDir}/${name}.mustache`, text: await fs.promises.readFile(file, 'utf8') };
        } catch (err) {
          // Removed since the listing: the next candidate.
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
          throw new UecError('TEMPLATE_NOT_FOUND', `cannot read preseed template ${file}: ${describeError(err)}`, { cause: err });
        }
      }, options);
      files.set(file, load);
    }
    return load();
  };
  return async (candidates) => {
    for (const name of candidates) {
      for (const [dir, systemDir] of sources) {
        if (!(await listings.get(dir)!()).has(`${name}.mustache`)) continue;
        const template = await readTemplate(dir, systemDir, name);
        if (template) return template;
      }
    }
    throw new UecError('TEMPLATE_NOT_FOUND', `no preseed template for ${candidates[0]} (looked for ${candidates.join(', ')} in ${ADMIN_PRESEED_DIR} and the shipped preseeds)`);
  };
}

export interface ProvisioningUrls {
  /** http://server:port of this provisioning server. */
  httpBase: string;
  domain: string;
}

/** Split an archive URL into d-i's mirror/http/hostname (with port) and directory. */
export function splitArchiveUrl(archive: string): { hostname: string; directory: string } {
  const url = new URL(archive);
  return { hostname: url.host, directory: url.pathname.replace(/\/$/, '') || '/' };
}

export type PreseedView = Record<string, unknown>;

/** Everything a preseed template may use (pure). Documented in templates/preseeds/README.md. */
export function buildPreseedView(context: NodeContext | null, urls: ProvisioningUrls, enlistmentUrl: string): PreseedView {
  if (!context) {
    return { enlistment_url: enlistmentUrl, provisioning_url: urls.httpBase, domain: urls.domain };
  }
  const withToken = (u: string) => `${u}${u.includes('?') ? '&' : '?'}token=${context.token}`;
  const mirror = splitArchiveUrl(context.architecture === 'amd64' || context.architecture === 'i386' ? context.config.main_archive : context.config.ports_archive);
  return {
    system_id: context.system_id,
    hostname: context.hostname,
    domain: urls.domain,
    os: context.os,
    release: context.release,
    architecture: context.architecture,
    subarchitecture: context.subarchitecture,
    role: context.role.name,
    role_description: context.role.description,
    tasks: context.role.tasks.join(', '),
    packages: context.role.packages.join(' '),
    role_preseed: context.role.preseed,
    late_commands: context.role.late_commands,
    mirror_hostname: mirror.hostname,
    mirror_directory: mirror.directory,
    http_proxy: context.config.http_proxy,
    admin_user: context.config.admin_user,
    authorized_keys: context.config.authorized_keys,
    metadata_url: context.metadata_url,
    enlistment_url: context.enlistment_url,
    installing_url: withToken(`${context.status_url}installing`),
    installed_url: withToken(`${context.status_url}installed`),
    deployed_url: withToken(`${context.status_url}deployed`),
    failed_url: withToken(`${context.status_url}failed`),
    disable_netboot_url: withToken(context.disable_netboot_url),
    firstboot_url: withToken(`${urls.httpBase}/preseed/${context.system_id}/firstboot`),
    provisioning_url: urls.httpBase,
  };
}

const PRESEED_ESCAPER = refusingEscaper('preseed', checkLine);

export function renderPreseed(template: Template, view: PreseedView): string {
  return renderTemplate(template, view, PRESEED_ESCAPER);
}

/** A token-bearing request for a node's own files (first-boot script) is checked here. */
export function contextTokenMatches(context: NodeContext, presented: string | null): boolean {
  return tokenMatches(presented ?? '', context.token);
}

/** Replace the node's token wherever it appears, for showing a preseed to a person. */
export function maskTokenIn(text: string, token: string): string {
  return token ? text.split(token).join(`${token.slice(0, 4)}…(masked)`) : text;
}
