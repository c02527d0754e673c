/**
 * Shared pieces of the fuzz suite (issue 13): run counts and seeds, hostile-string
 * arbitraries, the state hash, the tallies scripts/fuzz.ts prints, and the "render it and
 * ask the real tools" check used for every accepted input.
 *
 * CI runs each property with a constant seed and a small count. FUZZ_RUNS=N multiplies every
 * count by N and FUZZ_SEED=S replaces every seed (FUZZ_SEED=fixed keeps CI's) (scripts/fuzz.ts draws one at random and
 * prints it, so a failure found there is replayed with the same FUZZ_RUNS and FUZZ_SEED).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import type { Test } from 'tap';
import { main, type Io } from '../../src/cli';
import { staticNetworkFacts } from '../../src/core/network-facts';
import { createFileNodeStore } from '../../src/region/node-store';
import type { Paths } from '../../src/core/paths';
import { validateContent } from '../../src/core/validators';
import { REPO_ROOT } from '../helpers/scratch';

process.env.UEC_PROVISIONING_TEMPLATES ??= path.join(REPO_ROOT, 'templates');

/** A stable seed per property name, so CI replays the same inputs every run. */
function seedOf(name: string): number {
  return createHash('sha256').update(name).digest().readInt32BE(0);
}

export function runFactor(): number {
  const n = Number(process.env.FUZZ_RUNS ?? '1');
  return Number.isFinite(n) && n >= 1 ? Math.floor(n) : 1;
}

/** fast-check parameters of one property: CI count × FUZZ_RUNS, the constant seed unless FUZZ_SEED. */
export function fuzzParameters(name: string, ciRuns: number): { seed: number; numRuns: number; endOnFailure: boolean } {
  const given = process.env.FUZZ_SEED;
  const seed = given !== undefined && given !== 'fixed' ? Number(given) : seedOf(name);
  return { seed, numRuns: ciRuns * runFactor(), endOnFailure: true };
}

/** What one surface saw: the counts of the README table. */
export interface Tally {
  surface: string;
  tried: number;
  accepted: number;
  crashes: number;
  wronglyAccepted: number;
  stateChanged: number;
  /** Accepted inputs whose files went through the real validators. */
  validated: number;
  /** Accepted values that apply then refused as a combination, writing nothing (see RenderCheck). */
  refusedByApply: number;
  /** Refusals that were one line except for a raw U+0085/U+2028/U+2029 (KNOWN_RAW_SEPARATORS). */
  rawSeparators: number;
  /** Failed multi-node commands that had changed the nodes before the failing one (cli.test.ts, KNOWN_PARTIAL_MULTI_NODE). */
  partialMultiNode: number;
}

export function newTally(surface: string): Tally {
  return { surface, tried: 0, accepted: 0, crashes: 0, wronglyAccepted: 0, stateChanged: 0, validated: 0, refusedByApply: 0, rawSeparators: 0, partialMultiNode: 0 };
}

/** Appends the tally as a JSON line to FUZZ_REPORT (set by scripts/fuzz.ts), and prints it. */
export function reportTally(tally: Tally): void {
  const file = process.env.FUZZ_REPORT;
  if (file) fs.appendFileSync(file, `${JSON.stringify(tally)}\n`);
}

/**
 * A hash of every file under a directory (path, mode, bytes): "nothing changed" in one string.
 * Files only: an empty directory (the web UI's account lock makes its directory before it
 * finds the user does not exist) holds no state.
 */
export function hashTree(dir: string, skip: (relative: string) => boolean = () => false): string {
  const hash = createHash('sha256');
  const walk = (d: string) => {
    if (!fs.existsSync(d)) return;
    for (const entry of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = path.join(d, entry.name);
      const rel = path.relative(dir, p);
      if (skip(rel)) continue;
      if (entry.isDirectory()) walk(p);
      else {
        const stat = fs.statSync(p);
        hash.update(`f ${rel} ${(stat.mode & 0o7777).toString(8)} ${stat.size}\n`);
        hash.update(fs.readFileSync(p));
      }
    }
  };
  walk(dir);
  return hash.digest('hex');
}

