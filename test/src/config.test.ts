import * as fs from 'node:fs';
import t, { type Test } from 'tap';
import { loadConfig, parseConfigText, renderManagedDropIn, writeManagedSettings, type ConfigSchema } from '../../src/core/config';
import { UecError } from '../../src/core/errors';
import { withFsFault } from '../../src/core/fs-ops';
import { COMMON_SCHEMA } from '../../packages/common/config-schema';
import { put, scratchRoot, snapshotTree } from '../helpers/scratch';

const schema: ConfigSchema = {
  ...COMMON_SCHEMA,
  demo: {
    package: 'uec-provisioning-demo',
    keys: {
      mode: { type: 'enum', values: ['off', 'proxy', 'full'], default: 'off', description: 'mode' },
      enabled: { type: 'boolean', default: false, description: 'flag' },
      url: { type: 'string', format: 'url', default: 'http://deb.debian.org/debian', description: 'archive' },
    },
  },
};
const MAIN = '/etc/uec-provisioning/uec-provisioning.conf';
const DROPS = '/etc/uec-provisioning/conf.d';

async function rejectsWith(t: Test, promise: Promise<unknown>, code: string, pattern: RegExp): Promise<void> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(err instanceof UecError, 'a UecError');
  t.equal((err as UecError).code, code);
  t.match((err as UecError).message, pattern);
  t.notMatch((err as UecError).message, /\n/, 'one line');
}

t.test('defaults when no file exists, each marked "default"', async (t) => {
  const config = await loadConfig(scratchRoot(t), schema);
  t.equal(config.get('server.http_port'), 5248);
  t.equal(config.get('demo.mode'), 'off');
  t.equal(config.settings.get('demo.mode')?.origin, 'default');
});

t.test('drop-ins merge in lexical order after the main file; later wins; origin recorded', async (t) => {
  const paths = scratchRoot(t);
  put(paths, MAIN, '[demo]\nmode = proxy\nenabled = yes\n[server]\nhttp_port = 8000\n');
  put(paths, `${DROPS}/20-b.conf`, '[demo]\nmode = full\n');
  put(paths, `${DROPS}/10-a.conf`, '[demo]\nmode = off\n[server]\nhttp_port = 9000\n');
  put(paths, `${DROPS}/.30-hidden.conf`, '[demo]\nmode = proxy\n');
  put(paths, `${DROPS}/40-not-conf.bak`, 'garbage that would not parse');
  const config = await loadConfig(paths, schema);
  t.equal(config.get('demo.mode'), 'full');
  t.equal(config.settings.get('demo.mode')?.origin, `${DROPS}/20-b.conf`);
  t.equal(config.get('server.http_port'), 9000);
  t.equal(config.get('demo.enabled'), true);
  t.equal(config.settings.get('demo.enabled')?.origin, MAIN);
});

t.test('quoted values keep ";" and "#"; comments and blank lines are skipped', async (t) => {
  const parsed = parseConfigText('# c\n; c\n\n[demo]\nurl = "http://x/a;b#c"\n', 'f.conf');
  t.equal(parsed.values.get('demo.url')?.raw, 'http://x/a;b#c');
});

