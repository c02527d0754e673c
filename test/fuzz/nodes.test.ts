/**
 * Fuzz: node fields (hostname, MACs, arch, role, os, release, IPv4, hardware details) through
 * the node-add path every writer uses (addNode), a few through `nodes add`, and CSV rows
 * through the web UI's import API with an admin API token. Refused → one line naming the
 * field, the store (and the whole root) unchanged. Accepted → the node's DHCP host line,
 * pxelinux and GRUB files, iPXE script and preseeds render and pass the real tools.
 */
import fc from 'fast-check';
import t, { type Test } from 'tap';
import { UecError } from '../../src/core/errors';
import type { NewNodeInput } from '../../src/contract/node';
import { addNode, deployNode } from '../../src/region/node-ops';
import { loadRoles } from '../../src/contract/roles';
import { createFileNodeStore, type NodeStore } from '../../src/region/node-store';
import { readStoreFiles, writeStoreFiles } from '../helpers/node-store-files';
import type { Paths } from '../../src/core/paths';
import { createAccountStore } from '../../packages/webui/accounts';
import { NODES } from '../packages/tftpd/nodes';
import { startHarness } from '../packages/webui/harness';
import { scratchRoot } from '../helpers/scratch';
import { KNOWN_RAW_SEPARATORS, assertProperty, checkRenders, cli, fuzzParameters, hashTree, hostileString, isOneLine, isOneLineButRawSeparators, looksLikeCrash, newTally, reportTally, runFactor, show, writeBaseSettings, type Tally } from './lib';

const RUNS = 150;
const CSV_RUNS = 60;
const CLI_RUNS = 10;
/** Accepted nodes whose files go through the real tools in CI (each is an apply + checks). */
const VALIDATED_IN_CI = 6;

const hex = fc.integer({ min: 0, max: 255 }).map((n) => n.toString(16).padStart(2, '0'));
/** Unicast, locally administered (first octet x2/x6/xa/xe): never one of the fixture nodes' 52:54:00 MACs. */
const macValid = fc.tuple(fc.constantFrom('02', '06', '0a', 'ae', 'f2'), hex, hex, hex, hex, hex).chain((octets) =>
  fc.constantFrom(octets.join(':'), octets.join('-'), octets.join(''), octets.join(':').toUpperCase()),
);
/** Host addresses of the scratch LAN 10.20.0.0/24 outside the pool (10.20.0.100-200). */
const ipv4Valid = fc.integer({ min: 10, max: 99 }).map((n) => `10.20.0.${n}`);
const hostnameValid = fc.oneof(fc.stringMatching(/^[a-z][a-z0-9-]{0,20}[a-z0-9]$/), fc.constantFrom('web1', 'node-7.lab.example.org', 'A', 'x.'));
const wordValid = fc.oneof(fc.stringMatching(/^[a-z0-9][a-z0-9._+-]{0,15}$/), fc.constantFrom('server', 'bookworm', 'debian', 'trixie'));

const roleValid = fc.oneof({ weight: 3, arbitrary: fc.constantFrom('server', 'walrus', 'node-controller') }, { weight: 1, arbitrary: wordValid });
const releaseValid = fc.oneof({ weight: 3, arbitrary: fc.constantFrom('bookworm', 'trixie') }, { weight: 1, arbitrary: wordValid });

/** Mostly the valid shape (so many inputs get through and render), sometimes hostile. */
const mostly = (valid: fc.Arbitrary<string>) => fc.oneof({ weight: 4, arbitrary: valid }, { weight: 1, arbitrary: hostileString(valid) });

const nodeInput: fc.Arbitrary<NewNodeInput> = fc.record(
  {
    hostname: mostly(hostnameValid),
    macs: fc.array(mostly(macValid), { minLength: 0, maxLength: 3 }),
    arch: mostly(fc.constantFrom('amd64', 'arm64', 'i386')),
    role: mostly(roleValid),
    os: mostly(fc.oneof(fc.constant('debian'), wordValid)),
    release: mostly(releaseValid),
    ipv4: mostly(ipv4Valid),
    hardware: fc.record({ manufacturer: hostileString(fc.constant('QEMU')), serial: hostileString(fc.constant('S1')), product: hostileString(fc.constant('Standard PC')) }, { requiredKeys: [] }),
  },
  { requiredKeys: ['hostname', 'macs'] },
);

const NAMES_A_FIELD = /hostname|MAC|architecture|role|os |os"|release|IPv4|address|node|CSV line/;

