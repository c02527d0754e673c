/**
 * Subcommands for the region's nodes and roles, the preseeds the provisioning server renders,
 * the template check, and the HTTP service itself.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadProcessActor } from '../core/audit';
import { recordNodeAudit } from '../region/node-audit';
import { applyComponents, applyNodeChanges, printApplyResult, usageError, type Command, type Session, type Values } from '../configurator/command';
import type { ChangedNode } from '../configurator/component';
import { buildNodeContext, type NodeContext } from '../contract/context';
import { loadArchiveSettings } from '../core/archive';
import { loadConfig } from '../core/config';
import { UecError, describeError } from '../core/errors';
import { maskToken, parseStatus, publicNode, type Node } from '../contract/node';
import { addNode, deployNodes, editNode, releaseNodes, removeNodes, type NodeEdit } from '../region/node-ops';
import { getNode } from '../region/node-store';
import { maskTokenIn, preseedDirs, PRESEED_TYPES, buildPreseedView, type PreseedType } from '../edge/preseed';
import { LOADER_LINK_TARGETS, renderNodePreseed, renderNodeScript, type ProvisioningOptions } from '../edge/provisioning';
import { selectNodeContext } from '../region/region';
import { createRegionClient } from '../edge/region-client';
import { loadRoles, selectRole, shippedRoleDir } from '../contract/roles';
import { loadAuthorizedKeys, startService } from './serve';
import { loadServerAddress } from '../core/server-address';
import { checkTemplate, templateDirs, type Template } from '../core/template';
import { validateContent } from '../core/validators';
import { BOOT_PATHS } from '../edge/boot';
import { loadImageOptions } from '../edge/image-server';
import { selectBootTrace, selectBootVerdict, selectUnknownMacs } from '../region/boot-trace';
import { loadBootLogs } from '../region/boot-logs';

function strings(value: unknown): string[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value.map(String) : [String(value)];
}

function optional(values: Values, key: string): string | undefined {
  const v = values[key];
  return typeof v === 'string' ? v : undefined;
}

/**
 * After a node change, bring the changed nodes' files (DHCP reservation, pxelinux/GRUB files)
 * up to date: only theirs are rendered and written (configurator applyNodeChanges).
 */
async function applyAfterNodeChange(session: Session, values: Values, changes: readonly ChangedNode[]): Promise<void> {
  if (values['no-apply']) return;
  for (const result of await applyNodeChanges(session, changes)) printApplyResult(session, result, false, false);
}

const changedTo = (nodes: readonly Node[]): ChangedNode[] => nodes.map((node) => ({ systemId: node.systemId, node }));

function printNode(session: Session, node: Node): void {
  if (session.json) {
    session.io.stdout(`${JSON.stringify(publicNode(node), null, 2)}\n`);
    return;
  }
  const rows: [string, string][] = [
    ['system id', node.systemId],
    ['hostname', node.hostname],
    ['MACs', node.macs.join(' ')],
    ['architecture', `${node.arch}/${node.subarch}`],
    ['os / release', `${node.os} ${node.release}`],
    ['role', node.role],
    ['status', `${node.status}${node.statusReason ? ` (${node.statusReason})` : ''} since ${node.statusChangedAt}`],
    ['address', node.ipv4 || '(from the pool)'],
    ['netboot', node.netboot ? 'on' : 'off (boots its disk)'],
    ['token', maskToken(node.token)],
    ...Object.entries(node.hardware).map(([k, v]): [string, string] => [k, String(v)]),
  ];
  for (const [k, v] of rows) session.io.stdout(`${k.padEnd(14)} ${v}\n`);
  session.io.stdout('events:\n');
  for (const e of node.events) session.io.stdout(`  ${e.at}  ${e.type.padEnd(16)} ${e.message}\n`);
}

