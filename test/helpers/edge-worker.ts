/**
 * A child process that writes an edge's outbox or cache forever, for the kill -9 tests of
 * test/src/edge-crash.test.ts (run as plain JavaScript transpiled by transpileForChildren).
 *
 *   edge-worker DIR both WINDOW   both loops at once (one kill interrupts either)
 *   edge-worker DIR outbox   appends events "m<i>" (i continues after what is stored) and marks
 *                            every third pending one delivered; prints "queued <id> <i>" once an
 *                            append is synced, "doing <id>" before recording a delivery and
 *                            "done <id>" once it is recorded
 *   edge-worker DIR cache    stores feed answers, each adding node n<c>, removing n<c-WINDOW> and
 *                            setting the counter node's release to r<c> in ONE answer (a
 *                            half-stored answer would show); compacts every 7 answers; prints
 *                            "stored <c>" per answer
 */
import { loadEdgeCache } from '../../src/edge/edge-cache';
import { openOutbox } from '../../src/edge/outbox';
import type { NodeContext } from '../../src/contract/context';

const [dir, mode, window] = process.argv.slice(2);
/** The cache keeps the last WINDOW nodes n<i> (argument 3), so its snapshot stays small however long the test runs. */
const WINDOW = Number(window ?? 40);

function context(id: string, hostname: string, mac: string, release: string): NodeContext {
  return {
    version: 2, system_id: id, hostname, macs: [mac], ipv4: '', bound_address: '', os: 'debian', release, architecture: 'amd64', subarchitecture: 'bios',
    status: 'deploying', commissioning: false, netboot: true, metadata_url: 'http://r/metadata/', token: 't'.repeat(32), enlistment_url: 'http://r/metadata/enlist',
    disable_netboot_url: `http://r/metadata/latest/${id}/disable-netboot`, status_url: `http://r/metadata/latest/${id}/status/`,
    config: { commissioning_distro_series: 'bookworm', main_archive: 'http://deb.debian.org/debian', ports_archive: 'http://deb.debian.org/debian', http_proxy: '', admin_user: 'debian', authorized_keys: [] },
    role: { name: 'server', description: '', tasks: [], packages: [], preseed: [], late_commands: [] },
  };
}

async function outbox(): Promise<void> {
  const box = await openOutbox(`${dir}/outbox`);
  let next = Math.max(0, ...box.pending().map((e) => Number(e.message.slice(1)) + 1));
  for (;;) {
    const event = await box.append({ type: 'installing', systemId: 'node-a', message: `m${next}` });
    process.stdout.write(`queued ${event.id} ${next}\n`);
    next++;
    if (next % 3 === 0) {
      const first = box.pending()[0]!;
      process.stdout.write(`doing ${first.id}\n`);
      await box.done(first.id);
      process.stdout.write(`done ${first.id}\n`);
    }
  }
}

async function cache(): Promise<void> {
  const store = await loadEdgeCache(`${dir}/cache`, { compactEvery: 7 });
  for (;;) {
    const c = store.cursor() + 1;
    const mac = (i: number) => `52:54:00:${((i >> 16) & 255).toString(16).padStart(2, '0')}:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
    await store.applyBatch({
      cursor: c,
      reset: false,
      changes: [
        { seq: c, systemId: `node-n${c}`, context: context(`node-n${c}`, `n${c}`, mac(c), 'bookworm') },
        { seq: c, systemId: 'node-counter', context: context('node-counter', 'counter', '52:54:00:ff:ff:ff', `r${c}`) },
        ...(c > WINDOW ? [{ seq: c, systemId: `node-n${c - WINDOW}`, context: null }] : []),
      ],
    });
    process.stdout.write(`stored ${c}\n`);
  }
}

(mode === 'both' ? Promise.all([outbox(), cache()]) : mode === 'outbox' ? outbox() : cache()).catch((err: unknown) => {
  process.stderr.write(`${String((err as Error).stack ?? err)}\n`);
  process.exit(1);
});
