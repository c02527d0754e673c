/**
 * What can happen to nodes, as one place the CLI, the region's HTTP endpoints and the web
 * UI all call. Each operation is one store update (locked, validated, atomic), so two
 * deploys of the same node at once give one success and one NODE_STATE error.
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
import { selectNode, type NodeStore } from './node-store';
import { selectRole, selectRolePackages, type Role } from '../contract/roles';

export interface Clock {
  now(): Date;
}

export const SYSTEM_CLOCK: Clock = { now: () => new Date() };

function requireNode(nodes: Node[], ref: string): Node {
  const node = selectNode(nodes, ref);
  if (!node) throw new UecError('NODE_UNKNOWN', `no node ${JSON.stringify(ref)} (give a system id, hostname or MAC)`);
  return node;
}

function uniqueSystemId(nodes: Node[]): string {
  for (;;) {
    const id = newSystemId();
    if (!nodes.some((n) => n.systemId === id)) return id;
  }
}

export async function addNode(store: NodeStore, input: NewNodeInput, clock: Clock = SYSTEM_CLOCK): Promise<Node> {
  return store.update((nodes) => {
    const node = createNode(input, clock.now(), { systemId: uniqueSystemId(nodes), token: newToken() });
    nodes.push(node);
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
  return store.update((nodes) => {
    const node = requireNode(nodes, ref);
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
 * Several nodes changed in ONE store update, all or none: an unknown node, one named twice or
 * a change that throws refuses the lot, so a command naming several nodes never fails half-way
 * with the first ones already changed. `change` edits the node in place, or answers 'remove'.
 * Each node is returned as it was and as it is (null when removed).
 */
