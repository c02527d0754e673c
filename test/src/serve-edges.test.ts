/**
 * Per-edge keys with real services (issue 14 item 5): a region `uec-provisioning serve` running
 * as its own process, an edge (`serve --no-region`'s service, in this process) that presents
 * the key `edges add` printed. The live edge is served and its last contact recorded; after
 * `edges revoke` its very next request is refused with the same 403 as any wrong key, the
 * shared key keeps working from this host, and the key is in no log and not in the audit log.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import t, { type Test } from 'tap';
import { main, type Io } from '../../src/cli';
import { loadComponents, mergeSchemas } from '../../src/configurator/component';
import { AUDIT_LOG } from '../../src/core/audit';
import { loadConfig } from '../../src/core/config';
import { staticNetworkFacts } from '../../src/core/network-facts';
import type { Paths } from '../../src/core/paths';
import { loadServerAddress } from '../../src/core/server-address';
import { loadEdgeKey, startService } from '../../src/cli/serve';
import { createRegionClient } from '../../src/edge/region-client';
import { addNode } from '../../src/region/node-ops';
import { createFileNodeStore } from '../../src/region/node-store';
import { createFakeLan, memoryLog, SHIPPED_TEMPLATES } from '../helpers/region-fixture';
import { CHILD_ENV } from '../helpers/child-script';
import { REPO_ROOT, put, scratchRoot } from '../helpers/scratch';

process.env.UEC_PROVISIONING_TEMPLATES = SHIPPED_TEMPLATES;
const KEY_FILE = '/var/lib/uec-provisioning/secrets/provisioning.key';
const EDGE_KEY_FILE = '/var/lib/uec-provisioning/secrets/edge.key';
const NODE_MAC = '52:54:00:00:00:21';

const network = staticNetworkFacts([{ name: 'eth0', mac: '52:54:00:00:00:01', up: true, loopback: false, virtual: false, ipv4: [{ address: '192.0.2.77', prefix: 24 }], ipv6: [] }], {
  interface: 'eth0',
  gateway: '192.0.2.1',
});

async function cli(paths: Paths, args: string[]) {
  let stdout = '';
  let stderr = '';
  const io: Io = { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), env: { UEC_PROVISIONING_SERVICE_CONTROL: 'none', SUDO_USER: 'alice' } };
  const code = await main([...args, '--root', paths.root], io, { network });
  return { code, stdout, stderr };
}

/** `uec-provisioning serve` as its own process (from the sources), on 127.0.0.1 and a free port. */
async function startRegionProcess(t: Test, paths: Paths): Promise<{ base: string; stderr: () => string; child: ChildProcess }> {
  put(paths, '/etc/uec-provisioning/conf.d/90-local.conf', '[server]\ninterface = lo\n');
  // -e, not a .ts main file: tap's loader hooks (kept in children) would take a .ts main for ESM.
  const script = [
    "require('ts-node/register/transpile-only');",
    `const { main } = require(${JSON.stringify(path.join(REPO_ROOT, 'src/cli.ts'))});`,
    'main(process.argv.slice(1), { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s), env: process.env }).then((code) => { process.exitCode = code; });',
  ].join('\n');
  const child = spawn(process.execPath, ['-e', script, '--', 'serve', '--root', paths.root, '--listen', '127.0.0.1', '--port', '0', '--json', '--no-apply'], {
    cwd: REPO_ROOT,
    env: { ...CHILD_ENV, UEC_PROVISIONING_TEMPLATES: SHIPPED_TEMPLATES, UEC_PROVISIONING_SERVICE_CONTROL: 'none' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  );
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /"port":\s*(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`serve exited ${code} before listening: ${stderr}`)));
  });
  return { base: `http://127.0.0.1:${port}`, stderr: () => stderr, child };
}

const get = async (url: string, key?: string, headers: Record<string, string> = {}) => {
  const r = await fetch(url, { headers: { ...headers, ...(key ? { Authorization: `Bearer ${key}` } : {}) } });
  return { status: r.status, body: await r.text() };
};

