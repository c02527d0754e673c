/**
 * `uec-provisioning region migrate`: copy every node from one store to another (embedded ↔
 * PostgreSQL) with nothing lost. A bulk copy first, then, holding the source's write lock (its
 * writers wait), a final sync of what changed meanwhile, a check that the target holds exactly
 * the source's nodes (count and each node, field by field), the target's followers told to reset,
 * and `switchOver` (which sets region.store) — all before the lock is let go.
 */
import { UecError } from '../core/errors';
import type { Node } from '../contract/node';
import type { NodeStore } from './node-store';
import { renderCanonicalJson } from './node-store-postgresql';

export interface MigrateResult {
  nodes: number;
  /** Nodes the final sync wrote again (changed in the source during the bulk copy). */
  resynced: number;
}

/** The first difference between two node lists, or null (pure). */
export function selectStoreDifference(source: readonly Node[], target: readonly Node[]): string | null {
  if (source.length !== target.length) return `the source has ${source.length} nodes, the target ${target.length}`;
  const theirs = new Map(target.map((n) => [n.systemId, renderCanonicalJson(n)]));
  for (const node of source) {
    const other = theirs.get(node.systemId);
    if (other === undefined) return `node ${node.hostname} (${node.systemId}) is missing from the target`;
    if (other !== renderCanonicalJson(node)) return `node ${node.hostname} (${node.systemId}) differs in the target`;
  }
  return null;
}

/** Make the target hold exactly `nodes` (one transaction; unchanged nodes are not written). */
async function replaceAll(target: NodeStore, nodes: readonly Node[]): Promise<number> {
  return target.update((draft) => {
    const old = new Map(draft.map((n) => [n.systemId, renderCanonicalJson(n)]));
    const changed = nodes.filter((n) => old.get(n.systemId) !== renderCanonicalJson(n)).length;
    draft.splice(0, draft.length, ...structuredClone(nodes as Node[]));
    return changed;
  });
}

export async function migrateNodeStore(
  source: NodeStore,
  target: NodeStore,
  options: { force?: boolean; targetName: string; switchOver: () => Promise<void> },
): Promise<MigrateResult> {
  const existing = (await target.page({ limit: 1 })).total;
  if (existing > 0 && !options.force) {
    throw new UecError('STORE_FAILED', `the ${options.targetName} store already holds ${existing} node(s); nothing was copied (--force replaces them with the current store's)`);
  }
  await replaceAll(target, await source.list());
  let result: MigrateResult | undefined;
  // update() with the draft left alone writes nothing: it only holds the source's lock.
  await source.update(async (nodes) => {
    const resynced = await replaceAll(target, nodes);
    const difference = selectStoreDifference(nodes, await target.list());
    if (difference) throw new UecError('STORE_FAILED', `after the copy ${difference}; region.store is unchanged`);
    const cursor = await source.currentCursor();
    await target.resetFollowers(cursor);
    await options.switchOver();
    result = { nodes: nodes.length, resynced };
  });
  return result!;
}
