/** Boot images: the list, and `images import` when uec-provisioning-tftpd brings that command. */
import { runCommand } from '../../../src/core/run-command';
import { listImages } from '../health';
import { auditRequest } from '../audit';
import { HttpError, NO_BODY, SMALL_BODY, field, json, type Route } from './route';

export const imageRoutes: Route[] = [
  {
    method: 'GET',
    path: '/api/images',
    who: 'session',
    csrf: false,
    bodyLimit: NO_BODY,
    handler: async ({ options, services }) => json({ images: await listImages(options.paths), importAvailable: Boolean(services.imagesCommand()) }),
  },
  {
    method: 'POST',
    path: '/api/images/import',
    who: 'admin',
    csrf: true,
    bodyLimit: SMALL_BODY,
    async handler(ctx) {
      const { options, services, body, auth } = ctx;
      if (!services.imagesCommand()) throw new HttpError(404, 'image import needs uec-provisioning-tftpd (no `images import` command installed)');
      const words = field(body, 'args').trim().split(/\s+/).filter(Boolean);
      for (const w of words) if (!/^[A-Za-z0-9._=:/+-]{1,200}$/.test(w) || w.startsWith('--root')) throw new HttpError(400, `argument ${JSON.stringify(w)} is not allowed`);
      const argv = [...options.cliArgv, 'images', 'import', ...words, '--root', options.paths.root];
      options.log.info(`${auth.user.name} started images import ${words.join(' ')}`);
      const result = await runCommand(argv[0]!, argv.slice(1), { env: options.env, timeoutMs: 30 * 60_000 });
      await auditRequest(ctx, 'images.import', { args: words.join(' '), exit: String(result.code) });
      return json({ exit: result.code, output: `${result.stdout}${result.stderr}`.slice(-20_000) }, result.code === 0 ? 200 : 502);
    },
  },
];