function printNodes(session: Session, nodes: Node[]): void {
  if (session.json) {
    session.io.stdout(`${JSON.stringify(nodes.map(publicNode), null, 2)}\n`);
    return;
  }
  session.io.stdout(`${'HOSTNAME'.padEnd(24)} ${'SYSTEM ID'.padEnd(12)} ${'STATUS'.padEnd(14)} ${'ROLE'.padEnd(20)} ${'ARCH'.padEnd(14)} MAC\n`);
  for (const n of nodes) {
    session.io.stdout(`${n.hostname.padEnd(24)} ${n.systemId.padEnd(12)} ${n.status.padEnd(14)} ${n.role.padEnd(20)} ${`${n.arch}/${n.subarch}`.padEnd(14)} ${n.macs.join(',')}\n`);
  }
}

const NODE_FIELDS = {
  mac: { type: 'string', multiple: true },
  arch: { type: 'string' },
  subarch: { type: 'string' },
  role: { type: 'string' },
  os: { type: 'string' },
  release: { type: 'string' },
  ipv4: { type: 'string' },
  'no-apply': { type: 'boolean' },
} as const;

const NODE_FIELD_HELP: [string, string][] = [
  ['--mac MAC', 'a MAC address (repeat for more; the first is the boot interface)'],
  ['--arch ARCH', 'amd64 (default), arm64 or i386'],
  ['--subarch S', 'generic (default), bios or uefi'],
  ['--role ROLE', 'the role to install (default server; see roles list)'],
  ['--release R', 'release codename (default bookworm)'],
  ['--ipv4 ADDR', 'a fixed DHCP reservation (empty: from the pool)'],
  ['--no-apply', 'do not update DHCP reservations and boot files now'],
];

/** What `preseed` and `boot-script` show: rendered here, through the same code as the service. */
async function localProvisioning(session: Session): Promise<{ options: ProvisioningOptions; contextOf: (node: Node) => Promise<NodeContext> }> {
  const config = await loadConfig(session.paths, session.schema);
  const server = await loadServerAddress(config, session.network());
  const regionOptions = {
    store: session.nodeStore(),
    urls: { base: (config.getString('region.url') || server.httpBase).replace(/\/$/, '') },
    provisioningKey: '',
    loadArchive: () => loadArchiveSettings(session.paths, config),
    loadRoles: () => loadRoles(session.paths),
    loadAuthorizedKeys: () => loadAuthorizedKeys(session.paths, config.getString('region.authorized_keys_file')),
    adminUser: config.getString('region.admin_user'),
    log: session.log,
    clock: { now: () => new Date() },
  };
  const options: ProvisioningOptions = {
    region: createRegionClient({ regionUrl: 'http://127.0.0.1:1', key: '', cacheMs: 0, timeoutMs: 1 }),
    regionUrl: regionOptions.urls.base,
    urls: { httpBase: server.httpBase, domain: config.getString('boot.domain') },
    kernelArgs: config.getString('boot.kernel_args'),
    images: loadImageOptions(session.paths, config),
    bootDir: session.paths.resolve(BOOT_PATHS.bootDir),
    templates: templateDirs(session.paths),
    preseeds: preseedDirs(session.paths),
    linkTargets: LOADER_LINK_TARGETS,
    log: session.log,
  };
  return { options, contextOf: (node) => selectNodeContext(regionOptions, node) };
}

/** A context with every field filled, to check templates against (never rendered for a machine). */
function sampleContext(): NodeContext {
  const node: Node = {
    systemId: 'node-sample',
    hostname: 'sample',
    macs: ['52:54:00:00:00:01'],
    arch: 'amd64',
    subarch: 'generic',
    role: 'server',
    os: 'debian',
    release: 'bookworm',
    status: 'deploying',
    statusReason: '',
    statusChangedAt: '1970-01-01T00:00:00.000Z',
    ipv4: '',
    token: 'sampletokensampletokensampletoken',
    netboot: true,
    hardware: {},
    createdAt: '1970-01-01T00:00:00.000Z',
    updatedAt: '1970-01-01T00:00:00.000Z',
    events: [],
  };
  const role = { name: 'server', description: 'sample', tasks: ['standard'], packages: { bookworm: ['openssh-server'] }, preseed: ['d-i sample/line string x'], lateCommands: ['true'], file: '' };
  return buildNodeContext(
    node,
    { base: 'http://192.0.2.10:5248' },
    { main_archive: 'http://deb.debian.org/debian', ports_archive: 'http://deb.debian.org/debian', http_proxy: '', source: 'config' },
    role,
    ['openssh-server'],
    { commissioningRelease: 'bookworm', adminUser: 'debian', authorizedKeys: ['ssh-ed25519 AAAA sample'] },
  );
}

