/**
 * The pure render of uec-provisioning-tftpd: the dedicated dnsmasq's config, and one
 * pxelinux and one GRUB file per node MAC from the node's boot action (selectBootAction,
 * shared with the HTTP iPXE path). No fs, clock or network here: model and templates in,
 * sorted file plans out.
 */
import type { FilePlan } from '../../src/core/apply';
import { APACHE_IMAGES, imagePath, renderKernelArgs, selectBootAction, BOOT_PATHS, ipxeBootstrapUrl } from '../../src/edge/boot';
import { UecError } from '../../src/core/errors';
import { checkBootScriptChars, checkInterface, checkKernelArgs, checkLine, checkPath, checkWord } from '../../src/core/formats';
import type { Node } from '../../src/contract/node';
import type { ServiceSpec } from '../../src/core/services';
import { refusingEscaper, renderTemplate, type Template, type ValueEscaper } from '../../src/core/template';

export const TFTPD_CONF = '/etc/uec-provisioning/dnsmasq-tftpd.conf';
export const TFTPD_PID_FILE = '/run/uec-provisioning-tftpd/dnsmasq.pid';

/**
 * dnsmasq reads its main config only at start: a changed file needs a restart (SIGHUP
 * re-reads only hosts files). The per-node boot files need nothing: TFTP opens them per request.
 */
export const TFTPD_SERVICE: ServiceSpec = {
  name: 'uec-provisioning-tftpd',
  unit: 'uec-provisioning-tftpd.service',
  pidFile: TFTPD_PID_FILE,
  restart: true,
};

export const TEMPLATE_NAMES = {
  dnsmasq: 'tftpd/dnsmasq-tftpd.conf.mustache',
  pxelinuxInstall: 'tftpd/pxelinux-install.mustache',
  pxelinuxLocal: 'tftpd/pxelinux-local.mustache',
  pxelinuxDefault: 'tftpd/pxelinux-default.mustache',
  grubInstall: 'tftpd/grub-install.mustache',
  grubLocal: 'tftpd/grub-local.mustache',
  grubDefault: 'tftpd/grub-default.mustache',
  apacheImages: 'tftpd/apache-boot.conf.mustache',
} as const;

export type TftpdTemplates = Record<keyof typeof TEMPLATE_NAMES, Template>;

export interface TftpdModel {
  /** tftp-root as dnsmasq must see it (the resolved boot dir under --root). */
  tftpRoot: string;
  /** pid-file as dnsmasq must write it. */
  pidFile: string;
  /** Interface to answer on; null answers on every interface (still no wildcard bind). */
  interface: string | null;
  /** dnsmasq drops to this user and group (Debian's dnsmasq-base creates "dnsmasq"). */
  user: string;
  group: string;
  httpBase: string;
  domain: string;
  /** [boot] kernel_args. */
  kernelArgs: string;
  nodes: readonly Node[];
  /** apache2 is installed: write its drop-in that sends the images (APACHE_IMAGES). */
  apache2?: boolean;
}

