import t from 'tap';
import { ARCHIVE_OVERRIDE_FILE, loadArchiveSettings, renderArchiveOverride } from '../../src/core/archive';
import { loadComponents, mergeSchemas } from '../../src/configurator/component';
import { loadConfig } from '../../src/core/config';
import { buildNodeContext, metadataUrl } from '../../src/contract/context';
import { createNode } from '../../src/contract/node';
import { sampleContext } from '../helpers/region-fixture';
import { put, scratchRoot } from '../helpers/scratch';

t.test('buildNodeContext: the seed items from node, urls, archive and role (pure)', async (t) => {
  const c = sampleContext({ status: 'commissioning', netboot: false });
  t.equal(c.version, 2);
  t.equal(c.metadata_url, 'http://192.0.2.10:5248/metadata/');
  t.equal(metadataUrl({ base: 'http://x:1' }), 'http://x:1/metadata/');
  t.equal(c.token, 'Tok3nTok3nTok3nTok3nTok3nTok3n_-');
  t.equal(c.status, 'commissioning');
  t.equal(c.commissioning, true);
  t.equal(c.netboot, false);
  t.equal(c.architecture, 'amd64');
  t.equal(c.subarchitecture, 'bios');
  t.equal(c.enlistment_url, 'http://192.0.2.10:5248/metadata/enlist');
  t.equal(c.disable_netboot_url, 'http://192.0.2.10:5248/metadata/latest/node-abc123/disable-netboot');
  t.equal(c.status_url, 'http://192.0.2.10:5248/metadata/latest/node-abc123/status/');
  t.same(c.config, {
    commissioning_distro_series: 'bookworm',
    main_archive: 'http://deb.debian.org/debian',
    ports_archive: 'http://ports.example.org/debian',
    http_proxy: 'http://192.0.2.10:3142/',
    admin_user: 'debian',
    authorized_keys: ['ssh-ed25519 AAAAC3Nza test@example'],
  });
  t.same(c.role, { name: 'server', description: 'Plain server', tasks: ['standard', 'ssh-server'], packages: ['openssh-server'], preseed: ['d-i foo/bar string baz'], late_commands: ['in-target true'] });
  t.equal(sampleContext().commissioning, false);
  const node = createNode({ hostname: 'a', macs: ['52:54:00:00:00:01'] }, new Date(0), { systemId: 'node-x', token: 't'.repeat(32) });
  const role = { name: 'server', description: '', tasks: [], packages: {}, preseed: [], lateCommands: [], file: '' };
  const archive = { main_archive: 'http://a/debian', ports_archive: 'http://b/debian', http_proxy: '', source: 'config' };
  const settings = { commissioningRelease: 'bookworm', adminUser: 'debian', authorizedKeys: [] };
  t.same(buildNodeContext(node, { base: 'http://r:1' }, archive, role, [], settings), buildNodeContext(node, { base: 'http://r:1' }, archive, role, [], settings), 'same input, same output');
});

t.test('archive settings: [archive] config, else ARCHIVE_OVERRIDE_FILE; a broken override is a clear error', async (t) => {
  const paths = scratchRoot(t);
  const schema = mergeSchemas(loadComponents());
  put(paths, '/etc/uec-provisioning/conf.d/90-local.conf', '[archive]\nmain_archive = http://mirror.example.org/debian\nhttp_proxy = http://proxy.example.org:3128\n');
  const config = await loadConfig(paths, schema);
  t.same(await loadArchiveSettings(paths, config), { main_archive: 'http://mirror.example.org/debian', ports_archive: 'http://deb.debian.org/debian', http_proxy: 'http://proxy.example.org:3128', source: 'config' });
  const override = { main_archive: 'http://192.0.2.10/debian', ports_archive: 'http://192.0.2.10/debian', http_proxy: '', source: 'mirror' };
  put(paths, ARCHIVE_OVERRIDE_FILE, renderArchiveOverride(override));
  t.same(await loadArchiveSettings(paths, config), override);
  t.throws(() => renderArchiveOverride({ ...override, main_archive: 'http://x/\nd-i' }), { code: 'INVALID_VALUE', message: /main_archive/ });
  put(paths, ARCHIVE_OVERRIDE_FILE, '{"main_archive": "http://a b"}');
  await t.rejects(loadArchiveSettings(paths, config), { code: 'CONFIG_INVALID_VALUE', message: /archive-settings\.json is not valid .*run: uec-provisioning apply mirror/ });
});
