/**
 * What can happen to nodes, as one place the CLI, the region's HTTP endpoints and the web
 * UI all call. Each operation is one store transaction over the nodes it names (`modify`:
 * locked, validated, atomic, writing only those nodes), so two deploys of the same node at
 * once give one success and one NODE_STATE error, and the cost does not grow with the store.
 */
import { UecError } from '../core/errors';
import {
  addEvent,
  createNode,
  newSystemId,
  newToken,
  parseArchitecture,
  parseHostname,
  parseIPv4OrEmpty,
  parseMac,
  parseNodeName,
  parseNote,
  parseSubarchitecture,
  parseWord,
  isInstalling,
  sanitiseHardware,
  startInstall,
  transition,
  type Hardware,
  type NewNodeInput,
  type Node,
} from '../contract/node';
import { recordDeployEnded, recordDeploysStarted } from '../core/metrics';
import { selectAddressOwnership, type Ownership } from '../contract/node-address';
import type { NeighbourEntry } from '../core/neighbours';
import type { NodeStore, NodeWrites } from './node-store';
import { selectRole, selectRolePackages, type Role } from '../contract/roles';

export interface Clock {
  now(): Date;
}

export const SYSTEM_CLOCK: Clock = { now: () => new Date() };

function requireNode(node: Node | undefined, ref: string): Node {
  if (!node) throw new UecError('NODE_UNKNOWN', `no node ${JSON.stringify(ref)} (give a system id, hostname or MAC)`);
  return node;
}

/** The node a system id names (not a hostname or MAC: the machine's own call-backs). */
function requireSystemId(node: Node | undefined, systemId: string): Node {
  if (!node || node.systemId !== systemId) throw new UecError('NODE_UNKNOWN', `no node ${systemId}`);
  return node;
}

/** A system id no node has (asked inside the transaction that stores it). */
async function uniqueSystemId(store: NodeStore): Promise<string> {
  for (;;) {
    const id = newSystemId();
    if ((await store.find(id))?.systemId !== id) return id;
  }
}

/** One node by reference, changed in place by `change` and put back, in one transaction. */
function modifyNode<T>(store: NodeStore, ref: string, change: (node: Node, writes: NodeWrites) => T, bySystemId = false): Promise<T> {
  return store.modify([ref], ([found], writes) => {
    const node = bySystemId ? requireSystemId(found, ref) : requireNode(found, ref);
    const out = change(node, writes);
    writes.put(node);
    return out;
  });
}

/** Has the node recorded the event with this id already (an edge's queue delivering again)? */
function seenEvent(node: Node, eventId: string | undefined): boolean {
  return eventId !== undefined && node.events.some((e) => e.id === eventId);
}

/** Mark the node's newest event with the id it came with, so a repeat is recognised. */
function markEvent(node: Node, eventId: string | undefined): void {
  const last = node.events[node.events.length - 1];
  if (eventId !== undefined && last) last.id = eventId;
}

export async function addNode(store: NodeStore, input: NewNodeInput, clock: Clock = SYSTEM_CLOCK): Promise<Node> {
  return store.modify([], async (_found, writes) => {
    const node = createNode(input, clock.now(), { systemId: await uniqueSystemId(store), token: newToken() });
    writes.put(node);
    return structuredClone(node);
  });
}

export interface NodeEdit {
  hostname?: string;
  macs?: string[];
  arch?: string;
  subarch?: string;
  role?: string;
  os?: string;
  release?: string;
  ipv4?: string;
}

