/** Logging in and out: the login page and form, the API session, and the logout form. */
import * as pages from '../pages';
import { BASE, HttpError, NO_BODY, SMALL_BODY, field, htmlPage, json, seeOther, type Route } from './route';

export const sessionRoutes: Route[] = [
  {
    method: 'GET',
    path: '/login',
    who: 'public',
    csrf: false,
    bodyLimit: NO_BODY,
    handler: async (ctx) => htmlPage(pages.loginPage(ctx.url.searchParams.get('msg') ?? '')),
  },
  {
    method: 'POST',
    path: '/login',
    who: 'public',
    csrf: false,
    bodyLimit: SMALL_BODY,
    async handler(ctx) {
      try {
        const session = await ctx.services.login(ctx.client, field(ctx.body, 'user'), field(ctx.body, 'password'));
        return seeOther(`${BASE}/`, { 'Set-Cookie': ctx.services.cookie(ctx.secure, session.id) });
      } catch (err) {
        if (!(err instanceof HttpError)) throw err;
        return htmlPage(pages.loginPage(err.message), err.status, err.headers);
      }
    },
  },
  {
    method: 'POST',
    path: '/api/session',
    who: 'public',
    csrf: false,
    bodyLimit: SMALL_BODY,
    async handler(ctx) {
      const session = await ctx.services.login(ctx.client, field(ctx.body, 'user'), field(ctx.body, 'password'));
      const user = await ctx.options.accounts.find(session.user);
      if (!user) throw new HttpError(401, 'wrong user name or password');
      return json({ user: user.name, role: user.role, csrf: session.csrf }, 200, { 'Set-Cookie': ctx.services.cookie(ctx.secure, session.id) });
    },
  },
  {
    method: 'GET',
    path: '/api/session',
    who: 'session',
    csrf: false,
    bodyLimit: NO_BODY,
    handler: async ({ auth }) => json({ user: auth.user.name, role: auth.user.role, csrf: auth.session?.csrf ?? null }),
  },
  {
    method: 'DELETE',
    path: '/api/session',
    who: 'session',
    csrf: true,
    bodyLimit: SMALL_BODY,
    async handler(ctx) {
      if (ctx.auth.session) ctx.options.sessions.close(ctx.auth.session.id);
      return json({ ok: true }, 200, { 'Set-Cookie': ctx.services.cookie(ctx.secure, '', 0) });
    },
  },
  {
    method: 'POST',
    path: '/logout',
    who: 'session',
    csrf: true,
    bodyLimit: SMALL_BODY,
    async handler(ctx) {
      if (ctx.auth.session) ctx.options.sessions.close(ctx.auth.session.id);
      return seeOther(`${BASE}/login?msg=${encodeURIComponent('logged out')}`, { 'Set-Cookie': ctx.services.cookie(ctx.secure, '', 0) });
    },
  },
];
