/**
 * Configuration: /etc/uec-provisioning/uec-provisioning.conf, then conf.d/*.conf in lexical
 * order, later wins. Every key is typed by a schema that the installed components
 * contribute; every error names the file, line, section, key and the bad value.
 */
import * as path from 'node:path';
import * as ini from 'ini';
import { UecError, describeError } from './errors';
import { FORMAT_CHECKS, type FormatName } from './formats';
import { fsOps, readFileIfExists } from './fs-ops';
import { SYSTEM, type Paths } from './paths';
import { atomicWrite } from './atomic-write';

export type ConfigValue = string | number | boolean;

export interface KeySpec {
  type: 'string' | 'integer' | 'boolean' | 'enum';
  default: ConfigValue;
  description: string;
  /** For strings: the format every non-empty value must have. */
  format?: FormatName;
  /** For strings: whether the empty string is allowed (it usually means "automatic"). */
  allowEmpty?: boolean;
  values?: readonly string[];
  min?: number;
  max?: number;
}

export interface SectionSpec {
  /** The Debian package that owns the section, for messages. */
  package: string;
  keys: Record<string, KeySpec>;
}

export type ConfigSchema = Record<string, SectionSpec>;

export interface Setting {
  value: ConfigValue;
  /** The system path of the file that set it, or "default". */
  origin: string;
}

export interface EffectiveConfig {
  /** "section.key" → value and origin, for every key of the schema. */
  readonly settings: ReadonlyMap<string, Setting>;
  get(key: string): ConfigValue;
  getString(key: string): string;
  getNumber(key: string): number;
  getBoolean(key: string): boolean;
}

const SECTION_LINE = /^\[([a-z0-9_-]+)\]\s*$/;
const KEY_LINE = /^([a-z0-9_]+)\s*=(.*)$/;
const BOOLEAN_WORDS: Record<string, boolean> = { true: true, yes: true, on: true, '1': true, false: false, no: false, off: false, '0': false };

/** A parsed file: section → key → raw string value, with the line of each key. */
export interface ParsedFile {
  file: string;
  values: Map<string, { raw: string; line: number }>;
}

function syntaxError(file: string, line: number, message: string): UecError {
  return new UecError('CONFIG_SYNTAX', `${file}:${line}: ${message}`);
}

/**
 * Parse one INI text. Lines are checked first (so errors carry a line number and nothing
 * ini would silently accept, like a bare word, gets through); values then come from `ini`.
 */
export function parseConfigText(text: string, file: string): ParsedFile {
  const lines = text.split(/\r?\n/);
  const located = new Map<string, number>();
  let section: string | null = null;
  lines.forEach((rawLine, index) => {
    const lineNo = index + 1;
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) return;
    const sectionMatch = SECTION_LINE.exec(line);
    if (sectionMatch) {
      section = sectionMatch[1] ?? null;
      return;
    }
    if (line.startsWith('[')) throw syntaxError(file, lineNo, `bad section header ${JSON.stringify(line)} (expected [name] with lowercase letters, digits, "_" or "-")`);
    const keyMatch = KEY_LINE.exec(line);
    if (!keyMatch) throw syntaxError(file, lineNo, `expected "key = value", got ${JSON.stringify(line)}`);
    if (section === null) throw syntaxError(file, lineNo, `key "${keyMatch[1]}" appears before any [section]`);
    const full = `${section}.${keyMatch[1]}`;
    const previous = located.get(full);
    if (previous !== undefined) throw syntaxError(file, lineNo, `[${section}] ${keyMatch[1]} is set twice (also on line ${previous})`);
    located.set(full, lineNo);
  });
  const decoded = ini.parse(text) as Record<string, unknown>;
  const values = new Map<string, { raw: string; line: number }>();
  for (const [full, line] of located) {
    const [sec, key] = full.split('.') as [string, string];
    const sectionObject = decoded[sec] as Record<string, unknown> | undefined;
    const value = sectionObject?.[key];
    values.set(full, { raw: value === null || value === undefined ? '' : String(value), line });
  }
  return { file, values };
}

/** Check and convert one raw string for a key; the error names where it came from. */
export function parseValue(spec: KeySpec, raw: string, where: string): ConfigValue {
  const fail = (reason: string): never => {
    throw new UecError('CONFIG_INVALID_VALUE', `${where} = ${JSON.stringify(raw)}: ${reason}`);
  };
  const value = raw.trim();
  switch (spec.type) {
    case 'integer': {
      if (!/^-?\d+$/.test(value)) return fail('must be a whole number');
      const n = Number(value);
      if (spec.min !== undefined && n < spec.min) return fail(`must be at least ${spec.min}`);
      if (spec.max !== undefined && n > spec.max) return fail(`must be at most ${spec.max}`);
      return n;
    }
    case 'boolean': {
      const b = BOOLEAN_WORDS[value.toLowerCase()];
      if (b === undefined) return fail('must be true or false');
      return b;
    }
    case 'enum':
      if (!spec.values?.includes(value)) return fail(`must be one of: ${(spec.values ?? []).join(', ')}`);
      return value;
    case 'string': {
      if (value === '') return spec.allowEmpty ? '' : fail('must not be empty');
      const reason = FORMAT_CHECKS[spec.format ?? 'line'](value);
      if (reason) return fail(reason);
      return value;
    }
  }
}

