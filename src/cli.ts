/**
 * The `uec-provisioning` command. Only main() decides exit statuses (docs/errors.md).
 * Output that is data goes to stdout (`--json` where it is data); messages and logs to
 * stderr, so maintainer scripts can send everything to stderr and keep stdout for debconf.
 */
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import { applyComponents, printApplyResult, usageError, type Command, type Options, type Session, type Values } from './configurator/command';
import { AUDIT_COMMANDS } from './cli/audit';
import { EDGE_COMMANDS } from './cli/edges';
import { NODE_COMMANDS } from './cli/nodes';
import { REGION_COMMANDS } from './cli/region';
import { loadProcessActor } from './core/audit';
import { findComponent, loadComponents, mergeSchemas, type Component } from './configurator/component';
import { formatValue, inspectConfig, loadConfig, renderExampleConfig, resolveKey, writeManagedSettings, type EffectiveConfig } from './core/config';
import { ERROR_CODES, UecError, describeError } from './core/errors';
import { escapeLineBreaks, quoteValue } from './core/formats';
import { createLogger, type Level } from './core/log';
import { createSystemNetworkFacts, type NetworkFacts } from './core/network-facts';
import { createPaths, rootFrom } from './core/paths';
import type { NodeStore } from './region/node-store';
import { openNodeStore } from './region/open-store';
import { EDGE_DIR, readEdgeContexts } from './edge/edge-cache';
import { selectContextNode } from './contract/context';
import { useRenderNodeSource } from './configurator/command';

import type { Io } from './configurator/command';

export type { Io } from './configurator/command';

export const VERSION = '0.1.0';

const GLOBAL_OPTIONS: Options = {
  root: { type: 'string' },
  json: { type: 'boolean' },
  'log-json': { type: 'boolean' },
  verbose: { type: 'boolean', short: 'v' },
  help: { type: 'boolean', short: 'h' },
};

const GLOBAL_HELP: [string, string][] = [
  ['--root DIR', 'act on the tree under DIR instead of / (also UEC_PROVISIONING_ROOT)'],
  ['--json', 'print data as JSON'],
  ['--log-json', 'log JSON lines on stderr'],
  ['-v, --verbose', 'log debug messages'],
  ['-h, --help', 'show help for the command'],
];

async function runApply(session: Session, names: string[], values: Values, unconfigure: boolean): Promise<number> {
  const dryRun = Boolean(values['dry-run']);
  const showDiff = dryRun || Boolean(values.diff);
  const invalidNodes: string[] = [];
  const results = await applyComponents(session, names, { dryRun, unconfigure, invalidNodes });
  if (!session.json) for (const result of results) printApplyResult(session, result, showDiff, dryRun);
  if (session.json) session.io.stdout(JSON.stringify(dryRun ? results : results.map(({ diff: _diff, ...rest }) => rest), null, 2) + '\n');
  // Every other node's files are written; the exit status still says one was left out.
  if (invalidNodes.length > 0) throw new UecError('INVALID_VALUE', invalidNodes.length === 1 ? invalidNodes[0]! : `${invalidNodes.length} nodes left out: ${invalidNodes.join(' | ')}`);
  return 0;
}

function showConfig(session: Session, config: EffectiveConfig): void {
  const keys = [...config.settings.keys()].sort();
  if (session.json) {
    const out: Record<string, { value: unknown; origin: string }> = {};
    for (const key of keys) {
      const setting = config.settings.get(key);
      if (setting) out[key] = { value: setting.value, origin: setting.origin };
    }
    session.io.stdout(JSON.stringify(out, null, 2) + '\n');
    return;
  }
  const width = Math.max(...keys.map((k) => `${k} = ${formatValue(config.settings.get(k)?.value ?? '')}`.length));
  for (const key of keys) {
    const setting = config.settings.get(key);
    if (!setting) continue;
    const line = `${key} = ${formatValue(setting.value)}`;
    session.io.stdout(`${line.padEnd(width)}  # ${setting.origin}\n`);
  }
}

function parseAssignments(positionals: string[]): Map<string, string> {
  if (positionals.length === 0) throw usageError('config set needs at least one KEY=VALUE');
  const changes = new Map<string, string>();
  for (const item of positionals) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw usageError(`"${item}" is not KEY=VALUE`);
    changes.set(item.slice(0, eq), item.slice(eq + 1));
  }
  return changes;
}

