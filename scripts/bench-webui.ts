/**
 * Web UI benchmark (part of `npm run bench`): response time (p50 over BENCH_SECONDS, default 5,
 * of one wrk connection) of the Dashboard and the Nodes table (first page of 200, sorted) with
 * 1,000 and 10,000 nodes; resident memory of the
 * service with 10,000 nodes; and the time from a status call-back (recorded by another
 * process, as `uec-provisioning serve` does) to an SSE client seeing it. The service is the
 * compiled one (`npm run build`), started as `uec-provisioning webui serve` on 127.0.0.1.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { atomicWrite } from '../src/core/atomic-write';
import { createNode, type Node } from '../src/contract/node';
import { recordStatusEvent } from '../src/region/node-ops';
import { createFileNodeStore } from '../src/region/node-store';
import { createPaths } from '../src/core/paths';
import { CLI, startBenchWebui } from './bench-webui-server';
import { runWrk, wrkAvailable } from './wrk';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);

function makeNodes(count: number): Node[] {
  const at = new Date('2026-01-01T00:00:00Z');
  const nodes: Node[] = [];
  for (let i = 0; i < count; i++) {
    const mac = `52:54:${[(i >> 24) & 255, (i >> 16) & 255, (i >> 8) & 255, i & 255].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;
    const node = createNode({ hostname: `node${String(i).padStart(5, '0')}`, macs: [mac], status: i % 3 === 0 ? 'deploying' : 'ready' }, at, { systemId: `node-${String(i).padStart(6, '0')}`, token: 'x'.repeat(32) });
    for (let e = 0; e < 5; e++) node.events.push({ at: at.toISOString(), type: 'edited', message: `event ${e}` });
    nodes.push(node);
  }
  return nodes;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** One connection, wrk for `seconds` (a C client: the Node process does not share the work): p50 and the size. */
async function timeGet(url: string, cookie: string, seconds: number): Promise<{ ms: number; bytes: number }> {
  const r = await fetch(url, { headers: { Cookie: cookie } });
  const bytes = (await r.arrayBuffer()).byteLength;
  if (r.status !== 200) throw new Error(`${url}: ${r.status}`);
  const load = await runWrk({ url, connections: 1, seconds, headers: [`Cookie: ${cookie}`] });
  if (load.non2xx > 0 || load.socketErrors > 0) throw new Error(`${url}: ${load.non2xx} non-2xx answers, socket errors ${load.socketErrorDetail}`);
  return { ms: load.p50, bytes };
}

async function run(count: number): Promise<void> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'uec-bench-webui-'));
  const paths = createPaths(root);
  try {
    await atomicWrite(paths.resolve('/var/lib/uec-provisioning/nodes.json'), JSON.stringify({ version: 1, nodes: makeNodes(count) }), { mode: 0o600 });
    fs.mkdirSync(paths.resolve('/etc/uec-provisioning/conf.d'), { recursive: true });
    fs.writeFileSync(paths.resolve('/etc/uec-provisioning/conf.d/50-managed.conf'), '[server]\ninterface = lo\naddress = 127.0.0.1\n');
    const webui = await startBenchWebui(root);
    try {
      const { base, cookie } = webui;
      await timeGet(`${base}/`, cookie, 1); // warm up
      const dash = await timeGet(`${base}/`, cookie, SECONDS);
      const table = await timeGet(`${base}/nodes?sort=last&dir=desc`, cookie, SECONDS);
      const api = await timeGet(`${base}/api/nodes?status=deploying&per=1000`, cookie, SECONDS);
      const rss = webui.rssMiB();
      // Status call-back → SSE client.
      const controller = new AbortController();
      const stream = await fetch(`${base}/api/events`, { headers: { Cookie: cookie }, signal: controller.signal });
      const reader = stream.body!.getReader();
      await reader.read(); // connected
      const store = createFileNodeStore(paths);
      const latencies: number[] = [];
      for (let i = 0; i < 5; i++) {
        const id = `node-${String(i * 3).padStart(6, '0')}`;
        const t0 = performance.now();
        await recordStatusEvent(store, id, 'installing', `step ${i}`);
        let seen = '';
        while (!seen.includes(`step ${i}`)) seen += Buffer.from((await reader.read()).value ?? []).toString();
        latencies.push(performance.now() - t0);
      }
      controller.abort();
      console.log(
        `webui ${String(count).padStart(5)} nodes: dashboard ${dash.ms.toFixed(1)} ms, nodes table ${table.ms.toFixed(1)} ms (${(table.bytes / 1024).toFixed(0)} KiB), ` +
          `API filter ${api.ms.toFixed(1)} ms, RSS ${rss.toFixed(0)} MiB, call-back → SSE median ${median(latencies).toFixed(1)} ms (max ${Math.max(...latencies).toFixed(1)})`,
      );
    } finally {
      await webui.stop();
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  if (!fs.existsSync(CLI)) throw new Error('run npm run build first');
  if (!wrkAvailable()) throw new Error('wrk is not installed (apt-get install wrk)');
  for (const count of [1000, 10000]) await run(count);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