export function formatValue(value: ConfigValue): string {
  return typeof value === 'boolean' ? (value ? 'true' : 'false') : String(value);
}

function lookupSpec(schema: ConfigSchema, section: string, key: string, where: string): KeySpec {
  const sectionSpec = schema[section];
  if (!sectionSpec) {
    const known = Object.keys(schema).sort().join(', ');
    throw new UecError('CONFIG_UNKNOWN_KEY', `${where}: unknown section [${section}] (the installed components know: ${known})`);
  }
  const spec = sectionSpec.keys[key];
  if (!spec) {
    const known = Object.keys(sectionSpec.keys).sort().join(', ');
    throw new UecError('CONFIG_UNKNOWN_KEY', `${where}: unknown key "${key}" in [${section}] (known keys: ${known})`);
  }
  return spec;
}

/** Split "section.key" and check it exists in the schema. */
export function resolveKey(schema: ConfigSchema, fullKey: string): { section: string; key: string; spec: KeySpec } {
  const match = /^([a-z0-9_-]+)\.([a-z0-9_]+)$/.exec(fullKey);
  if (!match) throw new UecError('USAGE', `"${fullKey}" is not a key name (expected section.key, for example server.interface)`);
  const [, section, key] = match as unknown as [string, string, string];
  return { section, key, spec: lookupSpec(schema, section, key, `key ${fullKey}`) };
}

/**
 * Sections of packages that may be removed while the admin's files still set them: such a
 * section is skipped with a warning instead of failing every command.
 */
export const KNOWN_PACKAGE_SECTIONS: Record<string, string> = {
  mirror: 'uec-provisioning-mirror',
};

const warnedSections = new Set<string>();

export let configWarning = (message: string): void => {
  process.stderr.write(`uec-provisioning: warning: ${message}\n`);
};

/** For tests: where warnings about sections of packages not installed go. */
export function setConfigWarning(sink: (message: string) => void): void {
  configWarning = sink;
  warnedSections.clear();
}

function validateParsed(schema: ConfigSchema, parsed: ParsedFile): Map<string, ConfigValue> {
  const out = new Map<string, ConfigValue>();
  for (const [full, { raw, line }] of parsed.values) {
    const [section, key] = full.split('.') as [string, string];
    const owner = KNOWN_PACKAGE_SECTIONS[section];
    if (!schema[section] && owner) {
      const id = `${parsed.file}[${section}]`;
      if (!warnedSections.has(id)) configWarning(`${parsed.file}:${line}: [${section}] is ignored: ${owner} is not installed`);
      warnedSections.add(id);
      continue;
    }
    const where = `${parsed.file}:${line}: [${section}] ${key}`;
    const spec = lookupSpec(schema, section, key, `${parsed.file}:${line}`);
    out.set(full, parseValue(spec, raw, where));
  }
  return out;
}

/** The files that make up the configuration, in the order they are applied. */
export async function listConfigFiles(paths: Paths): Promise<string[]> {
  const dropInDir = paths.resolve(SYSTEM.configDropInDir);
  let names: string[] = [];
  try {
    names = await fsOps().readdir(dropInDir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') {
      throw new UecError('CONFIG_UNREADABLE', `cannot list ${SYSTEM.configDropInDir}: ${describeError(err)}`, { cause: err });
    }
  }
  const dropIns = names.filter((n) => n.endsWith('.conf') && !n.startsWith('.')).sort();
  return [SYSTEM.configFile, ...dropIns.map((n) => path.posix.join(SYSTEM.configDropInDir, n))];
}

async function readConfigFile(paths: Paths, systemPath: string): Promise<string | null> {
  try {
    const buf = await readFileIfExists(paths.resolve(systemPath));
    return buf === null ? null : buf.toString('utf8');
  } catch (err) {
    throw new UecError('CONFIG_UNREADABLE', `cannot read ${systemPath}: ${describeError(err)}`, { cause: err });
  }
}

export function buildEffectiveConfig(schema: ConfigSchema, layers: { file: string; values: Map<string, ConfigValue> }[]): EffectiveConfig {
  const settings = new Map<string, Setting>();
  for (const [section, sectionSpec] of Object.entries(schema)) {
    for (const [key, spec] of Object.entries(sectionSpec.keys)) {
      settings.set(`${section}.${key}`, { value: spec.default, origin: 'default' });
    }
  }
  for (const layer of layers) {
    for (const [full, value] of layer.values) settings.set(full, { value, origin: layer.file });
  }
  const get = (key: string): ConfigValue => {
    const setting = settings.get(key);
    if (!setting) throw new UecError('CONFIG_UNKNOWN_KEY', `no such configuration key: ${key}`);
    return setting.value;
  };
  const typed = <T extends ConfigValue>(key: string, type: string): T => {
    const value = get(key);
    if (typeof value !== type) throw new UecError('INTERNAL', `configuration key ${key} is a ${typeof value}, not a ${type}`);
    return value as T;
  };
  return {
    settings,
    get,
    getString: (key) => typed<string>(key, 'string'),
    getNumber: (key) => typed<number>(key, 'number'),
    getBoolean: (key) => typed<boolean>(key, 'boolean'),
  };
}

