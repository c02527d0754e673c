/**
 * Configuration: /etc/uec-provisioning/uec-provisioning.conf, then conf.d/*.conf in lexical
 * order, later wins. Every key is typed by a schema that the installed components
 * contribute; every error names the file, line, section, key and the bad value.
 */
import * as path from 'node:path';
import * as ini from 'ini';
import { loadProcessActor, recordAudit, selectChanges, type AuditActor } from './audit';
import { UecError, describeError } from './errors';
import { createFileLock } from './file-lock';
import { FORMAT_CHECKS, checkNoLineBreaks, checkWellFormed, quoteValue, type FormatName } from './formats';
import { fsOps, readFileIfExists } from './fs-ops';
import type { Logger } from './log';
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
  /**
   * For strings: the field's own check, after the format's (null when fine, else why). It
   * runs on `config set`, the web UI and every load, so it must be the strictest of what the
   * renderers that use the value accept.
   */
  check?: (value: string) => string | null;
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
// dotAll: a value holding U+2028 or a lone CR is still the key's value, refused by the value
// check with the key named (so `config unset` can remove it), not an anonymous syntax error.
const KEY_LINE = /^([a-z0-9_]+)[ \t]*=(.*)$/s;
const BOOLEAN_WORDS: Record<string, boolean> = { true: true, yes: true, on: true, '1': true, false: false, no: false, off: false, '0': false };

/** A parsed file: section → key → raw string value, with the line of each key. */
export interface ParsedFile {
  file: string;
  values: Map<string, { raw: string; line: number }>;
}

/**
 * Something wrong in one configuration file. `key` ("section.key") when the problem belongs
 * to one key's line(s): `config unset KEY` removes it. `error` carries the one-line message.
 */
export interface ConfigProblem {
  file: string;
  line: number;
  key?: string;
  error: UecError;
}

/** A file read leniently: what is good, and every problem, in line order. */
export interface ScannedFile extends ParsedFile {
  problems: ConfigProblem[];
  /** Every line that assigns a key, bad ones included: section.key → line numbers. */
  keyLines: Map<string, number[]>;
}

function syntaxError(file: string, line: number, message: string): UecError {
  return new UecError('CONFIG_SYNTAX', `${file}:${line}: ${message}`);
}

/** Leading and trailing blanks only: JavaScript's trim() would also drop U+2028 and NBSP. */
function trimBlanks(text: string): string {
  return text.replace(/^[ \t\ufeff]+|[ \t\r]+$/g, '');
}

/**
 * Read one INI text, line by line, collecting every problem instead of stopping at the first.
 * Each value is decoded with `ini.unsafe` (quotes, \; and \# escapes, inline comments) but
 * never converted: `ini.parse` turns null, true and false (even quoted) into non-strings, so
 * `admin_user = null` would have read as empty. Here it is the word "null".
 */
export function scanConfigText(text: string, file: string): ScannedFile {
  const values = new Map<string, { raw: string; line: number }>();
  const keyLines = new Map<string, number[]>();
  const problems: ConfigProblem[] = [];
  let section: string | null = null;
  let badSection = false;
  text.split(/\n/).forEach((rawLine, index) => {
    const lineNo = index + 1;
    const line = trimBlanks(rawLine);
    if (line === '' || line.startsWith('#') || line.startsWith(';')) return;
    const sectionMatch = SECTION_LINE.exec(line);
    if (sectionMatch) {
      section = sectionMatch[1] ?? null;
      badSection = false;
      return;
    }
    if (line.startsWith('[')) {
      problems.push({ file, line: lineNo, error: syntaxError(file, lineNo, `bad section header ${quoteValue(line)} (expected [name] with lowercase letters, digits, "_" or "-")`) });
      badSection = true;
      return;
    }
    const keyMatch = KEY_LINE.exec(line);
    if (!keyMatch) {
      problems.push({ file, line: lineNo, error: syntaxError(file, lineNo, `expected "key = value", got ${quoteValue(line)}`) });
      return;
    }
    if (badSection) return; // reported once, at its header
    const key = keyMatch[1] as string;
    if (section === null) {
      problems.push({ file, line: lineNo, error: syntaxError(file, lineNo, `key "${key}" appears before any [section]`) });
      return;
    }
    const full = `${section}.${key}`;
    const lines = keyLines.get(full) ?? [];
    lines.push(lineNo);
    keyLines.set(full, lines);
    if (lines.length > 1) {
      problems.push({ file, line: lineNo, key: full, error: syntaxError(file, lineNo, `[${section}] ${key} is set twice (also on line ${lines[0]})`) });
      return;
    }
    const valueText = keyMatch[2] as string;
    const broken = checkNoLineBreaks(valueText.replace(/\t/g, ' '));
    if (broken) {
      problems.push({ file, line: lineNo, key: full, error: new UecError('CONFIG_INVALID_VALUE', `${file}:${lineNo}: [${section}] ${key} = ${quoteValue(trimBlanks(valueText))}: ${broken}`) });
      return;
    }
    values.set(full, { raw: ini.unsafe(valueText), line: lineNo });
  });
  return { file, values, problems, keyLines };
}

