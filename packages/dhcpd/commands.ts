/**
 * `uec-provisioning dhcp probe|set-mode|propose-range`: look for other DHCP servers, switch
 * modes safely (full mode is refused while another server answers), propose a range.
 */
import { applyComponents, printApplyResult, usageError, type Command, type Session, type Values } from '../../src/configurator/command';
import { buildEffectiveConfig, loadConfig, parseValue, resolveKey, writeManagedSettings, type ConfigValue, type EffectiveConfig } from '../../src/core/config';
import { UecError } from '../../src/core/errors';
import { readFileIfExists } from '../../src/core/fs-ops';
import { SYSTEM } from '../../src/core/paths';
import { atomicWrite, removeFile } from '../../src/core/atomic-write';
import { DHCP_MODES, type DhcpMode } from './config-schema';
import { parseRange, proposeRange, subnetOf, inSubnet } from './ipv4';
import { probeDhcp, type ProbeResult } from './probe';
// Loaded lazily (index.ts imports this file).
import type * as Index from './index';

function str(values: Values, key: string): string | undefined {
  const v = values[key];
  return typeof v === 'string' ? v : undefined;
}

function index(): typeof Index {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('./index') as typeof Index;
}

/** The configuration as it would be with `changes` in the managed drop-in. */
function overlayConfig(session: Session, config: EffectiveConfig, changes: Map<string, string>): EffectiveConfig {
  const current = new Map<string, ConfigValue>([...config.settings].map(([k, s]) => [k, s.value]));
  const next = new Map<string, ConfigValue>();
  for (const [key, raw] of changes) next.set(key, parseValue(resolveKey(session.schema, key).spec, raw, key));
  return buildEffectiveConfig(session.schema, [
    { file: 'current', values: current },
    { file: SYSTEM.managedDropIn, values: next },
  ]);
}

async function interfaceFor(session: Session, values: Values): Promise<string> {
  const given = str(values, 'interface');
  if (given) return given;
  const config = await loadConfig(session.paths, session.schema);
  const configured = config.getString('dhcp.interface');
  if (!configured) throw usageError('no interface: give --interface IF or set dhcp.interface');
  return configured;
}

async function ownAddresses(session: Session, iface: string): Promise<string[]> {
  const found = (await session.network().listInterfaces()).find((i) => i.name === iface);
  if (!found) {
    const names = (await session.network().listInterfaces()).filter((i) => !i.loopback).map((i) => i.name).join(', ');
    throw new UecError('CONFIG_INVALID_VALUE', `interface ${JSON.stringify(iface)} does not exist (interfaces: ${names || 'none'})`);
  }
  return found.ipv4.map((a) => a.address);
}

/** Probe, leaving out answers from this machine itself (its own dhcpd on that interface). */
async function probeOthers(session: Session, iface: string): Promise<ProbeResult> {
  const own = await ownAddresses(session, iface);
  const result = await probeDhcp(iface);
  return { ...result, answers: result.answers.filter((a) => !own.includes(a.server)) };
}

function printProbe(session: Session, result: ProbeResult): void {
  if (session.json) {
    session.io.stdout(JSON.stringify(result, null, 2) + '\n');
    return;
  }
  if (result.answers.length === 0) session.io.stdout(`no other DHCP server answered on ${result.interface}\n`);
  for (const a of result.answers) session.io.stdout(`DHCP server ${a.server} answers on ${result.interface} (offered ${a.offered || '-'}${a.bootFile ? `, boot file ${a.bootFile}` : ''})\n`);
}

