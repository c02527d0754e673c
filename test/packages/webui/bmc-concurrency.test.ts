/**
 * The BMC details file (/var/lib/uec-provisioning/bmc.json) is rewritten per node: writers in
 * different processes take one cross-process lock (src/core/file-lock.ts), so none is lost.
 */
import t from 'tap';
import { createBmcStore } from '../../../packages/webui/power';
import { moduleRequire, runChildScript } from '../../helpers/child-script';
import { scratchRoot } from '../../helpers/scratch';

const WRITERS = 20;
const WORKER = [
  `const { createBmcStore } = ${moduleRequire('packages/webui/power')};`,
  `const { createPaths } = ${moduleRequire('src/core/paths')};`,
  'const [root, id] = process.argv.slice(1);',
  "createBmcStore(createPaths(root)).set(id, { address: '192.0.2.9', user: 'admin', password: 'pw-' + id }).catch((e) => { process.stderr.write(`${e.message}\\n`); process.exitCode = 3; });",
].join('\n');

t.test(`${WRITERS} processes each setting one node's BMC at once: all ${WRITERS} kept`, async (t) => {
  const paths = scratchRoot(t);
  const ids = Array.from({ length: WRITERS }, (_, i) => `node-bmc${String(i).padStart(3, '0')}`);
  const runs = await Promise.all(ids.map((id) => runChildScript(WORKER, [paths.root, id])));
  for (const r of runs) t.equal(r.code, 0, r.stderr);
  t.same([...(await createBmcStore(paths).ids())].sort(), ids, 'every node has its BMC details');
});