t.test('bad input: one line naming file, line, section, key and value', async (t) => {
  const cases: [string, string, string, RegExp][] = [
    ['bare word', '[demo]\nmode\n', 'CONFIG_SYNTAX', /uec-provisioning\.conf:2: expected "key = value", got "mode"/],
    ['unterminated section', '[demo\nmode = off\n', 'CONFIG_SYNTAX', /:1: bad section header "\[demo"/],
    ['key before section', 'mode = off\n', 'CONFIG_SYNTAX', /:1: key "mode" appears before any \[section\]/],
    ['duplicate key', '[demo]\nmode = off\nmode = full\n', 'CONFIG_SYNTAX', /:3: \[demo\] mode is set twice \(also on line 2\)/],
    ['unknown section', '[nope]\nx = 1\n', 'CONFIG_UNKNOWN_KEY', /:2: unknown section \[nope\]/],
    ['unknown key', '[demo]\nmoed = off\n', 'CONFIG_UNKNOWN_KEY', /:2: unknown key "moed" in \[demo\] \(known keys: enabled, mode, url\)/],
    ['enum', '[demo]\nmode = fulll\n', 'CONFIG_INVALID_VALUE', /:2: \[demo\] mode = "fulll": must be one of: off, proxy, full/],
    ['integer', '[server]\nhttp_port = eighty\n', 'CONFIG_INVALID_VALUE', /\[server\] http_port = "eighty": must be a whole number/],
    ['range', '[server]\nhttp_port = 0\n', 'CONFIG_INVALID_VALUE', /must be at least 1/],
    ['boolean', '[demo]\nenabled = maybe\n', 'CONFIG_INVALID_VALUE', /must be true or false/],
    ['url', '[demo]\nurl = ftp://x/\n', 'CONFIG_INVALID_VALUE', /must be an http/],
    ['interface', '[server]\ninterface = eth/0\n', 'CONFIG_INVALID_VALUE', /is not a network interface name/],
    ['ipv4', '[server]\naddress = 10.0.0.300\n', 'CONFIG_INVALID_VALUE', /is not an IPv4 address/],
  ];
  for (const [name, text, code, pattern] of cases) {
    await t.test(name, async (t) => {
      const paths = scratchRoot(t);
      put(paths, MAIN, text);
      await rejectsWith(t, loadConfig(paths, schema), code, pattern);
    });
  }
});

t.test('an unreadable drop-in is named', async (t) => {
  const paths = scratchRoot(t);
  put(paths, `${DROPS}/10-a.conf`, '[demo]\nmode = off\n');
  const target = paths.resolve(`${DROPS}/10-a.conf`);
  await withFsFault(
    {
      readFile: async (p) => {
        if (p === target) throw Object.assign(new Error('permission denied'), { code: 'EACCES' });
        return fs.promises.readFile(p);
      },
    },
    () => rejectsWith(t, loadConfig(paths, schema), 'CONFIG_UNREADABLE', /cannot read \/etc\/uec-provisioning\/conf\.d\/10-a\.conf: EACCES/),
  );
});

