/**
 * The provisioning server's HTTP side: what netbooting and installing machines fetch.
 *
 *   GET /boot/ipxe                      the iPXE script DHCP hands every iPXE client
 *   GET /boot/ipxe/node?mac=…           that machine's script: enlist, install or local disk
 *   GET /boot/<path>                    the boot tree (kernel, initrd) over HTTP
 *   GET /preseed/<system-id>[?type=]    the node's preseed, rendered here from its context
 *   GET /preseed/enlist                 the preseed of an unknown machine
 *   GET /preseed/<system-id>/firstboot  the first-boot report script (node token required)
 *   GET /enlist?mac=…                   enlistment, passed on to the region
 *
 * It knows nodes only through the region's context view (region-client.ts); when the region
 * does not answer it says 503 with Retry-After, and the machine's iPXE retries.
 */
import * as fs from 'node:fs';
import type { IncomingMessage } from 'node:http';
import * as path from 'node:path';
import { imagePath, ipxeBootstrapUrl, enlistUrl, renderKernelArgs, type BootAction } from './boot';
import type { NodeContext } from './context';
import { UecError, describeError } from './errors';
import { checkLine, checkUrl } from './formats';
import { decodePathSegment, presentedToken, text, type Reply } from './http-util';
import type { Logger } from './log';
import { parseMac, type NodeStatus } from './node';
import {
  PRESEED_TYPES,
  buildPreseedView,
  contextTokenMatches,
  loadPreseedTemplate,
  renderPreseed,
  selectPreseedCandidates,
  selectPreseedType,
  type PreseedDirs,
  type PreseedType,
  type ProvisioningUrls,
} from './preseed';
import type { ContextLookup, RegionClient } from './region-client';
import { loadTemplate, refusingEscaper, renderTemplate, type Template, type TemplateDirs } from './template';

export interface ProvisioningOptions {
  region: RegionClient;
  /** The region's base URL, for passing enlistment on. */
  regionUrl: string;
  urls: ProvisioningUrls;
  /** Extra kernel arguments ([boot] kernel_args). */
  kernelArgs: string;
  /** The resolved TFTP/HTTP boot tree. */
  bootDir: string;
  templates: TemplateDirs;
  preseeds: PreseedDirs;
  /** Directories outside the boot tree that its symlinks may point into (Debian's loaders). */
  linkTargets: string[];
  log: Logger;
}

/** Directories, and single files: Debian's ipxe links /usr/lib/ipxe/ipxe.efi and ipxe.lkrn to /boot/ (never all of /boot). */
export const LOADER_LINK_TARGETS = ['/usr/lib/ipxe', '/usr/lib/PXELINUX', '/usr/lib/syslinux', '/usr/lib/debian-installer', '/usr/lib/shim', '/usr/lib/grub', '/boot/ipxe.efi', '/boot/ipxe.lkrn'];

const ONE_LINE = refusingEscaper('iPXE script', checkLine);
const RETRY_AFTER = '5';

/** Pure: which boot a context calls for (mirrors selectBootAction for the region's view). */
export function selectContextBootAction(context: NodeContext | null): BootAction {
  if (!context) return 'enlist';
  if (!context.netboot) return 'local';
  return context.status === 'deploying' ? 'install' : 'local';
}

function localReason(status: NodeStatus, netboot: boolean): string {
  if (!netboot) return 'netboot disabled after its install';
  return `status ${status}`;
}

async function renderBootScript(options: ProvisioningOptions, name: string, view: Record<string, unknown>): Promise<Reply> {
  const template = await loadTemplate(options.templates, `boot/${name}.mustache`);
  return text(200, renderTemplate(template, view, ONE_LINE));
}

/** The per-node iPXE script (exported for the CLI and the tests). */
export async function renderNodeScript(options: ProvisioningOptions, context: NodeContext | null): Promise<string> {
  const action = selectContextBootAction(context);
  const base = { provisioning_url: options.urls.httpBase };
  if (!context) return (await renderBootScript(options, 'ipxe-enlist', { ...base, enlist_url: enlistUrl(options.urls) })).body.toString();
  const node = { systemId: context.system_id, hostname: context.hostname };
  const common = { ...base, hostname: context.hostname, system_id: context.system_id, os: context.os, release: context.release, architecture: context.architecture };
  if (action === 'local') {
    return (await renderBootScript(options, 'ipxe-local', { ...common, reason: localReason(context.status, context.netboot) })).body.toString();
  }
  const image = `${options.urls.httpBase}/boot/${imagePath(context.os, context.release, context.architecture)}`;
  for (const u of [`${image}/linux`, `${image}/initrd.gz`]) {
    const problem = checkUrl(u);
    if (problem) throw new UecError('INVALID_VALUE', `boot URL ${JSON.stringify(u)} ${problem}`);
  }
  const view = {
    ...common,
    kernel_url: `${image}/linux`,
    initrd_url: `${image}/initrd.gz`,
    kernel_args: renderKernelArgs(node, { httpBase: options.urls.httpBase }, { domain: options.urls.domain, extra: options.kernelArgs }),
  };
  return (await renderBootScript(options, 'ipxe-install', view)).body.toString();
}

