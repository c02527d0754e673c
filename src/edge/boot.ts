/**
 * What a netbooting machine should do, decided from its node (or its absence), and the
 * kernel command line that makes the Debian installer run unattended with the node's own
 * preseed. Pure: the tftpd configurator (pxelinux.cfg, grub.cfg files) and the provisioning
 * HTTP service (iPXE scripts) both use it, so every boot path behaves the same.
 */
import { UecError } from '../core/errors';
import { checkExtraKernelArgs, checkKernelArgs, checkUrl, quoteValue } from '../core/formats';
import type { Node } from '../contract/node';

/** enlist: unknown machine, register it and power off. install: run the installer. local: boot the disk. */
export type BootAction = 'enlist' | 'install' | 'local';

export function selectBootAction(node: Node | undefined): BootAction {
  if (!node) return 'enlist';
  if (!node.netboot) return 'local';
  return node.status === 'deploying' ? 'install' : 'local';
}

/** Where an imported netboot image lives, relative to the TFTP root and the HTTP /boot/ path. */
export function imagePath(os: string, release: string, arch: string): string {
  return `images/${os}/${release}/${arch}`;
}

/** The system paths shared by the tftpd configurator and the provisioning HTTP service. */
export const BOOT_PATHS = {
  /** TFTP root and HTTP /boot/ tree: loaders, pxelinux.cfg/, images/. */
  bootDir: '/var/lib/uec-provisioning/boot',
} as const;

/** Who sends installing machines the installer kernel and initrd over HTTP ([boot] image_server). */
export type ImageServer = 'auto' | 'provisioning' | 'apache2';

/**
 * apache2's drop-in for the imported images (uec-provisioning-tftpd writes it when apache2 is
 * installed): it maps this URL path onto the boot tree's images/ and sends the files with
 * sendfile(2), which the provisioning service (Node) cannot.
 */
export const APACHE_IMAGES = {
  urlPath: '/uec-provisioning-images',
  conf: '/etc/apache2/conf-available/uec-provisioning-boot.conf',
  /** Present while the drop-in is enabled (a2enconf, or apache2-maintscript-helper's enconf). */
  enabled: '/etc/apache2/conf-enabled/uec-provisioning-boot.conf',
} as const;

export interface ImageSettings {
  server: ImageServer;
  /** The port apache2 listens on ([boot] image_http_port). */
  apachePort: number;
}

/** Pure: whether apache2 sends the images: said so, or auto and its drop-in is enabled. */
export function selectImagesFromApache(settings: ImageSettings, apacheEnabled: boolean): boolean {
  return settings.server === 'apache2' || (settings.server === 'auto' && apacheEnabled);
}

/**
 * Pure: the URL of an imported image's directory (no trailing slash): the provisioning
 * service's /boot/images/… or, when apache2 sends them, http://HOST:PORT/uec-provisioning-images/….
 * The host is the provisioning service's, so a machine reaches both at the same address.
 */
export function imageDirUrl(httpBase: string, fromApache: { apachePort: number } | null, os: string, release: string, arch: string): string {
  const rel = imagePath(os, release, arch);
  if (!fromApache) return `${httpBase}/boot/${rel}`;
  const url = new URL(httpBase);
  url.port = String(fromApache.apachePort);
  return `${url.origin}${APACHE_IMAGES.urlPath}/${rel.slice('images/'.length)}`;
}

export interface BootUrls {
  /** http://server:port of the provisioning HTTP service. */
  httpBase: string;
}

/** What a boot file needs to know of a node (a Node, or the context view the region serves). */
export type BootNode = Pick<Node, 'systemId' | 'hostname'>;

export function preseedUrl(urls: BootUrls, node: BootNode): string {
  return `${urls.httpBase}/preseed/${node.systemId}`;
}

export function enlistUrl(urls: BootUrls): string {
  return `${urls.httpBase}/enlist`;
}

/**
 * The installer's kernel arguments for a node to deploy: auto mode at critical priority
 * (d-i asks nothing it can get from the preseed), the node's preseed URL, its host name,
 * then the admin's extra arguments. Every part is checked, so nothing can smuggle a
 * newline or quote into a pxelinux, GRUB or iPXE file.
 */
export function renderKernelArgs(node: BootNode, urls: BootUrls, settings: { domain: string; extra: string }): string {
  const url = preseedUrl(urls, node);
  const urlProblem = checkUrl(url);
  if (urlProblem) throw new UecError('INVALID_VALUE', `preseed URL ${JSON.stringify(url)} ${urlProblem}`);
  // The same check as the schema's, so a value config set accepts renders everywhere.
  const extraProblem = settings.extra ? checkExtraKernelArgs(settings.extra) : null;
  if (extraProblem) throw new UecError('INVALID_VALUE', `kernel arguments for ${node.hostname}: boot.kernel_args ${quoteValue(settings.extra)} ${extraProblem}`);
  const args = [
    'auto=true',
    'priority=critical',
    `url=${url}`,
    'interface=auto',
    `hostname=${node.hostname}`,
    `domain=${settings.domain}`,
    'netcfg/dhcp_timeout=60',
    // On a provisioning LAN without a gateway (the package source is this server's mirror or
    // proxy) d-i would otherwise stop at "no default route"; asked before the preseed is read.
    'netcfg/no_default_route=true',
  ];
  if (settings.extra) args.push(settings.extra);
  const line = args.join(' ');
  const problem = checkKernelArgs(line);
  if (problem) throw new UecError('INVALID_VALUE', `kernel arguments for ${node.hostname} ${problem}`);
  return line;
}

/** The iPXE script every iPXE client is sent to by DHCP; it chains to the per-node script. */
export function ipxeBootstrapUrl(urls: BootUrls): string {
  return `${urls.httpBase}/boot/ipxe`;
}
