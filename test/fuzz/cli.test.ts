/**
 * Fuzz: arbitrary argument vectors to the built command (`node dist/src/cli.js`, a process of
 * its own per input, so a crash or a hang is seen as the admin would see it). Property: the
 * exit status is one of the documented ones, never 1 (an uncaught error) or a signal; no
 * stack trace or JavaScript error name on stderr; a failure says so in one line and leaves
 * the tree under --root as it was.
 *
 * Commands that would touch the network or wait for a long time are never generated: serve,
 * webui serve/api/power, dhcp probe/set-mode (they probe the LAN), mirror sync, images
 * import/loaders. --root is always the scratch root (any other --root in an input is dropped).
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { allCommands } from '../../src/cli';
import { loadComponents, mergeSchemas } from '../../src/configurator/component';
import { createFileNodeStore } from '../../src/region/node-store';
import { NODES } from '../packages/tftpd/nodes';
import { REPO_ROOT, scratchRoot } from '../helpers/scratch';
import { assertProperty, fuzzParameters, hashTree, hostileString, isOneLine, looksLikeCrash, newTally, reportTally, show, writeBaseSettings } from './lib';

const RUNS = 30;
const CONFIG_RUNS = 10;
const UNSAFE_WORDS = new Set(['serve', 'probe', 'set-mode', 'sync', 'import', 'loaders', 'power', 'api']);
/** Exit statuses of docs/errors.md other than 1 (internal error). */
const EXIT_STATUSES = new Set([0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);

const DIST = process.env.UEC_TEST_DIST ?? path.join(REPO_ROOT, 'dist');
const CLI = path.join(DIST, 'src', 'cli.js');

function ensureBuilt(): void {
  if (fs.existsSync(CLI)) return;
  const r = spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: REPO_ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`build failed: ${r.stdout}${r.stderr}`);
}

const commands = allCommands(loadComponents()).filter((c) => !c.words.some((w) => UNSAFE_WORDS.has(w)));
const optionNames = [...new Set(commands.flatMap((c) => Object.keys(c.options)).concat(['json', 'log-json', 'verbose', 'help']))];

const value = hostileString(fc.constantFrom('web1', '52:54:00:00:00:01', 'node-aaaaaa', 'log.level=debug', 'dhcp.mode=proxy', 'boot.kernel_args=quiet', 'amd64', 'server', 'bookworm', 'tftpd', 'debian/bookworm/amd64', '10.20.0.9'))
  // A process argument cannot hold NUL; a lone surrogate would reach the process as U+FFFD anyway.
  .map((v) => v.replace(/\0/g, '').replace(/[\ud800-\udfff]/gu, '\ufffd'));
const option = fc.oneof(
  fc.constantFrom(...optionNames).map((o) => `--${o}`),
  fc.tuple(fc.constantFrom(...optionNames), value).map(([o, v]) => `--${o}=${v}`),
  fc.constantFrom('-v', '-h', '-n', '-', '--', '--no-such-option', '-x', '--json=1'),
);
const argv = fc
  .tuple(
    fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...commands.map((c) => c.words)) }, { weight: 1, arbitrary: fc.array(value, { maxLength: 2 }) }),
    fc.array(fc.oneof(option, value), { maxLength: 6 }),
  )
  .map(([words, rest]) => [...words, ...rest])
  .filter((args) => !args.some((a) => UNSAFE_WORDS.has(a) || a.startsWith('--root') || a === 'help'));

/**
 * Was a known bug, fixed in 2bda926: src/cli/nodes.ts `nodes remove|release|deploy A B` acted on
 * A before finding that B does not exist (`nodes remove 52:54:00:00:00:01 amd64` removed the node
 * and exited 9; found with FUZZ_RUNS=20 FUZZ_SEED=1095405687). While it was open such a failure
 * was counted in the partialMultiNode column; now it fails the property again.
 */
const KNOWN_PARTIAL_MULTI_NODE = false;

function isMultiNodeCommand(args: string[]): boolean {
  const words = args.filter((a) => !a.startsWith('-'));
  return words[0] === 'nodes' && ['remove', 'release', 'deploy'].includes(words[1] ?? '') && words.length >= 4;
}