/** How long a looked-up preseed template is reused: an admin's edit shows within a second. */
const TEMPLATE_CACHE_MS = 1000;
const templateCache = new Map<string, { at: number; template: Template }>();
/** Rendered preseeds per (cached) context object and template: the same inputs render the same bytes. */
const renderCache = new WeakMap<object, WeakMap<Template, string>>();

async function selectCachedTemplate(options: ProvisioningOptions, candidates: string[]): Promise<Template> {
  const key = `${options.preseeds.admin}|${options.preseeds.shipped}|${candidates.join('|')}`;
  const hit = templateCache.get(key);
  const now = Date.now();
  if (hit && now - hit.at < TEMPLATE_CACHE_MS) return hit.template;
  const template = await loadPreseedTemplate(options.preseeds, candidates);
  templateCache.set(key, { at: now, template });
  if (templateCache.size > 1000) templateCache.clear();
  return template;
}

/** A node's preseed as the machine receives it (token included). */
export async function renderNodePreseed(options: ProvisioningOptions, context: NodeContext | null, type: PreseedType): Promise<{ text: string; template: string }> {
  const candidates = selectPreseedCandidates(
    context
      ? { type, os: context.os, arch: context.architecture, subarch: context.subarchitecture, release: context.release, hostname: context.hostname, role: context.role.name }
      : { type },
  );
  const template = await selectCachedTemplate(options, candidates);
  const key = context ?? options;
  let byTemplate = renderCache.get(key);
  const cached = byTemplate?.get(template);
  if (cached !== undefined) return { text: cached, template: template.file };
  const view = buildPreseedView(context, options.urls, enlistUrl(options.urls));
  const rendered = renderPreseed(template, view);
  if (!byTemplate) renderCache.set(key, (byTemplate = new WeakMap()));
  byTemplate.set(template, rendered);
  return { text: rendered, template: template.file };
}

async function serveBootFile(options: ProvisioningOptions, relative: string): Promise<Reply> {
  // Only plain names: no "..", no dot-files, no empty segments, no backslashes.
  const segments = relative.split('/');
  if (segments.some((s) => s === '' || s.startsWith('.') || s.includes('\\') || s.includes('\0'))) return text(404, 'not found');
  const root = await fs.promises.realpath(options.bootDir).catch(() => null);
  if (!root) return text(404, 'not found');
  let real: string;
  try {
    real = await fs.promises.realpath(path.join(root, ...segments));
  } catch {
    return text(404, 'not found');
  }
  // Symlinks may point within the tree (an image switched atomically) or at the read-only
  // loader and installer directories of Debian's packages; nowhere else.
  const allowed = [root, ...options.linkTargets];
  if (!allowed.some((dir) => real === dir || real.startsWith(`${dir}${path.sep}`))) {
    options.log.warn(`refused /boot/${relative}: it resolves outside the boot tree`);
    return text(404, 'not found');
  }
  const stat = await fs.promises.stat(real);
  if (!stat.isFile()) return text(404, 'not found');
  return { status: 200, body: '', file: real, size: stat.size, type: 'application/octet-stream' };
}

function unavailable(options: ProvisioningOptions, err: unknown, what: string): Reply {
  options.log.warn(`${what}: ${describeError(err)}`, { code: err instanceof UecError ? err.code : 'INTERNAL' });
  return text(503, 'region unavailable, try again', { 'Retry-After': RETRY_AFTER });
}

/**
 * Tell the region what this server saw (the web UI shows it as a deploy stage). Never delays
 * or fails the machine's boot: sent in the background, a failure is only logged.
 */
function reportToRegion(options: ProvisioningOptions, context: NodeContext, type: 'netboot' | 'preseed', message: string): void {
  options.region.reportEvent(context.system_id, type, message).catch((err: unknown) => {
    options.log.warn(`could not report ${type} of ${context.hostname} (${context.system_id}) to the region: ${describeError(err)}`);
  });
}

