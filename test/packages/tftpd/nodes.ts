import { createNode, type Node } from '../../../src/contract/node';

const NOW = new Date('2026-01-02T03:04:05Z');

function node(hostname: string, systemId: string, macs: string[], status: Node['status'], extra: Partial<Node> = {}): Node {
  return { ...createNode({ hostname, macs, status }, NOW, { systemId, token: 'x'.repeat(32) }), ...extra };
}

/** deploying (two MACs), deployed with netboot off, ready. */
export const NODES: Node[] = [
  node('deploy-me', 'node-aaaaaa', ['52:54:00:00:00:01', '52:54:00:00:00:11'], 'deploying'),
  node('installed', 'node-bbbbbb', ['52:54:00:00:00:02'], 'deployed', { netboot: false }),
  node('waiting', 'node-cccccc', ['52:54:00:00:00:03'], 'ready'),
];