export const COMMANDS: Command[] = [
  {
    words: ['config', 'show'],
    args: '',
    summary: 'print every effective setting and the file that set it (exit 3 naming each bad line)',
    options: {},
    optionHelp: [],
    async run(session) {
      // A broken configuration is still shown (a bad line counts as not set), then each
      // problem is named on one line, so the admin sees what `config unset KEY` would fix.
      const { config, problems } = await inspectConfig(session.paths, session.schema);
      showConfig(session, config);
      for (const problem of problems) session.log.error(problem.error.message, { code: problem.error.code });
      return problems[0] ? problems[0].error.exitCode : 0;
    },
  },
  {
    words: ['config', 'get'],
    args: 'KEY',
    summary: 'print one effective setting (KEY is section.key)',
    options: {},
    optionHelp: [],
    async run(session, positionals) {
      if (positionals.length !== 1) throw usageError('config get needs exactly one KEY');
      const key = positionals[0] as string;
      resolveKey(session.schema, key);
      const config = await loadConfig(session.paths, session.schema);
      const setting = config.settings.get(key);
      if (session.json) session.io.stdout(JSON.stringify(setting) + '\n');
      else session.io.stdout(`${formatValue(setting?.value ?? '')}\n`);
      return 0;
    },
  },
  {
    words: ['config', 'set'],
    args: 'KEY=VALUE...',
    summary: 'set values in the managed drop-in conf.d/50-managed.conf (validated first)',
    options: { 'allow-overridden': { type: 'boolean' } },
    optionHelp: [['--allow-overridden', 'warn instead of failing when a later drop-in sets the same key']],
    async run(session, positionals, values) {
      const changes = parseAssignments(positionals);
      const audit = { actor: loadProcessActor(session.io.env), log: session.log };
      const result = await writeManagedSettings(session.paths, session.schema, changes, { allowOverridden: Boolean(values['allow-overridden']), audit });
      for (const note of result.overridden) session.log.warn(`set, but overridden by a later drop-in: ${note}`);
      session.log.info(result.changed ? `set ${[...changes.keys()].join(', ')}` : 'unchanged');
      return 0;
    },
  },
  {
    words: ['config', 'unset'],
    args: 'KEY...',
    summary: 'remove keys from the managed drop-in (back to the default or an earlier file)',
    options: {},
    optionHelp: [],
    async run(session, positionals) {
      if (positionals.length === 0) throw usageError('config unset needs at least one KEY');
      const changes = new Map<string, string | null>(positionals.map((k) => [k, null]));
      const result = await writeManagedSettings(session.paths, session.schema, changes, { allowOverridden: true, audit: { actor: loadProcessActor(session.io.env), log: session.log } });
      session.log.info(result.changed ? `unset ${positionals.join(', ')}` : 'unchanged');
      for (const problem of result.problems) session.log.warn(`the configuration still does not load: ${problem}`);
      return 0;
    },
  },
  {
    words: ['config', 'check'],
    args: '',
    summary: 'check every configuration file; exit 3 with the culprit named when one is wrong',
    options: {},
    optionHelp: [],
    async run(session) {
      const config = await loadConfig(session.paths, session.schema);
      const files = new Set([...config.settings.values()].map((s) => s.origin).filter((o) => o !== 'default'));
      session.log.info(`configuration OK (${files.size} file(s) set values)`);
      return 0;
    },
  },
  {
    words: ['config', 'example'],
    args: '[COMPONENT...]',
    summary: 'print a commented configuration file with every key, its meaning and default',
    options: {},
    optionHelp: [],
    async run(session, positionals) {
      const selected = positionals.length > 0 ? positionals.map((n) => findComponent(session.components, n)) : session.components;
      const header = [
        '# /etc/uec-provisioning/uec-provisioning.conf',
        '#',
        '# Settings of uec-provisioning. Every key is shown commented out with its default.',
        '# Files in /etc/uec-provisioning/conf.d/*.conf are read after this one, in lexical',
        '# order, and win: 50-managed.conf holds the debconf answers and `config set` values.',
        '# See the effective values and where each comes from: uec-provisioning config show',
        '# Quote values that contain ";" or "#" (an unquoted ";" starts a comment).',
      ];
      session.io.stdout(renderExampleConfig(mergeSchemas(selected), header));
      return 0;
    },
  },
  {
    words: ['apply'],
    args: '[COMPONENT...]',
    summary: 'render every (or the named) component\'s files, validate, write what changed, reload',
    options: { 'dry-run': { type: 'boolean', short: 'n' }, diff: { type: 'boolean' } },
    optionHelp: [
      ['-n, --dry-run', 'show the unified diff of what would change; write nothing'],
      ['--diff', 'also print the unified diff of what is written'],
    ],
    run: (session, positionals, values) => runApply(session, positionals, values, false),
  },
  {
    words: ['unconfigure'],
    args: 'COMPONENT...',
    summary: 'remove the files a component generated and reload what read them',
    options: { 'dry-run': { type: 'boolean', short: 'n' } },
    optionHelp: [['-n, --dry-run', 'show what would be removed']],
    async run(session, positionals, values) {
      if (positionals.length === 0) throw usageError('unconfigure needs a COMPONENT');
      return runApply(session, positionals, values, true);
    },
  },
  {
    words: ['components'],
    args: '',
    summary: 'list the installed components and the config sections they own',
    options: {},
    optionHelp: [],
    async run(session) {
      const rows = session.components.map((c) => ({ name: c.name, package: c.package, summary: c.summary, sections: Object.keys(c.configSchema) }));
      if (session.json) session.io.stdout(JSON.stringify(rows, null, 2) + '\n');
      else for (const r of rows) session.io.stdout(`${r.name.padEnd(8)} ${r.package.padEnd(28)} [${r.sections.join('] [')}]  ${r.summary}\n`);
      return 0;
    },
  },
  {
    words: ['network'],
    args: '',
    summary: 'list network interfaces with their addresses, and the default route',
    options: {},
    optionHelp: [],
    async run(session) {
      const facts = session.network();
      const [interfaces, route] = await Promise.all([facts.listInterfaces(), facts.defaultRoute()]);
      if (session.json) {
        session.io.stdout(JSON.stringify({ interfaces, defaultRoute: route }, null, 2) + '\n');
        return 0;
      }
      for (const i of interfaces) {
        const addresses = [...i.ipv4, ...i.ipv6].map((a) => `${a.address}/${a.prefix}`).join(' ') || '-';
        const flags = [i.up ? 'up' : 'down', i.loopback ? 'loopback' : '', route?.interface === i.name ? 'default-route' : ''].filter(Boolean).join(',');
        session.io.stdout(`${i.name.padEnd(16)} ${(i.mac || '-').padEnd(18)} ${flags.padEnd(22)} ${addresses}\n`);
      }
      if (route) session.io.stdout(`default via ${route.gateway} dev ${route.interface}\n`);
      return 0;
    },
  },
  {
    words: ['version'],
    args: '',
    summary: 'print the version',
    options: {},
    optionHelp: [],
    async run(session) {
      session.io.stdout(session.json ? JSON.stringify({ version: VERSION }) + '\n' : `uec-provisioning ${VERSION}\n`);
      return 0;
    },
  },
];

