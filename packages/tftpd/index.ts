import * as fs from 'node:fs';
import type { FilePlan } from '../../src/core/apply';
import { APACHE_IMAGES, BOOT_PATHS, imagePath } from '../../src/edge/boot';
import { usageError, type Command, type Session, type Values } from '../../src/configurator/command';
import type { ChangedNode, Component, ComponentContext } from '../../src/configurator/component';
import type { Node } from '../../src/contract/node';
import { loadConfig } from '../../src/core/config';
import { loadServerAddress } from '../../src/core/server-address';
import { loadTemplate, type TemplateDirs } from '../../src/core/template';
import { TFTPD_SCHEMA } from './config-schema';
import { importImage, listImages, parseImageName, removeImage, type ImageSource, type Progress } from './images';
import { installLoaders } from './loaders';
import { TEMPLATE_NAMES, TFTPD_PID_FILE, renderTftpdNodePlans, renderTftpdPlans, type TftpdTemplates } from './render';

export async function loadTftpdTemplates(dirs: TemplateDirs): Promise<TftpdTemplates> {
  const entries = await Promise.all(Object.entries(TEMPLATE_NAMES).map(async ([key, name]) => [key, await loadTemplate(dirs, name)] as const));
  return Object.fromEntries(entries) as TftpdTemplates;
}

function warnMissingImages(context: ComponentContext, nodes: readonly Node[]): void {
  for (const node of nodes) {
    if (node.status !== 'deploying' || !node.netboot) continue;
    const dir = context.paths.resolve(`${BOOT_PATHS.bootDir}/${imagePath(node.os, node.release, node.arch)}`);
    if (!fs.existsSync(`${dir}/linux`)) context.log.warn(`${node.hostname} is deploying ${node.os}/${node.release}/${node.arch} but that image is not imported (uec-provisioning images import)`);
  }
}

/**
 * apache2 is not a dependency: its drop-in is written only where it is installed (its
 * configuration and its program: removed but not purged leaves /etc/apache2 behind).
 */
function apache2Installed(context: ComponentContext): boolean {
  if (!fs.existsSync(context.paths.resolve('/etc/apache2')) || !fs.existsSync('/usr/sbin/apache2')) return false;
  if (context.config.getString('boot.image_server') === 'auto' && !fs.existsSync(context.paths.resolve(APACHE_IMAGES.enabled))) {
    context.log.info(`the kernel and initrd come from the provisioning service until apache2's drop-in is enabled: a2enconf uec-provisioning-boot && systemctl reload apache2`);
  }
  return true;
}

/** Load what the render needs (config, server address, nodes, templates), then render. */
export async function planTftpd(context: ComponentContext): Promise<FilePlan[]> {
  const { config, paths } = context;
  const server = await loadServerAddress(config, context.network);
  const [nodes, templates] = await Promise.all([context.nodes(), loadTftpdTemplates(context.templates)]);
  warnMissingImages(context, nodes);
  return renderTftpdPlans(
    {
      tftpRoot: paths.resolve(BOOT_PATHS.bootDir),
      pidFile: paths.resolve(TFTPD_PID_FILE),
      interface: config.getString('tftpd.listen') === 'interface' ? server.interface : null,
      user: 'dnsmasq',
      group: 'nogroup',
      httpBase: server.httpBase,
      domain: config.getString('boot.domain'),
      kernelArgs: config.getString('boot.kernel_args'),
      nodes,
      apache2: apache2Installed(context),
    },
    templates,
  );
}

/** The boot files of the changed nodes only (they need no reload: TFTP opens them per request). */
export async function planTftpdNodes(context: ComponentContext, changed: readonly ChangedNode[]): Promise<FilePlan[]> {
  const { config } = context;
  const nodes = changed.flatMap((c) => (c.node ? [c.node] : []));
  if (nodes.length === 0) return [];
  const server = await loadServerAddress(config, context.network);
  const templates = await loadTftpdTemplates(context.templates);
  warnMissingImages(context, nodes);
  return renderTftpdNodePlans({ httpBase: server.httpBase, domain: config.getString('boot.domain'), kernelArgs: config.getString('boot.kernel_args') }, templates, nodes);
}

