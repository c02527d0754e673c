import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { validateContent } from '../../src/core/validators';
import {
  buildPreseedView,
  createPreseedTemplateLoader,
  loadPreseedTemplate,
  maskTokenIn,
  renderPreseed,
  selectPreseedCandidates,
  selectPreseedType,
  splitArchiveUrl,
  PRESEED_TYPES,
} from '../../src/edge/preseed';
import { SHIPPED_TEMPLATES, sampleContext } from '../helpers/region-fixture';
import { scratchRoot } from '../helpers/scratch';

const urls = { httpBase: 'http://192.0.2.10:5248', domain: 'example.org' };
const shipped = path.join(SHIPPED_TEMPLATES, 'preseeds');

t.test('lookup order: most to least specific, then role, then type, then generic (pure)', async (t) => {
  t.same(selectPreseedCandidates({ type: 'install', os: 'debian', arch: 'amd64', subarch: 'uefi', release: 'bookworm', hostname: 'web1', role: 'walrus' }), [
    'install_debian_amd64_uefi_bookworm_web1',
    'install_debian_amd64_uefi_bookworm',
    'install_debian_amd64_uefi',
    'install_debian_amd64',
    'install_debian',
    'install_role-walrus',
    'install',
    'generic',
  ]);
  t.same(selectPreseedCandidates({ type: 'enlist' }), ['enlist', 'generic']);
  t.same(selectPreseedCandidates({ type: 'commissioning', os: 'debian', arch: 'arm64' }), ['commissioning_debian_arm64', 'commissioning_debian', 'commissioning', 'generic']);
  t.same(selectPreseedCandidates({ type: 'install', os: 'debian', arch: 'amd64', release: 'bookworm' }), ['install_debian_amd64', 'install_debian', 'install', 'generic'], 'a gap stops the chain: never a name that skips a part');
  t.equal(selectPreseedType(null), 'enlist');
  t.equal(selectPreseedType(sampleContext()), 'install');
  t.equal(selectPreseedType(sampleContext({ status: 'commissioning' })), 'commissioning');
});

