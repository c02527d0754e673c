/**
 * Golden files for rendered config: each case is a directory `<fixtures>/<case>/expected/`
 * holding one file per planned file, at its system path. UPDATE_GOLDEN=1 rewrites the case.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Test } from 'tap';
import { renderUnifiedDiff } from '../../src/core/unified-diff';

/** The planned files must be exactly the golden ones, byte for byte; a difference is shown as a diff. */
export function checkGolden(t: Test, fixtures: string, caseName: string, plans: readonly { path: string; content: string }[]): void {
  const dir = path.join(fixtures, caseName, 'expected');
  if (process.env.UPDATE_GOLDEN === '1') {
    fs.rmSync(dir, { recursive: true, force: true });
    for (const plan of plans) {
      const file = path.join(dir, plan.path);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, plan.content);
    }
    fs.mkdirSync(dir, { recursive: true });
  }
  const expected: string[] = [];
  const walk = (d: string) => {
    if (!fs.existsSync(d)) return;
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else expected.push(`/${path.relative(dir, p)}`);
    }
  };
  walk(dir);
  t.same(plans.map((p) => p.path).sort(), expected.sort(), `${caseName}: the planned files are the golden ones`);
  for (const plan of plans) {
    const file = path.join(dir, plan.path);
    const want = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : null;
    if (want !== plan.content) t.fail(`${caseName}: ${plan.path} differs from its golden file (UPDATE_GOLDEN=1 rewrites):\n${renderUnifiedDiff(plan.path, want, plan.content)}`);
    else t.pass(`${caseName}: ${plan.path} matches its golden file`);
  }
}
