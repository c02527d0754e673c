/**
 * The edge registry (src/region/edges.ts): the pure parts (names, CIDRs, overlaps, keys, the
 * plans) and the file (0600, atomic, nothing written on a refused change, a revocation seen
 * by a registry that had the file cached).
 */
import * as fs from 'node:fs';
import t from 'tap';
import {
  CONTACT_WRITE_MS,
  EDGES_FILE,
  cidrsOverlap,
  createEdgeRegistry,
  digestEdgeSecret,
  formatEdgeKey,
  parseCidr,
  parseEdgeKey,
  parseEdgeName,
  parseEdgesFile,
  planAddEdge,
  planAssignSubnets,
  planContact,
  planRevokeEdge,
  selectEdgeAuth,
  selectSubnetOverlap,
  type Edge,
} from '../../src/region/edges';
import { scratchRoot } from '../helpers/scratch';

const NOW = new Date('2026-12-06T12:00:00.000Z');
const SECRET = 'A'.repeat(43);

function edge(name: string, subnets: string[], extra: Partial<Edge> = {}): Edge {
  return { name, subnets, keyDigest: digestEdgeSecret(SECRET), createdAt: NOW.toISOString(), lastContact: '', revokedAt: '', ...extra };
}

t.test('parseCidr: IPv4 and IPv6, canonical text; bad input names the culprit', async (t) => {
  t.same(parseCidr('10.1.0.0/16'), { family: 4, network: 0x0a010000n, prefix: 16, text: '10.1.0.0/16' });
  t.equal(parseCidr('0.0.0.0/0').text, '0.0.0.0/0');
  t.equal(parseCidr('192.0.2.7/32').text, '192.0.2.7/32');
  t.equal(parseCidr('FD00:0:0:0::/64').text, 'fd00::/64');
  t.equal(parseCidr('2001:db8:0:1:0:0:0:0/64').text, '2001:db8:0:1::/64');
  t.equal(parseCidr('::/0').text, '::/0');
  for (const [bad, why] of [
    ['10.1.0.5/16', /host bits set \(the network is 10\.1\.0\.0\/16\)/],
    ['10.1.0.0/33', /prefix over \/32/],
    ['10.1.0.0', /not an address\/prefix/],
    ['10.1.0.256/24', /not an IPv4 or IPv6/],
    ['fd00::1::/64', /not an IPv4 or IPv6/],
    ['::ffff:10.0.0.0/104', /not a plain IPv6/],
    ['', /not an address\/prefix/],
  ] as const) {
    t.throws(() => parseCidr(bad), { code: 'INVALID_VALUE', message: why }, bad);
    t.throws(() => parseCidr(bad), { message: new RegExp(`subnet ${JSON.stringify(bad).replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`) }, `${bad}: named`);
  }
});

t.test('cidrsOverlap and selectSubnetOverlap: containment both ways, families apart, revoked edges free', async (t) => {
  t.ok(cidrsOverlap(parseCidr('10.0.0.0/8'), parseCidr('10.1.2.0/24')));
  t.ok(cidrsOverlap(parseCidr('10.1.2.0/24'), parseCidr('10.0.0.0/8')));
  t.notOk(cidrsOverlap(parseCidr('10.1.0.0/24'), parseCidr('10.1.1.0/24')));
  t.notOk(cidrsOverlap(parseCidr('0.0.0.0/0'), parseCidr('::/0')), 'IPv4 and IPv6 never overlap');
  t.ok(cidrsOverlap(parseCidr('fd00::/16'), parseCidr('fd00:1::/32')));
  const edges = [edge('a', ['10.1.0.0/16']), edge('old', ['10.9.0.0/16'], { revokedAt: NOW.toISOString() })];
  t.equal(selectSubnetOverlap(edges, 'b', ['10.1.5.0/24']), 'subnet 10.1.5.0/24 overlaps 10.1.0.0/16 of edge a');
  t.equal(selectSubnetOverlap(edges, 'a', ['10.1.5.0/24']), null, "an edge's own subnets do not count");
  t.equal(selectSubnetOverlap(edges, 'b', ['10.9.0.0/24']), null, 'a revoked edge serves nothing');
  t.equal(selectSubnetOverlap(edges, 'b', ['10.2.0.0/16', '10.2.3.0/24']), 'subnets 10.2.0.0/16 and 10.2.3.0/24 overlap');
});

