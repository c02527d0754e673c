/**
 * An edge set up as docs/edges.md step 2 says (its own key from `edges add`, named by
 * provisioning.edge_key_file) and nothing else: `serve --no-region` starts without a copy of
 * the region's shared key, creates none, and presents its own key to the region. Before, it
 * refused to start: "cannot read the provisioning key …/provisioning.key" (found by
 * test/e2e/region-away.test.ts).
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { loadComponents, mergeSchemas } from '../../src/configurator/component';
import { loadConfig } from '../../src/core/config';
import { staticNetworkFacts } from '../../src/core/network-facts';
import { loadServerAddress } from '../../src/core/server-address';
import { startService } from '../../src/cli/serve';
import { createFileNodeStore } from '../../src/region/node-store';
import { memoryLog, SHIPPED_TEMPLATES } from '../helpers/region-fixture';
import { put, scratchRoot } from '../helpers/scratch';

process.env.UEC_PROVISIONING_TEMPLATES = SHIPPED_TEMPLATES;
const EDGE_KEY = `uecpe.edge-b.${'Q'.repeat(43)}`;

t.test('an edge with only its own key starts, creates no shared key, and presents its key to the region', async (t) => {
  const seen: string[] = [];
  const region = http.createServer((req, res) => {
    seen.push(`${req.url ?? ''} ${req.headers.authorization ?? '(none)'}`);
    res.writeHead(503, { 'Retry-After': '5' }).end('away\n');
  });
  await new Promise<void>((resolve) => region.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise((resolve) => region.close(resolve)));

  const paths = scratchRoot(t);
  put(paths, '/var/lib/uec-provisioning/secrets/edge.key', `${EDGE_KEY}\n`, 0o600);
  const regionUrl = `http://127.0.0.1:${(region.address() as AddressInfo).port}`;
  put(paths, '/etc/uec-provisioning/conf.d/90-local.conf', `[server]\ninterface = eth0\n\n[provisioning]\nregion_url = ${regionUrl}\nedge_key_file = /var/lib/uec-provisioning/secrets/edge.key\n`);
  const config = await loadConfig(paths, mergeSchemas(loadComponents()));
  const network = staticNetworkFacts([{ name: 'eth0', mac: '52:54:00:00:00:01', up: true, loopback: false, virtual: false, ipv4: [{ address: '192.0.2.78', prefix: 24 }], ipv6: [] }], { interface: 'eth0', gateway: '192.0.2.1' });
  const store = createFileNodeStore(paths);
  t.teardown(() => store.close());
  const service = await startService({ paths, config, server: await loadServerAddress(config, network), store, log: memoryLog().log, region: false, port: 0, host: '127.0.0.1' });
  t.teardown(() => service.close());

  t.notOk(fs.existsSync(paths.resolve('/var/lib/uec-provisioning/secrets/provisioning.key')), 'no shared key is created on the edge');
  for (let i = 0; i < 200 && !seen.some((s) => s.startsWith('/api/v1/changes')); i++) await new Promise((r) => setTimeout(r, 50));
  const polls = seen.filter((s) => s.startsWith('/api/v1/changes'));
  t.ok(polls.length > 0, 'the edge polls the region');
  t.ok(polls.every((s) => s.endsWith(`Bearer ${EDGE_KEY}`)), `with its own key: ${polls.join('; ')}`);
});
