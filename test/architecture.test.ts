import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { REPO_ROOT } from './helpers/scratch';

/** Every relative import of every .ts file under a directory, with the file it resolves to. */
function imports(dir: string): { from: string; to: string }[] {
  const out: { from: string; to: string }[] = [];
  const walk = (d: string) => {
    for (const entry of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (p.endsWith('.ts')) {
        const text = fs.readFileSync(p, 'utf8');
        for (const m of text.matchAll(/(?:from|import\(|require\()\s*['"](\.[^'"]+)['"]/g)) {
          out.push({ from: path.relative(REPO_ROOT, p), to: path.relative(REPO_ROOT, path.resolve(path.dirname(p), m[1] as string)) });
        }
      }
    }
  };
  walk(path.join(REPO_ROOT, dir));
  return out;
}

t.test('src/ never imports packages/', async (t) => {
  const bad = imports('src').filter((i) => i.to.startsWith('packages/'));
  t.same(bad, []);
});

t.test('packages/<name> import only src/ and their own folder', async (t) => {
  const bad = imports('packages').filter((i) => {
    const own = i.from.split('/').slice(0, 2).join('/');
    return !i.to.startsWith('src/') && !i.to.startsWith(`${own}/`);
  });
  t.same(bad, []);
});

t.test('each package folder has a README and exports a component with its own name', async (t) => {
  for (const name of fs.readdirSync(path.join(REPO_ROOT, 'packages'))) {
    t.ok(fs.existsSync(path.join(REPO_ROOT, 'packages', name, 'README.md')), `${name} has a README`);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { component } = require(path.join(REPO_ROOT, 'packages', name, 'index')) as { component: { name: string; package: string } };
    t.equal(component.name, name);
    t.equal(component.package, `uec-provisioning-${name}`);
  }
});