async function changeNodes(store: NodeStore, refs: readonly string[], change: (node: Node) => void | 'remove'): Promise<{ before: Node; after: Node | null }[]> {
  if (refs.length === 0) throw new UecError('INVALID_VALUE', 'no node named');
  return store.update((nodes) => {
    const seen = new Set<string>();
    const picked = refs.map((ref) => {
      const node = requireNode(nodes, ref);
      if (seen.has(node.systemId)) throw new UecError('INVALID_VALUE', `node ${node.hostname} (${node.systemId}) is named twice`);
      seen.add(node.systemId);
      return node;
    });
    const results = picked.map((node) => {
      const before = structuredClone(node);
      if (change(node) === 'remove') {
        nodes.splice(nodes.indexOf(node), 1);
        return { before, after: null };
      }
      return { before, after: structuredClone(node) };
    });
    return results;
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
  return store.update((nodes) => {
    const node = requireNode(nodes, ref);
    nodes.splice(nodes.indexOf(node), 1);
    return structuredClone(node);
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
  const node = await store.update((nodes) => {
    const node = requireNode(nodes, ref);
    startDeployment(node, roles, options, clock);
    return structuredClone(node);
  });
  recordDeploysStarted(1);
  return node;
}

/** One node to deploying (in place, inside a store update); throws before changing it when it cannot. */
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
  return store.update((nodes) => {
    const node = requireNode(nodes, ref);
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
export async function recordStatusEvent(store: NodeStore, systemId: string, event: StatusEvent, message: string, clock: Clock = SYSTEM_CLOCK): Promise<Node> {
  let deployStartedAt: string | undefined;
  const updated = await store.update((nodes) => {
    const node = nodes.find((n) => n.systemId === systemId);
    if (!node) throw new UecError('NODE_UNKNOWN', `no node ${systemId}`);
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
    return structuredClone(node);
  });
  // A deploy ended here: deploying → deployed or failed (metrics.ts).
  if (deployStartedAt !== undefined && (updated.status === 'deployed' || updated.status === 'failed')) recordDeployEnded(updated.status, deployStartedAt, new Date(updated.statusChangedAt));
  return updated;
}

export async function disableNetboot(store: NodeStore, systemId: string, clock: Clock = SYSTEM_CLOCK): Promise<Node> {
  return store.update((nodes) => {
    const node = nodes.find((n) => n.systemId === systemId);
    if (!node) throw new UecError('NODE_UNKNOWN', `no node ${systemId}`);
    if (node.netboot) {
      node.netboot = false;
      addEvent(node, clock.now(), 'netboot-disabled', 'next netboot boots the local disk');
    }
    return structuredClone(node);
  });
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
  return store.update((nodes) => {
    const existing = nodes.find((n) => n.macs.includes(mac));
    const hardware = sanitiseHardware(input.hardware ?? {});
    if (existing) {
      const differs = (Object.keys(hardware) as (keyof Hardware)[]).filter((k) => existing.hardware[k] !== hardware[k]);
      const last = existing.events[existing.events.length - 1];
      const message = `enlisted again from ${mac}; reported ${differs.map((k) => `${k} ${JSON.stringify(hardware[k])}`).join(', ')}, recorded details kept`;
      // Once per distinct report: repeating the same request does not rewrite the store.
      if (differs.length > 0 && last?.message !== parseNote(message)) addEvent(existing, clock.now(), 'enlisted', message);
      return { node: structuredClone(existing), created: false };
    }
    if (nodes.filter((n) => n.status === 'new').length >= maxNew) throw new EnlistLimitError(maxNew);
    const systemId = uniqueSystemId(nodes);
    const node = createNode(
      { hostname: systemId, macs: [mac], arch: input.arch, subarch: input.subarch, status: 'new', hardware },
      clock.now(),
      { systemId, token: newToken() },
    );
    addEvent(node, clock.now(), 'enlisted', `enlisted by netboot from ${mac}`);
    nodes.push(node);
    return { node: structuredClone(node), created: true };
  });
}

/** Nodes deploying for longer than the timeout become failed, with the reason. */
export async function failStuckDeployments(store: NodeStore, timeoutSeconds: number, clock: Clock = SYSTEM_CLOCK): Promise<Node[]> {
  const now = clock.now();
  const stuck = (await store.list()).filter((n) => n.status === 'deploying' && now.getTime() - Date.parse(n.statusChangedAt) > timeoutSeconds * 1000);
  if (stuck.length === 0) return [];
  const started: string[] = [];
  const failed = await store.update((nodes) => {
    const failed: Node[] = [];
    for (const node of nodes) {
      if (node.status === 'deploying' && now.getTime() - Date.parse(node.statusChangedAt) > timeoutSeconds * 1000) {
        started.push(node.statusChangedAt);
        transition(node, 'failed', now, `no deployed report within ${timeoutSeconds} s of the deploy`);
        failed.push(structuredClone(node));
      }
    }
    return failed;
  });
  for (const at of started) recordDeployEnded('failed', at, now, 'timeout');
  return failed;
}

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
  return store.update((nodes) => {
    const seen = new Set<string>();
    const deployed: Node[] = [];
    for (const ref of refs) {
      const node = requireNode(nodes, ref);
      if (seen.has(node.systemId)) throw new UecError('INVALID_VALUE', `node ${node.hostname} (${node.systemId}) is named twice`);
      seen.add(node.systemId);
      startDeployment(node, roles, options, clock);
      deployed.push(structuredClone(node));
    }
    return deployed;
  }).then((deployed) => {
    recordDeploysStarted(deployed.length);
    return deployed;
  });
}

/** Add one timeline event (a power action, a note) to a node. */
export async function recordNodeEvent(store: NodeStore, ref: string, type: string, message: string, clock: Clock = SYSTEM_CLOCK): Promise<Node> {
  const kind = parseWord('event type', type);
  return store.update((nodes) => {
    const node = requireNode(nodes, ref);
    addEvent(node, clock.now(), kind, message);
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
  const judge = (nodes: readonly Node[]) => {
    const node = nodes.find((n) => n.systemId === systemId);
    if (!node) throw new UecError('NODE_UNKNOWN', `no node ${systemId}`);
    if (!isInstalling(node.status)) throw new UecError('NODE_STATE', `node ${node.hostname} (${node.systemId}) is ${node.status}, not deploying or commissioning`);
    return { node, ownership: selectAddressOwnership(node, client, neighbour) };
  };
  const first = judge(await store.list());
  if (!first.ownership.owned || !first.ownership.bind) return first;
  return store.update((nodes) => {
    const again = judge(nodes);
    if (again.ownership.owned && again.ownership.bind) {
      again.node.boundAddress = client;
      addEvent(again.node, clock.now(), 'address-bound', `this ${again.node.status === 'commissioning' ? 'commissioning' : 'deploy'} is bound to ${client} (${again.ownership.rule})`);
    }
    return { node: structuredClone(again.node), ownership: again.ownership };
  });
}
