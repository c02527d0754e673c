/**
 * The managed drop-in (conf.d/50-managed.conf) is rewritten by `config set`, the debconf
 * configurators and the web UI's settings page: writers in different processes take one
 * cross-process lock (src/core/file-lock.ts), so none of their changes is lost (issue 13).
 */
import * as fs from 'node:fs';
import t from 'tap';
import { loadConfig, type ConfigSchema } from '../../src/core/config';
import { moduleRequire, runChildScript } from '../helpers/child-script';
import { scratchRoot } from '../helpers/scratch';

const WRITERS = 20;
const keys = Object.fromEntries(Array.from({ length: WRITERS }, (_, i) => [`k${i}`, { type: 'integer' as const, default: 0, min: 0, max: 1000, description: `key ${i}` }]));
const schema: ConfigSchema = { demo: { package: 'uec-provisioning-demo', keys } };

const WORKER = [
  `const { writeManagedSettings } = ${moduleRequire('src/core/config')};`,
  `const { createPaths } = ${moduleRequire('src/core/paths')};`,
  'const [root, schema, key, value] = process.argv.slice(1);',
  'writeManagedSettings(createPaths(root), JSON.parse(schema), new Map([[key, value]])).catch(',
  '  (e) => { process.stderr.write(`${e.message}\\n`); process.exitCode = 3; });',
].join('\n');

t.test(`${WRITERS} processes each setting its own key at once: every value kept`, async (t) => {
  const paths = scratchRoot(t);
  const runs = await Promise.all(Array.from({ length: WRITERS }, (_, i) => runChildScript(WORKER, [paths.root, JSON.stringify(schema), `demo.k${i}`, String(i + 1)])));
  for (const r of runs) t.equal(r.code, 0, r.stderr);
  const config = await loadConfig(paths, schema);
  t.same(
    Array.from({ length: WRITERS }, (_, i) => config.get(`demo.k${i}`)),
    Array.from({ length: WRITERS }, (_, i) => i + 1),
    'all 20 settings are in the managed drop-in',
  );
  const dir = paths.resolve('/etc/uec-provisioning/conf.d');
  t.same(fs.readdirSync(dir).sort(), ['50-managed.conf'], 'no lock or temp file left behind');
});

t.test(`${WRITERS} writers in one process: every value kept`, async (t) => {
  const paths = scratchRoot(t);
  const { writeManagedSettings } = await import('../../src/core/config');
  await Promise.all(Array.from({ length: WRITERS }, (_, i) => writeManagedSettings(paths, schema, new Map([[`demo.k${i}`, String(i + 1)]]))));
  const config = await loadConfig(paths, schema);
  t.same(
    Array.from({ length: WRITERS }, (_, i) => config.get(`demo.k${i}`)),
    Array.from({ length: WRITERS }, (_, i) => i + 1),
  );
});
