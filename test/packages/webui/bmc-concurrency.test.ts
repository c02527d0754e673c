/**
 * The BMC details file (/var/lib/uec-provisioning/bmc.json) is rewritten per node: writers in
 * different processes take one cross-process lock (src/file-lock.ts), so none is lost.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { createBmcStore } from '../../../packages/webui/power';
import { REPO_ROOT, scratchRoot } from '../../helpers/scratch';

const WRITERS = 20;
const DIST_POWER = path.join(process.env.UEC_TEST_DIST ?? path.join(REPO_ROOT, 'dist'), 'packages/webui/power.js');
const useDist = fs.existsSync(DIST_POWER);
const WORKER = [
  useDist ? '' : "require('ts-node/register/transpile-only');",
  `const { createBmcStore } = require(${JSON.stringify(useDist ? DIST_POWER : path.join(REPO_ROOT, 'packages/webui/power.ts'))});`,
  `const { createPaths } = require(${JSON.stringify(useDist ? path.join(path.dirname(DIST_POWER), '../../src/paths.js') : path.join(REPO_ROOT, 'src/paths.ts'))});`,
  'const [root, id] = process.argv.slice(1);',
  "createBmcStore(createPaths(root)).set(id, { address: '192.0.2.9', user: 'admin', password: 'pw-' + id }).catch((e) => { process.stderr.write(`${e.message}\\n`); process.exitCode = 3; });",
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

t.test(`${WRITERS} processes each setting one node's BMC at once: all ${WRITERS} kept`, async (t) => {
  const paths = scratchRoot(t);
  const ids = Array.from({ length: WRITERS }, (_, i) => `node-bmc${String(i).padStart(3, '0')}`);
  const runs = await Promise.all(ids.map((id) => runWorker([paths.root, id])));
  for (const r of runs) t.equal(r.code, 0, r.stderr);
  t.same([...(await createBmcStore(paths).ids())].sort(), ids, 'every node has its BMC details');
});
