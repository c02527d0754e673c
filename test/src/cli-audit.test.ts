/**
 * The audit log from the command line: config set/unset and every nodes command record the
 * invoking user (the sudo user behind root), the action, the target and only the changed
 * fields; a maintainer-script style call with the postinst's variable records debconf;
 * `audit` reads it back filtered; no secret used here appears in the file.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { AUDIT_LOG, type AuditEntry } from '../../src/core/audit';
import { main, type Io } from '../../src/cli';
import { staticNetworkFacts } from '../../src/core/network-facts';
import { withFsFault } from '../../src/core/fs-ops';
import { createFileNodeStore } from '../../src/region/node-store';
import { REPO_ROOT, scratchRoot } from '../helpers/scratch';

process.env.UEC_PROVISIONING_TEMPLATES ??= path.join(REPO_ROOT, 'templates');

const network = staticNetworkFacts(
  [{ name: 'eth0', mac: '52:54:00:00:00:01', up: true, loopback: false, virtual: false, ipv4: [{ address: '10.20.0.5', prefix: 24 }], ipv6: [] }],
  { interface: 'eth0', gateway: '10.20.0.1' },
);

async function cli(root: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  let stdout = '';
  let stderr = '';
  const io: Io = { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), env: { UEC_PROVISIONING_SERVICE_CONTROL: 'none', ...env } };
  const code = await main([...args, '--root', root], io, { network });
  return { code, stdout, stderr };
}

function readLog(root: string): AuditEntry[] {
  return fs
    .readFileSync(path.join(root, AUDIT_LOG), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as AuditEntry);
}

t.test('CLI changes record the sudo user, the action, the target and only what changed', async (t) => {
  const { root } = scratchRoot(t);
  const sudo = { SUDO_USER: 'alice' };
  const run = async (args: string[]) => {
    const r = await cli(root, args, sudo);
    t.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    return r;
  };
  await run(['config', 'set', 'server.interface=eth0']);
  const id = (await run(['nodes', 'add', 'web1', '--mac', '52:54:00:aa:00:01', '--no-apply'])).stdout.trim();
  await run(['nodes', 'edit', 'web1', '--ipv4', '10.20.0.31', '--no-apply']);
  await run(['nodes', 'edit', 'web1', '--ipv4', '10.20.0.31', '--no-apply']); // no change: no line
  await run(['nodes', 'deploy', 'web1', '--no-apply']);
  await run(['nodes', 'release', 'web1', '--no-apply']);
  await run(['nodes', 'remove', 'web1', '--no-apply']);
  await run(['config', 'unset', 'server.interface']);
  const entries = readLog(root);
  t.same(
    entries.map((e) => e.action),
    ['config.set', 'node.add', 'node.edit', 'node.deploy', 'node.release', 'node.remove', 'config.unset'],
  );
  for (const e of entries) {
    t.same(e.actor, { kind: 'unix', user: 'alice' }, `${e.action}: the user behind sudo`);
    t.match(e.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  }
  const [set, add, edit, deploy, release, remove, unset] = entries as [AuditEntry, AuditEntry, AuditEntry, AuditEntry, AuditEntry, AuditEntry, AuditEntry];
  t.same(set.target, { file: '/etc/uec-provisioning/conf.d/50-managed.conf', keys: 'server.interface' });
  t.same(set.changes, { 'server.interface': { before: '', after: 'eth0' } });
  t.same(unset.changes, { 'server.interface': { before: 'eth0', after: '' } });
  t.same(add.target, { systemId: id, hostname: 'web1' });
  t.same(add.changes.hostname, { before: null, after: 'web1' });
  t.same(add.changes.macs, { before: null, after: ['52:54:00:aa:00:01'] });
  t.same(edit.changes, { ipv4: { before: '', after: '10.20.0.31' } }, 'only the changed field');
  t.same(deploy.changes.status, { before: 'ready', after: 'deploying' });
  t.same(release.changes.status, { before: 'deploying', after: 'ready' });
  t.same(remove.changes.hostname, { before: 'web1', after: null });
  t.equal(fs.statSync(path.join(root, AUDIT_LOG)).mode & 0o777, 0o640);
});

t.test('audit: filters, --json, newest first; a bad --since is a usage error', async (t) => {
  const { root } = scratchRoot(t);
  t.equal((await cli(root, ['nodes', 'add', 'db1', '--mac', '52:54:00:bb:00:01', '--no-apply'], { SUDO_USER: 'bob' })).code, 0);
  t.equal((await cli(root, ['config', 'set', 'server.interface=eth0'], { SUDO_USER: 'carol' })).code, 0);
  const all = await cli(root, ['audit', '--json']);
  t.equal(all.code, 0, all.stderr);
  t.same((JSON.parse(all.stdout) as AuditEntry[]).map((e) => e.action), ['config.set', 'node.add'], 'newest first');
  const byActor = await cli(root, ['audit', '--actor', 'bob', '--json']);
  t.same((JSON.parse(byActor.stdout) as AuditEntry[]).map((e) => e.action), ['node.add']);
  const byAction = await cli(root, ['audit', '--action', 'config', '--since', '1d']);
  t.equal(byAction.stdout.trim().split('\n').length, 1);
  t.match(byAction.stdout, /unix:carol {2}config\.set {2}file=\/etc\/uec-provisioning\/conf\.d\/50-managed\.conf keys=server\.interface {2}server\.interface: "" → "eth0"/);
  t.equal((await cli(root, ['audit', '--since', '2999-01-01', '--json'])).stdout, '[]\n');
  const bad = await cli(root, ['audit', '--since', 'last tuesday']);
  t.equal(bad.code, 2);
  t.equal(bad.stderr.trim().split('\n').length, 1);
  t.match(bad.stderr, /--since "last tuesday" is neither/);
  const empty = scratchRoot(t);
  t.same(await cli(empty.root, ['audit']), { code: 0, stdout: '', stderr: '' }, 'no log yet: nothing, no error');
});

t.test('maintainer scripts: the postinsts export the actor, and a call like theirs records debconf', async (t) => {
  for (const file of fs.readdirSync(path.join(REPO_ROOT, 'debian')).filter((f) => f.endsWith('.postinst'))) {
    const text = fs.readFileSync(path.join(REPO_ROOT, 'debian', file), 'utf8');
    if (!/^\s*[^#\n]*\buec-provisioning /m.test(text)) continue;
    t.match(text, new RegExp(`^export UEC_PROVISIONING_ACTOR=debconf:${file.replace(/\.postinst$/, '').replace(/[+.]/g, '\\$&')}$`, 'm'), `${file} says who it is`);
  }
  const { root } = scratchRoot(t);
  const bin = path.join(root, 'bin');
  fs.mkdirSync(bin);
  const wrapper = path.join(bin, 'uec-provisioning');
  // The CLI's main() from the checkout (node 20 will not run a .ts file as the main module).
  const code = `require("ts-node/register/transpile-only"); require(${JSON.stringify(path.join(REPO_ROOT, 'src/cli.ts'))}).main(process.argv.slice(1), { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s), env: process.env }).then((c) => { process.exitCode = c; })`;
  fs.writeFileSync(wrapper, `#!/bin/sh\nexec "${process.execPath}" -e '${code}' -- "$@"\n`, { mode: 0o755 });
  const exportLine = /^export UEC_PROVISIONING_ACTOR=.*$/m.exec(fs.readFileSync(path.join(REPO_ROOT, 'debian/uec-provisioning-common.postinst'), 'utf8'))?.[0] ?? '';
  // As the common postinst does it: the variable exported, the configurator called, its output on stderr.
  const script = `set -e\n${exportLine}\niface=eth0\nuec-provisioning config set --allow-overridden "server.interface=$iface" >&2\n`;
  const r = spawnSync('sh', ['-c', script], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    env: { PATH: `${bin}:${process.env.PATH}`, UEC_PROVISIONING_ROOT: root, UEC_PROVISIONING_TEMPLATES: path.join(REPO_ROOT, 'templates'), SUDO_USER: 'alice' },
  });
  t.equal(r.status, 0, r.stderr);
  const [line, ...rest] = readLog(root);
  t.same(rest, []);
  t.same(line?.actor, { kind: 'debconf', package: 'uec-provisioning-common', user: 'root' });
  t.equal(line?.action, 'config.set');
  t.same(line?.changes, { 'server.interface': { before: '', after: 'eth0' } });
});

t.test('secrets used on the command line never reach the log', async (t) => {
  const { root } = scratchRoot(t);
  const add = await cli(root, ['webui', 'user', 'add', 'bob']);
  t.equal(add.code, 0, add.stderr);
  const password = /with password: (\S+)/.exec(add.stderr)?.[1] ?? '';
  t.ok(password.length >= 12, 'a generated password');
  const token = await cli(root, ['webui', 'token', 'create', 'bob', 'ci']);
  const secret = token.stdout.trim();
  t.match(secret, /^uecp_[0-9a-f]{12}_/);
  t.equal((await cli(root, ['nodes', 'add', 'n1', '--mac', '52:54:00:cc:00:01', '--no-apply'])).code, 0);
  t.equal((await cli(root, ['nodes', 'deploy', 'n1', '--no-apply'])).code, 0);
  const nodeTokens = (await createFileNodeStore({ root, resolve: (p) => path.join(root, p), systemPathOf: (p) => p }).list()).map((n) => n.token);
  const log = fs.readFileSync(path.join(root, AUDIT_LOG), 'utf8');
  const entries = readLog(root);
  t.same(entries.map((e) => e.action), ['user.add', 'token.create', 'node.add', 'node.deploy']);
  t.same(entries[0]?.changes, { role: { before: null, after: 'admin' }, password: { before: null, after: '[redacted]' } });
  t.same(entries[1]?.target, { user: 'bob', token: secret.slice(5, 17), name: 'ci' }, 'the token id, not its secret');
  for (const s of [password, secret, secret.slice(18), ...nodeTokens]) {
    t.ok(s.length >= 12);
    t.notOk(log.includes(s), 'a secret is not in the log');
  }
});

t.test('an audit line that cannot be written: one error line, the change stands, exit 0', async (t) => {
  const { root } = scratchRoot(t);
  fs.mkdirSync(path.join(root, AUDIT_LOG), { recursive: true }); // a directory where the file should be
  const r = await cli(root, ['config', 'set', 'server.interface=eth0'], { SUDO_USER: 'alice' });
  t.equal(r.code, 0);
  const errors = r.stderr.split('\n').filter((l) => l.includes('error'));
  t.equal(errors.length, 1, r.stderr);
  t.match(errors[0], /^uec-provisioning: error: audit log \/var\/log\/uec-provisioning\/audit\.log: could not record config\.set by unix:alice \(the change itself was made\): EISDIR/);
  t.equal((await cli(root, ['config', 'get', 'server.interface'])).stdout, 'eth0\n', 'the setting was made');
});

t.test('audit: a log it may not read is one line naming the file, exit 3', async (t) => {
  const { root } = scratchRoot(t);
  t.equal((await cli(root, ['config', 'set', 'server.interface=eth0'])).code, 0);
  const eacces = Object.assign(new Error('permission denied'), { code: 'EACCES' });
  const r = await withFsFault({ open: () => Promise.reject(eacces) }, () => cli(root, ['audit']));
  t.equal(r.code, 3);
  t.equal(r.stdout, '');
  t.equal(r.stderr.trim().split('\n').length, 1);
  t.match(r.stderr, /^uec-provisioning: error: cannot read \/var\/log\/uec-provisioning\/audit\.log: EACCES: permission denied \(it is root:adm 0640: run as root or as a member of adm\)/);
});