function commandUsage(command: Command): string {
  const lines = [`usage: uec-provisioning ${command.words.join(' ')}${command.args ? ` ${command.args}` : ''} [options]`, '', command.summary, '', 'options:'];
  for (const [flag, text] of [...command.optionHelp, ...GLOBAL_HELP]) lines.push(`  ${flag.padEnd(22)} ${text}`);
  return lines.join('\n') + '\n';
}

/** The core commands and those the installed components add. */
export function allCommands(components: Component[]): Command[] {
  return [...COMMANDS, ...NODE_COMMANDS, ...REGION_COMMANDS, ...EDGE_COMMANDS, ...AUDIT_COMMANDS, ...components.flatMap((c) => c.commands ?? [])];
}

export function mainUsage(commands: Command[] = COMMANDS): string {
  const lines = ['usage: uec-provisioning COMMAND [options]', '', 'Configure this machine as a network-install server.', '', 'commands:'];
  for (const c of commands) lines.push(`  ${`${c.words.join(' ')} ${c.args}`.padEnd(30)} ${c.summary}`);
  lines.push('', 'global options:');
  for (const [flag, text] of GLOBAL_HELP) lines.push(`  ${flag.padEnd(22)} ${text}`);
  lines.push('', 'Exit status: 0 success, 2 usage, 3 configuration, 4 template, 5 validation, 6 write,', '7 service reload, 8 network facts, 1 internal error. See uec-provisioning(8).');
  return lines.join('\n') + '\n';
}

function selectCommand(commands: Command[], positionals: string[]): Command | undefined {
  return [...commands]
    .sort((a, b) => b.words.length - a.words.length)
    .find((c) => c.words.every((w, i) => positionals[i] === w));
}

