import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import t from 'tap';
import { renderUnifiedDiff } from '../../src/core/unified-diff';

t.test('equal texts give no diff', async (t) => {
  t.equal(renderUnifiedDiff('/f', 'a\n', 'a\n'), '');
});

t.test('new and removed files diff against /dev/null', async (t) => {
  t.equal(renderUnifiedDiff('/f', null, 'a\nb\n'), '--- /dev/null\n+++ /f (new)\n@@ -0,0 +1,2 @@\n+a\n+b\n');
  t.equal(renderUnifiedDiff('/f', 'a\n', null), '--- /f (current)\n+++ /dev/null\n@@ -1,1 +0,0 @@\n-a\n');
});

t.test('hunks match what patch(1) accepts', async (t) => {
  const before = Array.from({ length: 40 }, (_, i) => `line ${i}`).join('\n') + '\n';
  const lines = before.split('\n');
  lines[2] = 'changed 2';
  lines[30] = 'changed 30';
  lines.splice(20, 0, 'inserted');
  const after = lines.join('\n');
  const diff = renderUnifiedDiff('f', before, after);
  t.equal((diff.match(/^@@/gm) ?? []).length, 3, 'far-apart changes make separate hunks');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uec-diff-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'f'), before);
  fs.writeFileSync(path.join(dir, 'd.patch'), diff);
  execFileSync('patch', ['-s', path.join(dir, 'f'), path.join(dir, 'd.patch')]);
  t.equal(fs.readFileSync(path.join(dir, 'f'), 'utf8'), after, 'patch applied our diff and produced the new text');
});
