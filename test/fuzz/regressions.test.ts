/**
 * Inputs the fuzz suite found, kept as plain tests so they are checked on every run whatever
 * the seed.
 */
import * as fs from 'node:fs';
import t from 'tap';
import { loadComponents, mergeSchemas } from '../../src/configurator/component';
import { loadConfig, writeManagedSettings } from '../../src/core/config';
import { NODES } from '../packages/tftpd/nodes';
import { scratchRoot } from '../helpers/scratch';
import { addNode } from '../../src/region/node-ops';
import { createFileNodeStore } from '../../src/region/node-store';
import { cli, hashTree, show, writeBaseSettings } from './lib';

const SCHEMA = mergeSchemas(loadComponents());
const MANAGED = '/etc/uec-provisioning/conf.d/50-managed.conf';

// Found by config.test.ts (FUZZ_RUNS=15 FUZZ_SEED=12345, dhcp.dns_servers): a value with a lone
// surrogate passed the in-memory read-back, was written as UTF-8 (U+FFFD) and read back different.
t.test('a value holding a lone UTF-16 surrogate is refused by config set and the web UI\'s path, nothing written', async (t) => {
  const paths = scratchRoot(t);
  t.equal((await cli(paths, ['config', 'set', 'log.level=debug'])).code, 0);
  const before = hashTree(paths.root);
  for (const [key, value] of [['dhcp.dns_servers', '10.20.0.1\ud894'], ['boot.kernel_args', 'quiet \ude22x'], ['region.admin_user', '\ud83d']] as const) {
    await t.rejects(writeManagedSettings(paths, SCHEMA, new Map([[key, value]])), { code: 'CONFIG_INVALID_VALUE', message: /lone UTF-16 surrogate/ }, `${key} refused`);
    const r = await cli(paths, ['config', 'set', `${key}=${value}`]);
    t.equal(r.code, 3, `config set ${key} exits 3`);
    t.ok(r.stderr.includes(key) && r.stderr.endsWith('\n') && r.stderr.indexOf('\n') === r.stderr.length - 1, `one line naming ${key}: ${r.stderr}`);
  }
  t.equal(hashTree(paths.root), before, 'nothing written');
  t.equal((await loadConfig(paths, SCHEMA)).get('log.level'), 'debug');
  // A character outside the BMP (a proper surrogate pair) is still a character.
  t.equal((await cli(paths, ['config', 'set', 'boot.kernel_args=quiet \u{1F600}'])).code, 0, 'a surrogate pair is fine');
  t.match(fs.readFileSync(paths.resolve(MANAGED), 'utf8'), '\u{1F600}');
});

// Found by nodes.test.ts (FUZZ_RUNS=15 FUZZ_SEED=777): an os of 5,000 letters was stored, then
// the tftpd render refused it ("longer than 4096 characters") and apply wrote no boot file at all.
t.test('a role, os or release word longer than 64 characters is refused before it is stored; a 64-character one renders', async (t) => {
  const paths = scratchRoot(t);
  const store = createFileNodeStore(paths);
  await writeBaseSettings(paths);
  const before = hashTree(paths.root);
  for (const field of ['role', 'os', 'release'] as const) {
    await t.rejects(addNode(store, { hostname: 'web1', macs: ['52:54:00:00:00:01'], [field]: 'p'.repeat(5000) }), { code: 'INVALID_VALUE', message: new RegExp(`${field} .*longer than 64 characters`) }, `${field} refused`);
  }
  const r = await cli(paths, ['config', 'set', `tftpd.default_os=${'p'.repeat(65)}`]);
  t.equal(r.code, 3, 'a config word too');
  t.equal(hashTree(paths.root), before, 'nothing stored or written');
  const node = await addNode(store, { hostname: 'web1', macs: ['52:54:00:00:00:01'], os: 'p'.repeat(64), release: 'r'.repeat(64) });
  await store.update((nodes) => void (nodes.find((n) => n.systemId === node.systemId)!.status = 'deploying'));
  const applied = await cli(paths, ['apply', 'tftpd']);
  t.equal(applied.code, 0, applied.stderr);
  t.match(fs.readFileSync(paths.resolve('/var/lib/uec-provisioning/boot/pxelinux.cfg/01-52-54-00-00-00-01'), 'utf8'), `images/${'p'.repeat(64)}/${'r'.repeat(64)}/amd64/linux`);
});