async function runSetMode(session: Session, positionals: string[], values: Values): Promise<number> {
  if (positionals.length !== 1 || !(DHCP_MODES as readonly string[]).includes(positionals[0] as string)) {
    throw usageError(`dhcp set-mode needs one of: ${DHCP_MODES.join(', ')}`);
  }
  const mode = positionals[0] as DhcpMode;
  const dryRun = Boolean(values['dry-run']);
  const config = await loadConfig(session.paths, session.schema);
  const changes = new Map<string, string>([['dhcp.mode', mode]]);
  const iface = str(values, 'interface');
  if (iface !== undefined) changes.set('dhcp.interface', iface);
  const rangeText = str(values, 'range');
  if (rangeText !== undefined) {
    if (rangeText === '') {
      changes.set('dhcp.range_start', '');
      changes.set('dhcp.range_end', '');
    } else {
      const range = parseRange(rangeText);
      if (!range) throw new UecError('CONFIG_INVALID_VALUE', `--range ${JSON.stringify(rangeText)}: expected START-END, two IPv4 addresses`);
      changes.set('dhcp.range_start', range.start);
      changes.set('dhcp.range_end', range.end);
    }
  }
  const dhcpInterface = iface ?? config.getString('dhcp.interface');
  // Booting machines reach this server on the DHCP interface: when server.interface is left
  // to the default route and that is another interface, pin it to the DHCP one.
  if (mode !== 'off' && dhcpInterface && !config.getString('server.interface')) {
    const route = await session.network().defaultRoute();
    if (route?.interface !== dhcpInterface) changes.set('server.interface', dhcpInterface);
  }
  const next = overlayConfig(session, config, changes);
  // Everything checked before anything is probed or written.
  const model = await index().loadDhcpModel({ paths: session.paths, config: next, network: session.network(), nodes: () => session.nodeStore().list() });
  if (model.mode === 'full') {
    if (values.force) session.log.warn(`--force: not probing ${model.interface} for other DHCP servers`);
    else {
      const probe = await probeOthers(session, model.interface);
      if (probe.answers.length > 0) {
        const servers = probe.answers.map((a) => a.server).join(', ');
        throw new UecError('DHCP_SERVER_FOUND', `another DHCP server (${servers}) answers on ${model.interface}: full mode refused; use proxy mode (uec-provisioning dhcp set-mode proxy) or --force`);
      }
      session.log.info(`no other DHCP server answered on ${model.interface}`);
    }
    if (model.range) session.log.info(`full mode on ${model.interface}: range ${model.range.start}-${model.range.end}`);
  }
  if (dryRun) {
    for (const [key, value] of changes) session.io.stdout(`would set ${key} = ${value}\n`);
    for (const result of await applyComponents(session, ['dhcpd'], { dryRun: true, config: next })) printApplyResult(session, result, true, true);
    return 0;
  }
  const managed = session.paths.resolve(SYSTEM.managedDropIn);
  const before = await readFileIfExists(managed);
  const written = await writeManagedSettings(session.paths, session.schema, changes);
  try {
    for (const result of await applyComponents(session, ['dhcpd'])) printApplyResult(session, result, Boolean(values.diff), false);
  } catch (err) {
    // The settings and the files go together: put the drop-in back as it was.
    if (written.changed) {
      if (before === null) await removeFile(managed);
      else await atomicWrite(managed, before, { mode: 0o644 });
    }
    throw err;
  }
  session.log.info(`dhcp mode ${mode}${model.mode === 'off' ? '' : ` on ${model.interface}`}`);
  return 0;
}

export const DHCP_COMMANDS: Command[] = [
  {
    words: ['dhcp', 'probe'],
    args: '',
    summary: 'send a DHCPDISCOVER on the interface and report any other DHCP server that answers',
    options: { interface: { type: 'string' } },
    optionHelp: [['--interface IF', 'the interface to probe (default: dhcp.interface)']],
    async run(session, _positionals, values) {
      const iface = await interfaceFor(session, values);
      printProbe(session, await probeOthers(session, iface));
      return 0;
    },
  },
  {
    words: ['dhcp', 'set-mode'],
    args: 'off|proxy|full',
    summary: 'switch DHCP mode (full is refused while another DHCP server answers), write the settings and apply',
    options: { interface: { type: 'string' }, range: { type: 'string' }, force: { type: 'boolean' }, 'dry-run': { type: 'boolean', short: 'n' }, diff: { type: 'boolean' } },
    optionHelp: [
      ['--interface IF', 'the only interface DHCP is answered on'],
      ['--range START-END', 'the full-mode pool; "" means proposed from the subnet'],
      ['--force', 'full mode even when another DHCP server answers'],
      ['-n, --dry-run', 'check and show what would change; write nothing'],
      ['--diff', 'print the unified diff of what is written'],
    ],
    run: runSetMode,
  },
  {
    words: ['dhcp', 'propose-range'],
    args: '',
    summary: 'print the full-mode range proposed from the interface subnet (START-END)',
    options: { interface: { type: 'string' } },
    optionHelp: [['--interface IF', 'the interface (default: dhcp.interface)']],
    async run(session, _positionals, values) {
      const iface = await interfaceFor(session, values);
      const facts = session.network();
      const [interfaces, route] = await Promise.all([facts.listInterfaces(), facts.defaultRoute()]);
      const found = interfaces.find((i) => i.name === iface);
      const first = found?.ipv4[0];
      if (!found || !first) throw new UecError('CONFIG_INVALID_VALUE', `interface ${JSON.stringify(iface)} ${found ? 'has no IPv4 address' : 'does not exist'}`);
      const subnet = subnetOf(first.address, first.prefix);
      const exclude = [...found.ipv4.map((a) => a.address), ...(route && inSubnet(route.gateway, subnet) ? [route.gateway] : [])];
      const range = proposeRange(subnet, exclude);
      if (!range) throw new UecError('CONFIG_INVALID_VALUE', `no DHCP range fits in ${iface}'s subnet ${subnet.network}/${subnet.prefix}`);
      session.io.stdout(session.json ? JSON.stringify(range) + '\n' : `${range.start}-${range.end}\n`);
      return 0;
    },
  },
];