function formatBytes(n: number): string {
  return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${Math.round(n / 1024)} KiB`;
}

/** A progress line that redraws itself on a terminal and prints each stage once otherwise. */
export function createProgress(session: Session): { progress: Progress; finish: () => void } {
  let last = '';
  let drawn = false;
  let lastDraw = 0;
  const progress: Progress = (message, done, total) => {
    if (session.io.interactive) {
      const now = Date.now();
      if (done !== undefined && total !== undefined && done < total && now - lastDraw < 100) return;
      lastDraw = now;
      const amount = done === undefined ? '' : ` ${formatBytes(done)}${total ? ` of ${formatBytes(total)} (${Math.floor((done * 100) / total)}%)` : ''}`;
      session.io.stderr(`\r\u001b[K${message}${amount}`);
      drawn = true;
    } else if (message !== last) {
      session.io.stderr(`${message}\n`);
    }
    last = message;
  };
  return { progress, finish: () => (drawn ? session.io.stderr('\n') : undefined) };
}

function sourceFrom(values: Values, positionals: string[]): ImageSource {
  const given = [values.package, values.iso, positionals[0]].filter((v) => v !== undefined);
  if (given.length !== 1 || positionals.length > 1) throw usageError('images import needs exactly one source: --package NAME, --iso FILE, or a netboot.tar.gz file or URL');
  if (typeof values.package === 'string') return { kind: 'package', name: values.package };
  if (typeof values.iso === 'string') return { kind: 'iso', file: values.iso };
  return { kind: 'tarball', location: positionals[0]! };
}

const optionalString = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

export const IMAGE_COMMANDS: Command[] = [
  {
    words: ['images', 'import'],
    args: '[NETBOOT.TAR.GZ|URL]',
    summary: 'import a netboot image (installer kernel and initrd) into the boot tree',
    options: { package: { type: 'string' }, iso: { type: 'string' }, checksums: { type: 'string' }, os: { type: 'string' }, release: { type: 'string' }, arch: { type: 'string' } },
    optionHelp: [
      ['--package NAME', 'from an installed debian-installer-<N>-netboot-<arch> package'],
      ['--iso FILE', 'from an installer ISO (its netboot tree, else install.<arch>/)'],
      ['--checksums FILE|URL', 'SHA256SUMS to verify a tarball against (default: looked for beside it)'],
      ['--os, --release, --arch', 'store under these names (default: from version.info, else [tftpd] defaults)'],
    ],
    async run(session, positionals, values) {
      const source = sourceFrom(values, positionals);
      const config = await loadConfig(session.paths, session.schema);
      const { progress, finish } = createProgress(session);
      let result;
      try {
        result = await importImage({
          paths: session.paths,
          source,
          checksums: optionalString(values.checksums),
          os: optionalString(values.os),
          release: optionalString(values.release),
          arch: optionalString(values.arch),
          defaults: { os: config.getString('tftpd.default_os'), release: config.getString('tftpd.default_release'), arch: config.getString('tftpd.default_arch') },
          progress,
        });
      } finally {
        finish();
      }
      for (const note of result.notes) session.log.warn(note);
      const { os, release, arch } = result.image;
      if (session.json) session.io.stdout(`${JSON.stringify({ outcome: result.outcome, image: result.image, notes: result.notes }, null, 2)}\n`);
      else session.log.info(`${os}/${release}/${arch}: ${result.outcome === 'unchanged' ? 'already imported, nothing changed' : `imported from ${result.image.source} (verified: ${result.image.verified})`}`);
      return 0;
    },
  },
  {
    words: ['images', 'list'],
    args: '',
    summary: 'list the imported netboot images',
    options: {},
    optionHelp: [],
    async run(session) {
      const images = await listImages(session.paths);
      if (session.json) {
        session.io.stdout(`${JSON.stringify(images, null, 2)}\n`);
        return 0;
      }
      session.io.stdout(`${'IMAGE'.padEnd(28)} ${'VERSION'.padEnd(28)} ${'VERIFIED'.padEnd(14)} SOURCE\n`);
      for (const i of images) session.io.stdout(`${`${i.os}/${i.release}/${i.arch}`.padEnd(28)} ${(i.version || '-').padEnd(28)} ${i.verified.padEnd(14)} ${i.source}\n`);
      return 0;
    },
  },
  {
    words: ['images', 'remove'],
    args: 'OS/RELEASE/ARCH',
    summary: 'remove an imported netboot image',
    options: {},
    optionHelp: [],
    async run(session, positionals) {
      if (positionals.length !== 1) throw usageError('images remove needs one OS/RELEASE/ARCH');
      const { os, release, arch } = parseImageName(positionals[0]!);
      await removeImage(session.paths, os, release, arch);
      session.log.info(`removed ${os}/${release}/${arch}`);
      return 0;
    },
  },
  {
    words: ['images', 'loaders'],
    args: '',
    summary: 'copy the boot loaders from Debian\'s ipxe, pxelinux, shim and GRUB packages into the TFTP root',
    options: {},
    optionHelp: [],
    async run(session) {
      const config = await loadConfig(session.paths, session.schema);
      const results = await installLoaders({ paths: session.paths, secureBoot: config.getBoolean('tftpd.secure_boot_loaders'), sourceRoot: session.io.env.UEC_PROVISIONING_LOADER_ROOT });
      if (session.json) session.io.stdout(`${JSON.stringify(results, null, 2)}\n`);
      else for (const r of results) session.log.info(`${r.name}: ${r.outcome}${r.note ? ` (${r.note})` : ''}`);
      return 0;
    },
  },
];

/**
 * uec-provisioning-tftpd: a dedicated TFTP-only dnsmasq serving the boot tree, Debian's boot
 * loaders in it, imported netboot images, and a pxelinux and GRUB file per node.
 */
export const component: Component = {
  name: 'tftpd',
  package: 'uec-provisioning-tftpd',
  summary: 'TFTP server (dedicated dnsmasq), boot loaders, netboot images and per-node boot files',
  configSchema: TFTPD_SCHEMA,
  usesNodes: true,
  plan: planTftpd,
  planNodes: planTftpdNodes,
  commands: IMAGE_COMMANDS,
};
