/**
 * Hostile requests to `uec-provisioning serve` (issue 13): bodies over the limit, malformed
 * percent-encoding, a JSON body that is not an object. Each gets a short 4xx, changes
 * nothing, and the service keeps answering.
 */
import * as fs from 'node:fs';
import t, { type Test } from 'tap';
import { loadComponents, mergeSchemas } from '../../src/configurator/component';
import { loadConfig } from '../../src/core/config';
import { staticNetworkFacts } from '../../src/core/network-facts';
import { addNode } from '../../src/region/node-ops';
import { createFileNodeStore } from '../../src/region/node-store';
import { readStoreFiles } from '../helpers/node-store-files';
import { startService } from '../../src/cli/serve';
import { loadServerAddress } from '../../src/core/server-address';
import { SHIPPED_TEMPLATES, memoryLog } from '../helpers/region-fixture';
import { postRaw } from '../helpers/raw-http';
import { scratchRoot } from '../helpers/scratch';

process.env.UEC_PROVISIONING_TEMPLATES = SHIPPED_TEMPLATES;
const KEY_FILE = '/var/lib/uec-provisioning/secrets/provisioning.key';

const network = staticNetworkFacts([{ name: 'eth0', mac: '52:54:00:00:00:01', up: true, loopback: false, virtual: false, ipv4: [{ address: '192.0.2.77', prefix: 24 }], ipv6: [] }], {
  interface: 'eth0',
  gateway: '192.0.2.1',
});

async function start(t: Test) {
  const paths = scratchRoot(t);
  const config = await loadConfig(paths, mergeSchemas(loadComponents()));
  const server = await loadServerAddress(config, network);
  const store = createFileNodeStore(paths);
  const { log, lines } = memoryLog();
  const running = await startService({ paths, config, server, store, log, port: 0, host: '127.0.0.1' });
  t.teardown(() => running.close());
  const key = fs.readFileSync(paths.resolve(KEY_FILE), 'utf8').trim();
  return { paths, store, lines, key, base: `http://127.0.0.1:${running.port}` };
}

/** The service still answers: an unknown path is a 404, not a refused connection. */
async function stillAnswers(t: Test, base: string, what: string): Promise<void> {
  t.equal((await fetch(`${base}/nowhere`)).status, 404, `the service still answers after ${what}`);
}

t.test('a body over 16 KiB → 413 (with Content-Length and chunked), the service stays up, nothing enlisted', async (t) => {
  const { base, store, lines } = await start(t);
  const big = Buffer.alloc(16 * 1024 + 1, 'x');
  for (const chunked of [false, true]) {
    const how = chunked ? 'chunked' : 'with Content-Length';
    const answer = await postRaw(`${base}/metadata/enlist?mac=52:54:00:00:00:21`, big, { chunked });
    t.equal(answer.status, 413, `16,385 bytes ${how} → 413 (${answer.error ?? ''})`);
    await stillAnswers(t, base, `a body over the limit ${how}`);
  }
  const huge = Buffer.alloc(4 * 1024 * 1024, 'x');
  const answer = await postRaw(`${base}/metadata/enlist?mac=52:54:00:00:00:21`, huge, { chunked: true });
  t.ok(answer.status === 413 || answer.error !== undefined, `4 MiB chunked → 413 or a closed connection (${answer.status ?? answer.error})`);
  await stillAnswers(t, base, 'a 4 MiB body');
  t.same(await store.list(), [], 'no node was enlisted');
  t.ok(lines.some((l) => / 413 /.test(l) && l.includes('/metadata/enlist')), 'the refusal is in the access log');
  // A body at the limit is still read.
  const ok = await postRaw(`${base}/metadata/enlist?mac=52:54:00:00:00:21`, Buffer.alloc(16 * 1024, 'x'), { chunked: true });
  t.equal(ok.status, 201, 'exactly 16 KiB is accepted');
});

t.test('malformed percent-encoding in a boot file path → 400 with a one-line message', async (t) => {
  const { base } = await start(t);
  for (const bad of ['/boot/%E0%A4%A', '/boot/%ZZ', '/boot/images/%']) {
    const res = await fetch(`${base}${bad}`);
    t.equal(res.status, 400, `${bad} → 400`);
    t.match(await res.text(), /^[^\n]*percent-encoding[^\n]*\n$/, 'one line naming the problem');
  }
  t.equal((await fetch(`${base}/boot/no%20such%20file`)).status, 404, 'well-formed encoding is still decoded');
  await stillAnswers(t, base, 'malformed paths');
});

t.test('a boot event whose JSON body is null or not an object → 400, the node store unchanged', async (t) => {
  const { base, store, key, paths } = await start(t);
  const node = await addNode(store, { hostname: 'web1', macs: ['52:54:00:00:00:11'] });
  const before = readStoreFiles(paths);
  for (const body of ['null', '[]', '"netboot"', '42', 'true']) {
    const res = await fetch(`${base}/api/v1/nodes/${node.systemId}/events`, { method: 'POST', headers: { Authorization: `Bearer ${key}` }, body });
    t.equal(res.status, 400, `body ${body} → 400`);
    t.match(await res.text(), /^[^\n]*JSON object[^\n]*\n$/);
  }
  t.equal(readStoreFiles(paths), before, 'the node store (snapshot and journal) is byte for byte the same');
  await stillAnswers(t, base, 'bad JSON bodies');
});

t.test('by default the service listens on the provisioning address and loopback only, not on every address', async (t) => {
  const paths = scratchRoot(t);
  const config = await loadConfig(paths, mergeSchemas(loadComponents()));
  // 127.0.0.0/8 is all this host's: 127.0.0.2 stands in for the LAN address, 127.0.0.3 for another network's.
  const lan = staticNetworkFacts([{ name: 'lan0', mac: '52:54:00:00:00:01', up: true, loopback: false, virtual: false, ipv4: [{ address: '127.0.0.2', prefix: 8 }], ipv6: [] }], {
    interface: 'lan0',
    gateway: '127.0.0.254',
  });
  const server = await loadServerAddress(config, lan);
  const { log, lines } = memoryLog();
  const running = await startService({ paths, config, server, store: createFileNodeStore(paths), log, port: 0 });
  t.teardown(() => running.close());
  t.same(running.hosts, ['127.0.0.2', '127.0.0.1']);
  for (const host of ['127.0.0.2', '127.0.0.1']) t.equal((await fetch(`http://${host}:${running.port}/boot/ipxe`)).status, 200, `answers on ${host}`);
  const other = await fetch(`http://127.0.0.3:${running.port}/boot/ipxe`).then(
    (r) => `answered ${r.status}`,
    (err: Error & { cause?: { code?: string } }) => err.cause?.code ?? err.message,
  );
  t.equal(other, 'ECONNREFUSED', 'not reachable on another address of the host');
  t.ok(lines.some((l) => l.includes(`listening on 127.0.0.2:${running.port} and 127.0.0.1:${running.port}`)), 'the log names both addresses');
});

t.test('selectListenAddresses: --listen names the one address; else the provisioning address and loopback, once each', async (t) => {
  const { selectListenAddresses } = await import('../../src/cli/serve');
  t.same(selectListenAddresses('10.0.0.5', { address: '192.0.2.1' }), ['10.0.0.5']);
  t.same(selectListenAddresses('0.0.0.0', { address: '192.0.2.1' }), ['0.0.0.0'], 'every address only when asked for');
  t.same(selectListenAddresses(undefined, { address: '192.0.2.1' }), ['192.0.2.1', '127.0.0.1']);
  t.same(selectListenAddresses(undefined, { address: '127.0.0.1' }), ['127.0.0.1']);
});