// Found by config.test.ts (FUZZ_RUNS=20 FUZZ_SEED=227148686): a 9,000-character region.url and
// mirror.upstream were accepted, then the preseed and the mirror's apache drop-in refused them
// (lines over 4096 characters). dhcp.dns_servers took any text and only apply refused it.
t.test('URLs over 2048 characters, paths over 1024 and dns_servers that are not IPv4 addresses are refused by config set', async (t) => {
  const paths = scratchRoot(t);
  await createFileNodeStore(paths).update((nodes) => void nodes.push(...NODES));
  await writeBaseSettings(paths);
  const before = hashTree(paths.root);
  for (const [key, value] of [
    ['region.url', `http://[::1]/${'x'.repeat(2100)}`],
    ['mirror.upstream', `http://deb.example.org/${'x'.repeat(2100)}`],
    ['mirror.base_dir', `/srv/${'m'.repeat(1100)}`],
    ['dhcp.dns_servers', '10.20.0.1, resolver.example.org'],
    ['dhcp.dns_servers', '10.20.0.1;9.9.9.9'],
  ] as const) {
    const r = await cli(paths, ['config', 'set', `${key}=${value}`]);
    t.equal(r.code, 3, `${key} refused: ${r.stderr.slice(0, 200)}`);
    t.ok(r.stderr.includes(key) && r.stderr.indexOf('\n') === r.stderr.length - 1, 'one line naming the key');
  }
  t.equal(hashTree(paths.root), before, 'nothing written');
  const url = `http://[::1]/${'x'.repeat(2030)}`;
  t.equal((await cli(paths, ['config', 'set', `region.url=${url}`, 'dhcp.dns_servers=10.20.0.1, 9.9.9.9 1.1.1.1'])).code, 0, 'a 2044-character URL and a list of addresses are accepted');
  const applied = await cli(paths, ['apply']);
  t.equal(applied.code, 0, applied.stderr);
  const preseed = await cli(paths, ['preseed', 'deploy-me']);
  t.equal(preseed.code, 0, `the preseed carrying it passes debconf-set-selections -c: ${preseed.stderr}`);
});

// Found by cli.test.ts (FUZZ_RUNS=20 FUZZ_SEED=227148686): `uec-provisioning 'bo\u2028rm'` said
// `unknown command "bo<U+2028>rm"`, the separator raw (JSON.stringify leaves it).
t.test('every CLI error is one line: U+2028, U+2029 and NEL in the culprit are escaped', async (t) => {
  const paths = scratchRoot(t);
  for (const args of [['bo\u2028rm'], ['nodes\u2029'], ['nodes', 'add', 'web1', '--mac', '52:54:00:00:00:01', '--role', 'a\u2028b'], ['nodes', 'add', 'web\u00851', '--mac', '52:54:00:00:00:01'], ['config', 'get', 'x\u2028']]) {
    const r = await cli(paths, args);
    t.not(r.code, 0, show(args));
    t.notMatch(r.stderr, /[\u0085\u2028\u2029]/, 'no raw separator');
    t.equal(r.stderr.indexOf('\n'), r.stderr.length - 1, `one line: ${show(r.stderr)}`);
  }
});

// Found by nodes.test.ts (CSV import, CI seed) once node refusals quoted with quoteValue: the
// reason of checkHostname still quoted the bad label with JSON.stringify, so a NEL stayed raw.
t.test('a hostname refusal is one line: the bad label is quoted with its separators escaped', async (t) => {
  const paths = scratchRoot(t);
  const store = createFileNodeStore(paths);
  for (const hostname of ['$  \u0085A', 'a\u2028b', 'web\u20291']) {
    await t.rejects(addNode(store, { hostname, macs: ['52:54:00:00:00:01'] }), { code: 'INVALID_VALUE' }, show(hostname));
    const err = await addNode(store, { hostname, macs: ['52:54:00:00:00:01'] }).catch((e: Error) => e);
    t.notMatch((err as Error).message, /[\n\u0085\u2028\u2029]/, `no raw separator: ${show((err as Error).message)}`);
  }
});