t.test('config set writes the managed drop-in, validated, sorted, idempotent', async (t) => {
  const paths = scratchRoot(t);
  put(paths, MAIN, '[demo]\nmode = proxy\n');
  const first = await writeManagedSettings(paths, schema, new Map([['demo.mode', 'full'], ['server.interface', 'eth1']]));
  t.equal(first.changed, true);
  const text = fs.readFileSync(paths.resolve(`${DROPS}/50-managed.conf`), 'utf8');
  t.match(text, /^# Written by uec-provisioning/);
  t.match(text, /\[demo\]\nmode = full\n\n\[server\]\ninterface = eth1\n$/);
  t.equal(fs.readFileSync(paths.resolve(MAIN), 'utf8'), '[demo]\nmode = proxy\n', "the admin's file is untouched");
  const config = await loadConfig(paths, schema);
  t.equal(config.get('demo.mode'), 'full');
  const second = await writeManagedSettings(paths, schema, new Map([['demo.mode', 'full']]));
  t.equal(second.changed, false, 'setting the same value again changes nothing');
  await writeManagedSettings(paths, schema, new Map([['demo.mode', null]]));
  t.equal((await loadConfig(paths, schema)).get('demo.mode'), 'proxy', 'unset falls back to the earlier file');
});

t.test('config set refuses bad values, unknown keys and keys a later drop-in overrides; nothing changes', async (t) => {
  const paths = scratchRoot(t);
  put(paths, `${DROPS}/90-local.conf`, '[demo]\nmode = proxy\n');
  await writeManagedSettings(paths, schema, new Map([['server.http_port', '8080']]));
  const before = snapshotTree(paths.root);
  await rejectsWith(t, writeManagedSettings(paths, schema, new Map([['server.http_port', '80\n[x]']])), 'CONFIG_INVALID_VALUE', /http_port = "80\\n\[x\]"/);
  await rejectsWith(t, writeManagedSettings(paths, schema, new Map([['server.nope', '1']])), 'CONFIG_UNKNOWN_KEY', /unknown key "nope"/);
  await rejectsWith(t, writeManagedSettings(paths, schema, new Map([['nodots', '1']])), 'USAGE', /not a key name/);
  await rejectsWith(t, writeManagedSettings(paths, schema, new Map([['demo.mode', 'full']])), 'CONFIG_OVERRIDDEN', /demo\.mode is also set in \/etc\/uec-provisioning\/conf\.d\/90-local\.conf/);
  t.same(snapshotTree(paths.root), before, 'every file byte-for-byte as it was');
  const allowed = await writeManagedSettings(paths, schema, new Map([['demo.mode', 'full']]), { allowOverridden: true });
  t.equal(allowed.overridden.length, 1, 'debconf may still record the answer, with a warning');
});

t.test('config set refuses to write while another file is broken', async (t) => {
  const paths = scratchRoot(t);
  put(paths, `${DROPS}/10-broken.conf`, '[demo\n');
  const before = snapshotTree(paths.root);
  await rejectsWith(t, writeManagedSettings(paths, schema, new Map([['demo.mode', 'full']])), 'CONFIG_SYNTAX', /10-broken\.conf:1/);
  t.same(snapshotTree(paths.root), before);
});

t.test('config set with a disk full keeps the old drop-in', async (t) => {
  const paths = scratchRoot(t);
  await writeManagedSettings(paths, schema, new Map([['demo.mode', 'proxy']]));
  const before = snapshotTree(paths.root);
  await t.rejects(
    withFsFault({ rename: async () => Promise.reject(Object.assign(new Error('no space left on device'), { code: 'ENOSPC' })) }, () =>
      writeManagedSettings(paths, schema, new Map([['demo.mode', 'full']])),
    ),
    { code: 'ENOSPC' },
  );
  t.same(snapshotTree(paths.root), before, 'old file intact and no temp file left');
});

t.test('renderManagedDropIn quotes values ini would misread', async (t) => {
  const text = renderManagedDropIn(new Map([['demo.url', 'http://x/a;b']]));
  const parsed = parseConfigText(text, 'x');
  t.equal(parsed.values.get('demo.url')?.raw, 'http://x/a;b');
});

t.test('an unquoted ";" starts an inline comment, as the shipped file documents', async (t) => {
  const parsed = parseConfigText('[server]\ninterface = eth0 ; the LAN side\n', 'f.conf');
  t.equal(parsed.values.get('server.interface')?.raw, 'eth0');
});

t.test('unset with no managed drop-in creates no file', async (t) => {
  const paths = scratchRoot(t);
  const result = await writeManagedSettings(paths, schema, new Map([['demo.mode', null]]));
  t.equal(result.changed, false);
  t.same(snapshotTree(paths.root), {});
});

t.test('a section of a known package that is not installed is a warning, not an error', async (t) => {
  const { setConfigWarning } = await import('../../src/core/config');
  const warnings: string[] = [];
  setConfigWarning((m) => warnings.push(m));
  t.teardown(() => setConfigWarning((m) => void process.stderr.write(`uec-provisioning: warning: ${m}\n`)));
  const paths = scratchRoot(t);
  put(paths, '/etc/uec-provisioning/conf.d/90-local.conf', '[mirror]\nmode = mirror\n\n[log]\nlevel = debug\n');
  const config = await loadConfig(paths, COMMON_SCHEMA);
  t.equal(config.get('log.level'), 'debug', 'the rest of the file still applies');
  t.same(warnings, ['/etc/uec-provisioning/conf.d/90-local.conf:2: [mirror] is ignored: uec-provisioning-mirror is not installed']);
  put(paths, '/etc/uec-provisioning/conf.d/91-typo.conf', '[mirorr]\nmode = mirror\n');
  await t.rejects(loadConfig(paths, COMMON_SCHEMA), { code: 'CONFIG_UNKNOWN_KEY', message: /unknown section \[mirorr\]/ });
});
