/**
 * A child process that writes the PostgreSQL node store, for the race tests of
 * test/src/node-store-postgresql.test.ts (run with node -r ts-node/register/transpile-only):
 *
 *   pg-store-worker.ts CONNECTION_JSON NAME N   puts N nodes h-<i> (MAC 52:54:00:00:<i>, IPv4
 *   10.9.<i>), system ids node-<NAME><i>, one modify each; prints JSON {stored, conflicts, other}
 */
import { createNode, newToken } from '../../src/contract/node';
import { createPostgresNodeStore } from '../../src/region/node-store-postgresql';
import { UecError } from '../../src/core/errors';

const args = process.argv.slice(process.argv[1]?.endsWith('pg-store-worker.ts') ? 2 : 1);
const [connection, name, count] = args;
const store = createPostgresNodeStore(JSON.parse(connection!) as Parameters<typeof createPostgresNodeStore>[0]);

function mac(i: number): string {
  const hex = (n: number) => (n & 0xff).toString(16).padStart(2, '0');
  return `52:54:00:00:${hex(i >> 8)}:${hex(i)}`;
}

async function run(): Promise<void> {
  const out = { stored: 0, conflicts: 0, other: [] as string[] };
  for (let i = 0; i < Number(count); i++) {
    const node = createNode({ hostname: `h-${i}`, macs: [mac(i)], ipv4: `10.9.${i >> 8}.${(i & 0xff) + 1}` }, new Date(), { systemId: `node-${name}${i}`, token: newToken() });
    try {
      await store.modify([], (_found, writes) => writes.put(node));
      out.stored++;
    } catch (err) {
      if (err instanceof UecError && err.code === 'NODE_CONFLICT') out.conflicts++;
      else out.other.push(String(err));
    }
  }
  await store.close();
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

run().catch((err: unknown) => {
  process.stderr.write(`${String((err as Error).stack ?? err)}\n`);
  process.exit(1);
});
