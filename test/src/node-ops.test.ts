import * as path from 'node:path';
import t, { type Test } from 'tap';
import { UecError } from '../../src/core/errors';
import {
  addNode,
  claimNodeAddress,
  deployNode,
  deployNodes,
  disableNetboot,
  editNode,
  enlistNode,
  failStuckDeployments,
  recordNodeEvent,
  recordStatusEvent,
  releaseNode,
  removeNode,
  selectArchitecture,
} from '../../src/region/node-ops';
import { createNode } from '../../src/contract/node';
import { createFileNodeStore } from '../../src/region/node-store';
import { readStoreFiles } from '../helpers/node-store-files';
import { loadRoles } from '../../src/contract/roles';
import { SHIPPED_TEMPLATES } from '../helpers/region-fixture';
import { scratchRoot } from '../helpers/scratch';

const T0 = Date.parse('2026-03-01T10:00:00.000Z');
function clockAt(seconds = 0) {
  let now = T0 + seconds * 1000;
  return { now: () => new Date(now), advance: (s: number) => void (now += s * 1000) };
}

async function setup(t: Test) {
  const paths = scratchRoot(t);
  const store = createFileNodeStore(paths);
  const roles = await loadRoles(paths, path.join(SHIPPED_TEMPLATES, 'roles'));
  const snapshot = () => readStoreFiles(paths);
  return { paths, store, roles, snapshot };
}

t.test('add, edit, remove: validated, with events; bad input changes nothing', async (t) => {
  const { store, snapshot } = await setup(t);
  const clock = clockAt();
  const node = await addNode(store, { hostname: 'Web1', macs: ['52-54-00-00-00-01'], ipv4: '10.0.0.5' }, clock);
  t.equal(node.hostname, 'web1');
  t.match(node.systemId, /^node-[a-z0-9]{6}$/);
  t.match(node.token, /^[A-Za-z0-9_-]{32}$/);
  const before = snapshot();
  await t.rejects(editNode(store, 'web1', { hostname: 'bad name' }, clock), { code: 'INVALID_VALUE', message: /hostname "bad name"/ });
  await t.rejects(editNode(store, 'web1', { macs: [] }, clock), { code: 'INVALID_VALUE', message: /needs at least one MAC/ });
  await t.rejects(editNode(store, 'web1', { macs: ['xx'] }, clock), { code: 'INVALID_VALUE', message: /MAC "xx"/ });
  await t.rejects(editNode(store, 'web1', { arch: 'mips' }, clock), { code: 'INVALID_VALUE' });
  await t.rejects(editNode(store, 'nosuch', { arch: 'arm64' }, clock), { code: 'NODE_UNKNOWN', message: /no node "nosuch"/ });
  t.equal(snapshot(), before, 'nothing written');
  clock.advance(1);
  const edited = await editNode(store, node.systemId, { hostname: 'web2', arch: 'arm64', macs: ['52:54:00:00:00:02', '52:54:00:00:00:03'], ipv4: '' }, clock);
  t.same([edited.hostname, edited.arch, edited.macs, edited.ipv4], ['web2', 'arm64', ['52:54:00:00:00:02', '52:54:00:00:00:03'], '']);
  t.same(edited.events.at(-1), { at: new Date(T0 + 1000).toISOString(), type: 'edited', message: 'changed hostname, macs, arch, ipv4' });
  const same = await editNode(store, 'web2', { arch: 'arm64' }, clock);
  t.equal(same.events.length, edited.events.length, 'no change, no event');
  const removed = await removeNode(store, '52:54:00:00:00:03');
  t.equal(removed.systemId, node.systemId);
  t.same(await store.list(), []);
  await t.rejects(removeNode(store, 'web2'), { code: 'NODE_UNKNOWN' });
});

t.test('deploy: new → ready → deploying with role and release; unknown role and missing packages refused, state unchanged', async (t) => {
  const { store, roles, snapshot } = await setup(t);
  const clock = clockAt();
  const node = await addNode(store, { hostname: 'web1', macs: ['52:54:00:00:00:01'], status: 'new' }, clock);
  await disableNetboot(store, node.systemId, clock);
  const before = snapshot();
  await t.rejects(deployNode(store, 'web1', roles, { role: 'nosuch' }, clock), { code: 'ROLE_UNKNOWN', message: /no role "nosuch"/ });
  await t.rejects(deployNode(store, 'web1', roles, { role: 'node-controller' }, clock), {
    code: 'ROLE_UNKNOWN',
    message: /role node-controller has no package list for release bookworm: its packages exist only for karmic, lucid/,
  });
  await t.rejects(deployNode(store, 'web1', roles, { release: 'jessie' }, clock), { code: 'ROLE_UNKNOWN', message: /role server has no package list for release jessie/ });
  await t.rejects(deployNode(store, 'web1', roles, { release: 'a b' }, clock), { code: 'INVALID_VALUE' });
  t.equal(snapshot(), before, 'refusals write nothing');
  const deployed = await deployNode(store, 'web1', roles, { release: 'trixie' }, clock);
  t.same([deployed.status, deployed.release, deployed.role, deployed.netboot], ['deploying', 'trixie', 'server', true]);
  t.same(deployed.events.filter((e) => e.type === 'status').map((e) => e.message), ['new → ready: accepted for deployment', 'ready → deploying: deploy role server on debian trixie']);
  await t.rejects(deployNode(store, 'web1', roles, {}, clock), { code: 'NODE_STATE', message: /is deploying; it cannot become deploying/ });
});

