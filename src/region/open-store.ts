/**
 * The one place that picks the node store backend from the configuration:
 * region.store = embedded (files under /var/lib/uec-provisioning, the default) or postgresql
 * (region.database_url, or region.database_host/_port/_name/_user, with the password in the
 * 0600 file region.database_password_file: never in the configuration itself).
 */
import type { EffectiveConfig } from '../core/config';
import { UecError } from '../core/errors';
import type { Paths } from '../core/paths';
import { createFileNodeStore, type NodeStore } from './node-store';
import { createPostgresNodeStore, type PostgresNodeStoreOptions } from './node-store-postgresql';

export const STORE_BACKENDS = ['embedded', 'postgresql'] as const;
export type StoreBackend = (typeof STORE_BACKENDS)[number];

/** region.database_url: a postgresql:// URL without a password (that goes in the password file). */
export function checkDatabaseUrl(value: string): string | null {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'is not a URL';
  }
  if (url.protocol !== 'postgresql:' && url.protocol !== 'postgres:') return 'must be a postgresql:// URL';
  if (url.password) return 'holds a password: put it in region.database_password_file (mode 0600) instead';
  if (/[\s"'`\\<>]/.test(value)) return 'contains a space, quote or backslash';
  return null;
}

/** The PostgreSQL connection the configuration names (pure). The password file is under --root; the database is not. */
export function selectPostgresOptions(config: Pick<EffectiveConfig, 'getString' | 'getNumber'>, paths?: Paths): PostgresNodeStoreOptions {
  const url = config.getString('region.database_url');
  const passwordFile = config.getString('region.database_password_file');
  const options: PostgresNodeStoreOptions = url
    ? { connectionString: url }
    : {
        host: config.getString('region.database_host') || '/run/postgresql',
        port: config.getNumber('region.database_port'),
        database: config.getString('region.database_name'),
        user: config.getString('region.database_user'),
      };
  if (passwordFile) options.passwordFile = paths ? paths.resolve(passwordFile) : passwordFile;
  return options;
}

export function selectStoreBackend(config: Pick<EffectiveConfig, 'getString'>): StoreBackend {
  const backend = config.getString('region.store');
  if (!(STORE_BACKENDS as readonly string[]).includes(backend)) throw new UecError('CONFIG_INVALID_VALUE', `region.store ${JSON.stringify(backend)} is not one of ${STORE_BACKENDS.join(', ')}`);
  return backend as StoreBackend;
}

/** A store of the given backend. */
export function openNodeStoreOf(backend: StoreBackend, paths: Paths, config: Pick<EffectiveConfig, 'getString' | 'getNumber'>): NodeStore {
  return backend === 'postgresql' ? createPostgresNodeStore(selectPostgresOptions(config, paths)) : createFileNodeStore(paths);
}

/**
 * The node store the configuration chooses. `config` may be a loader: the store is then
 * opened on first use (the CLI creates its session before it has read the configuration).
 */
export function openNodeStore(paths: Paths, config: EffectiveConfig | (() => Promise<EffectiveConfig>)): NodeStore {
  if (typeof config !== 'function') return openNodeStoreOf(selectStoreBackend(config), paths, config);
  const load = config;
  let opened: Promise<NodeStore> | undefined;
  const pending: Parameters<NodeStore['onChange']>[0][] = [];
  const store = (): Promise<NodeStore> => {
    opened ??= load().then((c) => {
      const s = openNodeStore(paths, c);
      for (const l of pending) s.onChange(l);
      return s;
    });
    opened.catch(() => {
      opened = undefined;
    });
    return opened;
  };
  return {
    list: async () => (await store()).list(),
    find: async (ref) => (await store()).find(ref),
    page: async (query) => (await store()).page(query),
    countByStatus: async () => (await store()).countByStatus(),
    modify: async (refs, change) => (await store()).modify(refs, change),
    update: async (change) => (await store()).update(change),
    changesSince: async (cursor, limit) => (await store()).changesSince(cursor, limit),
    currentCursor: async () => (await store()).currentCursor(),
    resetFollowers: async (cursor) => (await store()).resetFollowers(cursor),
    onChange(listener) {
      if (opened) void opened.then((s) => s.onChange(listener), () => pending.push(listener));
      else pending.push(listener);
      // A listener wants other processes' changes too: open now (PostgreSQL LISTENs at once).
      store().catch(() => undefined);
    },
    async close() {
      if (opened) await (await opened.catch(() => undefined))?.close();
    },
  };
}
