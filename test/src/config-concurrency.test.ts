/**
 * The managed drop-in (conf.d/50-managed.conf) is rewritten by `config set`, the debconf
 * configurators and the web UI's settings page: writers in different processes take one
 * cross-process lock (src/file-lock.ts), so none of their changes is lost (issue 13).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { loadConfig, type ConfigSchema } from '../../src/config';
import { REPO_ROOT, scratchRoot } from '../helpers/scratch';

const WRITERS = 20;
const keys = Object.fromEntries(Array.from({ length: WRITERS }, (_, i) => [`k${i}`, { type: 'integer' as const, default: 0, min: 0, max: 1000, description: `key ${i}` }]));
const schema: ConfigSchema = { demo: { package: 'uec-provisioning-demo', keys } };

// The compiled module (npm test builds it first; UEC_TEST_DIST names another build), else ts-node.
const DIST_CONFIG = path.join(process.env.UEC_TEST_DIST ?? path.join(REPO_ROOT, 'dist'), 'src/config.js');
const useDist = fs.existsSync(DIST_CONFIG);
const WORKER = [
  useDist ? '' : "require('ts-node/register/transpile-only');",
  `const { writeManagedSettings } = require(${JSON.stringify(useDist ? DIST_CONFIG : path.join(REPO_ROOT, 'src/config.ts'))});`,
  `const { createPaths } = require(${JSON.stringify(useDist ? path.join(path.dirname(DIST_CONFIG), 'paths.js') : path.join(REPO_ROOT, 'src/paths.ts'))});`,
  'const [root, schema, key, value] = process.argv.slice(1);',
  'writeManagedSettings(createPaths(root), JSON.parse(schema), new Map([[key, value]])).then(',
  '  (r) => process.stdout.write(`${r.changed}\\n`),',
  '  (e) => { process.stderr.write(`${e.message}\\n`); process.exitCode = 3; });',
].join('\n');
const CHILD_ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS' && !k.startsWith('TAP') && !k.startsWith('_TAPJS')));

function runWorker(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', WORKER, '--', ...args], { cwd: REPO_ROOT, env: CHILD_ENV, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

t.test(`${WRITERS} processes each setting its own key at once: every value kept`, async (t) => {
  const paths = scratchRoot(t);
  const runs = await Promise.all(Array.from({ length: WRITERS }, (_, i) => runWorker([paths.root, JSON.stringify(schema), `demo.k${i}`, String(i + 1)])));
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
  const { writeManagedSettings } = await import('../../src/config');
  await Promise.all(Array.from({ length: WRITERS }, (_, i) => writeManagedSettings(paths, schema, new Map([[`demo.k${i}`, String(i + 1)]]))));
  const config = await loadConfig(paths, schema);
  t.same(
    Array.from({ length: WRITERS }, (_, i) => config.get(`demo.k${i}`)),
    Array.from({ length: WRITERS }, (_, i) => i + 1),
  );
});
