import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import t from 'tap';
import { runCommand } from '../../src/core/run-command';

t.test('output, status and input', async (t) => {
  const r = await runCommand('sh', ['-c', 'cat; echo err >&2; exit 3'], { input: 'hello' });
  t.same(r, { code: 3, signal: null, stdout: 'hello', stderr: 'err\n' });
});

t.test('a command running past its timeout is stopped with SIGTERM', async (t) => {
  const r = await runCommand('sleep', ['30'], { timeoutMs: 200 });
  t.equal(r.signal, 'SIGTERM');
});

t.test('a program that cannot be started: ENOENT, and no timer keeps the process alive', async (t) => {
  await t.rejects(runCommand('/nonexistent/uec-no-such-program', []), { code: 'ENOENT' });
  // In a process of its own: it ends as soon as the rejection is handled, long before the
  // 30 s timeout (spawn's own `timeout` option kept it alive until then).
  const script = `require(${JSON.stringify(path.join(__dirname, '../../src/core/run-command.ts'))}).runCommand('/nonexistent/x', [], { timeoutMs: 30000 }).catch(() => { process.stdout.write('rejected'); })`;
  const r = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e', script], { encoding: 'utf8', timeout: 20_000 });
  t.equal(r.stdout, 'rejected');
  t.equal(r.signal, null, 'the process ended on its own');
});