t.test('a live edge is served with its own key; after `edges revoke` its next request gets 403, at once', async (t) => {
  const regionPaths = scratchRoot(t);
  const region = await startRegionProcess(t, regionPaths);
  const shared = fs.readFileSync(regionPaths.resolve(KEY_FILE), 'utf8').trim();
  const added = await cli(regionPaths, ['edges', 'add', 'edge-b', '--subnet', '10.2.0.0/16']);
  t.equal(added.code, 0, added.stderr);
  const key = added.stdout.trim();
  t.match(key, /^uecpe\.edge-b\.[A-Za-z0-9_-]{43}$/, 'the key is printed once, alone on stdout');
  const secret = key.split('.')[2]!;

  // The edge's side: its key in provisioning.edge_key_file (0600), read as serve reads it, sent by its region client.
  const edgePaths = scratchRoot(t);
  put(edgePaths, EDGE_KEY_FILE, `${key}\n`, 0o600);
  const edgeClient = createRegionClient({ regionUrl: region.base, key: await loadEdgeKey(edgePaths, EDGE_KEY_FILE), cacheMs: 0, timeoutMs: 10_000 });

  const node = await addNode(createFileNodeStore(regionPaths), { hostname: 'web1', macs: [NODE_MAC] });
  t.match(await edgeClient.fetchContext({ kind: 'mac', mac: NODE_MAC }), { system_id: node.systemId }, "the edge's client gets the node's context with its key");
  t.equal((await get(`${region.base}/api/v1/nodes`, key)).status, 200, 'the region answers the edge key directly');
  const listed = JSON.parse((await cli(regionPaths, ['edges', 'list', '--json'])).stdout) as { name: string; lastContact: string; revoked: boolean }[];
  t.match(listed, [{ name: 'edge-b', revoked: false, lastContact: /^\d{4}-\d\d-\d\dT/ }], 'its last contact is recorded');

  const revoked = await cli(regionPaths, ['edges', 'revoke', 'edge-b']);
  t.equal(revoked.code, 0, revoked.stderr);
  const refused = await get(`${region.base}/api/v1/nodes`, key);
  t.same(refused, { status: 403, body: 'forbidden\n' }, 'the very next request with the revoked key → 403');
  await t.rejects(edgeClient.fetchContext({ kind: 'mac', mac: NODE_MAC }), { code: 'UPSTREAM_FAILED', message: /answered 403/ }, "the edge's client is refused too");

  // One identical refusal whatever was wrong.
  const wrongs = [
    ['wrong secret', `uecpe.edge-b.${'B'.repeat(43)}`],
    ['unknown edge', `uecpe.edge-x.${secret}`],
    ['wrong shared key', 'z'.repeat(43)],
  ];
  for (const [what, wrong] of wrongs) t.same(await get(`${region.base}/api/v1/nodes`, wrong), refused, `${what}: the same 403`);
  t.equal((await get(`${region.base}/api/v1/nodes`, shared)).status, 200, 'the shared key still works (from this host)');

  // A second edge, registered after, is served; the revoked one is not brought back by it.
  const other = (await cli(regionPaths, ['edges', 'add', 'edge-c', '--subnet', '10.2.0.0/16'])).stdout.trim();
  t.equal((await get(`${region.base}/api/v1/nodes`, other)).status, 200, "a new edge may take the revoked edge's subnets");
  t.equal((await get(`${region.base}/api/v1/nodes`, key)).status, 403, 'the revoked key stays refused');

  await new Promise((r) => setTimeout(r, 200)); // the region's stderr arrives through a pipe
  const regionLog = region.stderr();
  t.match(regionLog, /refused GET \/api\/v1\/nodes: edge edge-b: edge edge-b was revoked at/, 'the refusal is logged with the edge name');
  t.match(regionLog, /edge edge-b: a wrong key for edge edge-b/);
  for (const [where, text] of [
    ['the region log', regionLog],
    ['the CLI messages', added.stderr + revoked.stderr],
    ['the audit log', fs.readFileSync(regionPaths.resolve(AUDIT_LOG), 'utf8')],
    ['the edge registry', fs.readFileSync(regionPaths.resolve('/var/lib/uec-provisioning/edges.json'), 'utf8')],
  ]) {
    t.notOk(text!.includes(secret), `the key is not in ${where}`);
  }
  const actions = fs
    .readFileSync(regionPaths.resolve(AUDIT_LOG), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { action: string; target: { edge: string }; actor: { user: string } });
  t.same(
    actions.map((a) => [a.action, a.target.edge, a.actor.user]),
    [
      ['edge.register', 'edge-b', 'alice'],
      ['edge.revoke', 'edge-b', 'alice'],
      ['edge.register', 'edge-c', 'alice'],
    ],
  );
});

t.test('region.accept_shared_key = false: the shared key only from this host; edge keys from anywhere', async (t) => {
  const paths = scratchRoot(t);
  put(paths, '/etc/uec-provisioning/conf.d/90-local.conf', '[region]\naccept_shared_key = false\n');
  const config = await loadConfig(paths, mergeSchemas(loadComponents()));
  const lan = createFakeLan();
  const { log, lines } = memoryLog();
  const running = await startService({ paths, config, server: await loadServerAddress(config, network), store: createFileNodeStore(paths), log, port: 0, host: '127.0.0.1', addressing: lan.addressing });
  t.teardown(() => running.close());
  const base = `http://127.0.0.1:${running.port}`;
  const shared = fs.readFileSync(paths.resolve(KEY_FILE), 'utf8').trim();
  const key = (await cli(paths, ['edges', 'add', 'edge-a', '--subnet', '10.1.0.0/16'])).stdout.trim();
  t.same(await get(`${base}/api/v1/nodes`, shared, lan.from('10.1.0.2').headers), { status: 403, body: 'forbidden\n' }, 'the shared key from another host → 403');
  t.equal((await get(`${base}/api/v1/nodes`, shared)).status, 200, 'from loopback (serve --no-region on this host) → 200');
  t.equal((await get(`${base}/api/v1/nodes`, key, lan.from('10.1.0.2').headers)).status, 200, 'an edge key from another host → 200');
  t.ok(lines.some((l) => l.includes('from 10.1.0.2: the shared provisioning key, accepted only from this host')), 'the refusal says why');
});

t.test('the edge key file must be an edge key, readable by its owner only; else serve does not start', async (t) => {
  for (const [content, mode, why] of [
    [`uecpe.edge-a.${'A'.repeat(43)}\n`, 0o644, /readable by other users \(mode 0644\): chmod 600/],
    ['k'.repeat(43), 0o600, /holds no edge key/],
  ] as const) {
    const paths = scratchRoot(t);
    put(paths, KEY_FILE, `${'k'.repeat(43)}\n`, 0o600);
    put(paths, EDGE_KEY_FILE, content, mode);
    fs.chmodSync(paths.resolve(EDGE_KEY_FILE), mode);
    put(paths, '/etc/uec-provisioning/conf.d/90-local.conf', `[provisioning]\nregion_url = http://127.0.0.1:9\nedge_key_file = ${EDGE_KEY_FILE}\n`);
    const config = await loadConfig(paths, mergeSchemas(loadComponents()));
    await t.rejects(
      startService({ paths, config, server: await loadServerAddress(config, network), store: createFileNodeStore(paths), log: memoryLog().log, region: false, port: 0, host: '127.0.0.1' }),
      { code: 'CONFIG_INVALID_VALUE', message: why },
    );
  }
});
