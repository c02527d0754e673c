import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { VERSION, allCommands, main, mainUsage, type Io } from '../../src/cli';
import { loadComponents } from '../../src/configurator/component';
import { staticNetworkFacts } from '../../src/core/network-facts';
import { REPO_ROOT, put, scratchRoot, snapshotTree } from '../helpers/scratch';

// Components that render templates (tftpd, dhcpd, webui) find the checkout's under a scratch root.
process.env.UEC_PROVISIONING_TEMPLATES ??= path.join(REPO_ROOT, 'templates');

const network = staticNetworkFacts(
  [
    { name: 'eth0', mac: '52:54:00:00:00:01', up: true, loopback: false, virtual: false, ipv4: [{ address: '10.20.0.5', prefix: 24 }], ipv6: [] },
    { name: 'lo', mac: '00:00:00:00:00:00', up: true, loopback: true, virtual: false, ipv4: [{ address: '127.0.0.1', prefix: 8 }], ipv6: [] },
  ],
  { interface: 'eth0', gateway: '10.20.0.1' },
);

async function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  let stdout = '';
  let stderr = '';
  const io: Io = { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), env: { UEC_PROVISIONING_SERVICE_CONTROL: 'none', ...env } };
  const code = await main(args, io, { network });
  return { code, stdout, stderr };
}

t.test('every command has --help, and the man page names every command', async (t) => {
  const man = fs.readFileSync(path.join(REPO_ROOT, 'docs/uec-provisioning.8'), 'utf8');
  const commands = allCommands(loadComponents());
  for (const command of commands) {
    const r = await cli([...command.words, '--help']);
    t.equal(r.code, 0, `${command.words.join(' ')} --help`);
    t.match(r.stdout, `usage: uec-provisioning ${command.words.join(' ')}`);
    t.match(man, new RegExp(`^\\.B[IR]? "?${command.words.join(' ')}`, 'm'), `man page documents ${command.words.join(' ')}`);
  }
  t.equal((await cli(['--help'])).stdout, mainUsage(commands));
  t.equal((await cli([])).code, 2, 'no command is a usage error');
});

t.test('usage errors exit 2 with one line', async (t) => {
  for (const args of [['frob'], ['config'], ['config', 'get'], ['config', 'show', '--bogus'], ['config', 'set', 'novalue'], ['apply', 'nosuch']]) {
    const r = await cli(args);
    t.equal(r.code, 2, args.join(' '));
    t.equal(r.stderr.trim().split('\n').length, 1);
    t.match(r.stderr, /^uec-provisioning: error: /);
  }
});