t.test('names and keys', async (t) => {
  t.equal(parseEdgeName('edge-b2'), 'edge-b2');
  for (const bad of ['', 'B', '1edge', 'a.b', 'a_b', 'a'.repeat(64)]) t.throws(() => parseEdgeName(bad), { code: 'INVALID_VALUE', message: /edge name/ }, JSON.stringify(bad));
  const key = formatEdgeKey('edge-b', SECRET);
  t.equal(key, `uecpe.edge-b.${SECRET}`);
  t.same(parseEdgeKey(key), { name: 'edge-b', secret: SECRET });
  t.equal(parseEdgeKey(`uecpe.edge-b.${SECRET}x`), null, 'a longer secret is not a key');
  t.equal(parseEdgeKey('k'.repeat(43)), null, 'the shared key is not an edge key');
});

t.test('selectEdgeAuth: a live edge with its key; wrong key, unknown, revoked refused with a reason naming the edge, never the key', async (t) => {
  const edges = [edge('a', ['10.1.0.0/16']), edge('gone', ['10.2.0.0/16'], { revokedAt: NOW.toISOString() })];
  const ok = selectEdgeAuth(edges, formatEdgeKey('a', SECRET));
  t.equal(ok.ok && ok.edge.name, 'a');
  const refusals = [
    [formatEdgeKey('a', 'B'.repeat(43)), 'a', /wrong key for edge a/],
    [formatEdgeKey('nobody', SECRET), 'nobody', /no edge nobody/],
    [formatEdgeKey('gone', SECRET), 'gone', /edge gone was revoked/],
    ['uecpe.a.short', '?', /malformed/],
  ] as const;
  for (const [key, name, reason] of refusals) {
    const r = selectEdgeAuth(edges, key);
    t.same(r.ok, false, `${name}: refused`);
    if (!r.ok) {
      t.equal(r.name, name);
      t.match(r.reason, reason);
      t.notMatch(r.reason, /AAAA|BBBB/, 'the reason holds no key');
    }
  }
});

t.test('plans: add, add again after revoke, revoke twice, assign; refusals change nothing', async (t) => {
  let edges = planAddEdge([], 'b', ['10.2.0.0/16', '10.2.0.0/16'], 'd1', NOW);
  edges = planAddEdge(edges, 'a', ['10.1.0.0/16, fd00::/64'], 'd2', NOW);
  t.same(
    edges.map((e) => [e.name, e.subnets]),
    [
      ['a', ['10.1.0.0/16', 'fd00::/64']],
      ['b', ['10.2.0.0/16']],
    ],
    'sorted by name, subnets canonical and deduplicated, commas split',
  );
  const frozen = JSON.stringify(edges);
  t.throws(() => planAddEdge(edges, 'a', ['10.3.0.0/16'], 'd3', NOW), { code: 'INVALID_VALUE', message: /edge a is already registered/ });
  t.throws(() => planAddEdge(edges, 'c', ['10.2.128.0/17'], 'd3', NOW), { message: 'edge c not registered: subnet 10.2.128.0/17 overlaps 10.2.0.0/16 of edge b' });
  t.throws(() => planAddEdge(edges, 'c', [], 'd3', NOW), { message: /at least one subnet/ });
  t.throws(() => planAssignSubnets(edges, 'a', ['10.2.1.0/24']), { message: 'subnets of edge a unchanged: subnet 10.2.1.0/24 overlaps 10.2.0.0/16 of edge b' });
  t.throws(() => planAssignSubnets(edges, 'zz', ['10.7.0.0/16']), { message: /no edge "zz"/ });
  t.equal(JSON.stringify(edges), frozen, 'refused plans did not touch the registry');
  t.same(planAssignSubnets(edges, 'a', ['10.5.0.0/16']).find((e) => e.name === 'a')?.subnets, ['10.5.0.0/16']);
  const revoked = planRevokeEdge(edges, 'b', NOW);
  t.equal(revoked.find((e) => e.name === 'b')?.revokedAt, NOW.toISOString());
  t.same(planRevokeEdge(revoked, 'b', new Date(NOW.getTime() + 5000)), revoked, 'revoking again keeps the first time');
  t.throws(() => planAssignSubnets(revoked, 'b', ['10.7.0.0/16']), { message: /edge b is revoked/ });
  const again = planAddEdge(revoked, 'b', ['10.2.0.0/16'], 'd9', NOW);
  t.same([again.find((e) => e.name === 'b')?.keyDigest, again.find((e) => e.name === 'b')?.revokedAt], ['d9', ''], 'a revoked name registered again gets the new digest only');
  const contacted = planContact(edges, 'a', NOW);
  t.equal(contacted.find((e) => e.name === 'a')?.lastContact, NOW.toISOString());
  t.same(planContact(contacted, 'a', new Date(NOW.getTime() + CONTACT_WRITE_MS - 1)), contacted, 'under a minute later: unchanged');
  t.equal(planContact(contacted, 'a', new Date(NOW.getTime() + CONTACT_WRITE_MS)).find((e) => e.name === 'a')?.lastContact, new Date(NOW.getTime() + CONTACT_WRITE_MS).toISOString());
  t.same(planContact(revoked, 'b', NOW), revoked, 'a revoked edge gets no contact');
});