/** Parse one INI text; the first problem (by line) is thrown. */
export function parseConfigText(text: string, file: string): ParsedFile {
  const scanned = scanConfigText(text, file);
  if (scanned.problems[0]) throw scanned.problems[0].error;
  return { file, values: scanned.values };
}

/** Check and convert one raw string for a key; the error names where it came from. */
export function parseValue(spec: KeySpec, raw: string, where: string): ConfigValue {
  const fail = (reason: string): never => {
    throw new UecError('CONFIG_INVALID_VALUE', `${where} = ${quoteValue(raw)}: ${reason}`);
  };
  const broken = checkNoLineBreaks(raw) ?? checkWellFormed(raw);
  if (broken) return fail(broken);
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
      const reason = FORMAT_CHECKS[spec.format ?? 'line'](value) ?? spec.check?.(value);
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

/** A file checked against the schema: its typed values and every problem, in line order. */
interface CheckedFile {
  file: string;
  values: Map<string, ConfigValue>;
  problems: ConfigProblem[];
  keyLines: Map<string, number[]>;
}

function checkConfigText(schema: ConfigSchema, text: string, file: string): CheckedFile {
  const scanned = scanConfigText(text, file);
  const values = new Map<string, ConfigValue>();
  const problems = [...scanned.problems];
  for (const [full, { raw, line }] of scanned.values) {
    const [section, key] = full.split('.') as [string, string];
    const owner = KNOWN_PACKAGE_SECTIONS[section];
    if (!schema[section] && owner) {
      const id = `${file}[${section}]`;
      if (!warnedSections.has(id)) configWarning(`${file}:${line}: [${section}] is ignored: ${owner} is not installed`);
      warnedSections.add(id);
      continue;
    }
    try {
      const spec = lookupSpec(schema, section, key, `${file}:${line}`);
      values.set(full, parseValue(spec, raw, `${file}:${line}: [${section}] ${key}`));
    } catch (err) {
      if (!(err instanceof UecError)) throw err;
      problems.push({ file, line, key: full, error: err });
    }
  }
  problems.sort((a, b) => a.line - b.line);
  return { file, values, problems, keyLines: scanned.keyLines };
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

/** The configuration as far as it loads, and every problem of every file, in reading order. */
export interface ConfigInspection {
  config: EffectiveConfig;
  problems: ConfigProblem[];
}

/**
 * Read every file leniently: a bad line is a problem, and the rest still counts (the key
 * keeps the value of an earlier file or its default). `replace` checks a file's new text in
 * memory, as if written. `config show` and `config unset` work on a broken configuration.
 */
export async function inspectConfig(paths: Paths, schema: ConfigSchema, replace?: { file: string; text: string }): Promise<ConfigInspection> {
  const files = await listConfigFiles(paths);
  if (replace && !files.includes(replace.file)) files.splice(1, files.length - 1, ...[...files.slice(1), replace.file].sort());
  const layers: { file: string; values: Map<string, ConfigValue> }[] = [];
  const problems: ConfigProblem[] = [];
  for (const file of files) {
    let text: string | null;
    try {
      text = replace?.file === file ? replace.text : await readConfigFile(paths, file);
    } catch (err) {
      if (!(err instanceof UecError)) throw err;
      problems.push({ file, line: 0, error: err });
      continue;
    }
    if (text === null) continue;
    const checked = checkConfigText(schema, text, file);
    problems.push(...checked.problems);
    layers.push({ file, values: checked.values });
  }
  return { config: buildEffectiveConfig(schema, layers), problems };
}

/** The whole configuration; the first problem is thrown (file, line, key, value and why). */
export async function loadConfig(paths: Paths, schema: ConfigSchema): Promise<EffectiveConfig> {
  const { config, problems } = await inspectConfig(paths, schema);
  if (problems[0]) throw problems[0].error;
  return config;
}

const MANAGED_BANNER = [
  '# Written by uec-provisioning (package uec-provisioning-common).',
  '# Holds the answers given to debconf and to `uec-provisioning config set`.',
  '# Change these with `dpkg-reconfigure uec-provisioning-<component>` or',
  '# `uec-provisioning config set section.key=value`; hand edits here are kept but may be',
  '# replaced by the next reconfigure. For settings of your own, add a file such as',
  '# /etc/uec-provisioning/conf.d/90-local.conf, which is read after this one.',
];

/**
 * One value as INI text that scanConfigText reads back unchanged. Plain when nothing in it
 * means anything to the reader; otherwise JSON-quoted, which `ini.unsafe` decodes exactly.
 * (ini.safe is not enough: it escapes ";" and "#" with a backslash but not the backslash
 * itself, so `a\;b` and `a\\b` read back different, and a lone quote reads back empty.)
 */
export function encodeIniValue(value: string): string {
  const plain = value === value.trim() && !/[\\;#"'`=\r\n]/.test(value) && !value.startsWith('[');
  return plain ? value : JSON.stringify(value);
}

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
    for (const [key, value] of entries) out.push(`${key} = ${encodeIniValue(formatValue(value))}`);
  }
  return out.join('\n') + '\n';
}

/** The text without the lines that assign the given keys; everything else kept byte for byte. */
function removeKeyLines(text: string, keyLines: Map<string, number[]>, keys: Iterable<string>): string {
  const drop = new Set([...keys].flatMap((k) => keyLines.get(k) ?? []));
  return text
    .split('\n')
    .filter((_, i) => !drop.has(i + 1))
    .join('\n');
}

/**
 * Set (value given) or unset (null) keys in the managed drop-in. Every value is validated
 * with the same checks as a load, and the new text is read back in memory before it is
 * written: a value that would not read back identically is refused, so what is accepted
 * loads everywhere. A key set again by a later drop-in is refused, since the change would
 * not take effect. Setting needs the rest of the configuration to load; unsetting works on
 * a broken one (that is how a bad line of 50-managed.conf is removed), and returns the
 * problems that remain. Returns whether the file changed.
 */
export async function writeManagedSettings(
  paths: Paths,
  schema: ConfigSchema,
  changes: Map<string, string | null>,
  options: { allowOverridden?: boolean; audit?: SettingsAudit } = {},
): Promise<{ changed: boolean; overridden: string[]; problems: string[] }> {
  // `config set`, debconf's configurators and the web UI may write at once: each
  // read-modify-write holds one cross-process lock (and this process queues its own writers).
  const file = paths.resolve(SYSTEM.managedDropIn);
  const run = settingsQueue.then(() =>
    createFileLock(file, {
      what: SYSTEM.managedDropIn,
      fail: (message, cause) => new UecError('CONFIG_UNREADABLE', message, { cause }),
    }).withLock(() => writeManagedSettingsLocked(paths, schema, changes, options)),
  );
  settingsQueue = run.catch(() => undefined);
  return run;
}

let settingsQueue: Promise<unknown> = Promise.resolve();

async function writeManagedSettingsLocked(
  paths: Paths,
  schema: ConfigSchema,
  changes: Map<string, string | null>,
  options: { allowOverridden?: boolean; audit?: SettingsAudit },
): Promise<{ changed: boolean; overridden: string[]; problems: string[] }> {
  const managedFile = SYSTEM.managedDropIn;
  const before = await inspectConfig(paths, schema);
  const managedText = await readConfigFile(paths, managedFile);
  const managed = managedText === null ? null : checkConfigText(schema, managedText, managedFile);
  const next = new Map(managed?.values ?? []);
  const intended = new Map<string, ConfigValue>();
  const overridden: string[] = [];
  for (const [fullKey, raw] of changes) {
    const { spec } = resolveKey(schema, fullKey);
    if (raw === null) next.delete(fullKey);
    else {
      const value = parseValue(spec, raw, fullKey);
      next.set(fullKey, value);
      intended.set(fullKey, value);
    }
    const origin = before.config.settings.get(fullKey)?.origin ?? 'default';
    if (origin !== 'default' && origin > managedFile && origin.startsWith(SYSTEM.configDropInDir)) {
      if (!options.allowOverridden) {
        throw new UecError('CONFIG_OVERRIDDEN', `${fullKey} is also set in ${origin}, which is read later and wins; change it there`);
      }
      overridden.push(`${fullKey} (${origin})`);
    }
  }
  const fixedHere = (p: ConfigProblem) => p.file === managedFile && p.key !== undefined && changes.has(p.key);
  const settingAny = intended.size > 0;
  const remainingBefore = before.problems.filter((p) => !fixedHere(p));
  if (settingAny && remainingBefore[0]) throw remainingBefore[0].error; // the whole config must load first
  if (managedText === null && next.size === 0) return { changed: false, overridden, problems: remainingBefore.map((p) => p.error.message) };
  const managedLeft = (managed?.problems ?? []).filter((p) => !fixedHere(p));
  // A managed file with bad lines that stay cannot be re-rendered from typed values: only unset gets here.
  const text = managedText !== null && managedLeft.length > 0 ? removeKeyLines(managedText, managed?.keyLines ?? new Map(), changes.keys()) : renderManagedDropIn(next);
  const reread = checkConfigText(schema, text, managedFile);
  for (const [fullKey, value] of intended) {
    const got = reread.values.get(fullKey);
    if (got !== value) {
      const as = got === undefined ? 'an error' : quoteValue(formatValue(got));
      throw new UecError('CONFIG_INVALID_VALUE', `${fullKey} = ${quoteValue(String(changes.get(fullKey)))}: would not read back identically from ${managedFile} (reads as ${as}); refused`);
    }
  }
  const after = await inspectConfig(paths, schema, { file: managedFile, text });
  if (settingAny && after.problems[0]) throw after.problems[0].error;
  const problems = after.problems.map((p) => p.error.message);
  if (text === managedText) return { changed: false, overridden, problems };
  await atomicWrite(paths.resolve(managedFile), text, { mode: 0o644 });
  await recordSettingsAudit(paths, changes, before.config, after.config, options.audit);
  return { changed: true, overridden, problems };
}

/** Who changes settings, for the audit log (default: this process's unix user or maintainer script). */
export interface SettingsAudit {
  actor?: AuditActor;
  log?: Logger;
}

/** One audit line per action (config.set, config.unset): each key's effective value before → after. */
async function recordSettingsAudit(paths: Paths, changes: Map<string, string | null>, before: EffectiveConfig, after: EffectiveConfig, audit: SettingsAudit = {}): Promise<void> {
  const actor = audit.actor ?? loadProcessActor();
  for (const action of ['config.set', 'config.unset'] as const) {
    const keys = [...changes].filter(([, v]) => (v === null) === (action === 'config.unset')).map(([k]) => k).sort();
    if (keys.length === 0) continue;
    const value = (config: EffectiveConfig) => Object.fromEntries(keys.map((k) => [k, config.settings.get(k)?.value ?? null]));
    await recordAudit(paths, actor, action, { file: SYSTEM.managedDropIn, keys: keys.join(' ') }, selectChanges(value(before), value(after)), audit.log);
  }
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
      out.push('', ...commentLines(`${keySpec.description}${allowed}`), `#${key} = ${encodeIniValue(formatValue(keySpec.default))}`.trimEnd());
    }
  }
  return out.join('\n') + '\n';
}
