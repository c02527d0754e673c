import * as fs from 'node:fs';
import t from 'tap';
import { applyPlans, type FilePlan } from '../../src/core/apply';
import { withFsFault } from '../../src/core/fs-ops';
import { SILENT_LOGGER } from '../../src/core/log';
import type { Paths } from '../../src/core/paths';
import type { ServiceControl, ServiceSpec } from '../../src/core/services';
import { snapshotTree, scratchRoot, put } from '../helpers/scratch';

/** A spy on the engine's service seam: records each reload and answers as told. */
function recordingServices(answer: (s: ServiceSpec) => Promise<'reloaded' | 'not-running'> = async () => 'reloaded') {
  const calls: string[] = [];
  const control: ServiceControl = {
    kind: 'none',
    reload: async (s) => {
      calls.push(s.name);
      return answer(s);
    },
  };
  return { control, calls };
}

const DNSMASQ: ServiceSpec = { name: 'dnsmasq', unit: 'dnsmasq.service' };
const APACHE: ServiceSpec = { name: 'apache2', unit: 'apache2.service' };

function plans(port = 'dhcp-range=10.9.0.10,10.9.0.50,12h'): FilePlan[] {
  return [
    { path: '/etc/dnsmasq.d/uec-test.conf', content: `# test\nport=0\n${port}\n`, mode: 0o644, validate: 'dnsmasq', services: [DNSMASQ] },
    { path: '/etc/dnsmasq.d/uec-test-hosts.conf', content: 'dhcp-host=52:54:00:00:00:01,10.9.0.11,node1\n', mode: 0o644, validate: 'dnsmasq', services: [DNSMASQ] },
    { path: '/etc/apache2/conf-available/uec-test.conf', content: 'Alias /uec-test /var/lib/uec-provisioning/www\n<Directory /var/lib/uec-provisioning/www>\n  Require all granted\n</Directory>\n', mode: 0o644, validate: 'apache2', services: [APACHE] },
    { path: '/var/lib/uec-provisioning/preseed.cfg', content: 'd-i debian-installer/locale string en_US\n', mode: 0o640, validate: 'debconf' },
  ];
}

async function apply(paths: Paths, p: FilePlan[], services: ServiceControl, extra: { dryRun?: boolean } = {}) {
  return applyPlans({ paths, component: 'test', plans: p, services, log: SILENT_LOGGER, ...extra });
}

t.test('first apply writes every file with its mode and reloads each service once; second changes nothing', async (t) => {
  const paths = scratchRoot(t);
  const spy = recordingServices();
  const first = await apply(paths, plans(), spy.control);
  t.equal(first.written.length, 4);
  t.same(spy.calls, ['apache2', 'dnsmasq'], 'dnsmasq reloaded once for two changed files');
  t.equal(fs.statSync(paths.resolve('/var/lib/uec-provisioning/preseed.cfg')).mode & 0o777, 0o640);
  const snap = snapshotTree(paths.root);
  const mtime = fs.statSync(paths.resolve('/etc/dnsmasq.d/uec-test.conf')).mtimeMs;

  const second = await apply(paths, plans(), spy.control);
  t.same(second.written, [], 'nothing written');
  t.same(spy.calls, ['apache2', 'dnsmasq'], 'nothing reloaded');
  t.same(snapshotTree(paths.root), snap);
  t.equal(fs.statSync(paths.resolve('/etc/dnsmasq.d/uec-test.conf')).mtimeMs, mtime, 'file not even rewritten');
});

t.test('only the services of changed files are reloaded', async (t) => {
  const paths = scratchRoot(t);
  const spy = recordingServices();
  await apply(paths, plans(), spy.control);
  spy.calls.length = 0;
  const result = await apply(paths, plans('dhcp-range=10.9.0.10,10.9.0.60,12h'), spy.control);
  t.same(result.written, ['/etc/dnsmasq.d/uec-test.conf']);
  t.same(spy.calls, ['dnsmasq']);
});

t.test('a mode change alone is applied', async (t) => {
  const paths = scratchRoot(t);
  const spy = recordingServices();
  await apply(paths, plans(), spy.control);
  fs.chmodSync(paths.resolve('/var/lib/uec-provisioning/preseed.cfg'), 0o666);
  const result = await apply(paths, plans(), spy.control);
  t.same(result.written, ['/var/lib/uec-provisioning/preseed.cfg']);
  t.equal(fs.statSync(paths.resolve('/var/lib/uec-provisioning/preseed.cfg')).mode & 0o777, 0o640);
});

