/** Settings: every key with its value and origin; admins set keys in the managed drop-in. */
import { writeManagedSettings } from '../../../src/core/config';
import { loadRequestActor } from '../audit';
import { HttpError, NO_BODY, SMALL_BODY, field, json, type Route } from './route';

const setConfig = (method: 'PUT' | 'POST'): Route => ({
  method,
  path: '/api/config',
  who: 'admin',
  csrf: true,
  bodyLimit: SMALL_BODY,
  async handler(ctx) {
    const { options, body, auth } = ctx;
    const changes = new Map<string, string>();
    if (field(body, 'key')) changes.set(field(body, 'key'), field(body, 'value'));
    else for (const [k, v] of Object.entries(body)) if (!k.startsWith('_')) changes.set(k, Array.isArray(v) ? (v[0] ?? '') : v);
    if (changes.size === 0) throw new HttpError(400, 'no settings given');
    const result = await writeManagedSettings(options.paths, options.schema, changes, { audit: { actor: await loadRequestActor(ctx), log: options.log } });
    options.log.info(`${auth.user.name} set ${[...changes.keys()].join(', ')}${result.changed ? '' : ' (unchanged)'}`);
    return json({ changed: result.changed, set: Object.fromEntries(changes) });
  },
});

export const configRoutes: Route[] = [
  {
    method: 'GET',
    path: '/api/config',
    who: 'session',
    csrf: false,
    bodyLimit: NO_BODY,
    async handler({ options }) {
      const config = await options.loadConfig();
      return json(
        [...config.settings.entries()]
          .sort(([a], [b]) => (a < b ? -1 : 1))
          .map(([key, s]) => {
            const [section, name] = key.split('.') as [string, string];
            const spec = options.schema[section]?.keys[name];
            return { key, value: s.value, origin: s.origin, package: options.schema[section]?.package ?? '', type: spec?.type ?? 'string', values: spec?.values ?? null, description: spec?.description ?? '' };
          }),
      );
    },
  },
  setConfig('PUT'),
  setConfig('POST'),
];
