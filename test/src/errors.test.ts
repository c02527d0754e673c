import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { ERROR_CODES, UecError, describeError } from '../../src/core/errors';
import { REPO_ROOT } from '../helpers/scratch';

t.test('docs/errors.md lists every code with its exit status, and nothing else', async (t) => {
  const doc = fs.readFileSync(path.join(REPO_ROOT, 'docs/errors.md'), 'utf8');
  const rows = [...doc.matchAll(/^\| `([A-Z_]+)` \| (\d+) \|/gm)].map((m) => [m[1], Number(m[2])]);
  t.same(rows, Object.entries(ERROR_CODES).map(([code, v]) => [code, v.exit]));
});

t.test('the man page documents every exit status in use', async (t) => {
  const man = fs.readFileSync(path.join(REPO_ROOT, 'docs/uec-provisioning.8'), 'utf8');
  const section = man.slice(man.indexOf('.SH EXIT STATUS'), man.indexOf('.SH SEE ALSO'));
  const documented = [...section.matchAll(/^\.B (\d+)$/gm)].map((m) => Number(m[1])).sort((a, b) => a - b);
  const used = [...new Set([0, ...Object.values(ERROR_CODES).map((v) => v.exit)])].sort((a, b) => a - b);
  t.same(documented, used);
});

t.test('UecError carries its code, exit status and cause', async (t) => {
  const cause = Object.assign(new Error('disk full'), { code: 'ENOSPC' });
  const err = new UecError('WRITE_FAILED', 'cannot write /x', { cause });
  t.equal(err.exitCode, 6);
  t.equal(err.cause, cause);
  t.equal(describeError(cause), 'ENOSPC: disk full');
  t.equal(describeError('plain'), 'plain');
});
