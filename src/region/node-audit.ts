/**
 * Audit lines for node changes (the region's half of the audit log, core/audit.ts): the
 * target is the node, the changes its public fields before → after.
 */
import { recordAudit, selectChanges, type AuditAction, type AuditActor } from '../core/audit';
import type { Logger } from '../core/log';
import type { Paths } from '../core/paths';
import type { Node } from '../contract/node';

/** The fields of a node an audit line shows: never its token, timeline or timestamps. */
export function selectNodeFields(node: Node | null): Record<string, unknown> | null {
  if (!node) return null;
  const { hostname, macs, arch, subarch, role, os: nodeOs, release, status, ipv4, netboot } = node;
  return { hostname, macs, arch, subarch, role, os: nodeOs, release, status, ipv4, netboot };
}

export function nodeTarget(node: Node): Record<string, string> {
  return { systemId: node.systemId, hostname: node.hostname };
}

/** Record a node change: target the node, changes its public fields before → after. */
export function recordNodeAudit(paths: Paths, actor: AuditActor, action: AuditAction, before: Node | null, after: Node | null, log?: Logger): Promise<boolean> {
  const node = (after ?? before) as Node;
  return recordAudit(paths, actor, action, nodeTarget(node), selectChanges(selectNodeFields(before), selectNodeFields(after)), log);
}
