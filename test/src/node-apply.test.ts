/**
 * applyNodeChanges (configurator/command.ts) with the real dhcpd and tftpd components under a
 * scratch root: a node change writes only that node's files, reads no other node (the store's
 * list is never called), reloads only what dnsmasq needs (nothing for a new reservation,
 * SIGHUP for a changed or removed one, nothing for boot files), a second identical change
 * does nothing, and any sequence of node changes leaves exactly the tree a full apply writes
 * (property test over random sequences).
 */
import * as fs from 'node:fs';
import fc from 'fast-check';
import t from 'tap';
import { main, type Io } from '../../src/cli';
import { applyComponents, applyNodeChanges, type Session } from '../../src/configurator/command';
import type { ChangedNode } from '../../src/configurator/component';
import { loadComponents, mergeSchemas } from '../../src/configurator/component';
import { createNode, type Node } from '../../src/contract/node';
import { SILENT_LOGGER } from '../../src/core/log';
import { staticNetworkFacts } from '../../src/core/network-facts';
import type { Paths } from '../../src/core/paths';
import type { ServiceControl } from '../../src/core/services';
import type { NodeStore } from '../../src/region/node-store';
import { SHIPPED_TEMPLATES } from '../helpers/region-fixture';
import { scratchRoot, snapshotTree } from '../helpers/scratch';

process.env.UEC_PROVISIONING_TEMPLATES = SHIPPED_TEMPLATES;

const NETWORK = staticNetworkFacts(
  [{ name: 'prov0', mac: '52:54:00:44:00:01', up: true, loopback: false, virtual: true, ipv4: [{ address: '10.44.0.1', prefix: 16 }], ipv6: [] }],
  null,
);
const COMPONENTS = loadComponents().filter((c) => ['common', 'dhcpd', 'tftpd'].includes(c.name));

/** Reloads recorded by name; the dnsmasq instances are not running here. */
function recordingServices() {
  const calls: string[] = [];
  const control: ServiceControl = { kind: 'none', reload: async (s) => (calls.push(s.name), 'reloaded') };
  return { control, calls };
}

/** A session over `nodes`; with `listFails`, reading every node is an error (a node apply must not). */
function sessionFor(paths: Paths, nodes: () => Node[], listFails = false): Session {
  const store = {
    list: async () => {
      if (listFails) throw new Error('a node apply read every node');
      return structuredClone(nodes());
    },
  } as unknown as NodeStore;
  const io: Io = { stdout: () => undefined, stderr: () => undefined, env: {} };
  return { io, paths, log: SILENT_LOGGER, json: false, components: COMPONENTS, schema: mergeSchemas(COMPONENTS), network: () => NETWORK, nodeStore: () => store };
}

/** Every file with its mode and text, the scratch root's own path and the audit log left out. */
function treeOf(paths: Paths): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [file, value] of Object.entries(snapshotTree(paths.root))) {
    if (file.startsWith('var/log/')) continue;
    const [mode, base64] = value.split(' ') as [string, string];
    out[file] = `${mode} ${Buffer.from(base64, 'base64').toString('utf8').split(paths.root).join('<root>')}`;
  }
  return out;
}

async function configure(paths: Paths): Promise<void> {
  let err = '';
  const io: Io = { stdout: () => undefined, stderr: (s) => (err += s), env: { UEC_PROVISIONING_SERVICE_CONTROL: 'none' } };
  const code = await main(['--root', paths.root, 'config', 'set', 'dhcp.mode=full', 'dhcp.interface=prov0', 'server.interface=prov0', 'dhcp.dns_servers=10.44.0.53'], io, { network: NETWORK });
  if (code !== 0) throw new Error(err);
}

function makeNode(i: number, over: { mac?: number; ip?: number | null; status?: 'ready' | 'deploying'; netboot?: boolean; host?: number } = {}): Node {
  const hex = (n: number) => n.toString(16).padStart(2, '0');
  const mac = over.mac ?? i;
  const node = createNode(
    { hostname: `n${i}h${over.host ?? 0}`, macs: [`52:54:00:01:${hex(mac >> 8)}:${hex(mac & 255)}`, ...(i % 3 === 0 ? [`52:54:00:02:${hex(mac >> 8)}:${hex(mac & 255)}`] : [])], ipv4: over.ip === null ? '' : `10.44.1.${(over.ip ?? i) % 250 + 1}` },
    new Date('2026-01-01T00:00:00Z'),
    { systemId: `node-${String(i).padStart(6, '0')}`, token: `t${'x'.repeat(31)}${i}` },
  );
  return { ...node, status: over.status ?? 'ready', netboot: over.netboot ?? true };
}