t.test('admin directory before shipped, for every candidate in order', async (t) => {
  const paths = scratchRoot(t);
  const admin = paths.resolve('/etc/uec-provisioning/preseeds');
  const shippedDir = paths.resolve('/shipped');
  fs.mkdirSync(admin, { recursive: true });
  fs.mkdirSync(shippedDir, { recursive: true });
  const dirs = { admin, shipped: shippedDir };
  const candidates = selectPreseedCandidates({ type: 'install', os: 'debian', arch: 'amd64', subarch: 'bios', release: 'bookworm', hostname: 'web1', role: 'server' });
  await t.rejects(loadPreseedTemplate(dirs, candidates), { code: 'TEMPLATE_NOT_FOUND', message: /no preseed template for install_debian_amd64_bios_bookworm_web1 \(looked for .*generic/ });
  // Add files from least to most specific; each new one wins, and the admin's beats the shipped.
  for (const name of [...candidates].reverse()) {
    fs.writeFileSync(path.join(shippedDir, `${name}.mustache`), `shipped ${name}`);
    t.equal((await loadPreseedTemplate(dirs, candidates)).text, `shipped ${name}`);
    fs.writeFileSync(path.join(admin, `${name}.mustache`), `admin ${name}`);
    const chosen = await loadPreseedTemplate(dirs, candidates);
    t.equal(chosen.text, `admin ${name}`);
    t.equal(chosen.file, `/etc/uec-provisioning/preseeds/${name}.mustache`);
  }
  // The admin's generic does not beat a shipped, more specific type file.
  fs.rmSync(admin, { recursive: true });
  fs.mkdirSync(admin);
  fs.writeFileSync(path.join(admin, 'generic.mustache'), 'admin generic');
  t.equal((await loadPreseedTemplate(dirs, ['install', 'generic'])).text, 'shipped install');
});

t.test('createPreseedTemplateLoader: the same choice as loadPreseedTemplate, the directories and files read at most once a second', async (t) => {
  const paths = scratchRoot(t);
  const admin = paths.resolve('/etc/uec-provisioning/preseeds');
  const shippedDir = paths.resolve('/shipped');
  fs.mkdirSync(shippedDir, { recursive: true });
  const dirs = { admin, shipped: shippedDir };
  let clock = 100_000;
  const load = createPreseedTemplateLoader(dirs, { now: () => clock });
  const candidates = selectPreseedCandidates({ type: 'install', os: 'debian', arch: 'amd64', subarch: 'bios', release: 'bookworm', hostname: 'web1', role: 'server' });
  await t.rejects(load(candidates), { code: 'TEMPLATE_NOT_FOUND', message: /no preseed template for install_debian_amd64_bios_bookworm_web1 \(looked for .*generic/ });
  // Added from least to most specific, a second apart: each new one wins, the admin's first.
  for (const name of [...candidates].reverse()) {
    fs.writeFileSync(path.join(shippedDir, `${name}.mustache`), `shipped ${name}`);
    clock += 1000;
    t.equal((await load(candidates)).text, `shipped ${name}`);
    fs.mkdirSync(admin, { recursive: true });
    fs.writeFileSync(path.join(admin, `${name}.mustache`), `admin ${name}`);
    clock += 1000;
    const chosen = await load(candidates);
    t.equal(chosen.text, `admin ${name}`);
    t.equal(chosen.file, `/etc/uec-provisioning/preseeds/${name}.mustache`);
  }
  // Within the second: the same Template object for every machine using it, an edit not read yet.
  const other = selectPreseedCandidates({ type: 'install', os: 'debian', arch: 'amd64', subarch: 'bios', release: 'bookworm', hostname: 'web2', role: 'server' });
  const first = await load(other);
  t.equal(first.text, 'admin install_debian_amd64_bios_bookworm');
  fs.writeFileSync(path.join(admin, 'install_debian_amd64_bios_bookworm.mustache'), 'edited');
  fs.writeFileSync(path.join(admin, 'install_debian_amd64_bios_bookworm_web2.mustache'), 'admin web2');
  clock += 999;
  t.equal(await load(other), first, 'kept: the same object, no read');
  clock += 1;
  t.equal((await load(other)).text, 'admin web2', 'a second later: the new, more specific file');
  fs.rmSync(path.join(admin, 'install_debian_amd64_bios_bookworm_web2.mustache'));
  clock += 1000;
  t.equal((await load(other)).text, 'edited', 'removed: the next candidate, as edited');
  // The admin's generic does not beat a shipped, more specific type file.
  t.equal((await load(['install', 'generic'])).text, 'admin install');
  fs.rmSync(admin, { recursive: true });
  clock += 1000;
  t.equal((await load(['install', 'generic'])).text, 'shipped install', 'the admin directory gone: the shipped ones');
});

t.test('every shipped preseed renders and passes debconf-set-selections -c (real tool)', async (t) => {
  const contexts = [
    sampleContext(),
    sampleContext({ arch: 'arm64', subarch: 'uefi', hostname: 'arm1' }),
    sampleContext({ status: 'commissioning' }),
  ];
  let checked = 0;
  for (const type of PRESEED_TYPES) {
    for (const context of type === 'enlist' ? [null] : contexts) {
      const candidates = selectPreseedCandidates(context ? { type, os: context.os, arch: context.architecture, subarch: context.subarchitecture, release: context.release, hostname: context.hostname, role: context.role.name } : { type });
      const template = await loadPreseedTemplate({ admin: '/nonexistent', shipped }, candidates);
      const text = renderPreseed(template, buildPreseedView(context, urls, `${urls.httpBase}/enlist`));
      await validateContent('debconf', `${type} preseed`, text);
      checked++;
      if (context) {
        t.ok(text.includes(`${context.status_url}installing?token=${context.token}`), `${type}: early_command reports installing with the token`);
        if (type === 'install') {
          t.match(text, new RegExp(`^d-i mirror/http/hostname string ${context.architecture === 'arm64' ? 'ports.example.org' : 'deb.debian.org'}$`, 'm'), 'ports archive for arm64');
          t.match(text, /^d-i mirror\/http\/proxy string http:\/\/192\.0\.2\.10:3142\/$/m);
          t.match(text, /^d-i foo\/bar string baz$/m, 'the role preseed lines');
          t.match(text, /late_command string .*installed\?token=.*in-target true; .*disable-netboot\?token=/);
        }
      }
    }
  }
  const generic = await loadPreseedTemplate({ admin: '/nonexistent', shipped }, ['generic']);
  await validateContent('debconf', 'generic', renderPreseed(generic, buildPreseedView(sampleContext(), urls, `${urls.httpBase}/enlist`)));
  t.equal(checked, 7);
});

t.test('debconf-set-selections -c really rejects a broken preseed (the check is not a no-op)', async (t) => {
  await t.rejects(validateContent('debconf', 'broken preseed', 'd-i this is not\nnot a valid line at all\n'), { code: 'VALIDATION_FAILED' });
});

t.test('a value that would add a line to a preseed is refused, naming the file', async (t) => {
  const template = await loadPreseedTemplate({ admin: '/nonexistent', shipped }, ['install']);
  const context = sampleContext();
  context.hostname = 'web1\nd-i passwd/root-password string owned';
  t.throws(() => renderPreseed(template, buildPreseedView(context, urls, '')), { code: 'INVALID_VALUE', message: /templates\/preseeds\/install\.mustache: .*newline/ });
  const evil = sampleContext();
  evil.role.preseed = ['d-i a/b string c\nd-i x/y string z'];
  t.throws(() => renderPreseed(template, buildPreseedView(evil, urls, '')), { code: 'INVALID_VALUE' });
});

t.test('view: mirror split, token only in the callback URLs, masking', async (t) => {
  t.same(splitArchiveUrl('http://192.0.2.10:8080/debian/'), { hostname: '192.0.2.10:8080', directory: '/debian' });
  t.same(splitArchiveUrl('http://deb.debian.org'), { hostname: 'deb.debian.org', directory: '/' });
  const c = sampleContext();
  const view = buildPreseedView(c, urls, '');
  t.equal(view.installing_url, `http://192.0.2.10:5248/metadata/latest/node-abc123/status/installing?token=${c.token}`);
  t.equal(view.firstboot_url, `http://192.0.2.10:5248/preseed/node-abc123/firstboot?token=${c.token}`);
  const template = await loadPreseedTemplate({ admin: '/nonexistent', shipped }, ['install']);
  const text = renderPreseed(template, view);
  const masked = maskTokenIn(text, c.token);
  t.ok(text.includes(c.token));
  t.notOk(masked.includes(c.token), 'masked wherever shown to a person');
  t.match(masked, /token=Tok3…\(masked\)/);
  t.same(Object.keys(buildPreseedView(null, urls, 'http://x/enlist')).sort(), ['domain', 'enlistment_url', 'provisioning_url'], 'an unknown machine gets no node data');
});
