/**
 * `uec-provisioning apply` on an edge host (provisioning.region_url set, serve's cache of the
 * region's feed on disk) renders the nodes of that cache, as serve does; on the region host (no
 * cache) it renders the store's. Before, an apply on an edge removed every node's boot files.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { main, type Io } from '../../src/cli';
import { staticNetworkFacts } from '../../src/core/network-facts';
import type { Paths } from '../../src/core/paths';
import { EDGE_DIR, loadEdgeCache } from '../../src/edge/edge-cache';
import { sampleContext } from '../helpers/region-fixture';
import { REPO_ROOT, put, scratchRoot } from '../helpers/scratch';

process.env.UEC_PROVISIONING_TEMPLATES ??= path.join(REPO_ROOT, 'templates');

const network = staticNetworkFacts(
  [
    { name: 'eth0', mac: '52:54:00:00:00:fe', up: true, loopback: false, virtual: false, ipv4: [{ address: '10.20.0.5', prefix: 24 }], ipv6: [] },
    { name: 'lo', mac: '00:00:00:00:00:00', up: true, loopback: true, virtual: false, ipv4: [{ address: '127.0.0.1', prefix: 8 }], ipv6: [] },
  ],
  { interface: 'eth0', gateway: '10.20.0.1' },
);

async function cli(paths: Paths, ...args: string[]) {
  let stdout = '';
  let stderr = '';
  const io: Io = { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), env: { UEC_PROVISIONING_SERVICE_CONTROL: 'none' } };
  const code = await main(['--root', paths.root, ...args], io, { network });
  return { code, stdout, stderr };
}

const PXE = (mac: string) => `/var/lib/uec-provisioning/boot/pxelinux.cfg/01-${mac.replace(/:/g, '-')}`;

async function writeEdgeCache(paths: Paths): Promise<void> {
  const cache = await loadEdgeCache(paths.resolve(EDGE_DIR));
  const context = sampleContext({ systemId: 'node-edge01', hostname: 'edgenode', macs: ['52:54:00:00:00:e1'], status: 'deploying' });
  await cache.applyBatch({ cursor: 1, reset: false, settings: 's1', changes: [{ seq: 1, systemId: 'node-edge01', context }] });
  await cache.close();
}

t.test('apply on an edge host renders the nodes of its feed cache', async (t) => {
  const paths = scratchRoot(t);
  put(paths, '/etc/uec-provisioning/conf.d/50-edge.conf', '[provisioning]\nregion_url = http://10.20.0.1:5248\n');
  await writeEdgeCache(paths);
  const r = await cli(paths, 'apply', 'tftpd');
  t.equal(r.code, 0, r.stderr);
  t.ok(fs.existsSync(paths.resolve(PXE('52:54:00:00:00:e1'))), "the cached node's pxelinux file is written");
  const again = await cli(paths, 'apply', 'tftpd');
  t.equal(again.code, 0, again.stderr);
  t.ok(fs.existsSync(paths.resolve(PXE('52:54:00:00:00:e1'))), 'and a second apply keeps it');
});

t.test('without region_url (the region host) a stray cache directory is not read: the store is', async (t) => {
  const paths = scratchRoot(t);
  await writeEdgeCache(paths);
  const added = await cli(paths, 'nodes', 'add', 'web1', '--mac', '52:54:00:00:00:01');
  t.equal(added.code, 0, added.stderr);
  const r = await cli(paths, 'apply', 'tftpd');
  t.equal(r.code, 0, r.stderr);
  t.ok(fs.existsSync(paths.resolve(PXE('52:54:00:00:00:01'))), "the store's node");
  t.notOk(fs.existsSync(paths.resolve(PXE('52:54:00:00:00:e1'))), 'not the cache');
});
