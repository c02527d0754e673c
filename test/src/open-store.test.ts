import t from 'tap';
import type { EffectiveConfig } from '../../src/core/config';
import { createNode } from '../../src/contract/node';
import { checkDatabaseUrl, openNodeStore, selectPostgresOptions, selectStoreBackend } from '../../src/region/open-store';
import { scratchRoot } from '../helpers/scratch';

function fakeConfig(values: Record<string, string | number>): EffectiveConfig {
  const defaults: Record<string, string | number> = { 'region.store': 'embedded', 'region.database_url': '', 'region.database_host': '', 'region.database_port': 5432, 'region.database_name': 'uecprovisioning', 'region.database_user': 'uecprovisioning', 'region.database_password_file': '' };
  const all = { ...defaults, ...values };
  return { settings: new Map(), get: (k) => all[k]!, getString: (k) => String(all[k]), getNumber: (k) => Number(all[k]), getBoolean: () => false };
}

t.test('region.database_url: postgresql:// without a password', async (t) => {
  t.equal(checkDatabaseUrl('postgresql://uecp@db.example:5433/uecp'), null);
  t.equal(checkDatabaseUrl('postgres://db/uecp'), null);
  t.equal(checkDatabaseUrl('http://db/uecp'), 'must be a postgresql:// URL');
  t.equal(checkDatabaseUrl('postgresql://u:secret@db/uecp'), 'holds a password: put it in region.database_password_file (mode 0600) instead');
  t.equal(checkDatabaseUrl('db'), 'is not a URL');
});

t.test('the connection from the keys: URL, or host (default the local socket directory) and the rest; the password file under --root', async (t) => {
  const paths = scratchRoot(t);
  t.same(selectPostgresOptions(fakeConfig({})), { host: '/run/postgresql', port: 5432, database: 'uecprovisioning', user: 'uecprovisioning' });
  t.same(selectPostgresOptions(fakeConfig({ 'region.database_url': 'postgresql://u@h/d', 'region.database_password_file': '/var/lib/uec-provisioning/secrets/database.password' }), paths), {
    connectionString: 'postgresql://u@h/d',
    passwordFile: paths.resolve('/var/lib/uec-provisioning/secrets/database.password'),
  });
  t.same(selectPostgresOptions(fakeConfig({ 'region.database_host': 'db.example', 'region.database_port': 6543 })).host, 'db.example');
  t.equal(selectStoreBackend(fakeConfig({ 'region.store': 'postgresql' })), 'postgresql');
  t.throws(() => selectStoreBackend(fakeConfig({ 'region.store': 'mysql' })), { code: 'CONFIG_INVALID_VALUE', message: /region.store "mysql" is not one of embedded, postgresql/ });
});

t.test('openNodeStore with a config loader: opened on first use, onChange listeners given before that still hear commits', async (t) => {
  const paths = scratchRoot(t);
  let loads = 0;
  const store = openNodeStore(paths, async () => {
    loads++;
    return fakeConfig({});
  });
  t.teardown(() => store.close());
  const heard: string[] = [];
  store.onChange((changes) => void heard.push(...changes.map((c) => c.systemId)));
  const node = createNode({ hostname: 'web1', macs: ['52:54:00:00:00:01'] }, new Date(), { systemId: 'node-web1', token: 'x'.repeat(32) });
  await store.modify([], (_f, w) => w.put(node));
  t.equal((await store.find('web1'))?.systemId, 'node-web1');
  t.same(heard, ['node-web1']);
  t.equal(loads, 1, 'the configuration is read once');
});