/** A scratch root with the fixture nodes and settings under which everything renders. */
async function prepare(paths: Paths): Promise<NodeStore> {
  const store = createFileNodeStore(paths);
  await store.update((nodes) => void nodes.push(...NODES));
  await writeBaseSettings(paths);
  return store;
}

/**
 * Deploy the accepted node with its own role and release, as an admin would (deployNode
 * refuses a role that does not exist or has no packages for the release: then the node
 * stays ready, and is rendered as ready, without preseeds, which are served only while
 * deploying); check every file of both states with the real tools.
 */
async function validateNode(t: Test, tally: Tally, paths: Paths, store: NodeStore, systemId: string, what: string): Promise<void> {
  let node = (await store.list()).find((n) => n.systemId === systemId)!;
  const first = await checkRenders(paths, { hostname: node.hostname, mac: node.macs[0]!, preseeds: false });
  let deployed = false;
  try {
    node = await deployNode(store, systemId, await loadRoles(paths));
    deployed = true;
  } catch (err) {
    if (!(err instanceof UecError)) throw err;
    t.comment(`${what}: not deployable: ${err.message}`);
  }
  const second = deployed ? await checkRenders(paths, { hostname: node.hostname, mac: node.macs[0]! }) : { problems: [] };
  const problems = [...first.problems, ...second.problems];
  const refusedByApply = first.refusedByApply ?? second.refusedByApply;
  if (refusedByApply) {
    tally.refusedByApply++;
    t.comment(`${what}: apply refused, nothing written: ${refusedByApply}`);
    return;
  }
  tally.validated++;
  if (problems.length > 0) tally.wronglyAccepted++;
  t.same(problems, [], `${what}: every render passes the real tools`);
}

t.test('node fields through addNode', async (t) => {
  const paths = scratchRoot(t);
  const store = await prepare(paths);
  const baseStore = readStoreFiles(paths);
  const tally = newTally('node fields (addNode, nodes add)');
  const accepted: NewNodeInput[] = [];
  await assertProperty(
    t,
    'addNode',
    fc.asyncProperty(nodeInput, async (input) => {
      writeStoreFiles(paths, baseStore);
      const before = hashTree(paths.root);
      tally.tried++;
      try {
        await addNode(store, input);
      } catch (err) {
        if (!(err instanceof UecError)) {
          tally.crashes++;
          throw new Error(`crash on ${show(input)}: ${String(err)}`);
        }
        if (hashTree(paths.root) !== before) {
          tally.stateChanged++;
          throw new Error(`refused ${show(input)} but the root changed`);
        }
        if (KNOWN_RAW_SEPARATORS && isOneLineButRawSeparators(`${err.message}\n`)) tally.rawSeparators++;
        else if (!isOneLine(`${err.message}\n`)) throw new Error(`refusal of ${show(input)} is not one line: ${show(err.message)}`);
        if (!NAMES_A_FIELD.test(err.message)) throw new Error(`refusal of ${show(input)} does not name the field: ${show(err.message)}`);
        return;
      }
      tally.accepted++;
      accepted.push(input);
    }),
    fuzzParameters('nodes:addNode', RUNS),
  );
  const budget = VALIDATED_IN_CI * runFactor();
  for (const input of accepted.filter((_, i) => i % Math.max(1, Math.floor(accepted.length / budget)) === 0).slice(0, budget)) {
    writeStoreFiles(paths, baseStore);
    const node = await addNode(store, input);
    await validateNode(t, tally, paths, store, node.systemId, show(input));
  }

  // A handful through the real command line parser and `nodes add` (which also applies).
  const cliTally = { tried: 0 };
  await assertProperty(
    t,
    'nodes add',
    fc.asyncProperty(nodeInput, async (input) => {
      writeStoreFiles(paths, baseStore);
      const before = hashTree(paths.root, (rel) => !rel.startsWith('var/lib/uec-provisioning/nodes.'));
      cliTally.tried++;
      tally.tried++;
      const args = ['nodes', 'add', input.hostname, ...input.macs.flatMap((m) => ['--mac', m])];
      for (const f of ['arch', 'role', 'os', 'release', 'ipv4'] as const) if (input[f] !== undefined) args.push(`--${f}=${input[f]}`);
      const r = await cli(paths, args);
      if (r.code === 1 || looksLikeCrash(r.stderr)) {
        tally.crashes++;
        throw new Error(`crash: ${show(args)} → ${show(r.stderr)}`);
      }
      if (r.code !== 0) {
        if (hashTree(paths.root, (rel) => !rel.startsWith('var/lib/uec-provisioning/nodes.')) !== before || readStoreFiles(paths) !== baseStore) {
          tally.stateChanged++;
          throw new Error(`refused ${show(args)} but the root changed`);
        }
        if (KNOWN_RAW_SEPARATORS && isOneLineButRawSeparators(r.stderr)) tally.rawSeparators++;
        else if (!isOneLine(r.stderr)) throw new Error(`refusal of ${show(args)} is not one line: ${show(r.stderr)}`);
      } else tally.accepted++;
    }),
    fuzzParameters('nodes:cli', CLI_RUNS),
  );
  reportTally(tally);
  t.equal(tally.crashes, 0, 'no crash');
  t.equal(tally.wronglyAccepted, 0, 'nothing wrongly accepted');
  t.equal(tally.stateChanged, 0, 'no refused node changed anything');
  t.comment(`nodes: ${JSON.stringify(tally)}`);
});

