import t from 'tap';
import { UecError } from '../../src/core/errors';
import {
  MAX_EVENTS,
  NODE_STATUSES,
  TRANSITIONS,
  addEvent,
  checkNode,
  createNode,
  findConflict,
  maskToken,
  newSystemId,
  newToken,
  parseHostname,
  parseMac,
  isInstalling,
  publicNode,
  startInstall,
  tokenMatches,
  transition,
  type Node,
  type NodeStatus,
} from '../../src/contract/node';

const NOW = new Date('2026-01-02T03:04:05.000Z');
const ids = { systemId: 'node-aaaaaa', token: 'T'.repeat(32) };
const make = (over: Partial<Parameters<typeof createNode>[0]> = {}): Node => createNode({ hostname: 'web1', macs: ['52:54:00:00:00:01'], ...over }, NOW, ids);

t.test('MAC spellings are normalised; malformed MACs → INVALID_VALUE naming the value', async (t) => {
  for (const good of ['52:54:00:AB:cd:01', '52-54-00-ab-cd-01', '525400abcd01', ' 52:54:00:ab:cd:01 ']) t.equal(parseMac(good), '52:54:00:ab:cd:01', good);
  for (const bad of ['', '52:54:00:ab:cd', '52:54:00:ab:cd:01:02', '52:54:00:ab:cd:zz', '52:54-00:ab:cd:01', '52:54:00:ab:cd:01\nx', 'hello']) {
    const err = t.throws(() => parseMac(bad)) as UecError;
    t.equal(err.code, 'INVALID_VALUE', JSON.stringify(bad));
    t.match(err.message, /^MAC ".*" is not a MAC address like 52:54:00:12:34:56$/s);
    t.ok(err.message.includes(JSON.stringify(bad)), 'the message names the input');
  }
});

t.test('hostnames: RFC 1123, lower-cased; bad ones → INVALID_VALUE naming the label', async (t) => {
  t.equal(parseHostname('Web-1.Example.org.'), 'web-1.example.org');
  for (const bad of ['', '-web', 'web-', 'we b', 'web_1', 'a'.repeat(64), 'web\n1', 'x;reboot', '..']) {
    const err = t.throws(() => parseHostname(bad)) as UecError;
    t.equal(err.code, 'INVALID_VALUE', JSON.stringify(bad));
    t.match(err.message, /^hostname ".*" (must be 1 to 253 characters|label ".*" is not a valid DNS label)/s);
  }
  t.throws(() => make({ hostname: 'bad host' }), { code: 'INVALID_VALUE', message: /hostname "bad host"/ });
  t.throws(() => make({ macs: ['nope'] }), { code: 'INVALID_VALUE', message: /MAC "nope"/ });
  t.throws(() => make({ macs: [] }), { code: 'INVALID_VALUE', message: /needs at least one MAC/ });
  t.throws(() => make({ macs: ['52:54:00:00:00:01', '52-54-00-00-00-01'] }), { code: 'INVALID_VALUE', message: /MAC 52:54:00:00:00:01 is given twice/ });
  t.throws(() => make({ arch: 'sparc' }), { code: 'INVALID_VALUE', message: /architecture "sparc" is not one of amd64, arm64, i386/ });
  t.throws(() => make({ subarch: 'coreboot' }), { code: 'INVALID_VALUE' });
  t.throws(() => make({ role: 'a role' }), { code: 'INVALID_VALUE', message: /role/ });
  t.throws(() => make({ release: 'book\nworm' }), { code: 'INVALID_VALUE', message: /release/ });
  t.throws(() => make({ ipv4: '10.0.0.300' }), { code: 'INVALID_VALUE', message: /IPv4 address "10.0.0.300"/ });
});

t.test('a new node: defaults, created event, netboot on', async (t) => {
  const node = make({ macs: ['52-54-00-00-00-0A'] });
  t.same(
    { ...node, events: undefined },
    {
      systemId: 'node-aaaaaa', hostname: 'web1', macs: ['52:54:00:00:00:0a'], arch: 'amd64', subarch: 'generic', role: 'server', os: 'debian', release: 'bookworm',
      status: 'ready', statusReason: '', statusChangedAt: NOW.toISOString(), ipv4: '', token: ids.token, netboot: true, hardware: {},
      createdAt: NOW.toISOString(), updatedAt: NOW.toISOString(), events: undefined,
    },
  );
  t.same(node.events, [{ at: NOW.toISOString(), type: 'created', message: 'created with status ready' }]);
  t.equal(make({ status: 'new' }).status, 'new');
  t.same(make({ hardware: { product: 'Box\nEvil', serial: '' } }).hardware, { product: 'Box Evil' }, 'hardware text is one line, empty dropped');
});

