/** The logged-in user's own password (any role). */
import { REDACTED } from '../../../src/core/audit';
import { auditRequest } from '../audit';
import { HttpError, SMALL_BODY, field, json, type Route } from './route';

export const accountRoutes: Route[] = [
  {
    method: 'POST',
    path: '/api/account/password',
    who: 'session',
    csrf: true,
    bodyLimit: SMALL_BODY,
    async handler(ctx) {
      const { options, services, body, auth, secure } = ctx;
      const who = auth.user.name;
      const { accounts, sessions, log } = options;
      if (!(await accounts.authenticate(who, field(body, 'current')))) throw new HttpError(403, 'the current password is wrong');
      const newPassword = field(body, 'new');
      if (field(body, 'confirm') && field(body, 'confirm') !== newPassword) throw new HttpError(400, 'the new password and its confirmation differ');
      const user = await accounts.setPassword(who, newPassword);
      await auditRequest(ctx, 'user.passwd', { user: user.name }, { password: { before: REDACTED, after: REDACTED } });
      sessions.closeUser(who);
      services.endStreamsOf(who);
      const session = sessions.open(user.name, user.generation);
      log.info(`${who} changed their password; their other sessions ended`);
      return json({ changed: true, csrf: session.csrf }, 200, { 'Set-Cookie': services.cookie(secure, session.id) });
    },
  },
];