async function listTemplates(dir: string, system: string): Promise<Template[]> {
  const out: Template[] = [];
  async function walk(d: string, rel: string): Promise<void> {
    let entries: fs.Dirent[];
    try {
      entries = await fs.promises.readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(path.join(d, e.name), r);
      else if (e.name.endsWith('.mustache')) out.push({ name: r, file: `${system}/${r}`, text: await fs.promises.readFile(path.join(d, e.name), 'utf8') });
    }
  }
  await walk(dir, '');
  return out;
}

export const NODE_COMMANDS: Command[] = [
  {
    words: ['nodes', 'list'],
    args: '',
    summary: 'list the nodes with their status, role and MACs',
    options: { status: { type: 'string' } },
    optionHelp: [['--status S', 'only nodes in that status']],
    async run(session, _p, values) {
      const status = optional(values, 'status');
      const wanted = status !== undefined ? parseStatus(status) : undefined;
      const nodes = (await session.nodeStore().list()).filter((n) => !wanted || n.status === wanted);
      printNodes(session, nodes);
      return 0;
    },
  },
  {
    words: ['nodes', 'add'],
    args: 'HOSTNAME --mac MAC',
    summary: 'register a machine (status ready) so it can be deployed',
    options: { ...NODE_FIELDS, status: { type: 'string' } },
    optionHelp: [...NODE_FIELD_HELP, ['--status S', 'new or ready (default ready)']],
    async run(session, positionals, values) {
      if (positionals.length !== 1) throw usageError('nodes add needs exactly one HOSTNAME');
      const status = optional(values, 'status');
      if (status !== undefined && status !== 'new' && status !== 'ready') throw usageError('--status must be new or ready');
      const node = await addNode(session.nodeStore(), {
        hostname: positionals[0]!,
        macs: strings(values.mac),
        arch: optional(values, 'arch'),
        subarch: optional(values, 'subarch'),
        role: optional(values, 'role'),
        os: optional(values, 'os'),
        release: optional(values, 'release'),
        ipv4: optional(values, 'ipv4'),
        status: status as 'new' | 'ready' | undefined,
      });
      await recordNodeAudit(session.paths, loadProcessActor(session.io.env), 'node.add', null, node, session.log);
      if (!(await loadRoles(session.paths)).some((r) => r.name === node.role)) session.log.warn(`role ${node.role} does not exist yet; deploy will refuse until it does`);
      session.log.info(`added ${node.hostname} (${node.systemId})`);
      await applyAfterNodeChange(session, values, changedTo([node]));
      if (session.json) printNode(session, node);
      else session.io.stdout(`${node.systemId}\n`);
      return 0;
    },
  },
  {
    words: ['nodes', 'show'],
    args: 'NODE',
    summary: 'show one node (system id, hostname or MAC) with its event timeline',
    options: {},
    optionHelp: [],
    async run(session, positionals) {
      if (positionals.length !== 1) throw usageError('nodes show needs one NODE');
      printNode(session, await getNode(session.nodeStore(), positionals[0]!));
      return 0;
    },
  },
  {
    words: ['nodes', 'why'],
    args: 'NODE | --unknown',
    summary: 'why a node did not boot or install: what DHCP, TFTP and the service saw, and a verdict',
    options: { log: { type: 'string', multiple: true }, since: { type: 'string' }, at: { type: 'string' }, unknown: { type: 'boolean' } },
    optionHelp: [
      ['--log FILE', 'read dnsmasq\'s log from FILE (log-facility=FILE, or syslog; repeat for more) instead of the journal'],
      ['--since TIME', 'look back to TIME (ISO 8601; default 24 hours before --at)'],
      ['--at TIME', 'judge as if it were TIME (ISO 8601; default now)'],
      ['--unknown', 'list the MACs seen on the wire that no node has'],
    ],
    async run(session, positionals, values) {
      const unknown = values.unknown === true;
      if (positionals.length !== (unknown ? 0 : 1)) throw usageError(unknown ? 'nodes why --unknown takes no NODE' : 'nodes why needs one NODE (or --unknown)');
      const time = (name: string, fallback: Date): Date => {
        const text = optional(values, name);
        if (text === undefined) return fallback;
        const parsed = new Date(text);
        if (!/^\d{4}-\d\d-\d\d/.test(text) || Number.isNaN(parsed.getTime())) throw usageError(`--${name} ${JSON.stringify(text)} is not an ISO 8601 time`);
        return parsed;
      };
      const now = time('at', new Date());
      const since = time('since', new Date(now.getTime() - 86_400_000));
      const node = unknown ? null : await getNode(session.nodeStore(), positionals[0]!);
      const logs = await loadBootLogs({ files: strings(values.log), since, now });
      if (logs.warning) session.log.warn(logs.warning);
      const wire = logs.events.filter((e) => e.at <= now.toISOString());
      const unknownMacs = selectUnknownMacs(wire, await session.nodeStore().list());
      if (!node) {
        if (session.json) session.io.stdout(`${JSON.stringify({ source: logs.source, since: since.toISOString(), unknownMacs }, null, 2)}\n`);
        else {
          if (unknownMacs.length === 0) session.io.stdout(`no unknown MACs seen since ${since.toISOString()} (${logs.source})\n`);
          for (const u of unknownMacs) session.io.stdout(`${u.mac}  ${String(u.count).padStart(4)} DHCP lines  ${u.firstAt} .. ${u.lastAt}  last: ${u.last}${u.vendorClass ? `  vendor class: ${u.vendorClass}` : ''}\n`);
        }
        return 0;
      }
      // Judged as of --at: the timeline's later events are left out too.
      const asOf = { ...node, events: node.events.filter((e) => e.at <= now.toISOString()) };
      const trace = selectBootTrace(asOf, wire, since.toISOString());
      const verdict = selectBootVerdict(asOf, wire, now);
      if (session.json) {
        const out = { node: { systemId: node.systemId, hostname: node.hostname, macs: node.macs, status: node.status }, source: logs.source, warning: logs.warning, since: since.toISOString(), at: now.toISOString(), trace, verdict, unknownMacs: unknownMacs.length };
        session.io.stdout(`${JSON.stringify(out, null, 2)}\n`);
        return 0;
      }
      session.io.stdout(`${node.hostname} (${node.systemId}), ${node.macs.join(' ')}, status ${node.status}; dnsmasq log: ${logs.source}\n`);
      for (const e of trace) session.io.stdout(`  ${e.at}  ${e.source.padEnd(8)} ${e.what}\n`);
      session.io.stdout(`verdict: ${verdict.code}: ${verdict.summary}\n  ${verdict.hint}\n`);
      if (unknownMacs.length > 0) session.io.stdout(`${unknownMacs.length} MAC(s) no node has were seen on the wire: nodes why --unknown\n`);
      return 0;
    },
  },
  {
    words: ['nodes', 'edit'],
    args: 'NODE [--hostname H] [--mac M]…',
    summary: 'change a node\'s hostname, MACs, architecture, role, release or address',
    options: { ...NODE_FIELDS, hostname: { type: 'string' } },
    optionHelp: [['--hostname H', 'a new host name'], ...NODE_FIELD_HELP.map(([k, v]): [string, string] => (k === '--mac MAC' ? [k, 'replace the MACs (repeat for more)'] : [k, v]))],
    async run(session, positionals, values) {
      if (positionals.length !== 1) throw usageError('nodes edit needs one NODE');
      const edit: NodeEdit = {
        hostname: optional(values, 'hostname'),
        macs: values.mac === undefined ? undefined : strings(values.mac),
        arch: optional(values, 'arch'),
        subarch: optional(values, 'subarch'),
        role: optional(values, 'role'),
        os: optional(values, 'os'),
        release: optional(values, 'release'),
        ipv4: optional(values, 'ipv4'),
      };
      const before = await getNode(session.nodeStore(), positionals[0]!);
      const node = await editNode(session.nodeStore(), before.systemId, edit);
      if (JSON.stringify(before) !== JSON.stringify(node)) await recordNodeAudit(session.paths, loadProcessActor(session.io.env), 'node.edit', before, node, session.log);
      await applyAfterNodeChange(session, values, changedTo([node]));
      printNode(session, node);
      return 0;
    },
  },
  {
    words: ['nodes', 'remove'],
    args: 'NODE…',
    summary: 'forget nodes (their reservations and boot files go too)',
    options: { 'no-apply': { type: 'boolean' } },
    optionHelp: [['--no-apply', 'do not update DHCP reservations and boot files now']],
    async run(session, positionals, values) {
      if (positionals.length === 0) throw usageError('nodes remove needs a NODE');
      // All or none: an unknown node among several refuses the lot, nothing removed.
      const removed = await removeNodes(session.nodeStore(), positionals);
      for (const node of removed) {
        await recordNodeAudit(session.paths, loadProcessActor(session.io.env), 'node.remove', node, null, session.log);
        session.log.info(`removed ${node.hostname} (${node.systemId})`);
      }
      await applyAfterNodeChange(session, values, removed.map((node) => ({ systemId: node.systemId, node: null })));
      if (session.json) session.io.stdout(`${JSON.stringify(removed.map(publicNode), null, 2)}\n`);
      return 0;
    },
  },
  {
    words: ['nodes', 'deploy'],
    args: 'NODE… [--role R] [--release R]',
    summary: 'install the node\'s role on its next netboot (power it on to start)',
    options: { role: { type: 'string' }, release: { type: 'string' }, 'no-apply': { type: 'boolean' } },
    optionHelp: [
      ['--role R', 'deploy this role (default: the node\'s)'],
      ['--release R', 'deploy this release (default: the node\'s)'],
      ['--no-apply', 'do not update boot files now'],
    ],
    async run(session, positionals, values) {
      if (positionals.length === 0) throw usageError('nodes deploy needs a NODE');
      const roles = await loadRoles(session.paths);
      // All or none: a node that is unknown or cannot deploy refuses the lot, nothing changed.
      const befores = await Promise.all(positionals.map((ref) => getNode(session.nodeStore(), ref)));
      const deployed = await deployNodes(session.nodeStore(), befores.map((b) => b.systemId), roles, { role: optional(values, 'role'), release: optional(values, 'release') });
      for (const [i, node] of deployed.entries()) {
        await recordNodeAudit(session.paths, loadProcessActor(session.io.env), 'node.deploy', befores[i]!, node, session.log);
        session.log.info(`${node.hostname} (${node.systemId}) is deploying role ${node.role} (${node.os} ${node.release}); it installs on its next netboot`);
      }
      await applyAfterNodeChange(session, values, changedTo(deployed));
      if (session.json) session.io.stdout(`${JSON.stringify(deployed.map(publicNode), null, 2)}\n`);
      return 0;
    },
  },
  {
    words: ['nodes', 'release'],
    args: 'NODE…',
    summary: 'make nodes ready again, with netboot on',
    options: { 'no-apply': { type: 'boolean' } },
    optionHelp: [['--no-apply', 'do not update boot files now']],
    async run(session, positionals, values) {
      if (positionals.length === 0) throw usageError('nodes release needs a NODE');
      // All or none: an unknown node among several refuses the lot, nothing changed.
      const changes = await releaseNodes(session.nodeStore(), positionals);
      const released = changes.map((c) => c.after);
      for (const { before, after: node } of changes) {
        if (JSON.stringify(before) !== JSON.stringify(node)) await recordNodeAudit(session.paths, loadProcessActor(session.io.env), 'node.release', before, node, session.log);
        session.log.info(`${node.hostname} (${node.systemId}) is ready`);
      }
      await applyAfterNodeChange(session, values, changedTo(released));
      if (session.json) session.io.stdout(`${JSON.stringify(released.map(publicNode), null, 2)}\n`);
      return 0;
    },
  },
  {
    words: ['preseed'],
    args: 'NODE [--type T]',
    summary: 'print the preseed the node would receive (its token masked)',
    options: { type: { type: 'string' }, 'show-token': { type: 'boolean' } },
    optionHelp: [
      ['--type T', `${PRESEED_TYPES.join(', ')} (default: what the node's status calls for)`],
      ['--show-token', 'print the node\'s token unmasked'],
    ],
    async run(session, positionals, values) {
      if (positionals.length !== 1) throw usageError('preseed needs one NODE');
      const type = optional(values, 'type');
      if (type !== undefined && !(PRESEED_TYPES as readonly string[]).includes(type)) throw usageError(`--type must be one of ${PRESEED_TYPES.join(', ')}`);
      const node = await getNode(session.nodeStore(), positionals[0]!);
      const { options, contextOf } = await localProvisioning(session);
      const context = await contextOf(node);
      const chosen = (type as PreseedType | undefined) ?? (context.commissioning ? 'commissioning' : 'install');
      const rendered = await renderNodePreseed(options, context, chosen);
      await validateContent('debconf', `preseed of ${node.hostname}`, rendered.text);
      session.log.info(`${chosen} preseed for ${node.hostname} from ${rendered.template}`);
      const shown = values['show-token'] ? rendered.text : maskTokenIn(rendered.text, node.token);
      session.io.stdout(session.json ? `${JSON.stringify({ node: node.systemId, type: chosen, template: rendered.template, preseed: shown })}\n` : shown);
      return 0;
    },
  },
  {
    words: ['boot-script'],
    args: 'MAC',
    summary: 'print the iPXE script a machine with that MAC would receive (token-free)',
    options: {},
    optionHelp: [],
    async run(session, positionals) {
      if (positionals.length !== 1) throw usageError('boot-script needs one MAC');
      const node = await session.nodeStore().find(positionals[0]!);
      const { options, contextOf } = await localProvisioning(session);
      session.io.stdout(await renderNodeScript(options, node ? await contextOf(node) : null));
      return 0;
    },
  },
  {
    words: ['roles', 'list'],
    args: '',
    summary: 'list the roles machines can be deployed with',
    options: {},
    optionHelp: [],
    async run(session) {
      const roles = await loadRoles(session.paths);
      if (session.json) {
        session.io.stdout(`${JSON.stringify(roles, null, 2)}\n`);
        return 0;
      }
      for (const r of roles) session.io.stdout(`${r.name.padEnd(20)} ${Object.keys(r.packages).sort().join(',').padEnd(16)} ${r.description}\n`);
      return 0;
    },
  },
  {
    words: ['roles', 'show'],
    args: 'ROLE',
    summary: 'show a role: packages per release, tasks, preseed lines, late commands, file',
    options: {},
    optionHelp: [],
    async run(session, positionals) {
      if (positionals.length !== 1) throw usageError('roles show needs one ROLE');
      const role = selectRole(await loadRoles(session.paths), positionals[0]!);
      if (session.json) {
        session.io.stdout(`${JSON.stringify(role, null, 2)}\n`);
        return 0;
      }
      session.io.stdout(`role          ${role.name}\ndescription   ${role.description}\nfile          ${role.file}\ntasks         ${role.tasks.join(', ')}\n`);
      for (const [release, pkgs] of Object.entries(role.packages).sort()) session.io.stdout(`packages      ${release}: ${pkgs.join(' ') || '(none)'}\n`);
      for (const l of role.preseed) session.io.stdout(`preseed       ${l}\n`);
      for (const l of role.lateCommands) session.io.stdout(`late command  ${l}\n`);
      return 0;
    },
  },
  {
    words: ['templates', 'check'],
    args: '',
    summary: 'check every preseed and boot template (syntax, unknown variables) and every role file',
    options: {},
    optionHelp: [],
    async run(session) {
      const dirs = templateDirs(session.paths);
      const pdirs = preseedDirs(session.paths);
      const context = sampleContext();
      const view = buildPreseedView(context, { httpBase: 'http://192.0.2.10:5248', domain: 'example.org' }, 'http://192.0.2.10:5248/enlist');
      const scriptView = { ...view, provisioning_url: 'http://192.0.2.10:5248', bootstrap_url: 'http://192.0.2.10:5248/boot/ipxe', enlist_url: 'http://192.0.2.10:5248/enlist', kernel_url: 'http://x/linux', initrd_url: 'http://x/initrd.gz', kernel_args: 'auto=true', reason: 'sample' };
      const groups: [Template[], object][] = [
        [[...(await listTemplates(pdirs.admin, '/etc/uec-provisioning/preseeds')), ...(await listTemplates(pdirs.shipped, 'templates/preseeds'))], view],
        [[...(await listTemplates(path.join(dirs.override, 'boot'), '/etc/uec-provisioning/templates/boot')), ...(await listTemplates(path.join(dirs.shipped, 'boot'), 'templates/boot'))], scriptView],
      ];
      let checked = 0;
      const problems: string[] = [];
      for (const [templates, v] of groups) {
        for (const t of templates) {
          checked++;
          try {
            const isEnlist = path.basename(t.name).startsWith('enlist');
            checkTemplate(t, isEnlist ? { ...v, ...buildPreseedView(null, { httpBase: 'http://192.0.2.10:5248', domain: 'example.org' }, 'http://192.0.2.10:5248/enlist') } : v);
          } catch (err) {
            problems.push(describeError(err));
          }
        }
      }
      try {
        const roles = await loadRoles(session.paths, shippedRoleDir(session.paths));
        checked += roles.length;
      } catch (err) {
        problems.push(describeError(err));
      }
      if (session.json) session.io.stdout(`${JSON.stringify({ checked, problems })}\n`);
      for (const p of problems) session.log.error(p);
      if (problems.length > 0) throw new UecError('TEMPLATE_SYNTAX', `${problems.length} of ${checked} templates and roles have problems (first: ${problems[0]})`);
      session.log.info(`${checked} templates and roles checked, no problems`);
      return 0;
    },
  },
  {
    words: ['serve'],
    args: '',
    summary: 'run the HTTP service: region (nodes, metadata) and provisioning server (boot scripts, preseeds)',
    options: { port: { type: 'string' }, listen: { type: 'string' }, 'no-region': { type: 'boolean' }, 'no-apply': { type: 'boolean' } },
    optionHelp: [
      ['--port N', 'TCP port (default server.http_port)'],
      ['--listen ADDR', 'the one address to listen on (default: the provisioning address and 127.0.0.1)'],
      ['--no-region', 'provisioning server only; the region is at provisioning.region_url'],
      ['--no-apply', 'do not re-apply DHCP/TFTP files when nodes change'],
    ],
    async run(session, _p, values) {
      const config = await loadConfig(session.paths, session.schema);
      const server = await loadServerAddress(config, session.network());
      const portText = optional(values, 'port');
      const port = portText !== undefined ? Number(portText) : server.httpPort;
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw usageError(`--port ${JSON.stringify(portText)} is not a TCP port`);
      const running = await startService({
        paths: session.paths,
        config,
        server,
        store: session.nodeStore(),
        log: session.log,
        region: !values['no-region'],
        port,
        host: optional(values, 'listen'),
        reloadConfig: () => loadConfig(session.paths, session.schema),
        // The configuration as it is now, not as it was at start: an apply with the old one
        // would undo the admin's `config set` in the DHCP and TFTP files.
        onNodesChanged: values['no-apply']
          ? undefined
          : async (changes) => {
              const results = changes ? await applyNodeChanges(session, changes) : await applyComponents(session, [], { nodeAwareOnly: true });
              for (const result of results) printApplyResult(session, result, false, false);
            },
      });
      if (session.json) session.io.stdout(`${JSON.stringify({ port: running.port })}\n`);
      await new Promise<void>((resolve) => {
        const stop = () => {
          session.log.info('stopping');
          void running.close().then(resolve);
        };
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
      });
      return 0;
    },
  },
];