t.test('parseEdgesFile: not JSON, wrong version, a bad entry → STORE_FAILED naming the file', async (t) => {
  t.throws(() => parseEdgesFile('{', '/x/edges.json'), { code: 'STORE_FAILED', message: /edge registry \/x\/edges.json is not valid JSON/ });
  t.throws(() => parseEdgesFile('{"version":2,"edges":[]}', '/x/edges.json'), { message: /not a version 1 edge registry/ });
  t.throws(() => parseEdgesFile('{"version":1,"edges":[{"name":"a"}]}', '/x/edges.json'), { message: /entry 1 is not an edge/ });
  t.same(parseEdgesFile('{"version":1,"edges":[]}', 'f'), []);
});

t.test('the file: 0600, only the digest stored, a refused change writes nothing, a revocation is seen at once by another registry', async (t) => {
  const paths = scratchRoot(t);
  const file = paths.resolve(EDGES_FILE);
  const region = createEdgeRegistry(paths);
  t.same(await region.list(), []);
  t.notOk(fs.existsSync(file), 'a read creates nothing');
  const { key } = await createEdgeRegistry(paths).add('edge-a', ['10.1.0.0/16'], NOW);
  t.match(key, /^uecpe\.edge-a\.[A-Za-z0-9_-]{43}$/);
  t.equal(fs.statSync(file).mode & 0o777, 0o600);
  const text = fs.readFileSync(file, 'utf8');
  t.notOk(text.includes(parseEdgeKey(key)!.secret), 'the secret is not stored');
  t.ok(text.includes(digestEdgeSecret(parseEdgeKey(key)!.secret)), 'its digest is');
  t.equal((await region.authenticate(key)).ok, true, 'the key is accepted');
  await t.rejects(createEdgeRegistry(paths).add('edge-b', ['10.1.2.0/24']), { code: 'INVALID_VALUE', message: /overlaps 10\.1\.0\.0\/16 of edge edge-a/ });
  t.equal(fs.readFileSync(file, 'utf8'), text, 'the refused add wrote nothing');
  await createEdgeRegistry(paths).revoke('edge-a');
  t.match(await region.authenticate(key), { ok: false, reason: /revoked/ }, 'the registry that had the file cached refuses the next request');
  t.same(
    fs.readdirSync(paths.resolve('/var/lib/uec-provisioning')).filter((f) => f.includes('edges') && f !== 'edges.json'),
    [],
    'no lock or temp file left',
  );
});

t.test('recordContact: written once a minute at most, not for a revoked edge', async (t) => {
  const paths = scratchRoot(t);
  const registry = createEdgeRegistry(paths);
  await registry.add('edge-a', ['10.1.0.0/16'], NOW);
  await registry.recordContact('edge-a', NOW);
  t.equal((await registry.list())[0]?.lastContact, NOW.toISOString());
  const mtime = fs.statSync(paths.resolve(EDGES_FILE)).mtimeMs;
  await registry.recordContact('edge-a', new Date(NOW.getTime() + 1000));
  t.equal(fs.statSync(paths.resolve(EDGES_FILE)).mtimeMs, mtime, 'a second later: no write');
  const later = new Date(NOW.getTime() + CONTACT_WRITE_MS + 1);
  await registry.recordContact('edge-a', later);
  t.equal((await registry.list())[0]?.lastContact, later.toISOString());
});