t.test('lifecycle: new → ready → deploying → deployed, failed, commissioning; anything else NODE_STATE', async (t) => {
  const node = make({ status: 'new' });
  const later = (s: number) => new Date(NOW.getTime() + s * 1000);
  transition(node, 'ready', later(1), 'accepted');
  transition(node, 'deploying', later(2), 'deploy');
  transition(node, 'deployed', later(3), '');
  t.equal(node.status, 'deployed');
  t.equal(node.statusChangedAt, later(3).toISOString());
  t.same(node.events.map((e) => e.message), ['created with status new', 'new → ready: accepted', 'ready → deploying: deploy', 'deploying → deployed']);
  transition(node, 'ready', later(4), 'released');
  transition(node, 'commissioning', later(5), '');
  transition(node, 'failed', later(6), 'disk broken');
  t.equal(node.statusReason, 'disk broken');
  transition(node, 'commissioning', later(7), 'retry');
  transition(node, 'ready', later(8), '');
  transition(node, 'deploying', later(9), '');
  transition(node, 'failed', later(10), 'timeout');
  t.equal(node.status, 'failed');

  // Every pair not in the table is refused, naming both statuses, and leaves the node untouched.
  let refused = 0;
  for (const from of NODE_STATUSES) {
    for (const to of NODE_STATUSES) {
      const n = make();
      n.status = from;
      const before = JSON.stringify(n);
      if (TRANSITIONS[from].includes(to)) {
        transition(n, to, NOW, '');
        t.equal(n.status, to);
      } else {
        refused++;
        t.throws(() => transition(n, to, NOW, ''), { code: 'NODE_STATE', message: `node web1 (node-aaaaaa) is ${from}; it cannot become ${to}` });
        t.equal(JSON.stringify(n), before, `${from} → ${to} changed nothing`);
      }
    }
  }
  t.ok(refused > 20);
  const expectTo = (from: NodeStatus, to: NodeStatus[]) => t.same([...TRANSITIONS[from]].sort(), to.sort(), from);
  expectTo('new', ['commissioning', 'ready']);
  expectTo('deployed', ['ready']);
  t.notOk(TRANSITIONS.new.includes('deploying'), 'a new node is never deployed without becoming ready first');
  t.notOk(TRANSITIONS.deploying.includes('deploying'), 'deploying twice is refused');
});

t.test('tokens: ≥128 random bits, URL-safe, distinct; comparison is exact', async (t) => {
  const seen = new Set<string>();
  for (let i = 0; i < 1000; i++) {
    const token = newToken();
    t.match(token, /^[A-Za-z0-9_-]{32}$/);
    seen.add(token);
  }
  t.equal(seen.size, 1000);
  t.ok(Buffer.from(newToken(), 'base64url').length * 8 >= 128, 'at least 128 bits');
  // The bits come from the random source, all of them.
  let asked = 0;
  const fixed = (size: number) => {
    asked = size;
    return Buffer.alloc(size, 0xab);
  };
  t.equal(newToken(fixed), Buffer.alloc(24, 0xab).toString('base64url'));
  t.ok(asked * 8 >= 128);
  const a = newToken();
  t.ok(tokenMatches(a, a));
  t.notOk(tokenMatches(`${a.slice(0, -1)}${a.endsWith('A') ? 'B' : 'A'}`, a), 'one character differs');
  t.notOk(tokenMatches(a.slice(0, 31), a), 'a prefix');
  t.notOk(tokenMatches(`${a}x`, a), 'longer');
  t.notOk(tokenMatches('', a), 'empty');
  t.notOk(tokenMatches(a.toLowerCase() === a ? a.toUpperCase() : a.toLowerCase(), a), 'case matters');
  const ids = new Set(Array.from({ length: 200 }, () => newSystemId()));
  for (const id of ids) t.match(id, /^node-[a-z0-9]{6}$/);
  t.ok(ids.size > 190);
});