async function lookupContext(options: ProvisioningOptions, lookup: ContextLookup, how?: { fresh?: boolean }): Promise<NodeContext | null> {
  return options.region.fetchContext(lookup, how);
}

/** Route one request; null when the path is not the provisioning server's. */
export async function handleProvisioningRequest(options: ProvisioningOptions, req: IncomingMessage, url: URL): Promise<Reply | null> {
  const p = url.pathname;
  const method = req.method ?? 'GET';
  const ours = p === '/boot/ipxe' || p.startsWith('/boot/') || p.startsWith('/preseed/') || p === '/enlist';
  if (!ours) return null;
  if (method !== 'GET' && method !== 'HEAD') return text(405, 'method not allowed', { Allow: 'GET, HEAD' });
  try {
    if (p === '/boot/ipxe') {
      return await renderBootScript(options, 'ipxe-bootstrap', { provisioning_url: options.urls.httpBase, bootstrap_url: ipxeBootstrapUrl(options.urls) });
    }
    if (p === '/boot/ipxe/node') {
      let mac: string;
      try {
        mac = parseMac(url.searchParams.get('mac') ?? '');
      } catch (err) {
        return text(400, describeError(err));
      }
      let context: NodeContext | null;
      try {
        // Never from the cache: a machine that has just called disable-netboot and reboots
        // must get its local disk, not the installer again. (One request per boot.)
        context = await lookupContext(options, { kind: 'mac', mac }, { fresh: true });
      } catch (err) {
        return unavailable(options, err, `boot script for ${mac}`);
      }
      const action = selectContextBootAction(context);
      options.log.info(`boot script for ${mac}: ${action}${context ? ` (${context.hostname}, ${context.system_id})` : ''}`);
      if (context && action === 'install') reportToRegion(options, context, 'netboot', `install boot script served to ${mac}`);
      return text(200, await renderNodeScript(options, context));
    }
    if (p.startsWith('/boot/')) {
      const relative = decodePathSegment(p.slice('/boot/'.length));
      if (relative === null) return text(400, 'malformed percent-encoding in the path');
      return await serveBootFile(options, relative);
    }
    if (p === '/enlist') {
      const target = `${options.regionUrl}/metadata/enlist${url.search}`;
      try {
        const response = await fetch(target, { signal: AbortSignal.timeout(5000) });
        return text(response.status, await response.text());
      } catch (err) {
        return unavailable(options, err, 'enlistment');
      }
    }
    if (p === '/preseed/enlist') return text(200, (await renderNodePreseed(options, null, 'enlist')).text);
    const m = /^\/preseed\/([a-z0-9-]{1,64})(\/firstboot)?$/.exec(p);
    if (!m) return text(404, 'not found');
    let context: NodeContext | null;
    try {
      context = await lookupContext(options, { kind: 'node', systemId: m[1]! });
    } catch (err) {
      return unavailable(options, err, `preseed for ${m[1]}`);
    }
    if (m[2]) {
      if (!context || !contextTokenMatches(context, presentedToken(req, url))) return text(403, 'forbidden');
      const template = await loadTemplate(options.templates, 'boot/firstboot.sh.mustache');
      const view = buildPreseedView(context, options.urls, enlistUrl(options.urls));
      return text(200, renderTemplate(template, view, ONE_LINE));
    }
    if (!context) return text(404, 'no such node');
    const requested = url.searchParams.get('type');
    if (requested !== null && !(PRESEED_TYPES as readonly string[]).includes(requested)) return text(400, `type must be one of ${PRESEED_TYPES.join(', ')}`);
    const type = (requested as PreseedType | null) ?? selectPreseedType(context);
    if (context.status !== 'deploying' && context.status !== 'commissioning') {
      options.log.warn(`preseed for ${context.hostname} (${context.system_id}) refused: status ${context.status}`);
      return text(409, `node is ${context.status}, not deploying`);
    }
    const rendered = await renderNodePreseed(options, context, type);
    options.log.info(`preseed ${type} for ${context.hostname} (${context.system_id}) from ${rendered.template}`);
    reportToRegion(options, context, 'preseed', `${type} preseed fetched`);
    return text(200, rendered.text);
  } catch (err) {
    const code = err instanceof UecError ? err.code : 'INTERNAL';
    options.log.error(`${method} ${p}: ${describeError(err)}`, { code });
    return text(500, 'internal error');
  }
}