export async function editNode(store: NodeStore, ref: string, edit: NodeEdit, clock: Clock = SYSTEM_CLOCK): Promise<Node> {
  return modifyNode(store, ref, (node) => {
    const changed: string[] = [];
    const set = <K extends keyof Node>(key: K, value: Node[K]) => {
      if (JSON.stringify(node[key]) !== JSON.stringify(value)) {
        node[key] = value;
        changed.push(key);
      }
    };
    if (edit.hostname !== undefined) set('hostname', parseHostname(edit.hostname));
    if (edit.macs !== undefined) {
      const macs = edit.macs.map(parseMac);
      if (macs.length === 0) throw new UecError('INVALID_VALUE', `node ${node.hostname} needs at least one MAC address`);
      const duplicate = macs.find((m, i) => macs.indexOf(m) !== i);
      if (duplicate) throw new UecError('INVALID_VALUE', `MAC ${duplicate} is given twice`);
      set('macs', macs);
    }
    if (edit.arch !== undefined) set('arch', parseArchitecture(edit.arch));
    if (edit.subarch !== undefined) set('subarch', parseSubarchitecture(edit.subarch));
    if (edit.role !== undefined) set('role', parseNodeName('role', edit.role));
    if (edit.os !== undefined) set('os', parseNodeName('os', edit.os));
    if (edit.release !== undefined) set('release', parseNodeName('release', edit.release));
    if (edit.ipv4 !== undefined) set('ipv4', parseIPv4OrEmpty(edit.ipv4));
    if (changed.length > 0) addEvent(node, clock.now(), 'edited', `changed ${changed.join(', ')}`);
    return structuredClone(node);
  });
}

/**
 * Several nodes changed in ONE store transaction, all or none: an unknown node, one named twice or
 * a change that throws refuses the lot, so a command naming several nodes never fails half-way
 * with the first ones already changed. `change` edits the node in place, or answers 'remove'.
 * Each node is returned as it was and as it is (null when removed).
 */
async function changeNodes(store: NodeStore, refs: readonly string[], change: (node: Node) => void | 'remove'): Promise<{ before: Node; after: Node | null }[]> {
  if (refs.length === 0) throw new UecError('INVALID_VALUE', 'no node named');
  return store.modify(refs, (found, writes) => {
    const picked = pickNodes(refs, found);
    return picked.map((node) => {
      const before = structuredClone(node);
      if (change(node) === 'remove') {
        writes.remove(node.systemId);
        return { before, after: null };
      }
      writes.put(node);
      return { before, after: structuredClone(node) };
    });
  });
}

/** The nodes refs name, each once (NODE_UNKNOWN, or INVALID_VALUE for one named twice). */
function pickNodes(refs: readonly string[], found: readonly (Node | undefined)[]): Node[] {
  const seen = new Set<string>();
  return refs.map((ref, i) => {
    const node = requireNode(found[i], ref);
    if (seen.has(node.systemId)) throw new UecError('INVALID_VALUE', `node ${node.hostname} (${node.systemId}) is named twice`);
    seen.add(node.systemId);
    return node;
  });
}

/** Forget several nodes at once (all or none). */
export function removeNodes(store: NodeStore, refs: readonly string[]): Promise<Node[]> {
  return changeNodes(store, refs, () => 'remove').then((r) => r.map((x) => x.before));
}

/** Make several nodes ready again, netboot on (all or none); each as it was and as it is. */
export function releaseNodes(store: NodeStore, refs: readonly string[], clock: Clock = SYSTEM_CLOCK): Promise<{ before: Node; after: Node }[]> {
  return changeNodes(store, refs, (node) => {
    if (node.status !== 'ready') transition(node, 'ready', clock.now(), 'released');
    node.netboot = true;
  }).then((r) => r.map((x) => ({ before: x.before, after: x.after! })));
}

export async function removeNode(store: NodeStore, ref: string): Promise<Node> {
  return store.modify([ref], ([found], writes) => {
    const node = requireNode(found, ref);
    writes.remove(node.systemId);
    return node;
  });
}

/**
 * Mark a node for deployment (optionally with another role or release): its next netboot
 * runs the installer. The role must exist and have packages for the release, so an install
 * that would fail half-way is refused now, with the reason.
 */
