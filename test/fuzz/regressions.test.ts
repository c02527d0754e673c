/**
 * Inputs the fuzz suite found, kept as plain tests so they are checked on every run whatever
 * the seed.
 */
import * as fs from 'node:fs';
import t from 'tap';
import { loadComponents, mergeSchemas } from '../../src/component';
import { loadConfig, writeManagedSettings } from '../../src/config';
import { scratchRoot } from '../helpers/scratch';
import { addNode } from '../../src/node-ops';
import { createFileNodeStore } from '../../src/node-store';
import { cli, hashTree, writeBaseSettings } from './lib';

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
  t.equal((await cli(paths, ['config', 'set', 'dhcp.dns_servers=10.20.0.1 \u{1F600}'])).code, 0, 'a surrogate pair is fine');
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
