/**
 * `uec-provisioning region migrate --to postgresql|embedded`: move the region's nodes from the
 * store region.store names to the other one (src/region/migrate-store.ts), then set
 * region.store. The running services keep the old store until they are restarted.
 */
import { loadProcessActor } from '../core/audit';
import { usageError, type Command } from '../configurator/command';
import { loadConfig, writeManagedSettings } from '../core/config';
import { UecError } from '../core/errors';
import { migrateNodeStore } from '../region/migrate-store';
import { STORE_BACKENDS, openNodeStoreOf, selectStoreBackend, type StoreBackend } from '../region/open-store';

export const REGION_COMMANDS: Command[] = [
  {
    words: ['region', 'migrate'],
    args: '--to postgresql|embedded',
    summary: 'copy every node to the other node store, check the copy, then switch region.store to it',
    options: { to: { type: 'string' }, force: { type: 'boolean' } },
    optionHelp: [
      ['--to BACKEND', 'postgresql or embedded: the store to move to (configure region.database_* first)'],
      ['--force', 'replace the nodes the target store already holds'],
    ],
    async run(session, positionals, values) {
      if (positionals.length > 0) throw usageError(`region migrate takes no arguments, got ${JSON.stringify(positionals[0])}`);
      const to = values.to;
      if (typeof to !== 'string' || !(STORE_BACKENDS as readonly string[]).includes(to)) throw usageError(`region migrate needs --to ${STORE_BACKENDS.join(' or ')}`);
      const config = await loadConfig(session.paths, session.schema);
      const from = selectStoreBackend(config);
      if (from === to) throw new UecError('USAGE', `region.store is already ${to}: nothing to migrate`);
      const source = openNodeStoreOf(from, session.paths, config);
      const target = openNodeStoreOf(to as StoreBackend, session.paths, config);
      try {
        const result = await migrateNodeStore(source, target, {
          force: Boolean(values.force),
          targetName: to,
          switchOver: async () => {
            const written = await writeManagedSettings(session.paths, session.schema, new Map([['region.store', to]]), { audit: { actor: loadProcessActor(session.io.env), log: session.log } });
            for (const note of written.overridden) throw new UecError('CONFIG_INVALID_VALUE', `region.store is set again by a later drop-in (${note}); remove it there and run region migrate again`);
          },
        });
        if (session.json) session.io.stdout(`${JSON.stringify({ from, to, ...result })}\n`);
        session.log.info(`copied ${result.nodes} node(s) from the ${from} store to ${to} and checked each; region.store = ${to}`);
        session.log.info(`the services still use the ${from} store: run "systemctl restart uec-provisioning uec-provisioning-webui" now (changes made before the restart go to the ${from} store and are not copied)`);
      } finally {
        await Promise.all([source.close(), target.close()]);
      }
      return 0;
    },
  },
];