t.test('config set / get / show / unset through the command, under --root', async (t) => {
  const paths = scratchRoot(t);
  const root = ['--root', paths.root];
  t.equal((await cli([...root, 'config', 'set', 'server.interface=eth0', 'server.http_port=8080'])).code, 0);
  t.equal((await cli([...root, 'config', 'get', 'server.http_port'])).stdout, '8080\n');
  const shown = JSON.parse((await cli([...root, 'config', 'show', '--json'])).stdout) as Record<string, { value: unknown; origin: string }>;
  t.same(shown['server.interface'], { value: 'eth0', origin: '/etc/uec-provisioning/conf.d/50-managed.conf' });
  t.same(shown['log.level'], { value: 'info', origin: 'default' });
  const text = (await cli([...root, 'config', 'show'])).stdout;
  t.match(text, /^server\.http_port = 8080 +# \/etc\/uec-provisioning\/conf\.d\/50-managed\.conf$/m);
  t.equal((await cli([...root, 'config', 'unset', 'server.http_port'])).code, 0);
  t.equal((await cli([...root, 'config', 'get', 'server.http_port'])).stdout, '5248\n');
  t.equal((await cli(['config', 'get', 'server.http_port'], { UEC_PROVISIONING_ROOT: paths.root })).stdout, '5248\n', 'root from the environment');
});

t.test('bad configuration: exit 3, one line naming the culprit, nothing written', async (t) => {
  const paths = scratchRoot(t);
  put(paths, '/etc/uec-provisioning/conf.d/90-local.conf', '[server]\nhttp_port = 99999\n');
  const before = snapshotTree(paths.root);
  for (const args of [['config', 'show'], ['config', 'check'], ['apply'], ['config', 'set', 'log.level=debug']]) {
    const r = await cli(['--root', paths.root, ...args]);
    t.equal(r.code, 3, args.join(' '));
    t.equal(r.stderr, 'uec-provisioning: error: /etc/uec-provisioning/conf.d/90-local.conf:2: [server] http_port = "99999": must be at most 65535 (code=CONFIG_INVALID_VALUE)\n');
  }
  t.same(snapshotTree(paths.root), before);
});

t.test('apply is idempotent and says so; --json gives data', async (t) => {
  const paths = scratchRoot(t);
  // Components with templates (mirror) read the checkout's templates/ under a scratch root.
  process.env.UEC_PROVISIONING_TEMPLATES = path.join(REPO_ROOT, 'templates');
  t.teardown(() => void delete process.env.UEC_PROVISIONING_TEMPLATES);
  const first = await cli(['--root', paths.root, 'apply']);
  t.equal(first.code, 0, first.stderr);
  const second = await cli(['--root', paths.root, 'apply', '--json']);
  const results = JSON.parse(second.stdout) as { component: string; written: string[]; reloaded: string[] }[];
  t.same(
    results.map((r) => [r.component, r.written, r.reloaded]),
    loadComponents().map((c) => [c.name, [], []]),
  );
});

t.test('network and components print data', async (t) => {
  const net = await cli(['network']);
  t.match(net.stdout, /^eth0 +52:54:00:00:00:01 +up,default-route +10\.20\.0\.5\/24$/m);
  t.match(net.stdout, /default via 10\.20\.0\.1 dev eth0/);
  const json = JSON.parse((await cli(['network', '--json'])).stdout) as { defaultRoute: unknown };
  t.same(json.defaultRoute, { interface: 'eth0', gateway: '10.20.0.1' });
  const components = JSON.parse((await cli(['components', '--json'])).stdout) as { name: string; sections: string[] }[];
  t.same(components.find((c) => c.name === 'common')?.sections, ['server', 'boot', 'archive', 'region', 'provisioning', 'log']);
});

t.test('config example is valid config that sets nothing', async (t) => {
  const paths = scratchRoot(t);
  const example = (await cli(['config', 'example', 'common'])).stdout;
  put(paths, '/etc/uec-provisioning/uec-provisioning.conf', example);
  t.equal((await cli(['--root', paths.root, 'config', 'check'])).code, 0);
  const shown = JSON.parse((await cli(['--root', paths.root, 'config', 'show', '--json'])).stdout) as Record<string, { origin: string }>;
  t.ok(Object.values(shown).every((s) => s.origin === 'default'), 'every key commented out');
  t.match(example, /^#http_port = 5248$/m);
});

t.test('the compiled command runs with node alone (as packaged)', async (t) => {
  const cliJs = path.join(REPO_ROOT, 'dist/src/cli.js');
  t.ok(fs.existsSync(cliJs), 'dist/src/cli.js exists (npm test builds before running tap)');
  const r = spawnSync(process.execPath, [cliJs, 'version'], { encoding: 'utf8', env: { PATH: process.env.PATH } });
  const changelog = fs.readFileSync(path.join(REPO_ROOT, 'debian/changelog'), 'utf8');
  const debianVersion = /^uec-provisioning \(([^)]+)\)/.exec(changelog)?.[1];
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
  t.equal(r.stdout, `uec-provisioning ${VERSION}\n`);
  t.equal(debianVersion, VERSION, 'debian/changelog and the command agree on the version');
  t.equal(pkg.version, VERSION, 'package.json too');
  // `true` exits before node has started, so every write meets a closed pipe.
  const piped = spawnSync('bash', ['-c', `"${process.execPath}" "${cliJs}" --help | true; echo "status \${PIPESTATUS[0]}"`], { encoding: 'utf8' });
  t.equal(piped.stderr, '', 'a reader that stops early gets no stack trace');
  t.equal(piped.stdout, 'status 0\n');
});