t.test('two concurrent deploys of the same node (two stores, as two processes would): one wins, the other NODE_STATE', async (t) => {
  const { paths, store, roles } = await setup(t);
  for (let round = 0; round < 10; round++) {
    const node = await addNode(store, { hostname: `n${round}`, macs: [`52:54:00:00:01:0${round}`] });
    const other = createFileNodeStore(paths);
    const results = await Promise.allSettled([deployNode(store, node.systemId, roles), deployNode(other, node.systemId, roles, { release: 'trixie' })]);
    const ok = results.filter((r) => r.status === 'fulfilled');
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    t.equal(ok.length, 1, `round ${round}: one wins`);
    t.equal(failed.length, 1);
    t.equal((failed[0]!.reason as UecError).code, 'NODE_STATE');
    const stored = (await store.find(node.systemId))!;
    const winner = (ok[0] as PromiseFulfilledResult<typeof stored>).value;
    t.equal(stored.status, 'deploying');
    t.equal(stored.release, winner.release, 'the store holds exactly the winner');
    t.equal(stored.events.filter((e) => e.message.startsWith('ready → deploying')).length, 1, 'one deploy event');
  }
});

t.test('release: ready with netboot on from any status', async (t) => {
  const { store, roles } = await setup(t);
  const node = await addNode(store, { hostname: 'web1', macs: ['52:54:00:00:00:01'] });
  await deployNode(store, 'web1', roles);
  await disableNetboot(store, node.systemId);
  const released = await releaseNode(store, 'web1');
  t.same([released.status, released.netboot], ['ready', true]);
  const again = await releaseNode(store, 'web1');
  t.equal(again.events.length, released.events.length, 'releasing a ready node adds no status event');
});

t.test('status events: installing/installed on deploying, deployed finishes, failed with reason, else NODE_STATE', async (t) => {
  const { store, roles } = await setup(t);
  const node = await addNode(store, { hostname: 'web1', macs: ['52:54:00:00:00:01'] });
  await t.rejects(recordStatusEvent(store, node.systemId, 'installing', ''), { code: 'NODE_STATE', message: /is ready, not deploying; installing ignored/ });
  await t.rejects(recordStatusEvent(store, 'node-zzzzzz', 'installing', ''), { code: 'NODE_UNKNOWN' });
  await deployNode(store, 'web1', roles);
  await recordStatusEvent(store, node.systemId, 'installing', 'early\ncommand');
  t.same((await store.find('web1'))!.events.at(-1)!.message, 'early command');
  await recordStatusEvent(store, node.systemId, 'deployed', '');
  t.equal((await store.find('web1'))!.status, 'deployed');
  await t.rejects(recordStatusEvent(store, node.systemId, 'failed', 'late'), { code: 'NODE_STATE' });
});

t.test('enlist: new node with MAC, arch and hardware; the same MAC again never duplicates and never changes the node', async (t) => {
  const { store } = await setup(t);
  const first = await enlistNode(store, { mac: '52-54-00-AA-00-01', arch: 'arm64', subarch: 'uefi', hardware: { manufacturer: 'QEMU' } });
  t.equal(first.created, true);
  t.same([first.node.status, first.node.arch, first.node.subarch, first.node.macs, first.node.hostname], ['new', 'arm64', 'uefi', ['52:54:00:aa:00:01'], first.node.systemId]);
  const again = await enlistNode(store, { mac: '52:54:00:aa:00:01', hardware: { manufacturer: 'QEMU' } });
  t.equal(again.created, false);
  t.equal(again.node.events.length, first.node.events.length, 'nothing new: no event');
  const more = await enlistNode(store, { mac: '525400aa0001', hardware: { serial: 'S1' } });
  t.same(more.node.hardware, { manufacturer: 'QEMU' }, 'recorded details kept (issue 13: enlistment is unauthenticated)');
  t.match(more.node.events.at(-1), { type: 'enlisted', message: /reported serial "S1", recorded details kept/ });
  t.equal((await store.list()).length, 1);
  await t.rejects(enlistNode(store, { mac: 'garbage' }), { code: 'INVALID_VALUE' });
  const results = await Promise.all(Array.from({ length: 10 }, () => enlistNode(store, { mac: '52:54:00:bb:00:01' })));
  t.equal(results.filter((r) => r.created).length, 1, 'concurrent enlistments of one machine create one node');
});