export async function deployNode(
  store: NodeStore,
  ref: string,
  roles: readonly Role[],
  options: { role?: string; release?: string } = {},
  clock: Clock = SYSTEM_CLOCK,
): Promise<Node> {
  const node = await modifyNode(store, ref, (node) => {
    startDeployment(node, roles, options, clock);
    return structuredClone(node);
  });
  recordDeploysStarted(1);
  return node;
}

/** One node to deploying (in place, inside a store transaction); throws before changing it when it cannot. */
function startDeployment(node: Node, roles: readonly Role[], options: { role?: string; release?: string }, clock: Clock): void {
  const role = selectRole(roles, options.role ?? node.role);
  const release = options.release !== undefined ? parseNodeName('release', options.release) : node.release;
  selectRolePackages(role, release);
  if (node.status === 'new') transition(node, 'ready', clock.now(), 'accepted for deployment');
  // A new token and no address binding: nothing of an earlier install is a credential now.
  startInstall(node, 'deploying', clock.now(), `deploy role ${role.name} on ${node.os} ${release}`, newToken());
  node.role = role.name;
  node.release = release;
  node.netboot = true;
}

/** Give a node back: ready again, netboot on (its next boot may be a new deployment). */
export async function releaseNode(store: NodeStore, ref: string, clock: Clock = SYSTEM_CLOCK): Promise<Node> {
  return modifyNode(store, ref, (node) => {
    if (node.status !== 'ready') transition(node, 'ready', clock.now(), 'released');
    node.netboot = true;
    return structuredClone(node);
  });
}

export const STATUS_EVENTS = ['installing', 'installed', 'deployed', 'failed'] as const;
export type StatusEvent = (typeof STATUS_EVENTS)[number];

/**
 * A call-back from the installing machine. installing and installed are timeline events of a
 * deploying node; deployed (first boot) finishes the deployment; failed ends it with the reason.
 */
export async function recordStatusEvent(store: NodeStore, systemId: string, event: StatusEvent, message: string, clock: Clock = SYSTEM_CLOCK, eventId?: string): Promise<Node> {
  let deployStartedAt: string | undefined;
  const updated = await modifyNode(store, systemId, (node) => {
    deployStartedAt = undefined;
    if (seenEvent(node, eventId)) return structuredClone(node);
    const newestBefore = node.events[node.events.length - 1];
    deployStartedAt = node.status === 'deploying' ? node.statusChangedAt : undefined;
    const note = parseNote(message);
    if (event === 'deployed') {
      if (node.status !== 'deployed') transition(node, 'deployed', clock.now(), note || 'first boot reported');
    } else if (event === 'failed') {
      transition(node, 'failed', clock.now(), note || 'the installer reported a failure');
    } else {
      if (node.status !== 'deploying' && node.status !== 'commissioning') {
        throw new UecError('NODE_STATE', `node ${node.hostname} (${node.systemId}) is ${node.status}, not deploying; ${event} ignored`);
      }
      addEvent(node, clock.now(), event, note || event);
    }
    // Only an event this call added carries its id (a repeated `deployed` adds none, and must
    // not take over the id of the event before it).
    if (node.events[node.events.length - 1] !== newestBefore) markEvent(node, eventId);
    return structuredClone(node);
  }, true);
  // A deploy ended here: deploying → deployed or failed (metrics.ts).
  if (deployStartedAt !== undefined && (updated.status === 'deployed' || updated.status === 'failed')) recordDeployEnded(updated.status, deployStartedAt, new Date(updated.statusChangedAt));
  return updated;
}

export async function disableNetboot(store: NodeStore, systemId: string, clock: Clock = SYSTEM_CLOCK, eventId?: string): Promise<Node> {
  return modifyNode(store, systemId, (node) => {
    if (node.netboot && !seenEvent(node, eventId)) {
      node.netboot = false;
      addEvent(node, clock.now(), 'netboot-disabled', 'next netboot boots the local disk');
      markEvent(node, eventId);
    }
    return structuredClone(node);
  }, true);
}

export interface EnlistInput {
  mac: string;
  arch?: string;
  subarch?: string;
  hardware?: Hardware;
}

