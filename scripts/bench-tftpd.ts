/**
 * tftpd benchmark (part of `npm run bench`): `images import` of the installed
 * debian-installer-12-netboot-amd64 package (first import, then a re-import that changes
 * nothing), and one apply of the tftpd component for 500 deploying nodes (1,000 boot
 * files), then a second apply with nothing to change, all under a scratch root.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { applyPlans } from '../src/core/apply';
import { loadConfig } from '../src/core/config';
import { SILENT_LOGGER } from '../src/core/log';
import { staticNetworkFacts } from '../src/core/network-facts';
import { createNode, type Node } from '../src/contract/node';
import { createPaths } from '../src/core/paths';
import { NO_SERVICE_CONTROL } from '../src/core/services';
import { templateDirs } from '../src/core/template';
import { COMMON_SCHEMA } from '../packages/common/config-schema';
import { component } from '../packages/tftpd';
import { TFTPD_SCHEMA } from '../packages/tftpd/config-schema';
import { importImage } from '../packages/tftpd/images';

const REPO = path.resolve(__dirname, '..');
const PACKAGE = 'debian-installer-12-netboot-amd64';

async function timed<T>(label: string, body: () => Promise<T>): Promise<T> {
  const start = process.hrtime.bigint();
  const result = await body();
  console.log(`${label.padEnd(52)} ${(Number(process.hrtime.bigint() - start) / 1e6).toFixed(0).padStart(7)} ms`);
  return result;
}

async function main(): Promise<void> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'uec-bench-tftpd-'));
  try {
    const paths = createPaths(root);
    if (fs.existsSync(`/usr/lib/debian-installer/images/12/amd64`)) {
      const defaults = { os: 'debian', release: 'bookworm', arch: 'amd64' };
      await timed(`images import --package ${PACKAGE} (first)`, () => importImage({ paths, source: { kind: 'package', name: PACKAGE }, defaults }));
      const again = await timed(`images import --package ${PACKAGE} (again)`, () => importImage({ paths, source: { kind: 'package', name: PACKAGE }, defaults }));
      if (again.outcome !== 'unchanged') throw new Error('re-import changed the image');
    } else console.log(`${PACKAGE} is not installed: import not measured`);

    fs.mkdirSync(paths.resolve('/etc/uec-provisioning'), { recursive: true });
    fs.writeFileSync(paths.resolve('/etc/uec-provisioning/uec-provisioning.conf'), '[server]\ninterface = eth1\n');
    const config = await loadConfig(paths, { ...COMMON_SCHEMA, ...TFTPD_SCHEMA });
    const now = new Date();
    const nodes: Node[] = Array.from({ length: 500 }, (_, i) =>
      createNode({ hostname: `node${i}`, macs: [`52:54:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`], status: 'deploying' }, now, { systemId: `node-${i.toString(36).padStart(6, '0')}`, token: 'x'.repeat(32) }),
    );
    const context = {
      paths,
      config,
      templates: templateDirs(paths, path.join(REPO, 'templates')),
      network: staticNetworkFacts([{ name: 'eth1', mac: '02:00:00:00:00:01', up: true, loopback: false, virtual: false, ipv4: [{ address: '192.0.2.10', prefix: 24 }], ipv6: [] }]),
      log: SILENT_LOGGER,
      nodes: async () => nodes,
    };
    const apply = async () => applyPlans({ paths, component: 'tftpd', plans: await component.plan(context), services: NO_SERVICE_CONTROL, log: SILENT_LOGGER });
    const first = await timed('apply tftpd, 500 nodes (first: 1,003 files)', apply);
    const second = await timed('apply tftpd, 500 nodes (again: nothing to write)', apply);
    console.log(`files written: first ${first.written.length}, again ${second.written.length}`);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