t.test('event ids (an edge\'s queue delivering again): an event with an id already recorded changes nothing', async (t) => {
  const { store, roles } = await setup(t);
  const node = await addNode(store, { hostname: 'web1', macs: ['52:54:00:00:00:01'] });
  await deployNode(store, 'web1', roles);
  await recordNodeEvent(store, node.systemId, 'netboot', 'served', undefined, 'evt-00000001');
  await recordStatusEvent(store, node.systemId, 'installing', 'step', undefined, 'evt-00000002');
  const once = (await store.find('web1'))!.events.length;
  const cursor = await store.currentCursor();
  await recordNodeEvent(store, node.systemId, 'netboot', 'served', undefined, 'evt-00000001');
  await recordStatusEvent(store, node.systemId, 'installing', 'step', undefined, 'evt-00000002');
  await disableNetboot(store, node.systemId, undefined, 'evt-00000003');
  await disableNetboot(store, node.systemId, undefined, 'evt-00000003');
  const events = (await store.find('web1'))!.events;
  t.equal(events.length, once + 1, 'each id once: only the first disable-netboot was new');
  t.equal(await store.currentCursor(), cursor + 1, 'the repeats wrote nothing');
  await recordNodeEvent(store, node.systemId, 'netboot', 'served', undefined);
  t.equal((await store.find('web1'))!.events.length, once + 2, 'without an id, every call records');
});

t.test('event ids: a repeated deployed (nothing new) does not take over the id of the event before it', async (t) => {
  const { store, roles } = await setup(t);
  const node = await addNode(store, { hostname: 'web1', macs: ['52:54:00:00:00:01'] });
  await deployNode(store, 'web1', roles);
  await recordStatusEvent(store, node.systemId, 'deployed', 'first boot', undefined, 'evt-0000000a');
  const marked = (await store.find('web1'))!.events.filter((e) => e.id !== undefined).map((e) => e.id);
  t.same(marked, ['evt-0000000a']);
  await recordStatusEvent(store, node.systemId, 'deployed', 'first boot again', undefined, 'evt-0000000b');
  t.same((await store.find('web1'))!.events.filter((e) => e.id !== undefined).map((e) => e.id), ['evt-0000000a'], 'the first id stays where it was');
  await recordStatusEvent(store, node.systemId, 'deployed', 'first boot', undefined, 'evt-0000000a');
  t.equal((await store.find('web1'))!.status, 'deployed', 'and a repeat of the first is still recognised');
});