export async function loadConfig(paths: Paths, schema: ConfigSchema): Promise<EffectiveConfig> {
  const layers: { file: string; values: Map<string, ConfigValue> }[] = [];
  for (const file of await listConfigFiles(paths)) {
    const text = await readConfigFile(paths, file);
    if (text === null) continue;
    layers.push({ file, values: validateParsed(schema, parseConfigText(text, file)) });
  }
  return buildEffectiveConfig(schema, layers);
}

const MANAGED_BANNER = [
  '# Written by uec-provisioning (package uec-provisioning-common).',
  '# Holds the answers given to debconf and to `uec-provisioning config set`.',
  '# Change these with `dpkg-reconfigure uec-provisioning-<component>` or',
  '# `uec-provisioning config set section.key=value`; hand edits here are kept but may be',
  '# replaced by the next reconfigure. For settings of your own, add a file such as',
  '# /etc/uec-provisioning/conf.d/90-local.conf, which is read after this one.',
];

/** The managed drop-in's text for a set of values: sections and keys sorted, same input same bytes. */
export function renderManagedDropIn(values: Map<string, ConfigValue>): string {
  const bySection = new Map<string, [string, ConfigValue][]>();
  for (const [full, value] of values) {
    const [section, key] = full.split('.') as [string, string];
    const list = bySection.get(section) ?? [];
    list.push([key, value]);
    bySection.set(section, list);
  }
  const out = [...MANAGED_BANNER];
  for (const section of [...bySection.keys()].sort()) {
    out.push('', `[${section}]`);
    const entries = (bySection.get(section) ?? []).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    for (const [key, value] of entries) out.push(`${key} = ${ini.safe(formatValue(value))}`);
  }
  return out.join('\n') + '\n';
}

/**
 * Set (value given) or unset (null) keys in the managed drop-in. Every value is validated
 * first; a key set again by a later drop-in is refused, since the change would not take effect.
 * Returns whether the file changed.
 */
export async function writeManagedSettings(
  paths: Paths,
  schema: ConfigSchema,
  changes: Map<string, string | null>,
  options: { allowOverridden?: boolean } = {},
): Promise<{ changed: boolean; overridden: string[] }> {
  const effective = await loadConfig(paths, schema); // the whole config must be valid first
  const managedText = await readConfigFile(paths, SYSTEM.managedDropIn);
  const current = managedText === null ? new Map<string, ConfigValue>() : validateParsed(schema, parseConfigText(managedText, SYSTEM.managedDropIn));
  const next = new Map(current);
  const overridden: string[] = [];
  for (const [fullKey, raw] of changes) {
    const { spec } = resolveKey(schema, fullKey);
    if (raw === null) next.delete(fullKey);
    else next.set(fullKey, parseValue(spec, raw, fullKey));
    const origin = effective.settings.get(fullKey)?.origin ?? 'default';
    if (origin !== 'default' && origin > SYSTEM.managedDropIn && origin.startsWith(SYSTEM.configDropInDir)) {
      if (!options.allowOverridden) {
        throw new UecError('CONFIG_OVERRIDDEN', `${fullKey} is also set in ${origin}, which is read later and wins; change it there`);
      }
      overridden.push(`${fullKey} (${origin})`);
    }
  }
  if (managedText === null && next.size === 0) return { changed: false, overridden }; // nothing to unset
  const text = renderManagedDropIn(next);
  if (text === managedText) return { changed: false, overridden };
  await atomicWrite(paths.resolve(SYSTEM.managedDropIn), text, { mode: 0o644 });
  return { changed: true, overridden };
}

/** Wrap a description to comment lines of at most `width` characters. */
function commentLines(text: string, width = 78): string[] {
  const out: string[] = [];
  let line = '#';
  for (const word of text.split(/\s+/)) {
    if (line.length + word.length + 1 > width && line !== '#') {
      out.push(line);
      line = '#';
    }
    line += ` ${word}`;
  }
  out.push(line);
  return out;
}

/**
 * A commented configuration file listing every key of a schema with its description and
 * default, all commented out. The packages ship this as their conffile. Pure.
 */
export function renderExampleConfig(schema: ConfigSchema, header: string[]): string {
  const out = [...header];
  for (const section of Object.keys(schema).sort()) {
    const spec = schema[section] as SectionSpec;
    out.push('', `[${section}]`);
    for (const key of Object.keys(spec.keys).sort()) {
      const keySpec = spec.keys[key] as KeySpec;
      const allowed = keySpec.type === 'enum' ? ` One of: ${(keySpec.values ?? []).join(', ')}.` : '';
      out.push('', ...commentLines(`${keySpec.description}${allowed}`), `#${key} = ${ini.safe(formatValue(keySpec.default))}`.trimEnd());
    }
  }
  return out.join('\n') + '\n';
}
