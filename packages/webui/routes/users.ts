/** Web UI users: admins list and create them. */
import { REDACTED } from '../../../src/core/audit';
import type { UserRole } from '../accounts';
import { auditRequest } from '../audit';
import { NO_BODY, SMALL_BODY, field, json, type Route } from './route';

export const userRoutes: Route[] = [
  {
    method: 'GET',
    path: '/api/users',
    who: 'admin',
    csrf: false,
    bodyLimit: NO_BODY,
    handler: async ({ options }) => json((await options.accounts.list()).map((u) => ({ name: u.name, role: u.role, changedAt: u.changedAt }))),
  },
  {
    method: 'POST',
    path: '/api/users',
    who: 'admin',
    csrf: true,
    bodyLimit: SMALL_BODY,
    async handler(ctx) {
      const { options, body, auth } = ctx;
      const user = await options.accounts.create(field(body, 'name'), field(body, 'role') as UserRole, field(body, 'password'));
      await auditRequest(ctx, 'user.add', { user: user.name }, { role: { before: null, after: user.role }, password: { before: null, after: REDACTED } });
      options.log.info(`${auth.user.name} created user ${user.name} (${user.role})`);
      return json({ name: user.name, role: user.role }, 201);
    },
  },
];
