/**
 * `uec-provisioning region migrate` both ways with 1,000 nodes, against a PostgreSQL this file
 * starts (test/helpers/postgresql.ts), through main() as an admin runs it.
 */
import t from 'tap';
import { main, type Io } from '../../src/cli';
import { loadComponents, mergeSchemas } from '../../src/configurator/component';
import { loadConfig } from '../../src/core/config';
import { createNode, type Node } from '../../src/contract/node';
import type { Paths } from '../../src/core/paths';
import { createFileNodeStore } from '../../src/region/node-store';
import { createPostgresNodeStore, renderCanonicalJson } from '../../src/region/node-store-postgresql';
import { selectStoreDifference } from '../../src/region/migrate-store';
import { checkPostgresAvailable, startPostgres } from '../helpers/postgresql';
import { put, scratchRoot } from '../helpers/scratch';

function cliIn(root: string) {
  return async (...args: string[]) => {
    let stdout = '';
    let stderr = '';
    const io: Io = { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), env: { UEC_PROVISIONING_SERVICE_CONTROL: 'none' } };
    const code = await main(['--root', root, ...args], io);
    return { code, stdout, stderr };
  };
}

function makeNodes(n: number): Node[] {
  const hex = (x: number) => (x & 0xff).toString(16).padStart(2, '0');
  return Array.from({ length: n }, (_, i) =>
    createNode({ hostname: `m${i}`, macs: [`52:54:00:02:${hex(i >> 8)}:${hex(i)}`], ipv4: i % 2 ? `10.7.${i >> 7}.${(i & 0x7f) + 1}` : '', status: i % 3 ? 'ready' : 'new' }, new Date('2026-02-03T04:05:06Z'), { systemId: `node-m${i}`, token: `tok${i}-0123456789abcdefghijklmnopq` }),
  );
}

async function storeSetting(paths: Paths): Promise<string> {
  return (await loadConfig(paths, mergeSchemas(loadComponents()))).getString('region.store');
}

t.test('selectStoreDifference names the first missing or different node, or the counts', async (t) => {
  const [a, b] = makeNodes(2) as [Node, Node];
  t.equal(selectStoreDifference([a, b], [b, a]), null, 'order does not matter');
  t.equal(selectStoreDifference([a], [a, b]), 'the source has 1 nodes, the target 2');
  t.equal(selectStoreDifference([a, b], [a, { ...b, systemId: 'node-x' }]), 'node m1 (node-m1) is missing from the target');
  t.equal(selectStoreDifference([a, b], [a, { ...b, release: 'trixie' }]), 'node m1 (node-m1) differs in the target');
});

const unavailable = checkPostgresAvailable();
if (unavailable) {
  t.test('region migrate against PostgreSQL', { skip: unavailable }, async () => undefined);
} else {
  t.test('region migrate --to postgresql and back with 1,000 nodes: nothing lost, followers reset, the target must be empty', async (t) => {
    const server = await startPostgres(t);
    const db = await server.createDatabase();
    const paths = scratchRoot(t);
    put(paths, '/etc/uec-provisioning/uec-provisioning.conf', `[region]\ndatabase_host = ${db.host}\ndatabase_port = ${db.port}\ndatabase_name = ${db.database}\ndatabase_user = ${db.user}\n`);
    const cli = cliIn(paths.root);
    const nodes = makeNodes(1000);
    const embedded = createFileNodeStore(paths);
    t.teardown(() => embedded.close());
    await embedded.update((draft) => void draft.push(...nodes));
    const embeddedCursor = await embedded.currentCursor();

    t.match(await cli('region', 'migrate'), { code: 2, stderr: /region migrate needs --to embedded or postgresql/ });
    t.match(await cli('region', 'migrate', '--to', 'embedded'), { code: 2, stderr: /region.store is already embedded: nothing to migrate/ });

    const there = await cli('region', 'migrate', '--to', 'postgresql', '--json');
    t.equal(there.code, 0, there.stderr);
    t.same(JSON.parse(there.stdout), { from: 'embedded', to: 'postgresql', nodes: 1000, resynced: 0 });
    t.match(there.stderr, /systemctl restart uec-provisioning/);
    t.equal(await storeSetting(paths), 'postgresql');
    const pgStore = createPostgresNodeStore(db);
    t.teardown(() => pgStore.close());
    const inPg = await pgStore.list();
    t.equal(selectStoreDifference(nodes, inPg), null, 'every node, field by field');
    t.equal(renderCanonicalJson(inPg.find((n) => n.systemId === 'node-m7')), renderCanonicalJson(nodes[7]), 'tokens included');
    t.equal((await pgStore.changesSince(embeddedCursor, 10)).reset, true, 'a follower of the embedded store resets');
    t.equal((await pgStore.changesSince(0, 10)).reset, true, 'and one from the start');

    // The CLI now writes to PostgreSQL, not to the files.
    const added = await cli('nodes', 'add', 'late', '--mac', '52:54:00:03:00:01', '--no-apply');
    t.equal(added.code, 0, added.stderr);
    t.ok(await pgStore.find('late'));
    t.equal(await embedded.find('late'), undefined);

    const refused = await cli('region', 'migrate', '--to', 'embedded');
    t.equal(refused.code, 6);
    t.match(refused.stderr, /the embedded store already holds 1000 node\(s\); nothing was copied \(--force replaces them/);
    t.equal(await storeSetting(paths), 'postgresql', 'region.store unchanged');
    t.equal((await embedded.list()).length, 1000);

    const back = await cli('region', 'migrate', '--to', 'embedded', '--force', '--json');
    t.equal(back.code, 0, back.stderr);
    t.same(JSON.parse(back.stdout), { from: 'postgresql', to: 'embedded', nodes: 1001, resynced: 0 });
    t.equal(await storeSetting(paths), 'embedded');
    t.equal(selectStoreDifference(await pgStore.list(), await embedded.list()), null);
    t.equal((await embedded.list()).length, 1001);
  });

  t.test('region migrate to an unreachable database: one line naming it, region.store unchanged', async (t) => {
    const server = await startPostgres(t);
    const paths = scratchRoot(t);
    put(paths, '/etc/uec-provisioning/uec-provisioning.conf', `[region]\ndatabase_host = ${server.host}\ndatabase_port = ${server.port}\ndatabase_name = nosuchdb\ndatabase_user = postgres\n`);
    const embedded = createFileNodeStore(paths);
    t.teardown(() => embedded.close());
    await embedded.update((draft) => void draft.push(...makeNodes(3)));
    const out = await cliIn(paths.root)('region', 'migrate', '--to', 'postgresql');
    t.equal(out.code, 6);
    t.match(out.stderr, /cannot connect to PostgreSQL \(database nosuchdb on .*\): .*nosuchdb/);
    t.equal(out.stderr.trim().split('\n').length, 1);
    t.equal(await storeSetting(paths), 'embedded');
  });
}
