/** The audit log (admins only): the page and the same as JSON, newest first, filtered, paginated. */
import { AUDIT_READ_LIMIT, loadAuditEntries, parseSince, selectAuditEntries, selectPage } from '../../../src/core/audit';
import * as pages from '../pages';
import { HttpError, NO_BODY, htmlPage, json, type Route, type SignedInContext } from './route';

export const AUDIT_PER_PAGE = 50;

async function queryAudit({ options, url }: SignedInContext): Promise<pages.AuditView> {
  const q = url.searchParams;
  const sinceText = q.get('since') ?? '';
  const since = sinceText ? parseSince(sinceText, options.clock.now()) : undefined;
  if (since === null) throw new HttpError(400, `since ${JSON.stringify(sinceText.slice(0, 60))} is neither an ISO 8601 date/time nor an age such as 12h or 7d`);
  const per = Number(q.get('per') ?? AUDIT_PER_PAGE);
  if (!Number.isInteger(per) || per < 1 || per > 500) throw new HttpError(400, 'per must be a whole number from 1 to 500');
  const read = await loadAuditEntries(options.paths, AUDIT_READ_LIMIT);
  const matched = selectAuditEntries(read.entries, { actor: q.get('actor') ?? '', action: q.get('action') ?? '', target: q.get('target') ?? '', since });
  const page = selectPage(matched, Number(q.get('page') ?? '1'), per);
  return { entries: page.items, matched: matched.length, page: page.page, pages: page.pages, partial: read.partial, readLimit: AUDIT_READ_LIMIT };
}

export const auditRoutes: Route[] = [
  {
    method: 'GET',
    path: '/api/audit',
    who: 'admin',
    csrf: false,
    bodyLimit: NO_BODY,
    handler: async (ctx) => json(await queryAudit(ctx)),
  },
  {
    method: 'GET',
    path: '/audit',
    who: 'admin',
    csrf: false,
    bodyLimit: NO_BODY,
    handler: async (ctx) => htmlPage(pages.auditPage(ctx.services.pageUser(ctx.auth), ctx.url.searchParams.get('msg') ?? '', await queryAudit(ctx), ctx.url.searchParams)),
  },
];
