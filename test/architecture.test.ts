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

/**
 * The tree shows the design note's split: core (the engine: config, templates, apply,
 * services, network facts), contract (the node record, the context view and the region API:
 * all that region and edge share), region (node store and operations, the region API),
 * edge (the provisioning server: boot files, preseeds, region client), configurator (the
 * component framework the packages plug into) and cli (commands; `serve` runs region and
 * edge together). Imports go one way, down this table.
 */
const SRC_LAYERS: Record<string, readonly string[]> = {
  core: ['core'],
  contract: ['core', 'contract'],
  region: ['core', 'contract', 'region'],
  edge: ['core', 'contract', 'edge'],
  configurator: ['core', 'contract', 'region', 'configurator'],
  cli: ['core', 'contract', 'region', 'edge', 'configurator', 'cli'],
};

t.test('src/ has one folder per layer and nothing else but the cli entry point', async (t) => {
  const entries = fs.readdirSync(path.join(REPO_ROOT, 'src')).sort();
  t.same(entries, [...Object.keys(SRC_LAYERS), 'cli.ts'].sort());
});

function layerViolations(list: readonly { from: string; to: string }[]): string[] {
  return list
    .filter((i) => i.from.startsWith('src/') && i.to.startsWith('src/'))
    .map((i) => ({ ...i, fromLayer: i.from.split('/')[1] as string, toLayer: (i.to.split('/')[1] as string).replace(/\.ts$/, '') }))
    .filter((i) => !i.fromLayer.endsWith('.ts') && !(SRC_LAYERS[i.fromLayer] ?? []).includes(i.toLayer))
    .map((i) => `${i.from} -> ${i.to}`);
}

t.test('src/ layers import one way: edge and region meet only in contract/', async (t) => {
  t.same(layerViolations(imports('src')), []);
});

t.test('the layer check sees a wrong import (it can fail)', async (t) => {
  t.same(layerViolations([{ from: 'src/edge/boot.ts', to: 'src/region/node-store' }]), ['src/edge/boot.ts -> src/region/node-store']);
  t.same(layerViolations([{ from: 'src/region/region.ts', to: 'src/edge/preseed' }]), ['src/region/region.ts -> src/edge/preseed']);
  t.same(layerViolations([{ from: 'src/core/metrics.ts', to: 'src/contract/node' }]), ['src/core/metrics.ts -> src/contract/node']);
  t.same(layerViolations([{ from: 'src/edge/boot.ts', to: 'src/contract/node' }, { from: 'src/cli.ts', to: 'src/cli/serve' }]), []);
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
