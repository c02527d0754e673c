import * as path from 'node:path';
import t from 'tap';
import { buildEffectiveConfig, parseValue, type ConfigValue } from '../../../src/core/config';
import { createPaths } from '../../../src/core/paths';
import { templateDirs } from '../../../src/core/template';
import { validateContent } from '../../../src/core/validators';
import { checkGolden } from '../../helpers/golden';
import { COMMON_SCHEMA } from '../../../packages/common/config-schema';
import { loadMirrorTemplates } from '../../../packages/mirror/index';
import { MIRROR_SCHEMA } from '../../../packages/mirror/config-schema';
import { parseMirrorSettings } from '../../../packages/mirror/model';
import { renderMirrorPlans } from '../../../packages/mirror/render';
import { REPO_ROOT } from '../../helpers/scratch';

const SCHEMA = { ...COMMON_SCHEMA, ...MIRROR_SCHEMA };

function config(values: Record<string, string>) {
  const parsed = new Map<string, ConfigValue>();
  for (const [key, raw] of Object.entries(values)) {
    const [section, name] = key.split('.') as [string, string];
    const spec = SCHEMA[section]?.keys[name];
    if (!spec) throw new Error(`no key ${key}`);
    parsed.set(key, parseValue(spec, raw, key));
  }
  return buildEffectiveConfig(SCHEMA, [{ file: 'test', values: parsed }]);
}

const templates = () => loadMirrorTemplates({ templates: templateDirs(createPaths('/'), path.join(REPO_ROOT, 'templates')) });
const ARCHIVE = { main_archive: 'http://deb.debian.org/debian', ports_archive: 'http://deb.debian.org/debian' };


const CASES: Record<string, Record<string, string>> = {
  upstream: { 'mirror.mode': 'upstream' },
  proxy: { 'mirror.mode': 'proxy', 'mirror.host': '10.9.0.1', 'archive.main_archive': 'http://deb.example.org:8080/debian' },
  mirror: { 'mirror.mode': 'mirror', 'mirror.host': 'install.example.org', 'mirror.suites': 'bookworm bookworm-updates', 'mirror.architectures': 'amd64 arm64', 'mirror.components': 'main contrib' },
  iso: { 'mirror.mode': 'iso', 'mirror.host': '10.9.0.1', 'mirror.http_port': '8080', 'mirror.iso': '/srv/iso/debian-12.iso' },
};

for (const [name, values] of Object.entries(CASES)) {
  t.test(`mode ${name}: golden files, each accepted by its real validator`, async (t) => {
    const c = config(values);
    const plans = renderMirrorPlans({ settings: parseMirrorSettings(c), templates: await templates(), host: c.getString('mirror.host') || 'localhost', archive: { main_archive: c.getString('archive.main_archive'), ports_archive: c.getString('archive.ports_archive') } });
    checkGolden(t, path.join(__dirname, 'fixtures'), name, plans);
    for (const plan of plans) if (plan.validate) await validateContent(plan.validate, plan.path, plan.content);
    const override = plans.find((p) => p.path === '/var/lib/uec-provisioning/archive-settings.json');
    if (name === 'upstream') t.notOk(override, 'upstream plans no archive override');
    else t.ok(override, 'an archive override for preseeds');
  });
}

t.test('the archive override carries the effective settings per mode', async (t) => {
  const tpl = await templates();
  const get = (values: Record<string, string>) => {
    const plans = renderMirrorPlans({ settings: parseMirrorSettings(config(values)), templates: tpl, host: '10.9.0.1', archive: ARCHIVE });
    const file = plans.find((p) => p.path.endsWith('archive-settings.json'));
    return file ? JSON.parse(file.content) : null;
  };
  t.match(get({ 'mirror.mode': 'proxy' }), { main_archive: ARCHIVE.main_archive, http_proxy: 'http://10.9.0.1:3142/' });
  t.match(get({ 'mirror.mode': 'mirror' }), { main_archive: 'http://10.9.0.1/uec-provisioning/archive', ports_archive: 'http://10.9.0.1/uec-provisioning/archive', http_proxy: '' });
  t.match(get({ 'mirror.mode': 'iso', 'mirror.iso': '/srv/x.iso' }), { main_archive: 'http://10.9.0.1/uec-provisioning/archive' });
  t.equal(get({ 'mirror.mode': 'upstream' }), null);
});

t.test('bad input: one clear error naming the culprit', async (t) => {
  t.throws(() => config({ 'mirror.mode': 'rsync' }), { code: 'CONFIG_INVALID_VALUE', message: /must be one of: upstream, proxy, mirror, iso/ });
  t.throws(() => config({ 'mirror.upstream': 'ftp://x/debian' }), { code: 'CONFIG_INVALID_VALUE', message: /http/ });
  t.throws(() => config({ 'mirror.upstream': 'http://x/deb ian' }), { code: 'CONFIG_INVALID_VALUE' });
  // Refused on load (the schema's check), the same function parseMirrorSettings calls.
  t.throws(() => parseMirrorSettings(config({ 'mirror.suites': 'bookworm bad"suite' })), { code: 'CONFIG_INVALID_VALUE', message: /mirror\.suites = "bookworm bad\\"suite": "bad\\"suite" must be/ });
  t.throws(() => parseMirrorSettings(config({ 'mirror.components': 'Main' })), { code: 'CONFIG_INVALID_VALUE', message: /mirror\.components/ });
  t.throws(() => parseMirrorSettings(config({ 'mirror.mode': 'iso' })), { code: 'CONFIG_INVALID_VALUE', message: /mirror\.iso/ });
  t.throws(() => config({ 'mirror.host': 'a b' }), { code: 'CONFIG_INVALID_VALUE' });
  t.throws(() => config({ 'mirror.proxy_port': '40000' }), { code: 'CONFIG_INVALID_VALUE', message: /mirror\.proxy_port/ }, 'apt-cacher-ng cannot bind above 32767');
  const tpl = await templates();
  const proxyPlans = (mainArchive: string) => {
    const c = config({ 'mirror.mode': 'proxy', 'archive.main_archive': mainArchive });
    return renderMirrorPlans({ settings: parseMirrorSettings(c), templates: tpl, host: '10.9.0.1', archive: { main_archive: mainArchive, ports_archive: ARCHIVE.ports_archive } });
  };
  t.throws(() => proxyPlans('http://deb.example.org:40000/debian'), { code: 'CONFIG_INVALID_VALUE', message: /^archive\.main_archive: http:\/\/deb\.example\.org:40000\/debian uses port 40000; apt-cacher-ng/ });
  t.ok(proxyPlans('http://deb.example.org:32767/debian').length > 0, 'port 32767 is still fine');
});

t.test('a tampered apache conf is rejected by apache2 -t', async (t) => {
  await t.rejects(validateContent('apache2', '/etc/apache2/conf-available/uec-provisioning-mirror.conf', 'Alias /x\n<Directory /x>\n'), { code: 'VALIDATION_FAILED' });
  await t.rejects(validateContent('apt-cacher-ng', '/etc/apt-cacher-ng/zz_uec-provisioning.conf', 'Port: 3142\nNoSuchThing: 1\n'), { code: 'VALIDATION_FAILED' });
});