/** The message of a rejection is one line: exactly one newline, at the end, and no other line separator (U+0085, U+2028, U+2029, CR). */
export function isOneLine(text: string): boolean {
  return text.endsWith('\n') && text.indexOf('\n') === text.length - 1 && !/[\r\u0085\u2028\u2029]/.test(text);
}

/**
 * Was a known bug, fixed in 655a766: src/contract/node.ts `invalid()` (every node field refusal: addNode,
 * the CSV import and the web UI's answers) quoted values with JSON.stringify, which leaves
 * U+0085, U+2028 and U+2029 raw. While it was open such refusals were counted in the
 * rawSeparators column instead of failing the node properties; now they fail them again.
 */
export const KNOWN_RAW_SEPARATORS = false;

/** One line but for raw U+0085/U+2028/U+2029: the KNOWN_RAW_SEPARATORS case. */
export function isOneLineButRawSeparators(text: string): boolean {
  return !isOneLine(text) && isOneLine(text.replace(/[\u0085\u2028\u2029]/g, ' '));
}

/** A Node crash rather than a refusal: a stack trace, or the names of JavaScript's own errors. */
export function looksLikeCrash(text: string): boolean {
  return /\n\s+at .+[(:]\d+|TypeError|RangeError|ReferenceError|SyntaxError: |internal error|Unhandled|ERR_[A-Z_]+/.test(text);
}

/** Pieces that mean something to one of the files or parsers downstream. */
export const HOSTILE_PIECES = [
  '\n', '\r', '\r\n', '\t', '\u000b', '\u0000', '\u007f', '\u0085', '\u2028', '\u2029', '\ufeff', '\u00a0',
  '"', "'", '`', '\\', '#', ';', '=', '[', ']', '{', '}', '|', '&', '<', '>', '$', ',', ' ', '  ', '/', '..', '%', '%0a', '%00',
  '$(id)', '`id`', '${x}', '{{x}}', '{{{x}}}', '{{/x}}', '{{>x}}', '\\n', '\\;', '\\#', '" ; echo x', "';x='", '||', '&&',
  'null', 'true', 'false', 'undefined', 'NaN', '-1', '0', '1e3', '0x10', '__proto__', 'constructor',
  'ü', 'ß', '\u{1F600}', '\u0301', '\u200b', '\u202e',
];

export const hostilePiece = (): fc.Arbitrary<string> => fc.constantFrom(...HOSTILE_PIECES);

/** Any code point, any length up to `max` units. */
export const anyString = (max = 40): fc.Arbitrary<string> => fc.string({ unit: 'binary', maxLength: max });

/** `base` with hostile pieces spliced in at random places: close to valid, but not quite. */
export function mutated(base: fc.Arbitrary<string>): fc.Arbitrary<string> {
  return fc
    .tuple(base, fc.array(fc.tuple(fc.nat(), fc.oneof(hostilePiece(), anyString(3))), { minLength: 1, maxLength: 3 }))
    .map(([value, edits]) => edits.reduce((s, [at, piece]) => { const i = at % (s.length + 1); return s.slice(0, i) + piece + s.slice(i); }, value));
}

/** Hostile strings of every kind: arbitrary, hostile pieces joined, mutated valid ones, very long. */
export function hostileString(valid: fc.Arbitrary<string>): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 3, arbitrary: valid },
    { weight: 3, arbitrary: mutated(valid) },
    { weight: 2, arbitrary: anyString() },
    { weight: 2, arbitrary: fc.array(fc.oneof(hostilePiece(), valid), { maxLength: 4 }).map((a) => a.join('')) },
    { weight: 1, arbitrary: fc.tuple(valid, fc.integer({ min: 200, max: 9000 })).map(([v, n]) => v.repeat(Math.ceil(n / Math.max(1, v.length))).slice(0, n)) },
    { weight: 1, arbitrary: valid.map((v) => ` ${v}  `) },
  );
}

