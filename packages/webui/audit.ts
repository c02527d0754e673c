/**
 * The web UI's side of the audit log (src/core/audit.ts): who a request acts for (a cookie session
 * is {kind: 'web'}, an API token {kind: 'token'} with the token's id and name, never its
 * secret), and one call for the route handlers to record a change.
 */
import { recordAudit, type AuditAction, type AuditActor, type AuditChange } from '../../src/core/audit';
import { recordNodeAudit } from '../../src/region/node-audit';
import type { Node } from '../../src/contract/node';
import type { Auth, SignedInContext } from './routes/route';

/** The id of a presented API token (uecp_<id>_<secret>): its public part only (pure). */
export function selectTokenId(authorization: string | undefined): string | undefined {
  return /^Bearer\s+uecp_([0-9a-f]{12})_/.exec(authorization ?? '')?.[1];
}

/** Who a signed-in request acts for (pure): the dispatcher authenticated it already. */
export function selectRequestActor(auth: Auth, authorization: string | undefined, tokenName?: string): AuditActor {
  if (auth.session) return { kind: 'web', user: auth.user.name };
  const id = selectTokenId(authorization) ?? 'unknown';
  return tokenName === undefined ? { kind: 'token', user: auth.user.name, token: id } : { kind: 'token', user: auth.user.name, token: id, name: tokenName };
}

export async function loadRequestActor(ctx: SignedInContext): Promise<AuditActor> {
  const authorization = ctx.req.headers.authorization;
  if (ctx.auth.session) return selectRequestActor(ctx.auth, authorization);
  const id = selectTokenId(authorization);
  const token = id ? (await ctx.options.accounts.listTokens(ctx.auth.user.name).catch(() => [])).find((t) => t.id === id) : undefined;
  return selectRequestActor(ctx.auth, authorization, token?.name);
}

/** Record a change made by this request (never throws: a failure is logged, the change stands). */
export async function auditRequest(ctx: SignedInContext, action: AuditAction, target: Record<string, string>, changes: Record<string, AuditChange> = {}): Promise<void> {
  await recordAudit(ctx.options.paths, await loadRequestActor(ctx), action, target, changes, ctx.options.log);
}

export async function auditNodeRequest(ctx: SignedInContext, action: AuditAction, before: Node | null, after: Node | null): Promise<void> {
  await recordNodeAudit(ctx.options.paths, await loadRequestActor(ctx), action, before, after, ctx.options.log);
}
