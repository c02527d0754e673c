/**
 * The embedded node store's files as tests see them: a snapshot (nodes.json) and a journal
 * (nodes.journal), see src/region/node-store.ts. "Nothing was written" means both are byte for
 * byte the same; what is stored is what a fresh store lists.
 */
import * as fs from 'node:fs';
import type { Node } from '../../src/contract/node';
import type { Paths } from '../../src/core/paths';
import { NODES_FILE, NODES_JOURNAL, createFileNodeStore } from '../../src/region/node-store';

/** Both files' bytes ('<none>' for a missing one), for before/after comparisons. */
export function readStoreFiles(paths: Paths): string {
  const read = (p: string) => (fs.existsSync(paths.resolve(p)) ? fs.readFileSync(paths.resolve(p), 'utf8') : '<none>');
  return `${read(NODES_FILE)}\n--- journal ---\n${read(NODES_JOURNAL)}`;
}

/** Every stored node, tokens included, read by a fresh store (as another process would). */
export async function readStoredNodes(paths: Paths): Promise<Node[]> {
  const store = createFileNodeStore(paths);
  try {
    return await store.list();
  } finally {
    await store.close();
  }
}

/** Put both files back as `readStoreFiles` saw them (the fuzz tests' reset between cases). */
export function writeStoreFiles(paths: Paths, saved: string): void {
  const [snapshot, journal] = saved.split('\n--- journal ---\n') as [string, string];
  for (const [p, text] of [[NODES_FILE, snapshot], [NODES_JOURNAL, journal]] as const) {
    if (text === '<none>') fs.rmSync(paths.resolve(p), { force: true });
    else fs.writeFileSync(paths.resolve(p), text, { mode: 0o600 });
  }
}