function run(root: string, args: string[]): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string; timedOut: boolean }> {
  return new Promise((resolve) => {
    const env = { ...process.env, UEC_PROVISIONING_SERVICE_CONTROL: 'none', UEC_PROVISIONING_ROOT: root, UEC_PROVISIONING_TEMPLATES: path.join(REPO_ROOT, 'templates') };
    const child = spawn(process.execPath, [CLI, '--root', root, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    // Generous: CI runs this beside VM tests on 2 cores, where a start of node alone took over 30 s.
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, 120_000);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

t.test('arbitrary argument vectors to the built CLI', async (t) => {
  ensureBuilt();
  const paths = scratchRoot(t);
  await createFileNodeStore(paths).update((nodes) => void nodes.push(...NODES));
  await writeBaseSettings(paths);
  const pristine = `${paths.root}.pristine`;
  fs.cpSync(paths.root, pristine, { recursive: true });
  t.teardown(() => fs.rmSync(pristine, { recursive: true, force: true }));
  const tally = newTally('CLI arguments (built CLI)');
  await assertProperty(
    t,
    'argv',
    fc.asyncProperty(argv, async (args) => {
      fs.rmSync(paths.root, { recursive: true, force: true });
      fs.cpSync(pristine, paths.root, { recursive: true });
      const before = hashTree(paths.root);
      tally.tried++;
      const r = await run(paths.root, args);
      if (r.timedOut || r.code === null || !EXIT_STATUSES.has(r.code) || looksLikeCrash(r.stderr)) {
        tally.crashes++;
        throw new Error(`${show(args)} → ${r.timedOut ? 'hung' : `exit ${r.code} signal ${r.signal}`}: ${show(r.stderr.slice(-600))}`);
      }
      if (r.code === 0) {
        tally.accepted++;
        return;
      }
      if (hashTree(paths.root) !== before) {
        if (KNOWN_PARTIAL_MULTI_NODE && isMultiNodeCommand(args)) {
          tally.partialMultiNode++;
          return;
        }
        tally.stateChanged++;
        throw new Error(`${show(args)} failed (exit ${r.code}) but the root changed: ${show(r.stderr)}`);
      }
      // No command word at all: the usage on stdout and exit 2, as every Unix command does.
      if (r.code === 2 && r.stderr === '' && r.stdout.startsWith('usage: uec-provisioning COMMAND')) return;
      if (!isOneLine(r.stderr)) throw new Error(`${show(args)} failed (exit ${r.code}) without exactly one line on stderr: ${show(r.stderr)}`);
    }),
    fuzzParameters('cli:argv', RUNS),
  );
  reportTally(tally);
  t.equal(tally.crashes, 0, 'no crash');
  t.equal(tally.stateChanged, 0, 'no failed command changed anything');
  t.comment(`cli: ${JSON.stringify(tally)}`);
});

t.test('config set KEY=VALUE through the built CLI: refused in one line naming the key, or read back by config get', async (t) => {
  ensureBuilt();
  const paths = scratchRoot(t);
  await writeBaseSettings(paths);
  const managed = paths.resolve('/etc/uec-provisioning/conf.d/50-managed.conf');
  const base = fs.readFileSync(managed);
  const tally = newTally('config values (config set)');
  const keys = Object.entries(mergeSchemas(loadComponents())).flatMap(([section, s]) => Object.keys(s.keys).map((k) => `${section}.${k}`));
  await assertProperty(
    t,
    'config set',
    fc.asyncProperty(fc.constantFrom(...keys), value, async (key, v) => {
      fs.writeFileSync(managed, base);
      const before = hashTree(paths.root);
      tally.tried++;
      const r = await run(paths.root, ['config', 'set', `${key}=${v}`]);
      if (r.timedOut || r.code === 1 || r.code === null || looksLikeCrash(r.stderr)) {
        tally.crashes++;
        throw new Error(`${key}=${show(v)} → exit ${r.code}: ${show(r.stderr)}`);
      }
      if (r.code !== 0) {
        if (hashTree(paths.root) !== before) {
          tally.stateChanged++;
          throw new Error(`${key}=${show(v)} refused but the root changed`);
        }
        if (!isOneLine(r.stderr) || !r.stderr.includes(key)) throw new Error(`${key}=${show(v)} refused without one line naming the key: ${show(r.stderr)}`);
        return;
      }
      tally.accepted++;
      const got = await run(paths.root, ['config', 'get', '--json', key]);
      const read = (JSON.parse(got.stdout) as { value: unknown }).value;
      if (got.code !== 0 || String(read) !== v.trim() && typeof read === 'string') {
        tally.wronglyAccepted++;
        throw new Error(`${key}=${show(v)} accepted, reads back as ${show(got.stdout)}: ${show(got.stderr)}`);
      }
    }),
    fuzzParameters('cli:config-set', CONFIG_RUNS),
  );
  reportTally(tally);
  t.equal(tally.crashes, 0, 'no crash');
  t.equal(tally.wronglyAccepted, 0, 'what is accepted reads back');
  t.equal(tally.stateChanged, 0, 'no refused value changed anything');
  t.comment(`cli config set: ${JSON.stringify(tally)}`);
});
