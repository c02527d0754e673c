/**
 * `uec-provisioning edges list|add|revoke|assign`: the key printed once and alone on stdout,
 * the table, bad input refused with one line naming the culprit and nothing changed, usage
 * errors exit 2, each change one audit line (by the sudo user), never the key.
 */
import * as fs from 'node:fs';
import t from 'tap';
import { main, type Io } from '../../src/cli';
import { renderEdgeTable } from '../../src/cli/edges';
import { AUDIT_LOG } from '../../src/core/audit';
import type { Paths } from '../../src/core/paths';
import { EDGES_FILE } from '../../src/region/edges';
import { scratchRoot } from '../helpers/scratch';

async function cli(paths: Paths, args: string[]) {
  let stdout = '';
  let stderr = '';
  const io: Io = { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), env: { SUDO_USER: 'alice' } };
  const code = await main([...args, '--root', paths.root], io);
  return { code, stdout, stderr };
}

const registry = (paths: Paths) => (fs.existsSync(paths.resolve(EDGES_FILE)) ? fs.readFileSync(paths.resolve(EDGES_FILE), 'utf8') : '<none>');

t.test('add, list, assign, revoke; the key once on stdout, never in the messages or the audit log', async (t) => {
  const paths = scratchRoot(t);
  const added = await cli(paths, ['edges', 'add', 'edge-a', '--subnet', '10.1.0.0/16', '--subnet', '10.11.0.0/16']);
  t.equal(added.code, 0, added.stderr);
  t.match(added.stdout, /^uecpe\.edge-a\.[A-Za-z0-9_-]{43}\n$/, 'only the key on stdout');
  const secret = added.stdout.trim().split('.')[2]!;
  t.match(added.stderr, /registered edge edge-a \(10\.1\.0\.0\/16, 10\.11\.0\.0\/16\); its key is printed once/);
  const json = await cli(paths, ['edges', 'add', 'edge-b', '--subnet', '10.2.0.0/16,fd00:2::/64', '--json']);
  t.match(JSON.parse(json.stdout), { name: 'edge-b', subnets: ['10.2.0.0/16', 'fd00:2::/64'], revoked: false, key: /^uecpe\.edge-b\./ });
  const list = await cli(paths, ['edges', 'list']);
  t.equal(list.code, 0);
  t.equal(
    list.stdout,
    ['NAME    SUBNETS                   LAST CONTACT  STATE', 'edge-a  10.1.0.0/16,10.11.0.0/16  never         live', 'edge-b  10.2.0.0/16,fd00:2::/64   never         live', ''].join('\n'),
  );
  const assigned = await cli(paths, ['edges', 'assign', 'edge-a', '--subnet', '10.3.0.0/16']);
  t.equal(assigned.code, 0, assigned.stderr);
  t.match(assigned.stderr, /edge edge-a now serves 10\.3\.0\.0\/16/);
  t.equal((await cli(paths, ['edges', 'assign', 'edge-a', '--subnet', '10.3.0.0/16'])).code, 0, 'the same subnets again: nothing to do');
  const revoked = await cli(paths, ['edges', 'revoke', 'edge-a']);
  t.equal(revoked.code, 0, revoked.stderr);
  t.match((await cli(paths, ['edges', 'revoke', 'edge-a'])).stderr, /edge edge-a was already revoked at/);
  t.match((await cli(paths, ['edges', 'list'])).stdout, /edge-a .* revoked \d{4}-/);
  const audit = fs.readFileSync(paths.resolve(AUDIT_LOG), 'utf8');
  t.same(
    audit
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { action: string; target: { edge: string }; actor: { user: string } })
      .map((e) => [e.action, e.target.edge, e.actor.user]),
    [
      ['edge.register', 'edge-a', 'alice'],
      ['edge.register', 'edge-b', 'alice'],
      ['edge.assign', 'edge-a', 'alice'],
      ['edge.revoke', 'edge-a', 'alice'],
    ],
    'one line per change; none for a change that changed nothing',
  );
  t.notOk(audit.includes(secret) || added.stderr.includes(secret), 'the key is not in the audit log nor the messages');
});

t.test('bad input: one line naming the culprit, exit 3 (2 for usage), nothing changed', async (t) => {
  const paths = scratchRoot(t);
  t.equal((await cli(paths, ['edges', 'add', 'edge-a', '--subnet', '10.1.0.0/16'])).code, 0);
  const before = registry(paths);
  const cases: [string[], number, RegExp][] = [
    [['edges', 'add', 'edge-b', '--subnet', '10.1.2.0/24'], 3, /edge edge-b not registered: subnet 10\.1\.2\.0\/24 overlaps 10\.1\.0\.0\/16 of edge edge-a/],
    [['edges', 'add', 'edge-b', '--subnet', '10.2.0.1/16'], 3, /subnet "10\.2\.0\.1\/16" has host bits set \(the network is 10\.2\.0\.0\/16\)/],
    [['edges', 'add', 'Edge_B', '--subnet', '10.2.0.0/16'], 3, /edge name "Edge_B" must start with a lowercase letter/],
    [['edges', 'add', 'edge-a', '--subnet', '10.5.0.0/16'], 3, /edge edge-a is already registered/],
    [['edges', 'add', 'edge-b'], 2, /edges add needs at least one --subnet CIDR/],
    [['edges', 'add', '--subnet', '10.2.0.0/16'], 2, /edges add needs exactly one edge NAME/],
    [['edges', 'revoke', 'nobody'], 3, /no edge "nobody"/],
    [['edges', 'assign', 'nobody', '--subnet', '10.2.0.0/16'], 3, /no edge "nobody"/],
    [['edges', 'list', 'extra'], 2, /edges list takes no arguments/],
  ];
  for (const [args, code, message] of cases) {
    const r = await cli(paths, args);
    t.equal(r.code, code, `${args.join(' ')} → exit ${code}`);
    t.match(r.stderr, message, `${args.join(' ')}: says why`);
    t.equal(r.stderr.trim().split('\n').length, 1, `${args.join(' ')}: one line`);
    t.equal(r.stdout, '', `${args.join(' ')}: nothing on stdout`);
    t.equal(registry(paths), before, `${args.join(' ')}: the registry is unchanged`);
  }
});

t.test('renderEdgeTable (pure): columns padded, last contact or never, revoked with its time', async (t) => {
  t.equal(
    renderEdgeTable([
      { name: 'a', subnets: ['10.1.0.0/16'], createdAt: '', lastContact: '2026-12-06T12:00:00.000Z', revoked: false, revokedAt: '' },
      { name: 'edge-long', subnets: ['10.2.0.0/16', '10.3.0.0/16'], createdAt: '', lastContact: '', revoked: true, revokedAt: '2026-12-06T13:00:00.000Z' },
    ]),
    [
      'NAME       SUBNETS                  LAST CONTACT              STATE',
      'a          10.1.0.0/16              2026-12-06T12:00:00.000Z  live',
      'edge-long  10.2.0.0/16,10.3.0.0/16  never                     revoked 2026-12-06T13:00:00.000Z',
      '',
    ].join('\n'),
  );
});