t.test('constant-time compare: every comparison goes through crypto.timingSafeEqual, whatever the length', async (t) => {
  // Checked by counting calls (no wall-clock assertion): the time cannot depend on where the
  // first difference is, nor reveal the length by returning early without comparing.
  const calls: number[] = [];
  const crypto = await import('node:crypto');
  const mocked = t.mockRequire<typeof import('../../src/contract/node')>('../../src/contract/node', {
    'node:crypto': { ...crypto, timingSafeEqual: (x: Buffer, y: Buffer) => (calls.push(x.length), crypto.timingSafeEqual(x, y)) },
  });
  const token = 'k'.repeat(32);
  for (const presented of [token, 'x'.repeat(32), 'k', '', 'k'.repeat(64)]) {
    calls.length = 0;
    t.equal(mocked.tokenMatches(presented, token), presented === token);
    t.same(calls, [32], `one 32-byte comparison for a ${presented.length}-character token`);
  }
});

t.test('tokens are masked wherever a node is shown', async (t) => {
  const node = make();
  t.equal(maskToken(node.token), 'TTTT…');
  t.equal(maskToken('ab'), '****');
  const shown = publicNode(node);
  t.equal(shown.token, 'TTTT…');
  t.notOk(JSON.stringify(shown).includes(node.token));
  t.equal(node.token, ids.token, 'the stored node keeps its token');
});

t.test(`the event timeline keeps the last ${MAX_EVENTS} events, newest last; messages are one line`, async (t) => {
  const node = make();
  for (let i = 0; i < MAX_EVENTS * 3; i++) addEvent(node, new Date(NOW.getTime() + i), 'status', `event ${i}\nsecond line`);
  t.equal(node.events.length, MAX_EVENTS);
  t.equal(node.events.at(-1)!.message, `event ${MAX_EVENTS * 3 - 1} second line`);
  t.equal(node.events[0]!.message, `event ${MAX_EVENTS * 2} second line`);
  addEvent(node, NOW, 'x', 'y'.repeat(2000));
  t.equal(node.events.at(-1)!.message.length, 500, 'bounded');
  t.equal(node.events.length, MAX_EVENTS);
});

t.test('findConflict: duplicate id, hostname, MAC or address', async (t) => {
  const a = make();
  const b = createNode({ hostname: 'web2', macs: ['52:54:00:00:00:02'], ipv4: '10.0.0.2' }, NOW, { systemId: 'node-bbbbbb', token: 'x'.repeat(32) });
  t.equal(findConflict([a, b]), null);
  t.equal(findConflict([a, { ...b, hostname: 'web1' }]), 'hostname web1 is already used by web1 (node-aaaaaa)');
  t.equal(findConflict([a, { ...b, macs: ['52:54:00:00:00:01'] }]), 'MAC 52:54:00:00:00:01 is already used by web1 (node-aaaaaa)');
  t.equal(findConflict([a, { ...b, systemId: a.systemId }]), 'id node-aaaaaa is already used by web1 (node-aaaaaa)');
  t.equal(findConflict([{ ...a, ipv4: '10.0.0.2' }, b]), 'address 10.0.0.2 is already used by web1 (node-aaaaaa)');
});

t.test('startInstall: the transition, a new token, the binding cleared; a refused transition changes nothing', async (t) => {
  const node = createNode({ hostname: 'web1', macs: ['52:54:00:00:00:01'] }, new Date('2026-03-01T10:00:00Z'), { systemId: 'node-abc123', token: 'old-token-old-token-old-token-xx' });
  node.boundAddress = '10.0.0.5';
  startInstall(node, 'deploying', new Date('2026-03-01T10:01:00Z'), 'deploy', 'new-token-new-token-new-token-yy');
  t.same([node.status, node.token, node.boundAddress], ['deploying', 'new-token-new-token-new-token-yy', undefined]);
  const before = structuredClone(node);
  t.throws(() => startInstall(node, 'commissioning', new Date(), 'again', 'third-token-third-token-third-zz'), { code: 'NODE_STATE' });
  t.same(node, before, 'unchanged');
  t.same(NODE_STATUSES.filter(isInstalling), ['commissioning', 'deploying'], 'a token is a credential only while deploying or commissioning');
});

t.test('checkNode: a bound address must be an IPv4 host address (or absent / empty)', async (t) => {
  const node = createNode({ hostname: 'web1', macs: ['52:54:00:00:00:01'] }, new Date(), { systemId: 'node-abc123', token: 'x'.repeat(32) });
  t.equal(checkNode(node), null);
  t.equal(checkNode({ ...node, boundAddress: '' }), null);
  t.equal(checkNode({ ...node, boundAddress: '10.0.0.5' }), null);
  t.match(checkNode({ ...node, boundAddress: '127.0.0.1' }), { field: 'bound address', reason: /loopback/ });
  t.match(checkNode({ ...node, boundAddress: 5 as unknown as string }), { field: 'bound address', reason: /not a string/ });
});
