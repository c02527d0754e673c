/**
 * The accounts file is rewritten by the web UI and by every `uec-provisioning webui …`
 * command: writers in different processes take the same lock as the node store
 * (src/core/file-lock.ts), so none of their changes is lost.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { createAccountStore } from '../../../packages/webui/accounts';
import { REPO_ROOT, scratchRoot } from '../../helpers/scratch';

// The compiled command (npm test builds it first; UEC_TEST_DIST names another build), else ts-node.
const DIST_CLI = path.join(process.env.UEC_TEST_DIST ?? path.join(REPO_ROOT, 'dist'), 'src/cli.js');
// -e, not a .ts main file: tap's loader hooks (kept in children) would take a .ts main for ESM.
const RUNNER = [
  fs.existsSync(DIST_CLI) ? '' : "require('ts-node/register/transpile-only');",
  `const { main } = require(${JSON.stringify(fs.existsSync(DIST_CLI) ? DIST_CLI : path.join(REPO_ROOT, 'src/cli.ts'))});`,
  'const io = { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s), env: process.env };',
  'main(process.argv.slice(1), io).then((code) => { process.exitCode = code; });',
].join(' ');
const CHILD_ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS' && !k.startsWith('TAP') && !k.startsWith('_TAPJS')));

function runCli(args: string[], stdin = ''): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', RUNNER, '--', ...args], { cwd: REPO_ROOT, env: CHILD_ENV });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

t.test('20 parallel `webui token create` processes: 20 tokens printed, 20 kept', async (t) => {
  const paths = scratchRoot(t);
  await createAccountStore(paths).create('admin', 'admin', 'correct horse battery');
  const runs = await Promise.all(Array.from({ length: 20 }, (_, i) => runCli(['--root', paths.root, 'webui', 'token', 'create', 'admin', `t${i}`])));
  for (const r of runs) t.equal(r.code, 0, r.stderr);
  const secrets = runs.map((r) => r.stdout.trim());
  const accounts = createAccountStore(paths);
  t.same((await accounts.listTokens()).map((k) => k.name).sort(), Array.from({ length: 20 }, (_, i) => `t${i}`).sort(), 'every token kept');
  for (const secret of secrets) t.equal((await accounts.userOfToken(secret))?.name, 'admin', 'each printed token works');
});

t.test('20 parallel writers (10 `webui user add`, 10 `webui user passwd`): every change kept', async (t) => {
  const paths = scratchRoot(t);
  const setup = createAccountStore(paths);
  for (let i = 0; i < 10; i++) await setup.create(`old${i}`, 'viewer', `old password ${i}`);
  const runs = await Promise.all([
    ...Array.from({ length: 10 }, (_, i) => runCli(['--root', paths.root, 'webui', 'user', 'add', `new${i}`, '--role', 'viewer', '--password-stdin'], `new password ${i}\n`)),
    ...Array.from({ length: 10 }, (_, i) => runCli(['--root', paths.root, 'webui', 'user', 'passwd', `old${i}`], `changed password ${i}\n`)),
  ]);
  for (const r of runs) t.equal(r.code, 0, r.stderr);
  const accounts = createAccountStore(paths);
  t.equal((await accounts.list()).length, 20, 'ten old users and ten new ones');
  for (let i = 0; i < 10; i++) {
    t.ok(await accounts.authenticate(`new${i}`, `new password ${i}`), `new${i} kept`);
    t.ok(await accounts.authenticate(`old${i}`, `changed password ${i}`), `old${i}'s password change kept`);
    t.equal((await accounts.find(`old${i}`))?.generation, 2, `old${i}: generation raised once`);
  }
});