const cell = (valid: fc.Arbitrary<string>) => mostly(valid);
const csvRow = fc
  .tuple(cell(hostnameValid), fc.array(cell(macValid), { minLength: 1, maxLength: 2 }).map((m) => m.join(' ')), fc.option(cell(fc.constantFrom('amd64', 'arm64'))), fc.option(cell(roleValid)), fc.option(cell(releaseValid)), fc.option(cell(ipv4Valid)))
  .map((cells) => cells.map((c) => c ?? '').join(',').replace(/,+$/, ''));
const csvText = fc.tuple(fc.boolean(), fc.array(csvRow, { minLength: 1, maxLength: 4 }), fc.constantFrom('\n', '\r\n')).map(([header, rows, nl]) => [...(header ? ['hostname,mac,arch,role,release,ipv4'] : []), ...rows].join(nl));

t.test('CSV rows through POST /api/nodes/import (admin API token)', async (t) => {
  const h = await startHarness(t);
  const store = await prepare(h.paths);
  const { secret } = await createAccountStore(h.paths).createToken('admin', 'fuzz');
  const baseStore = readStoreFiles(h.paths);
  const tally = newTally('CSV rows (web UI import)');
  const accepted: string[] = [];
  const post = async (csv: string) => {
    const r = await fetch(`${h.base}/api/nodes/import`, { method: 'POST', headers: { Authorization: `Bearer ${secret}`, 'Content-Type': 'text/csv' }, body: csv });
    return { status: r.status, text: await r.text() };
  };
  await assertProperty(
    t,
    'CSV import',
    fc.asyncProperty(csvText, async (csv) => {
      writeStoreFiles(h.paths, baseStore);
      const before = hashTree(h.paths.root);
      tally.tried++;
      const r = await post(csv);
      if (r.status >= 500) {
        tally.crashes++;
        throw new Error(`${show(csv)} → ${r.status} ${show(r.text)}`);
      }
      if (r.status !== 201) {
        if (hashTree(h.paths.root) !== before) {
          tally.stateChanged++;
          throw new Error(`${show(csv)} refused (${r.status}) but the root changed`);
        }
        const error = (JSON.parse(r.text) as { error?: string }).error ?? '';
        if (KNOWN_RAW_SEPARATORS && isOneLineButRawSeparators(`${error}\n`)) tally.rawSeparators++;
        else if (!isOneLine(r.text) || !isOneLine(`${error}\n`)) throw new Error(`refusal of ${show(csv)} is not one line: ${show(r.text)}`);
        if (!NAMES_A_FIELD.test(error)) throw new Error(`refusal of ${show(csv)} does not name the culprit: ${show(r.text)}`);
        return;
      }
      tally.accepted++;
      accepted.push(csv);
    }),
    fuzzParameters('nodes:csv', CSV_RUNS),
  );
  const budget = Math.ceil((VALIDATED_IN_CI / 2) * runFactor());
  for (const csv of accepted.filter((_, i) => i % Math.max(1, Math.floor(accepted.length / budget)) === 0).slice(0, budget)) {
    writeStoreFiles(h.paths, baseStore);
    const r = await post(csv);
    t.equal(r.status, 201, `${show(csv)} imported again`);
    const created = (JSON.parse(r.text) as { nodes: { systemId: string }[] }).nodes;
    await validateNode(t, tally, h.paths, store, created[0]!.systemId, show(csv));
  }
  reportTally(tally);
  t.equal(tally.crashes, 0, 'no crash');
  t.equal(tally.wronglyAccepted, 0, 'nothing wrongly accepted');
  t.equal(tally.stateChanged, 0, 'no refused import changed anything');
  t.comment(`csv: ${JSON.stringify(tally)}`);
});
