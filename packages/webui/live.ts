/**
 * Live node updates for the server-sent events stream. Node state is written by several
 * processes: this one (deploy, power events), the CLI, and `uec-provisioning serve`, which
 * records the installers' status call-backs. So the web UI does not rely on the store's
 * in-process onChange alone: it watches the store file's directory (fs.watch; the store
 * replaces the file by rename, so the directory is what changes), also polls its stat every
 * few seconds in case a watch event is missed, and compares the nodes with the last snapshot.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from '../../src/core/log';
import type { Node, NodeStatus } from '../../src/contract/node';
import type { NodeStore } from '../../src/region/node-store';
import { describeError } from '../../src/core/errors';

/** Where a deploying node is: the stages the Deploy page shows. */
export const DEPLOY_STAGES = ['waiting', 'netboot', 'preseed', 'installing', 'installed', 'deployed', 'failed'] as const;
export type DeployStage = (typeof DEPLOY_STAGES)[number] | 'idle';

export interface NodeSummary {
  systemId: string;
  hostname: string;
  macs: string[];
  ipv4: string;
  arch: string;
  role: string;
  release: string;
  status: NodeStatus;
  statusReason: string;
  statusChangedAt: string;
  lastEventAt: string;
  lastEvent: string;
  stage: DeployStage;
  netboot: boolean;
}

/** The stage of a node's current deployment, from its status and events since the deploy (pure). */
export function selectDeployStage(node: Node): DeployStage {
  if (node.status === 'deployed') return 'deployed';
  if (node.status === 'failed') return 'failed';
  if (node.status !== 'deploying') return 'idle';
  let stage: DeployStage = 'waiting';
  for (const event of node.events) {
    if (event.at < node.statusChangedAt) continue;
    const rank = DEPLOY_STAGES.indexOf(event.type as (typeof DEPLOY_STAGES)[number]);
    if (rank > DEPLOY_STAGES.indexOf(stage as (typeof DEPLOY_STAGES)[number])) stage = event.type as DeployStage;
  }
  return stage;
}

export function summariseNode(node: Node): NodeSummary {
  const last = node.events[node.events.length - 1];
  return {
    systemId: node.systemId,
    hostname: node.hostname,
    macs: node.macs,
    ipv4: node.ipv4,
    arch: node.arch,
    role: node.role,
    release: node.release,
    status: node.status,
    statusReason: node.statusReason,
    statusChangedAt: node.statusChangedAt,
    lastEventAt: last?.at ?? node.updatedAt,
    lastEvent: last ? `${last.type}: ${last.message}` : '',
    stage: selectDeployStage(node),
    netboot: node.netboot,
  };
}

export type LiveChange = NodeSummary | { systemId: string; removed: true };

export interface LiveNodes {
  subscribe(listener: (changes: LiveChange[]) => void): () => void;
  /** Compare the store with the last snapshot now and tell subscribers what changed. */
  check(): Promise<void>;
  subscribers(): number;
  close(): void;
}

export function createLiveNodes(store: NodeStore, storeFile: string, log: Logger, pollMs = 2000): LiveNodes {
  const listeners = new Set<(changes: LiveChange[]) => void>();
  let snapshot: Map<string, string> | undefined;
  let statKey = '';
  let running: Promise<void> | undefined;
  let again = false;

  async function compare(): Promise<void> {
    const stat = await fs.promises.stat(storeFile).catch(() => undefined);
    const key = stat ? `${stat.ino}:${stat.size}:${stat.mtimeMs}` : 'none';
    if (key === statKey && snapshot) return;
    statKey = key;
    const nodes = await store.list();
    const next = new Map(nodes.map((n) => [n.systemId, `${n.updatedAt}|${n.status}|${n.hostname}|${n.events.length}`]));
    if (snapshot && listeners.size > 0) {
      const changes: LiveChange[] = [];
      for (const node of nodes) if (snapshot.get(node.systemId) !== next.get(node.systemId)) changes.push(summariseNode(node));
      for (const id of snapshot.keys()) if (!next.has(id)) changes.push({ systemId: id, removed: true });
      if (changes.length > 0) for (const listener of listeners) listener(changes);
    }
    snapshot = next;
  }

  function check(): Promise<void> {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        try {
          await compare();
        } catch (err) {
          log.warn(`reading nodes for live updates: ${describeError(err)}`);
        }
      } while (again);
    })().finally(() => {
      running = undefined;
    });
    return running;
  }

  let watcher: fs.FSWatcher | undefined;
  const dir = path.dirname(storeFile);
  const base = path.basename(storeFile);
  try {
    fs.mkdirSync(dir, { recursive: true });
    watcher = fs.watch(dir, { persistent: false }, (_event, name) => {
      if (name === null || name === base) void check();
    });
    watcher.on('error', () => undefined);
  } catch (err) {
    log.warn(`cannot watch ${dir}, polling only: ${describeError(err)}`);
  }
  store.onChange(() => void check());
  const timer = setInterval(() => void check(), pollMs);
  timer.unref();
  void check();

  return {
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    check,
    subscribers: () => listeners.size,
    close() {
      clearInterval(timer);
      watcher?.close();
      listeners.clear();
    },
  };
}
