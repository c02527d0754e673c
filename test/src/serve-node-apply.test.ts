/**
 * serve re-applies after node changes with the changed nodes only: the store's NodeChange
 * list reaches onNodesChanged (a removed node as null), changes made while an apply runs make
 * one apply after it, and no store change ever asks for a whole apply (null).
 */
import t from 'tap';
import { startService } from '../../src/cli/serve';
import type { ChangedNode } from '../../src/configurator/component';
import { loadComponents, mergeSchemas } from '../../src/configurator/component';
import { loadConfig } from '../../src/core/config';
import { staticNetworkFacts } from '../../src/core/network-facts';
import { loadServerAddress } from '../../src/core/server-address';
import { addNode, removeNode } from '../../src/region/node-ops';
import { createFileNodeStore } from '../../src/region/node-store';
import { SHIPPED_TEMPLATES, memoryLog } from '../helpers/region-fixture';
import { scratchRoot } from '../helpers/scratch';

process.env.UEC_PROVISIONING_TEMPLATES = SHIPPED_TEMPLATES;
const network = staticNetworkFacts([{ name: 'eth0', mac: '52:54:00:00:00:01', up: true, loopback: false, virtual: false, ipv4: [{ address: '192.0.2.77', prefix: 24 }], ipv6: [] }], {
  interface: 'eth0',
  gateway: '192.0.2.1',
});

t.test('onNodesChanged gets the changed nodes, one apply at a time, never a whole apply', async (t) => {
  const paths = scratchRoot(t);
  const config = await loadConfig(paths, mergeSchemas(loadComponents()));
  const server = await loadServerAddress(config, network);
  const store = createFileNodeStore(paths);
  const applies: (string[] | null)[] = [];
  let release: () => void = () => undefined;
  let gate: Promise<void> | undefined;
  const running = await startService({
    paths, config, server, store, log: memoryLog().log, port: 0, host: '127.0.0.1',
    onNodesChanged: async (changes: readonly ChangedNode[] | null) => {
      applies.push(changes && changes.map((c) => `${c.systemId}${c.node ? `=${c.node.hostname}` : ' removed'}`));
      await gate;
    },
  });
  t.teardown(() => running.close());
  const settled = async () => {
    for (let i = 0; i < 100 && applies.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  };

  const web1 = await addNode(store, { hostname: 'web1', macs: ['52:54:00:00:02:01'] });
  await settled();
  t.same(applies, [[`${web1.systemId}=web1`]], 'the added node alone');

  applies.length = 0;
  gate = new Promise((r) => (release = r));
  const web2 = await addNode(store, { hostname: 'web2', macs: ['52:54:00:00:02:02'] });
  await settled(); // this apply waits on the gate
  const web3 = await addNode(store, { hostname: 'web3', macs: ['52:54:00:00:02:03'] });
  await removeNode(store, 'web1');
  await new Promise((r) => setTimeout(r, 50));
  t.equal(applies.length, 1, 'nothing else starts while an apply runs');
  gate = undefined;
  release();
  await running.close();
  t.same(applies, [[`${web2.systemId}=web2`], [`${web3.systemId}=web3`, `${web1.systemId} removed`]], 'what came meanwhile: one apply after it');
  t.notOk(applies.includes(null), 'never a whole apply');
});

t.test("a commit of another process (the web UI's deploy) reaches serve's apply through the store's feed", async (t) => {
  const paths = scratchRoot(t);
  const config = await loadConfig(paths, mergeSchemas(loadComponents()));
  const server = await loadServerAddress(config, network);
  const store = createFileNodeStore(paths);
  const applies: (string[] | null)[] = [];
  const running = await startService({
    paths, config, server, store, log: memoryLog().log, port: 0, host: '127.0.0.1',
    onNodesChanged: async (changes: readonly ChangedNode[] | null) => {
      applies.push(changes && changes.map((c) => `${c.systemId}${c.node ? `=${c.node.hostname}` : ' removed'}`));
    },
  });
  t.teardown(() => running.close());
  // Another process: its own store on the same files (as the web UI has); its onChange is not serve's.
  const other = createFileNodeStore(paths);
  t.teardown(() => other.close());
  const web9 = await addNode(other, { hostname: 'web9', macs: ['52:54:00:00:02:09'] });
  for (let i = 0; i < 300 && applies.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  t.same(applies, [[`${web9.systemId}=web9`]], "the other process's node, alone");
});