t.test('a node change writes only its files, reads no other node, reloads only what dnsmasq needs', async (t) => {
  const paths = scratchRoot(t);
  await configure(paths);
  let nodes = [makeNode(1), makeNode(2)];
  const spy = recordingServices();
  await applyComponents(sessionFor(paths, () => nodes), ['dhcpd', 'tftpd']);
  const session = sessionFor(paths, () => nodes, true);
  const apply = (changes: ChangedNode[]) => applyNodeChanges(session, changes, { services: spy.control });
  const summary = (results: Awaited<ReturnType<typeof apply>>) => results.map((r) => [r.component, r.written.length, r.removed.length, r.reloaded]);

  const added = makeNode(3);
  nodes = [...nodes, added];
  const r1 = await apply([{ systemId: added.systemId, node: added }]);
  t.same(summary(r1), [['dhcpd', 1, 0, []], ['tftpd', 4, 0, []]], 'added: one reservation, two boot files per MAC, nothing reloaded');
  t.match(fs.readFileSync(paths.resolve('/var/lib/uec-provisioning/dhcpd/hosts.d/node-000003'), 'utf8'), /^52:54:00:01:00:03,52:54:00:02:00:03,10\.44\.1\.4,n3h0$/m);

  const snap = snapshotTree(paths.root);
  t.same(summary(await apply([{ systemId: added.systemId, node: added }])), [['dhcpd', 0, 0, []], ['tftpd', 0, 0, []]], 'the same change again: nothing');
  t.same(snapshotTree(paths.root), snap, 'not a byte changed');

  const deploying = { ...added, status: 'deploying' as const };
  t.same(summary(await apply([{ systemId: added.systemId, node: deploying }])), [['dhcpd', 0, 0, []], ['tftpd', 4, 0, []]], 'deploy: boot files only, nothing reloaded');

  const moved = { ...deploying, ipv4: '10.44.1.200' };
  t.same(summary(await apply([{ systemId: added.systemId, node: moved }])), [['dhcpd', 1, 0, ['uec-provisioning-dhcpd']], ['tftpd', 0, 0, []]], 'changed address: SIGHUP');

  t.same(summary(await apply([{ systemId: added.systemId, node: null }])), [['dhcpd', 0, 1, ['uec-provisioning-dhcpd']], ['tftpd', 0, 4, []]], 'removed: its files go, SIGHUP');
  t.notOk(fs.existsSync(paths.resolve('/var/lib/uec-provisioning/dhcpd/hosts.d/node-000003')));
  t.ok(fs.existsSync(paths.resolve('/var/lib/uec-provisioning/dhcpd/hosts.d/node-000001')), "the other nodes' files stay");
  t.equal(spy.calls.length, 2, 'two reloads in all');
});

t.test('a changed node that fails checkNode is reported and its files removed, as a full apply leaves it out', async (t) => {
  const paths = scratchRoot(t);
  await configure(paths);
  const good = makeNode(1);
  await applyComponents(sessionFor(paths, () => [good]), ['dhcpd', 'tftpd']);
  const warnings: string[] = [];
  const session = { ...sessionFor(paths, () => [good], true), log: { ...SILENT_LOGGER, warn: (m: string) => void warnings.push(m) } } as Session;
  const broken = { ...good, hostname: 'bad_name' };
  const results = await applyNodeChanges(session, [{ systemId: good.systemId, node: broken }], { services: recordingServices().control });
  t.same(results.map((r) => r.removed.length), [1, 2]);
  t.match(warnings.join('\n'), /node bad_name \(node-000001\): hostname .* left out/);
});

/** One step of a random history: add, edit (address, MACs, hostname, status, netboot) or remove. */
const STEP = fc.record({
  kind: fc.constantFrom<'add' | 'edit' | 'remove'>('add', 'add', 'edit', 'edit', 'remove'),
  index: fc.integer({ min: 1, max: 8 }),
  mac: fc.integer({ min: 0, max: 3 }),
  ip: fc.option(fc.integer({ min: 0, max: 3 }), { nil: null }),
  status: fc.constantFrom<'ready' | 'deploying'>('ready', 'deploying'),
  netboot: fc.boolean(),
  host: fc.integer({ min: 0, max: 2 }),
});

t.test('any sequence of node applies leaves exactly the tree of a full apply (property)', async (t) => {
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(fc.array(STEP, { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 8 }), async (batches) => {
      runs++;
      const incremental = scratchRoot(t);
      const full = scratchRoot(t);
      await configure(incremental);
      await configure(full);
      const store = new Map<string, Node>();
      const all = () => [...store.values()];
      await applyComponents(sessionFor(incremental, all), ['dhcpd', 'tftpd']);
      const services = recordingServices().control;
      for (const batch of batches) {
        const changes: ChangedNode[] = [];
        for (const step of batch) {
          const id = `node-${String(step.index).padStart(6, '0')}`;
          // MACs and addresses unique per node (the store's rule): derived from the index.
          const node = makeNode(step.index, { mac: step.index * 4 + step.mac, ip: step.ip === null ? null : step.index * 4 + step.ip, status: step.status, netboot: step.netboot, host: step.host });
          if (step.kind === 'remove' || (step.kind === 'edit' && !store.has(id))) {
            store.delete(id);
            changes.push({ systemId: id, node: null });
          } else {
            store.set(id, node);
            changes.push({ systemId: id, node });
          }
        }
        await applyNodeChanges(sessionFor(incremental, all, true), changes, { services });
      }
      await applyComponents(sessionFor(full, all), ['dhcpd', 'tftpd']);
      const a = treeOf(incremental);
      const b = treeOf(full);
      t.same(a, b, `same tree after ${batches.flat().length} changes`);
      const again = await applyComponents(sessionFor(incremental, all), ['dhcpd', 'tftpd']);
      return JSON.stringify(a) === JSON.stringify(b) && again.every((r) => r.written.length + r.removed.length === 0);
    }),
    { numRuns: 25, seed: 1414 },
  );
  t.equal(runs, 25);
});
