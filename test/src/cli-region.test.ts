/**
 * `uec-provisioning region migrate` both ways with 1,000 nodes, against a PostgreSQL this file
 * starts (test/helpers/postgresql.ts), through main() as an admin runs it.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
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
import { CHILD_ENV } from '../helpers/child-script';
import { REPO_ROOT, put, scratchRoot } from '../helpers/scratch';

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

if (!unavailable) {
  t.test('on PostgreSQL, `webui serve` and `serve` stop on SIGTERM (the store\'s connections and LISTEN are closed), and a CLI command exits at once', async (t) => {
    const server = await startPostgres(t);
    const db = await server.createDatabase();
    const paths = scratchRoot(t);
    put(paths, '/etc/uec-provisioning/uec-provisioning.conf', `[region]\nstore = postgresql\ndatabase_host = ${db.host}\ndatabase_port = ${db.port}\ndatabase_name = ${db.database}\ndatabase_user = ${db.user}\n[server]\ninterface = lo\n`);
    const script = [
      "require('ts-node/register/transpile-only');",
      `const { main } = require(${JSON.stringify(path.join(REPO_ROOT, 'src/cli.ts'))});`,
      'main(process.argv.slice(1), { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s), env: process.env }).then((code) => { process.exitCode = code; });',
    ].join('\n');
    const run = (args: string[]) => {
      const child = spawn(process.execPath, ['-e', script, '--', ...args, '--root', paths.root], { cwd: REPO_ROOT, env: { ...CHILD_ENV, UEC_PROVISIONING_TEMPLATES: path.join(REPO_ROOT, 'templates'), UEC_PROVISIONING_SERVICE_CONTROL: 'none' }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      t.teardown(() => void (child.exitCode === null && child.kill('SIGKILL')));
      // Not a timing assert: without the fix the process never exits; 60 s only ends the wait.
      const exited = (limitMs: number) =>
        new Promise<number | string>((resolve) => {
          if (child.exitCode !== null) return resolve(child.exitCode);
          const timer = setTimeout(() => resolve(`still running after ${limitMs / 1000} s:\n${out}`), limitMs);
          child.once('exit', (code, signal) => (clearTimeout(timer), resolve(code ?? String(signal))));
        });
      const listening = () =>
        new Promise<void>((resolve, reject) => {
          const check = () => (/"port":\s*\d+/.test(out) ? resolve() : undefined);
          child.stdout!.on('data', check);
          child.once('exit', () => reject(new Error(`exited before listening:\n${out}`)));
          check();
        });
      return { child, exited, listening, output: () => out };
    };
    const add = run(['nodes', 'add', 'pg-one', '--mac', '52:54:00:04:00:01', '--no-apply']);
    t.equal(await add.exited(60_000), 0, 'nodes add exits by itself');
    const services = [['webui', 'serve', '--port', '0', '--listen', '127.0.0.1', '--json'], ['serve', '--listen', '127.0.0.1', '--port', '0', '--json', '--no-apply']];
    for (const [i, args] of services.entries()) {
      // At once: the store may still be opening and starting its LISTEN (a CI run caught a LISTEN
      // connection made after close, which kept the process alive).
      const early = run(args);
      await early.listening();
      early.child.kill('SIGTERM');
      t.equal(await early.exited(60_000), 0, `${args.slice(0, 2).join(' ')} exits 0 on SIGTERM right after it listens`);
      // Once the store is listening and a node change from outside was delivered.
      const p = run(args);
      await p.listening();
      const store = createPostgresNodeStore(db);
      await store.modify(['pg-one'], ([n], writes) => writes.put({ ...n!, release: i % 2 ? 'bookworm' : 'trixie' }));
      await store.close();
      p.child.kill('SIGTERM');
      t.equal(await p.exited(60_000), 0, `${args.slice(0, 2).join(' ')} exits 0 on SIGTERM after a change`);
    }
  });
}
