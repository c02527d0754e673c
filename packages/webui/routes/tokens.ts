/** API tokens: everyone lists, creates and revokes their own; admins see and revoke all. */
import { auditRequest } from '../audit';
import * as pages from '../pages';
import { HttpError, NO_BODY, SMALL_BODY, field, htmlPage, json, type Route } from './route';

const TOKEN_ID = /^[0-9a-f]{12}$/;

export const tokenRoutes: Route[] = [
  {
    method: 'GET',
    path: '/api/tokens',
    who: 'session',
    csrf: false,
    bodyLimit: NO_BODY,
    handler: async ({ options, auth }) => json((await options.accounts.listTokens(auth.user.role === 'admin' ? undefined : auth.user.name)).map(({ digest: _d, ...t }) => t)),
  },
  {
    method: 'POST',
    path: '/api/tokens',
    who: 'session',
    csrf: true,
    bodyLimit: SMALL_BODY,
    async handler(ctx) {
      const { options, body, auth } = ctx;
      const { token, secret } = await options.accounts.createToken(auth.user.name, field(body, 'name') || 'token');
      options.log.info(`${auth.user.name} created API token ${token.id}`);
      await auditRequest(ctx, 'token.create', { user: token.user, token: token.id, name: token.name });
      const { digest: _d, ...shown } = token;
      return json({ ...shown, secret }, 201);
    },
    // Shown once, in the response itself: never in a URL, a log or the history.
    formReply: (ctx, value) => {
      const v = value as { name: string; secret: string };
      return htmlPage(pages.tokenCreatedPage(ctx.services.pageUser(ctx.auth), String(v.name), String(v.secret)), 201);
    },
  },
  {
    method: 'DELETE',
    path: '/api/tokens/:id',
    who: 'session',
    csrf: true,
    bodyLimit: SMALL_BODY,
    async handler(ctx) {
      const { options, params, auth } = ctx;
      const id = params.id ?? '';
      const token = TOKEN_ID.test(id) ? (await options.accounts.listTokens()).find((t) => t.id === id) : undefined;
      if (!token) throw new HttpError(404, 'no such token');
      // Someone else's token: only an admin may revoke it (the table cannot say "owner or admin").
      if (token.user !== auth.user.name && auth.user.role !== 'admin') throw new HttpError(403, `user ${auth.user.name} has the ${auth.user.role} role; revoking another user's token needs admin`);
      await options.accounts.revokeToken(token.id);
      await auditRequest(ctx, 'token.revoke', { user: token.user, token: token.id, name: token.name });
      options.log.info(`${auth.user.name} revoked API token ${token.id}`);
      return json({ revoked: token.id });
    },
  },
];