t.test('dry run shows a unified diff and writes nothing', async (t) => {
  const paths = scratchRoot(t);
  const spy = recordingServices();
  const result = await apply(paths, plans(), spy.control, { dryRun: true });
  t.match(result.diff, /--- \/dev\/null\n\+\+\+ \/etc\/dnsmasq\.d\/uec-test\.conf \(new\)\n@@ -0,0 \+1,3 @@\n\+# test/);
  t.same(snapshotTree(paths.root), {});
  t.same(spy.calls, []);
});

const rejections: [string, FilePlan, RegExp][] = [
  ['dnsmasq', { path: '/etc/dnsmasq.d/uec-test.conf', content: 'port=0\ndhcp-range=not-an-address\n', mode: 0o644, validate: 'dnsmasq' }, /\/etc\/dnsmasq\.d\/uec-test\.conf: rejected by dnsmasq: .*bad dhcp-range.*nothing was written/],
  ['apache2', { path: '/etc/apache2/conf-available/uec-test.conf', content: '<Directory /x>\nRequire all granted\n', mode: 0o644, validate: 'apache2' }, /uec-test\.conf: rejected by apache2: .*Directory/],
  ['debconf', { path: '/var/lib/uec-provisioning/preseed.cfg', content: 'd-i only-two-words\n', mode: 0o644, validate: 'debconf' }, /preseed\.cfg: rejected by debconf/],
];
for (const [tool, bad, pattern] of rejections) {
  t.test(`${tool} rejects a rendered file: nothing written, nothing reloaded, old files intact`, async (t) => {
    const paths = scratchRoot(t);
    const spy = recordingServices();
    await apply(paths, plans(), spy.control);
    const snap = snapshotTree(paths.root);
    spy.calls.length = 0;
    const next = plans().map((p) => (p.path === bad.path ? bad : p));
    await t.rejects(apply(paths, next, spy.control), { code: 'VALIDATION_FAILED', message: pattern });
    t.same(snapshotTree(paths.root), snap);
    t.same(spy.calls, []);
  });
}

t.test('disk full on the second file: the first is restored, nothing reloaded', async (t) => {
  const paths = scratchRoot(t);
  const spy = recordingServices();
  await apply(paths, plans(), spy.control);
  const snap = snapshotTree(paths.root);
  spy.calls.length = 0;
  const changed = plans('dhcp-range=10.9.0.10,10.9.0.99,1h').map((p) => ({ ...p, content: p.content + '# v2\n' }));
  let renames = 0;
  await t.rejects(
    withFsFault(
      {
        rename: async (a, b) => {
          if (++renames === 2) throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
          return fs.promises.rename(a, b);
        },
      },
      () => apply(paths, changed, spy.control),
    ),
    { code: 'WRITE_FAILED', message: /cannot write \/etc\/dnsmasq\.d\/uec-test-hosts\.conf: ENOSPC: no space left on device; previous files restored/ },
  );
  t.same(snapshotTree(paths.root), snap, 'byte-for-byte the old tree, no temp files left');
  t.same(spy.calls, []);
});

t.test('an unwritable target directory is named and nothing is left half-done', async (t) => {
  const paths = scratchRoot(t);
  const spy = recordingServices();
  const target = paths.resolve('/etc/dnsmasq.d');
  await t.rejects(
    withFsFault({ open: async (p, f, m) => (p.startsWith(target) ? Promise.reject(Object.assign(new Error('permission denied'), { code: 'EACCES' })) : fs.promises.open(p, f, m)) }, () =>
      apply(paths, plans(), spy.control),
    ),
    { code: 'WRITE_FAILED', message: /cannot write \/etc\/dnsmasq\.d\/uec-test\.conf: EACCES/ },
  );
  const files = Object.keys(snapshotTree(paths.root));
  t.same(files, [], 'no file of the apply remains');
});

t.test('a failed reload restores the previous files', async (t) => {
  const paths = scratchRoot(t);
  const ok = recordingServices();
  await apply(paths, plans(), ok.control);
  const snap = snapshotTree(paths.root);
  let failOnce = true;
  const failing = recordingServices(async (s) => {
    if (s.name === 'dnsmasq' && failOnce) {
      failOnce = false;
      throw new Error('dnsmasq refused to reload');
    }
    return 'reloaded';
  });
  await t.rejects(apply(paths, plans('dhcp-range=10.9.0.10,10.9.0.70,12h'), failing.control), { code: 'SERVICE_FAILED', message: /dnsmasq refused to reload; previous files restored/ });
  t.same(snapshotTree(paths.root), snap);
  t.same(failing.calls, ['dnsmasq', 'dnsmasq'], 'reloaded again onto the restored files');
});

t.test('files a component no longer plans are removed, and their services reloaded', async (t) => {
  const paths = scratchRoot(t);
  const spy = recordingServices();
  await apply(paths, plans(), spy.control);
  spy.calls.length = 0;
  const result = await apply(paths, [], spy.control);
  t.same(result.removed.sort(), plans().map((p) => p.path).sort());
  t.same(spy.calls, ['apache2', 'dnsmasq']);
  t.same(Object.keys(snapshotTree(paths.root)), ['var/lib/uec-provisioning/generated-files.json']);
  t.equal(fs.readFileSync(paths.resolve('/var/lib/uec-provisioning/generated-files.json'), 'utf8'), '{}\n');
});

t.test("another component's files and the admin's files are never removed", async (t) => {
  const paths = scratchRoot(t);
  const spy = recordingServices();
  put(paths, '/etc/dnsmasq.d/admin.conf', 'port=0\n');
  await applyPlans({ paths, component: 'other', plans: [plans()[0] as FilePlan], services: spy.control, log: SILENT_LOGGER });
  await apply(paths, [], spy.control);
  t.ok(fs.existsSync(paths.resolve('/etc/dnsmasq.d/admin.conf')));
  t.ok(fs.existsSync(paths.resolve('/etc/dnsmasq.d/uec-test.conf')));
});

t.test('plans with ".." or duplicates are refused', async (t) => {
  const paths = scratchRoot(t);
  const spy = recordingServices();
  await t.rejects(apply(paths, [{ path: '/etc/../etc/passwd', content: 'x', mode: 0o644 }], spy.control), { code: 'INTERNAL' });
  const p = plans()[0] as FilePlan;
  await t.rejects(apply(paths, [p, p], spy.control), { code: 'INTERNAL' });
});

t.test('restart wins over reload of the same service; a new file in a watched directory reloads nothing', async (t) => {
  const paths = scratchRoot(t);
  const seen: ServiceSpec[] = [];
  const control: ServiceControl = { kind: 'none', reload: async (s) => (seen.push(s), 'reloaded') };
  const RELOAD: ServiceSpec = { name: 'dhcpd', unit: 'dhcpd.service', picksUpNewFiles: true };
  const RESTART: ServiceSpec = { name: 'dhcpd', unit: 'dhcpd.service', restart: true };
  const main: FilePlan = { path: '/etc/uec-test/main.conf', content: 'port=0\n', mode: 0o644, services: [RESTART] };
  const host = (n: number, c = ''): FilePlan => ({ path: `/var/lib/uec-test/hosts/${n}`, content: `52:54:00:00:00:0${n},10.9.0.1${n}${c}\n`, mode: 0o644, services: [RELOAD] });
  await apply(paths, [host(1), main], control);
  t.same(seen.map((s) => Boolean(s.restart)), [true], 'main config new → one restart, not a reload');
  seen.length = 0;
  await apply(paths, [host(1), host(2), main], control);
  t.same(seen, [], 'only a new hosts file → nothing reloaded');
  await apply(paths, [host(1, ',x'), host(2), main], control);
  t.same(seen.map((s) => Boolean(s.restart)), [false], 'changed hosts file → reload');
  seen.length = 0;
  await apply(paths, [host(2), main], control);
  t.same(seen.map((s) => Boolean(s.restart)), [false], 'removed hosts file → reload');
  seen.length = 0;
  await apply(paths, [host(2, ',y'), { ...main, content: 'port=0\nlog-dhcp\n' }], control);
  t.same(seen.map((s) => Boolean(s.restart)), [true], 'both changed → one restart');
});