/** The LAN of every scratch root: eth0 10.20.0.5/24. */
export const NETWORK = staticNetworkFacts(
  [
    { name: 'eth0', mac: '52:54:00:00:00:fe', up: true, loopback: false, virtual: false, ipv4: [{ address: '10.20.0.5', prefix: 24 }], ipv6: [] },
    { name: 'lo', mac: '00:00:00:00:00:00', up: true, loopback: true, virtual: false, ipv4: [{ address: '127.0.0.1', prefix: 8 }], ipv6: [] },
  ],
  { interface: 'eth0', gateway: '10.20.0.1' },
);

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The CLI's main() in-process, as `uec-provisioning --root ROOT ARGS…` with services left alone. */
export async function cli(paths: Paths, args: string[]): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const io: Io = { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), env: { UEC_PROVISIONING_SERVICE_CONTROL: 'none' } };
  const code = await main(['--root', paths.root, ...args], io, { network: NETWORK, nodeStore: createFileNodeStore(paths) });
  return { code, stdout, stderr };
}

/** Settings under which every component renders something: full DHCP on eth0, a mirror, iPXE. */
export const BASE_SETTINGS: [string, string][] = [
  ['server.interface', 'eth0'],
  ['server.address', ''],
  ['dhcp.mode', 'full'],
  ['dhcp.interface', 'eth0'],
  ['dhcp.range_start', '10.20.0.100'],
  ['dhcp.range_end', '10.20.0.200'],
  ['dhcp.dns_servers', '10.20.0.1'],
  ['mirror.mode', 'mirror'],
];

/** The base settings, applied once, so a later apply writes only what an input changed. */
export async function writeBaseSettings(paths: Paths): Promise<void> {
  const r = await cli(paths, ['config', 'set', ...BASE_SETTINGS.map(([k, v]) => `${k}=${v}`)]);
  if (r.code !== 0) throw new Error(`base settings refused: ${r.stderr}`);
  const applied = await cli(paths, ['apply']);
  if (applied.code !== 0) throw new Error(`apply of the base settings failed: ${applied.stderr}`);
}

/**
 * fc.assert inside a tap test: a counterexample fails the test with fast-check's report
 * (seed, path, shrunk input) instead of an exception tap would show without its message.
 */