t.test('failStuckDeployments: 1,200 deploying nodes, read and failed in batches, none missed', async (t) => {
  const { store, roles } = await setup(t);
  const clock = clockAt();
  const hex = (i: number) => `${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
  await store.modify([], (_f, writes) => {
    for (let i = 0; i < 1200; i++) writes.put(createNode({ hostname: `s${i}`, macs: [`52:54:00:01:${hex(i)}`] }, clock.now(), { systemId: `node-s${String(i).padStart(5, '0')}`, token: 'x'.repeat(32) }));
  });
  await deployNodes(store, Array.from({ length: 1200 }, (_, i) => `s${i}`), roles, {}, clock);
  clock.advance(1000);
  const failed = await failStuckDeployments(store, 120, clock);
  t.equal(failed.length, 1200);
  t.equal((await store.countByStatus()).failed, 1200);
});

t.test('selectArchitecture: iPXE buildarch and platform', async (t) => {
  t.same(selectArchitecture('x86_64', 'efi'), { arch: 'amd64', subarch: 'uefi' });
  t.same(selectArchitecture('i386', 'pcbios'), { arch: 'i386', subarch: 'bios' });
  t.same(selectArchitecture('arm64', 'efi'), { arch: 'arm64', subarch: 'uefi' });
  t.same(selectArchitecture(undefined, undefined), { arch: 'amd64', subarch: 'generic' });
});

t.test('failStuckDeployments: only deploying nodes past the timeout, with the reason', async (t) => {
  const { store, roles } = await setup(t);
  const clock = clockAt();
  await addNode(store, { hostname: 'a', macs: ['52:54:00:00:00:01'] }, clock);
  await addNode(store, { hostname: 'b', macs: ['52:54:00:00:00:02'] }, clock);
  await deployNode(store, 'a', roles, {}, clock);
  clock.advance(100);
  await deployNode(store, 'b', roles, {}, clock);
  clock.advance(60);
  const failed = await failStuckDeployments(store, 120, clock);
  t.same(failed.map((n) => n.hostname), ['a']);
  t.equal((await store.find('a'))!.statusReason, 'no deployed report within 120 s of the deploy');
  t.equal((await store.find('b'))!.status, 'deploying');
});

t.test('a deploy rotates the token and clears the address binding; deployNodes (the web UI) too', async (t) => {
  const { store, roles } = await setup(t);
  const clock = clockAt();
  const added = await addNode(store, { hostname: 'web1', macs: ['52:54:00:00:00:01'] }, clock);
  const first = await deployNode(store, 'web1', roles, {}, clock);
  t.not(first.token, added.token, 'deploy: a new token');
  t.match(first.token, /^[A-Za-z0-9_-]{32}$/);
  t.same((await claimNodeAddress(store, first.systemId, '10.2.0.5', null, clock)).ownership, { owned: true, rule: 'binding', bind: true });
  t.equal((await store.find('web1'))!.boundAddress, '10.2.0.5');
  t.equal((await store.find('web1'))!.events.at(-1)!.message, 'this deploy is bound to 10.2.0.5 (binding)');
  await recordStatusEvent(store, first.systemId, 'failed', 'partman', clock);
  await releaseNode(store, 'web1', clock);
  const [second] = await deployNodes(store, ['web1'], roles, {}, clock);
  t.not(second!.token, first.token, 'a second deploy: another token');
  t.equal((await store.find('web1'))!.boundAddress, undefined, 'the binding of the last deploy is gone');
  t.same((await claimNodeAddress(store, first.systemId, '10.2.0.6', null, clock)).ownership, { owned: true, rule: 'binding', bind: true }, 'the new deploy binds afresh');
});

t.test('claimNodeAddress: a refusal or a bound address writes nothing; not installing → NODE_STATE; unknown → NODE_UNKNOWN', async (t) => {
  const { store, roles, snapshot } = await setup(t);
  const clock = clockAt();
  await addNode(store, { hostname: 'web1', macs: ['52:54:00:00:00:01'] }, clock);
  await t.rejects(claimNodeAddress(store, (await store.find('web1'))!.systemId, '10.0.0.5', null, clock), { code: 'NODE_STATE', message: /web1 .* is ready, not deploying or commissioning/ });
  const node = await deployNode(store, 'web1', roles, {}, clock);
  await t.rejects(claimNodeAddress(store, 'node-zzzzzz', '10.0.0.5', null, clock), { code: 'NODE_UNKNOWN' });
  const before = snapshot();
  t.match((await claimNodeAddress(store, node.systemId, '10.0.0.9', { mac: '52:54:00:00:00:99', router: false }, clock)).ownership, { owned: false });
  t.match((await claimNodeAddress(store, node.systemId, '127.0.0.1', null, clock)).ownership, { owned: false });
  t.equal(snapshot(), before, 'refusals write nothing');
  await claimNodeAddress(store, node.systemId, '10.0.0.5', { mac: '52:54:00:00:00:01', router: false }, clock);
  const bound = snapshot();
  t.equal((await store.find('web1'))!.boundAddress, '10.0.0.5', 'an on-link first request binds too');
  t.same((await claimNodeAddress(store, node.systemId, '10.0.0.5', null, clock)).ownership, { owned: true, rule: 'binding', bind: false });
  t.same((await claimNodeAddress(store, node.systemId, '10.0.0.8', { mac: '52:54:00:00:00:01', router: false }, clock)).ownership, { owned: true, rule: 'neighbour', bind: false });
  t.equal(snapshot(), bound, 'accepted requests of a bound deploy write nothing');
});

t.test('claimNodeAddress: two routed first claims at once, from two stores (two processes): one binds, the other is refused', async (t) => {
  const { paths, store, roles } = await setup(t);
  const clock = clockAt();
  await addNode(store, { hostname: 'web1', macs: ['52:54:00:00:00:01'] }, clock);
  const node = await deployNode(store, 'web1', roles, {}, clock);
  const other = createFileNodeStore(paths);
  const results = await Promise.all([claimNodeAddress(store, node.systemId, '10.2.0.5', null, clock), claimNodeAddress(other, node.systemId, '10.2.0.6', null, clock)]);
  t.same(results.map((r) => r.ownership.owned).sort(), [false, true]);
  const winner = results.find((r) => r.ownership.owned)!;
  t.equal((await store.find('web1'))!.boundAddress, winner.node.boundAddress);
});
