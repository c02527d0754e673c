/**
 * Live node updates for the server-sent events stream. Node state is written by several
 * processes: this one (deploy, power events), the CLI, and `uec-provisioning serve`, which
 * records the installers' status call-backs. So the web UI does not rely on the store's
 * in-process onChange alone: it watches the store's directory (fs.watch: the journal grows, the
 * snapshot is replaced by rename), also polls every few seconds in case a watch event is
 * missed, and follows the store's changes from its cursor (changesSince): the cost is that of
 * the changes, not of the number of nodes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from '../../src/core/log';
import type { Node, NodeStatus } from '../../src/contract/node';
import { NODES_JOURNAL, type NodeStore } from '../../src/region/node-store';
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

/** Changes read per step when following the store. */
const LIVE_BATCH = 1000;

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
  let cursor: number | undefined;
  let running: Promise<void> | undefined;
  let again = false;

  const tell = (changes: LiveChange[]): void => {
    if (changes.length > 0) for (const listener of listeners) listener(changes);
  };

  /** Follow the store's changes from the last cursor (O(changes), never the whole store). */
  async function compare(): Promise<void> {
    if (cursor === undefined) {
      cursor = await store.currentCursor();
      return;
    }
    for (;;) {
      const batch = await store.changesSince(cursor, LIVE_BATCH);
      cursor = batch.cursor;
      if (batch.reset) {
        // The store compacted past our cursor: every node, once (rare: only a follower that fell behind).
        if (listeners.size > 0) tell((await store.list()).map(summariseNode));
        return;
      }
      if (listeners.size > 0) {
        const last = new Map<string, LiveChange>();
        for (const change of batch.changes) {
          last.delete(change.systemId);
          last.set(change.systemId, change.node ? summariseNode(change.node) : { systemId: change.systemId, removed: true });
        }
        tell([...last.values()]);
      }
      if (batch.changes.length < LIVE_BATCH) return;
    }
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
  const names = new Set([path.basename(storeFile), path.basename(NODES_JOURNAL)]);
  try {
    fs.mkdirSync(dir, { recursive: true });
    watcher = fs.watch(dir, { persistent: false }, (_event, name) => {
      if (name === null || names.has(name)) void check();
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
