/**
 * Issue 13: the generated initial admin password (`webui user add` without --password-stdin,
 * run by the package's postinst) is removed once that user's password is changed, through the
 * API (and so the account page's form) or `webui user passwd`; nothing else is touched.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { INITIAL_PASSWORD_FILE, createAccountStore, removeInitialPassword } from '../../../packages/webui/accounts';
import { REPO_ROOT, scratchRoot, snapshotTree } from '../../helpers/scratch';
import { ADMIN, VIEWER, login, startHarness } from './harness';

// The source, not a build: this test is about what the checkout does now.
const RUNNER = [
  "require('ts-node/register/transpile-only');",
  `const { main } = require(${JSON.stringify(path.join(REPO_ROOT, 'src/cli.ts'))});`,
  'const io = { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s), env: process.env };',
  'main(process.argv.slice(1), io).then((code) => { process.exitCode = code; });',
].join(' ');
const CHILD_ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS' && !k.startsWith('TAP') && !k.startsWith('_TAPJS')));

function runCli(args: string[], stdin = ''): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', RUNNER, '--', ...args], { cwd: REPO_ROOT, env: CHILD_ENV });
    let stderr = '';
    child.stdout.resume();
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
    child.stdin.end(stdin);
  });
}

/** The tree without the files a password change rewrites (the accounts file, its lock). */
function othersOf(root: string): Record<string, string> {
  const tree = snapshotTree(root);
  // The accounts file and the audit log (a password change is recorded there) change by design.
  for (const key of Object.keys(tree)) if (/accounts\.json|audit\.log/.test(key)) delete tree[key];
  return tree;
}

t.test('`webui user add` writes it; `webui user passwd` of that user removes it, and only it', async (t) => {
  const paths = scratchRoot(t);
  const file = paths.resolve(INITIAL_PASSWORD_FILE);
  const added = await runCli(['--root', paths.root, 'webui', 'user', 'add', 'admin']);
  t.equal(added.code, 0, added.stderr);
  t.match(fs.readFileSync(file, 'utf8'), /^admin \S+\n$/, 'the generated password is in the file');
  t.equal(fs.statSync(file).mode & 0o777, 0o600);
  const viewer = await runCli(['--root', paths.root, 'webui', 'user', 'add', 'ops', '--role', 'viewer', '--password-stdin'], 'ops-password-1\n');
  t.equal(viewer.code, 0, viewer.stderr);
  fs.writeFileSync(path.join(path.dirname(file), 'keep-me'), 'x');
  const other = await runCli(['--root', paths.root, 'webui', 'user', 'passwd', 'ops'], 'ops-password-2\n');
  t.equal(other.code, 0, other.stderr);
  t.ok(fs.existsSync(file), "another user's password change keeps it");
  const before = othersOf(paths.root);
  const changed = await runCli(['--root', paths.root, 'webui', 'user', 'passwd', 'admin'], 'chosen-password-1\n');
  t.equal(changed.code, 0, changed.stderr);
  t.notOk(fs.existsSync(file), 'removed once the admin chose a password');
  const after = othersOf(paths.root);
  const key = path.relative(paths.root, file);
  t.ok(key in before && !(key in after), 'the initial password file went');
  delete before[key];
  t.same(after, before, 'no other file changed');
  t.ok(await createAccountStore(paths).authenticate('admin', 'chosen-password-1'), 'the new password works');
});

t.test('a failed password change keeps the file', async (t) => {
  const paths = scratchRoot(t);
  const file = paths.resolve(INITIAL_PASSWORD_FILE);
  t.equal((await runCli(['--root', paths.root, 'webui', 'user', 'add', 'admin'])).code, 0);
  const short = await runCli(['--root', paths.root, 'webui', 'user', 'passwd', 'admin'], 'short\n');
  t.not(short.code, 0, 'a too short password is refused');
  t.ok(fs.existsSync(file), 'the initial password is still there');
  t.equal(await removeInitialPassword(paths, 'someone-else'), false, 'the file names another user: kept');
  t.ok(fs.existsSync(file));
});

t.test('the API (the account page posts to it) removes it when the admin changes their password', async (t) => {
  const h = await startHarness(t);
  const file = h.paths.resolve(INITIAL_PASSWORD_FILE);
  // As `webui user add admin` leaves it (its format is checked above).
  fs.writeFileSync(file, `admin ${ADMIN.password}\n`, { mode: 0o600 });
  const v = await login(h, VIEWER);
  t.equal((await v.call('POST', '/api/account/password', { current: VIEWER.password, new: 'viewer-password-2' })).status, 200);
  t.ok(fs.existsSync(file), "the viewer's change keeps it");
  const c = await login(h, ADMIN);
  const wrong = await c.call('POST', '/api/account/password', { current: 'wrong', new: 'admin-password-2' });
  t.equal(wrong.status, 403);
  t.ok(fs.existsSync(file), 'a refused change keeps it');
  const form = await fetch(`${h.base}/api/account/password`, {
    method: 'POST',
    redirect: 'manual',
    headers: { Cookie: c.cookie, 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ _csrf: c.csrf, _back: '/uec-provisioning/account', current: ADMIN.password, new: 'admin-password-2', confirm: 'admin-password-2' }).toString(),
  });
  t.equal(form.status, 303, 'the account page form');
  t.match(form.headers.get('set-cookie') ?? '', /uecp_session=/, 'with the new session cookie');
  t.notOk(fs.existsSync(file), 'the initial password file is gone');
});