export async function assertProperty<T>(t: Test, name: string, property: fc.IAsyncProperty<T>, params: fc.Parameters<T>): Promise<void> {
  try {
    await fc.assert(property, params);
    t.pass(`${name}: the property held`);
  } catch (err) {
    const cause = err instanceof Error && err.cause instanceof Error ? ` ${err.cause.message}` : '';
    const report = `${err instanceof Error ? err.message : String(err)}${cause}`;
    t.fail(`${name}: ${show(report.split('\n')[0])}${show(cause)}`, { report: report.replace(/[\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`) });
  }
}

/** iPXE has no checker of its own: every line must be a comment, a label or a command it knows. */
const IPXE_LINE = /^(#.*|:[A-Za-z0-9_-]+|(echo|kernel|initrd|imgargs|imgfree|boot|chain|sanboot|exit|set|isset|iseq|goto|dhcp|ifopen|prompt|sleep|shell|reboot|poweroff)(\s.*)?|)$/;
/** pxelinux: keywords only (anything else would be read as a new, unknown directive). */
const PXELINUX_LINE = /^(#.*|\s*(DEFAULT|PROMPT|TIMEOUT|LABEL|KERNEL|LINUX|PXE|BOOT|CONFIG|APPEND|INITRD|LOCALBOOT|UI|MENU|SAY|IPAPPEND|SYSAPPEND|SERIAL|ONTIMEOUT|TOTALTIMEOUT|COM32|FDT|DISPLAY|IMPLICIT|ALLOWOPTIONS|NOESCAPE|NOCOMPLETE|TEXT|ENDTEXT)(\s.*)?|)$/;

export interface RenderCheck {
  /** What the real tools (and the iPXE/pxelinux line checks) found wrong in what apply wrote. */
  problems: string[];
  /**
   * Set when apply refused the combination of settings before writing anything (exit 3, one
   * line naming the keys, the tree unchanged): a rule across keys (dhcp.interface against
   * server.interface, a range outside the interface's subnet) that `config set`, which
   * checks one key at a time, cannot know. Not a wrong acceptance: no file reached a daemon.
   */
  refusedByApply?: string;
}

/** apply every component, then ask the real tools about each file it wrote, the preseeds and the iPXE script. */
export async function checkRenders(paths: Paths, node: { hostname: string; mac: string; preseeds?: boolean }): Promise<RenderCheck> {
  const problems: string[] = [];
  const before = hashTree(paths.root);
  const applied = await cli(paths, ['apply']);
  if (applied.code !== 0) {
    const line = applied.stderr.trim().split('\n').pop() ?? '';
    // A node whose address is outside the DHCP subnet is left out (and named) by apply: the
    // store cannot know the subnet. Nothing else is written, so the tree stays as it was.
    const clean = applied.code === 3 && /code=CONFIG_INVALID_VALUE|is not a host address of .*left out.*code=INVALID_VALUE/.test(line) && hashTree(paths.root) === before;
    if (clean) return { problems, refusedByApply: line };
    problems.push(`apply exit ${applied.code}: ${line}`);
    return { problems };
  }
  const boot = paths.resolve('/var/lib/uec-provisioning/boot');
  try {
    for (const name of fs.existsSync(`${boot}/grub`) ? fs.readdirSync(`${boot}/grub`) : []) {
      if (!name.startsWith('grub.cfg')) continue;
      const r = spawnSync('grub-script-check', [`${boot}/grub/${name}`], { encoding: 'utf8' });
      if (r.status !== 0) problems.push(`grub-script-check refused grub/${name}: ${(r.stdout + r.stderr).trim()}`);
    }
    for (const name of fs.existsSync(`${boot}/pxelinux.cfg`) ? fs.readdirSync(`${boot}/pxelinux.cfg`) : []) {
      const bad = fs.readFileSync(`${boot}/pxelinux.cfg/${name}`, 'utf8').split('\n').find((l) => !PXELINUX_LINE.test(l));
      if (bad !== undefined) problems.push(`pxelinux.cfg/${name} has a line pxelinux does not know: ${JSON.stringify(bad)}`);
    }
    const hostsDir = paths.resolve('/var/lib/uec-provisioning/dhcpd/hosts.d');
    const hostLines = (fs.existsSync(hostsDir) ? fs.readdirSync(hostsDir) : [])
      .flatMap((f) => fs.readFileSync(path.join(hostsDir, f), 'utf8').split('\n'))
      .filter((l) => l !== '' && !l.startsWith('#'));
    if (hostLines.length > 0) {
      // dnsmasq reads a dhcp-hostsdir line as the value of a dhcp-host= option.
      await validateContent('dnsmasq', 'hosts.d', hostLines.map((l) => `dhcp-host=${l}\n`).join('')).catch((err: Error) => problems.push(err.message));
    }
    for (const type of node.preseeds === false ? [] : ['install', 'commissioning']) {
      const preseed = await cli(paths, ['preseed', node.hostname, '--type', type]);
      if (preseed.code !== 0) problems.push(`${type} preseed of ${node.hostname}: exit ${preseed.code}: ${preseed.stderr.trim()}`);
    }
    const script = await cli(paths, ['boot-script', node.mac]);
    if (script.code !== 0) problems.push(`boot-script ${node.mac}: exit ${script.code}: ${script.stderr.trim()}`);
    else {
      const lines = script.stdout.split('\n');
      if (lines[0] !== '#!ipxe') problems.push('the iPXE script does not start with #!ipxe');
      const bad = lines.find((l) => !IPXE_LINE.test(l));
      if (bad !== undefined) problems.push(`the iPXE script has a line iPXE would not run as meant: ${JSON.stringify(bad)}`);
    }
  } catch (err) {
    problems.push(`checking the renders failed: ${String(err)}`);
  }
  return { problems };
}

/** One line for a value in a test message (TAP lines must not break). */
export function show(value: unknown): string {
  const s = JSON.stringify(value) ?? String(value);
  return (s.length > 400 ? `${s.slice(0, 400)}…` : s).replace(/[\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