/** iPXE's ${buildarch} (x86_64, i386, arm64; the boot script corrects a 32-bit BIOS build on a 64-bit CPU) and ${platform} to the node's architecture and firmware. */
export function selectArchitecture(buildarch: string | undefined, platform: string | undefined): { arch: string; subarch: string } {
  const arch = buildarch === 'arm64' ? 'arm64' : buildarch === 'i386' ? 'i386' : 'amd64';
  const subarch = platform === 'efi' ? 'uefi' : platform === 'pcbios' ? 'bios' : 'generic';
  return { arch, subarch };
}

/** At most this many nodes in status new before enlistment is refused (an admin accepts or removes them). */
export const DEFAULT_MAX_NEW_NODES = 100;

/** Enlistment refused: too many nodes wait in status new. The region answers 429. */
export class EnlistLimitError extends UecError {
  constructor(limit: number) {
    super('NODE_STATE', `enlistment refused: ${limit} nodes are already new (accept them with nodes deploy, or remove them)`);
  }
}

/**
 * An unknown machine that netbooted: registered as new with its MAC, architecture and what
 * it told of its hardware. The same MAC enlisting again never duplicates, and never changes
 * the recorded node (enlistment is unauthenticated: anyone may claim a MAC): reported details
 * that differ are an event on the node's timeline. At most maxNew nodes wait in status new.
 */
export async function enlistNode(
  store: NodeStore,
  input: EnlistInput,
  clock: Clock = SYSTEM_CLOCK,
  maxNew: number = DEFAULT_MAX_NEW_NODES,
): Promise<{ node: Node; created: boolean }> {
  const mac = parseMac(input.mac);
  return store.modify([mac], async ([found], writes) => {
    const existing = found?.macs.includes(mac) ? found : undefined;
    const hardware = sanitiseHardware(input.hardware ?? {});
    if (existing) {
      const differs = (Object.keys(hardware) as (keyof Hardware)[]).filter((k) => existing.hardware[k] !== hardware[k]);
      const last = existing.events[existing.events.length - 1];
      const message = `enlisted again from ${mac}; reported ${differs.map((k) => `${k} ${JSON.stringify(hardware[k])}`).join(', ')}, recorded details kept`;
      // Once per distinct report: repeating the same request does not rewrite the store.
      if (differs.length > 0 && last?.message !== parseNote(message)) addEvent(existing, clock.now(), 'enlisted', message);
      writes.put(existing);
      return { node: structuredClone(existing), created: false };
    }
    if ((await store.countByStatus()).new >= maxNew) throw new EnlistLimitError(maxNew);
    const systemId = await uniqueSystemId(store);
    const node = createNode(
      { hostname: systemId, macs: [mac], arch: input.arch, subarch: input.subarch, status: 'new', hardware },
      clock.now(),
      { systemId, token: newToken() },
    );
    addEvent(node, clock.now(), 'enlisted', `enlisted by netboot from ${mac}`);
    writes.put(node);
    return { node: structuredClone(node), created: true };
  });
}

/** Nodes deploying for longer than the timeout become failed, with the reason. */
export async function failStuckDeployments(store: NodeStore, timeoutSeconds: number, clock: Clock = SYSTEM_CLOCK): Promise<Node[]> {
  const now = clock.now();
  const isStuck = (n: Node) => n.status === 'deploying' && now.getTime() - Date.parse(n.statusChangedAt) > timeoutSeconds * 1000;
  // Only the deploying nodes are read (a page at a time), and only the stuck ones written.
  const stuck: string[] = [];
  for (let offset = 0; ; offset += STUCK_BATCH) {
    const { nodes, total } = await store.page({ status: 'deploying', offset, limit: STUCK_BATCH });
    for (const node of nodes) if (isStuck(node)) stuck.push(node.systemId);
    if (nodes.length === 0 || offset + STUCK_BATCH >= total) break;
  }
  const failed: Node[] = [];
  for (let i = 0; i < stuck.length; i += STUCK_BATCH) {
    const ids = stuck.slice(i, i + STUCK_BATCH);
    const started: string[] = [];
    const batch = await store.modify(ids, (found, writes) => {
      const done: Node[] = [];
      for (const [j, node] of found.entries()) {
        // Looked at again inside the transaction: a report may have come in meanwhile.
        if (!node || node.systemId !== ids[j] || !isStuck(node)) continue;
        started.push(node.statusChangedAt);
        transition(node, 'failed', now, `no deployed report within ${timeoutSeconds} s of the deploy`);
        writes.put(node);
        done.push(structuredClone(node));
      }
      return done;
    });
    for (const at of started) recordDeployEnded('failed', at, now, 'timeout');
    failed.push(...batch);
  }
  return failed;
}