const CONF_VALUE = refusingEscaper('dnsmasq config', (v) => checkLine(v) ?? (/[\s#]/.test(v) ? 'contains a space or "#"' : null));
const PXELINUX_VALUE = refusingEscaper('pxelinux config', checkLine);

/** GRUB's script parser gives meaning to more characters than the kernel command line check refuses. */
export function checkGrubValue(value: string): string | null {
  return checkLine(value) ?? checkKernelArgs(value) ?? checkBootScriptChars(value);
}
const GRUB_VALUE: ValueEscaper = refusingEscaper('GRUB config', checkGrubValue);

/** pxelinux's and (here) GRUB's per-machine file name: 01- and the MAC with dashes. */
export function macFileName(mac: string): string {
  return `01-${mac.toLowerCase().replace(/:/g, '-')}`;
}

function localReason(node: Node): string {
  return node.netboot ? `status ${node.status}` : 'netboot disabled after its install';
}

export function renderDnsmasqConf(model: TftpdModel, template: Template): string {
  for (const [what, problem] of [
    ['tftp root', checkPath(model.tftpRoot)],
    ['pid file', checkPath(model.pidFile)],
    ['interface', model.interface === null ? null : checkInterface(model.interface)],
    ['user', checkWord(model.user)],
    ['group', checkWord(model.group)],
  ] as const) {
    if (problem) throw new UecError('INVALID_VALUE', `dnsmasq-tftpd.conf: ${what} ${problem}`);
  }
  return renderTemplate(template, { tftp_root: model.tftpRoot, pid_file: model.pidFile, interface: model.interface ?? '', user: model.user, group: model.group }, CONF_VALUE);
}

function nodeView(node: Node) {
  const image = imagePath(node.os, node.release, node.arch);
  for (const part of [node.os, node.release, node.arch]) {
    const problem = checkWord(part) ?? (part.startsWith('.') ? 'must not start with "."' : null);
    if (problem) throw new UecError('INVALID_VALUE', `node ${node.hostname}: image part ${JSON.stringify(part)} ${problem}`);
  }
  return {
    hostname: node.hostname,
    system_id: node.systemId,
    os: node.os,
    release: node.release,
    architecture: node.arch,
    kernel: `${image}/linux`,
    initrd: `${image}/initrd.gz`,
    reason: localReason(node),
  };
}

/** Render both boot files of one node: [pxelinux text, grub text]. */
export function renderNodeBootFiles(node: Node, model: Pick<TftpdModel, 'httpBase' | 'domain' | 'kernelArgs'>, templates: TftpdTemplates): [string, string] {
  const view = nodeView(node);
  if (selectBootAction(node) === 'install') {
    const kernelArgs = renderKernelArgs(node, { httpBase: model.httpBase }, { domain: model.domain, extra: model.kernelArgs });
    const full = { ...view, kernel_args: kernelArgs };
    return [renderTemplate(templates.pxelinuxInstall, full, PXELINUX_VALUE), renderTemplate(templates.grubInstall, full, GRUB_VALUE)];
  }
  return [renderTemplate(templates.pxelinuxLocal, view, PXELINUX_VALUE), renderTemplate(templates.grubLocal, view, GRUB_VALUE)];
}

const byPath = (a: FilePlan, b: FilePlan) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);

/** The pxelinux and GRUB file of each MAC of these nodes, each naming its node, sorted by path. */
export function renderTftpdNodePlans(model: Pick<TftpdModel, 'httpBase' | 'domain' | 'kernelArgs'>, templates: TftpdTemplates, nodes: readonly Node[]): FilePlan[] {
  const boot = BOOT_PATHS.bootDir;
  const plans: FilePlan[] = [];
  for (const node of [...nodes].sort((a, b) => (a.systemId < b.systemId ? -1 : a.systemId > b.systemId ? 1 : 0))) {
    const [pxelinux, grub] = renderNodeBootFiles(node, model, templates);
    for (const mac of node.macs) {
      const name = macFileName(mac);
      plans.push({ path: `${boot}/pxelinux.cfg/${name}`, content: pxelinux, mode: 0o644, node: node.systemId });
      plans.push({ path: `${boot}/grub/grub.cfg-${name}`, content: grub, mode: 0o644, node: node.systemId });
    }
  }
  return plans.sort(byPath);
}

/** apache2 reloads gracefully on SIGUSR1 when it runs without systemd (as the web UI's drop-in). */
export const APACHE2_SERVICE: ServiceSpec = { name: 'apache2', unit: 'apache2.service', pidFile: '/run/apache2/apache2.pid', reloadSignal: 'SIGUSR1' };

/** A value of an apache2 directive or section line, unquoted: one word without what ends or opens one. */
function checkApacheWord(v: string): string | null {
  return checkLine(v) ?? (/[\s"#<>]/.test(v) ? 'contains a space, quote, "#", "<" or ">"' : null);
}
const APACHE_VALUE = refusingEscaper('apache2 config', checkApacheWord);

/** apache2's drop-in that publishes the boot tree's images/ (and nothing else of it) read-only. */
export function renderApacheImagesConf(tftpRoot: string, template: Template): string {
  const problem = checkPath(tftpRoot) ?? checkApacheWord(tftpRoot);
  if (problem) throw new UecError('INVALID_VALUE', `uec-provisioning-boot.conf: boot tree ${problem}`);
  return renderTemplate(template, { url_path: APACHE_IMAGES.urlPath, images_dir: `${tftpRoot}/images` }, APACHE_VALUE);
}

/** Every file the tftpd component owns, sorted by path. */
export function renderTftpdPlans(model: TftpdModel, templates: TftpdTemplates): FilePlan[] {
  const boot = BOOT_PATHS.bootDir;
  const bootstrap = { bootstrap_url: ipxeBootstrapUrl({ httpBase: model.httpBase }) };
  const plans: FilePlan[] = [
    { path: TFTPD_CONF, content: renderDnsmasqConf(model, templates.dnsmasq), mode: 0o644, validate: 'dnsmasq', services: [TFTPD_SERVICE] },
    { path: `${boot}/pxelinux.cfg/default`, content: renderTemplate(templates.pxelinuxDefault, bootstrap, PXELINUX_VALUE), mode: 0o644 },
    { path: `${boot}/grub/grub.cfg`, content: renderTemplate(templates.grubDefault, bootstrap, GRUB_VALUE), mode: 0o644 },
  ];
  if (model.apache2) {
    plans.push({ path: APACHE_IMAGES.conf, content: renderApacheImagesConf(model.tftpRoot, templates.apacheImages), mode: 0o644, validate: 'apache2', services: [APACHE2_SERVICE] });
  }
  return [...plans, ...renderTftpdNodePlans(model, templates, model.nodes)].sort(byPath);
}