export async function main(
  argv: string[],
  io: Io,
  overrides: { network?: NetworkFacts; components?: Component[]; nodeStore?: NodeStore } = {},
): Promise<number> {
  let log = createLogger({ level: 'info', json: false, write: io.stderr });
  try {
    const loose = parseArgs({ args: argv, options: GLOBAL_OPTIONS, strict: false, allowPositionals: true });
    const words = loose.positionals;
    const components = overrides.components ?? loadComponents();
    const commands = allCommands(components);
    if (words.length === 0 || words[0] === 'help') {
      const target = selectCommand(commands, words.slice(1));
      io.stdout(target ? commandUsage(target) : mainUsage(commands));
      return words.length === 0 && !loose.values.help ? ERROR_CODES.USAGE.exit : 0;
    }
    const command = selectCommand(commands, words);
    if (!command) {
      const group = commands.filter((c) => c.words[0] === words[0]);
      if (group.length > 0 && words.length === 1) throw usageError(`${quoteValue(words[0] ?? '')} needs a subcommand: ${group.map((c) => c.words[1]).join(', ')}`);
      throw usageError(`unknown command ${quoteValue(words.join(' '))}`);
    }
    if (loose.values.help) {
      io.stdout(commandUsage(command));
      return 0;
    }
    let parsed: { values: Values; positionals: string[] };
    try {
      parsed = parseArgs({ args: argv, options: { ...GLOBAL_OPTIONS, ...command.options }, strict: true, allowPositionals: true }) as typeof parsed;
    } catch (err) {
      throw usageError(describeError(err).replace(/^ERR_PARSE_ARGS_\w+: /, ''));
    }
    const values = parsed.values;
    const level: Level = values.verbose ? 'debug' : 'info';
    log = createLogger({ level, json: Boolean(values['log-json']), write: io.stderr });
    const paths = createPaths(rootFrom(values.root as string | undefined, io.env));
    let network: NetworkFacts | undefined = overrides.network;
    let nodeStore: NodeStore | undefined = overrides.nodeStore;
    const session: Session = {
      io,
      paths,
      log,
      json: Boolean(values.json),
      components,
      schema: mergeSchemas(components),
      network: () => (network ??= createSystemNetworkFacts()),
      nodeStore: () => (nodeStore ??= openCommandStore(paths, async () => (await inspectConfig(paths, mergeSchemas(components))).config)),
    };
    try {
      return await command.run(session, parsed.positionals.slice(command.words.length), values);
    } finally {
      // The store this command opened (not one a caller passed in): a PostgreSQL store's
      // connections and LISTEN would otherwise keep the process alive after a service stops.
      if (nodeStore && nodeStore !== overrides.nodeStore) await nodeStore.close().catch((err: unknown) => log.warn(`closing the node store: ${describeError(err)}`));
    }
  } catch (err) {
    // One line whatever the message holds (a value quoted with JSON.stringify keeps U+2028 raw).
    if (err instanceof UecError) {
      log.error(escapeLineBreaks(err.message), { code: err.code });
      return err.exitCode;
    }
    log.error(`internal error: ${escapeLineBreaks(describeError(err))}`, { code: 'INTERNAL' });
    if (err instanceof Error && err.stack) io.stderr(`${err.stack}\n`);
    return ERROR_CODES.INTERNAL.exit;
  }
}

/**
 * The node store a command works on. On an edge host (provisioning.region_url set, and `serve
 * --no-region` keeps its cache of the region's feed here) the DHCP and boot files are rendered
 * from that cache, as serve renders them: from this host's own, empty, store `uec-provisioning
 * apply` or a package's postinst would remove every node's files until serve's next apply. The
 * cache is only read (serve may be writing it); a line being written is left out.
 */
export function openCommandStore(paths: ReturnType<typeof createPaths>, loadConfig: () => Promise<EffectiveConfig>): NodeStore {
  const store = openNodeStore(paths, loadConfig);
  const edgeDir = paths.resolve(EDGE_DIR);
  useRenderNodeSource(store, async () => {
    if (fs.existsSync(edgeDir) && (await loadConfig()).getString('provisioning.region_url')) return (await readEdgeContexts(edgeDir)).map(selectContextNode);
    return store.list();
  });
  return store;
}

if (require.main === module) {
  // A reader that stops early (`uec-provisioning network | head -1`) is not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  const io: Io = { stdout: (t) => process.stdout.write(t), stderr: (t) => process.stderr.write(t), env: process.env };
  main(process.argv.slice(2), io).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`uec-provisioning: internal error: ${describeError(err)}\n`);
      process.exitCode = 1;
    },
  );
}