/** Nodes read or changed per step by failStuckDeployments. */
const STUCK_BATCH = 500;

/**
 * Deploy several nodes in one store update: either every node becomes deploying or, when one
 * of them cannot (unknown, wrong status, role not installable), none does and the store is
 * not written. The web UI's deploy button uses it.
 */
export async function deployNodes(
  store: NodeStore,
  refs: readonly string[],
  roles: readonly Role[],
  options: { role?: string; release?: string } = {},
  clock: Clock = SYSTEM_CLOCK,
): Promise<Node[]> {
  if (refs.length === 0) throw new UecError('INVALID_VALUE', 'deploy needs at least one node');
  return store.modify(refs, (found, writes) => {
    const deployed: Node[] = [];
    for (const node of pickNodes(refs, found)) {
      startDeployment(node, roles, options, clock);
      writes.put(node);
      deployed.push(structuredClone(node));
    }
    return deployed;
  }).then((deployed) => {
    recordDeploysStarted(deployed.length);
    return deployed;
  });
}

/** Add one timeline event (a power action, a note) to a node. */
export async function recordNodeEvent(store: NodeStore, ref: string, type: string, message: string, clock: Clock = SYSTEM_CLOCK, eventId?: string): Promise<Node> {
  const kind = parseWord('event type', type);
  return modifyNode(store, ref, (node) => {
    if (!seenEvent(node, eventId)) {
      addEvent(node, clock.now(), kind, message);
      markEvent(node, eventId);
    }
    return structuredClone(node);
  });
}

/**
 * May `client` (with its neighbour entry) act for the node in its current deploy or
 * commissioning (rules in node-address.ts)? An accepted first request binds its address to
 * the deploy, in one store update (two first claims at once: one binds, the other is judged
 * against that binding). A refusal writes nothing. NODE_UNKNOWN for no such node, NODE_STATE
 * when the node is not deploying or commissioning (no binding outside an install).
 */
export async function claimNodeAddress(
  store: NodeStore,
  systemId: string,
  client: string,
  neighbour: NeighbourEntry | null,
  clock: Clock = SYSTEM_CLOCK,
): Promise<{ node: Node; ownership: Ownership }> {
  const judge = (found: Node | undefined) => {
    const node = requireSystemId(found, systemId);
    if (!isInstalling(node.status)) throw new UecError('NODE_STATE', `node ${node.hostname} (${node.systemId}) is ${node.status}, not deploying or commissioning`);
    return { node, ownership: selectAddressOwnership(node, client, neighbour) };
  };
  const first = judge(await store.find(systemId));
  if (!first.ownership.owned || !first.ownership.bind) return first;
  return store.modify([systemId], ([found], writes) => {
    const again = judge(found);
    if (again.ownership.owned && again.ownership.bind) {
      again.node.boundAddress = client;
      addEvent(again.node, clock.now(), 'address-bound', `this ${again.node.status === 'commissioning' ? 'commissioning' : 'deploy'} is bound to ${client} (${again.ownership.rule})`);
      writes.put(again.node);
    }
    return { node: structuredClone(again.node), ownership: again.ownership };
  });
}
