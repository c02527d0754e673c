import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Test } from 'tap';
import type { FilePlan } from '../../../src/apply';

export const FIXTURES = path.join(__dirname, 'fixtures');

/**
 * Compare plans with fixtures/<case>/expected/<system path>, one file per plan, and no
 * expected file without a plan. UPDATE_GOLDEN=1 rewrites the case instead.
 */
export function checkGolden(t: Test, caseName: string, plans: FilePlan[]): void {
  const dir = path.join(FIXTURES, caseName, 'expected');
  if (process.env.UPDATE_GOLDEN === '1') {
    fs.rmSync(dir, { recursive: true, force: true });
    for (const plan of plans) {
      const file = path.join(dir, plan.path);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, plan.content);
    }
  }
  const expected: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else expected.push(`/${path.relative(dir, p)}`);
    }
  };
  walk(dir);
  t.same(plans.map((p) => p.path).sort(), expected.sort(), `${caseName}: the same set of files as the golden case`);
  for (const plan of plans) {
    const file = path.join(dir, plan.path);
    if (!fs.existsSync(file)) continue;
    t.equal(plan.content, fs.readFileSync(file, 'utf8'), `${caseName}: ${plan.path} matches its golden file`);
  }
}
