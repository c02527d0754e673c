import * as fs from 'node:fs';
import t from 'tap';
import { applyPlans, BATCH_SYNC_MIN, type FilePlan } from '../../src/core/apply';
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

/** A node's files for the node-apply tests: a reservation (new files need no reload) and a boot file. */
const HOSTS: ServiceSpec = { name: 'dhcpd', unit: 'dhcpd.service', picksUpNewFiles: true };
function nodePlans(node: string, mac: string, ip: string): FilePlan[] {
  return [
    { path: `/var/lib/uec-test/hosts/${node}`, content: `${mac},${ip},${node}\n`, mode: 0o644, services: [HOSTS], node },
    { path: `/srv/uec-test/boot/01-${mac.replace(/:/g, '-')}`, content: `boot ${node}\n`, mode: 0o644, node },
  ];
}
const SHARED: FilePlan = { path: '/etc/uec-test/main.conf', content: 'port=0\n', mode: 0o644 };

async function applyNodes(paths: Paths, nodes: string[], p: FilePlan[], services: ServiceControl) {
  return applyPlans({ paths, component: 'test', plans: p, services, log: SILENT_LOGGER, scope: { nodes } });
}

t.test('a node apply writes and removes only its nodes\' files, and reads no other node\'s file or manifest', async (t) => {
  const paths = scratchRoot(t);
  const spy = recordingServices();
  await apply(paths, [SHARED, ...nodePlans('node-a', '52:54:00:00:00:0a', '10.9.0.10'), ...nodePlans('node-b', '52:54:00:00:00:0b', '10.9.0.11')], spy.control);
  t.same(spy.calls, [], 'new files only: nothing reloaded');
  const read: string[] = [];
  const readFile = (p: string) => (read.push(p), fs.promises.readFile(p));

  const added = await withFsFault({ readFile }, () => applyNodes(paths, ['node-c'], nodePlans('node-c', '52:54:00:00:00:0c', '10.9.0.12'), spy.control));
  t.same(added.written, ['/var/lib/uec-test/hosts/node-c', '/srv/uec-test/boot/01-52-54-00-00-00-0c']);
  t.same(spy.calls, [], 'an added node reloads nothing');
  t.notOk(read.some((p) => /node-[ab]|0[ab]$|generated-files/.test(p)), `read only node-c's files: ${read.join(' ')}`);

  read.length = 0;
  const moved = await withFsFault({ readFile }, () => applyNodes(paths, ['node-a'], nodePlans('node-a', '52:54:00:00:00:1a', '10.9.0.20'), spy.control));
  t.same(moved.written, ['/var/lib/uec-test/hosts/node-a', '/srv/uec-test/boot/01-52-54-00-00-00-1a']);
  t.same(moved.removed, ['/srv/uec-test/boot/01-52-54-00-00-00-0a'], 'the old MAC\'s boot file goes');
  t.same(spy.calls, ['dhcpd'], 'a changed reservation reloads');
  t.notOk(read.some((p) => /node-[bc]|0[bc]$|generated-files/.test(p)), `read only node-a's files: ${read.join(' ')}`);

  spy.calls.length = 0;
  const gone = await applyNodes(paths, ['node-b'], [], spy.control);
  t.same(gone.removed.sort(), ['/srv/uec-test/boot/01-52-54-00-00-00-0b', '/var/lib/uec-test/hosts/node-b']);
  t.same(spy.calls, ['dhcpd'], 'a removed reservation reloads');
  t.notOk(fs.existsSync(paths.resolve('/var/lib/uec-provisioning/generated-nodes/test/node-b.json')), 'its manifest goes too');
  t.ok(fs.existsSync(paths.resolve(SHARED.path)), 'the shared file is untouched');

  const snap = snapshotTree(paths.root);
  spy.calls.length = 0;
  const again = await applyNodes(paths, ['node-a'], nodePlans('node-a', '52:54:00:00:00:1a', '10.9.0.20'), spy.control);
  t.same([again.written, again.removed, spy.calls], [[], [], []], 'the same change again: nothing written, nothing reloaded');
  t.same(snapshotTree(paths.root), snap);
});

t.test('a full apply leaves the same tree as the node applies that led to the same nodes', async (t) => {
  const incremental = scratchRoot(t);
  const full = scratchRoot(t);
  const spy = recordingServices();
  await apply(incremental, [SHARED], spy.control);
  await applyNodes(incremental, ['node-a'], nodePlans('node-a', '52:54:00:00:00:0a', '10.9.0.10'), spy.control);
  await applyNodes(incremental, ['node-b', 'node-c'], [...nodePlans('node-b', '52:54:00:00:00:0b', '10.9.0.11'), ...nodePlans('node-c', '52:54:00:00:00:0c', '10.9.0.12')], spy.control);
  await applyNodes(incremental, ['node-b'], [], spy.control);
  await applyNodes(incremental, ['node-a'], nodePlans('node-a', '52:54:00:00:00:1a', '10.9.0.13'), spy.control);
  const end = [SHARED, ...nodePlans('node-a', '52:54:00:00:00:1a', '10.9.0.13'), ...nodePlans('node-c', '52:54:00:00:00:0c', '10.9.0.12')];
  await apply(full, end, spy.control);
  t.same(snapshotTree(incremental.root), snapshotTree(full.root));
  const result = await apply(incremental, end, spy.control);
  t.same([result.written, result.removed], [[], []], 'and a full apply over it changes nothing');
  t.same(snapshotTree(incremental.root), snapshotTree(full.root));
});

t.test('a full apply removes the files of nodes it no longer plans, and their manifests', async (t) => {
  const paths = scratchRoot(t);
  const spy = recordingServices();
  await apply(paths, [SHARED, ...nodePlans('node-a', '52:54:00:00:00:0a', '10.9.0.10')], spy.control);
  const result = await apply(paths, [SHARED], spy.control);
  t.same(result.removed.sort(), ['/srv/uec-test/boot/01-52-54-00-00-00-0a', '/var/lib/uec-test/hosts/node-a']);
  t.notOk(fs.existsSync(paths.resolve('/var/lib/uec-provisioning/generated-nodes')), 'no empty manifest directory left');
  await apply(paths, [], spy.control);
  t.same(Object.keys(snapshotTree(paths.root)), ['var/lib/uec-provisioning/generated-files.json'], 'unconfigure leaves only the (empty) manifest');
});

t.test('files an older version listed in the one manifest: a full apply moves them to node manifests', async (t) => {
  const paths = scratchRoot(t);
  const spy = recordingServices();
  const [host, boot] = nodePlans('node-a', '52:54:00:00:00:0a', '10.9.0.10') as [FilePlan, FilePlan];
  const strip = ({ node: _node, ...p }: FilePlan): FilePlan => p;
  await apply(paths, [SHARED, strip(host), strip(boot)], spy.control);
  const result = await apply(paths, [SHARED, host, boot], spy.control);
  t.same([result.written, result.removed], [[], []], 'no file changes');
  t.same(JSON.parse(fs.readFileSync(paths.resolve('/var/lib/uec-provisioning/generated-files.json'), 'utf8')), { test: [{ path: SHARED.path, services: [] }] });
  const gone = await applyNodes(paths, ['node-a'], [], spy.control);
  t.same(gone.removed.sort(), [boot.path, host.path], 'a node apply can now remove them');
});

t.test('a node apply refuses plans outside its nodes and names that are not system ids', async (t) => {
  const paths = scratchRoot(t);
  const spy = recordingServices();
  await t.rejects(applyNodes(paths, ['node-a'], [SHARED], spy.control), { code: 'INTERNAL', message: /belongs to no node/ });
  await t.rejects(applyNodes(paths, ['node-a'], nodePlans('node-b', '52:54:00:00:00:0b', '10.9.0.11'), spy.control), { code: 'INTERNAL', message: /belongs to node node-b/ });
  await t.rejects(applyNodes(paths, ['../x'], [], spy.control), { code: 'INTERNAL', message: /not a system id/ });
  t.same(snapshotTree(paths.root), {}, 'nothing written');
});

t.test('disk full on a node apply: the node\'s previous files and manifest are restored', async (t) => {
  const paths = scratchRoot(t);
  const spy = recordingServices();
  await applyNodes(paths, ['node-a'], nodePlans('node-a', '52:54:00:00:00:0a', '10.9.0.10'), spy.control);
  const snap = snapshotTree(paths.root);
  let opened = 0;
  const open = async (p: string, flags: string, mode: number) => {
    if (++opened === 3) throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
    return fs.promises.open(p, flags, mode);
  };
  await t.rejects(withFsFault({ open }, () => applyNodes(paths, ['node-a'], nodePlans('node-a', '52:54:00:00:00:1a', '10.9.0.20'), spy.control)), { code: 'WRITE_FAILED', message: /ENOSPC.*previous files restored/ });
  t.same(snapshotTree(paths.root), snap);
});

const manyNodes = (n: number, tag = '') => Array.from({ length: n }, (_, i) => nodePlans(`node-${i}`, `52:54:00:00:01:${i.toString(16).padStart(2, '0')}`, `10.9.1.${i + 1}${tag}`)).flat();

t.test(`from ${BATCH_SYNC_MIN} files on, an apply is one batch: one sync(2), no fsync per file, one per directory; the same tree as file by file`, async (t) => {
  const batched = scratchRoot(t);
  const single = scratchRoot(t);
  const spy = recordingServices();
  const counts = { syncAll: 0, fsyncDir: [] as string[], syncedFiles: 0 };
  const open = async (p: string, flags: string, mode: number) => {
    const handle = await fs.promises.open(p, flags, mode);
    const sync = handle.sync.bind(handle);
    handle.sync = async () => {
      counts.syncedFiles++;
      return sync();
    };
    return handle;
  };
  const plansNow = [SHARED, ...manyNodes(20)];
  const result = await withFsFault(
    { open, syncAll: async () => void counts.syncAll++, fsyncDir: async (d) => void counts.fsyncDir.push(d) },
    () => apply(batched, plansNow, spy.control),
  );
  t.equal(result.written.length, 41);
  t.same([counts.syncAll, counts.syncedFiles], [1, 0], 'one sync for all, no fsync of a file');
  t.same(new Set(counts.fsyncDir).size, counts.fsyncDir.length, 'each directory synced once');
  t.ok(counts.fsyncDir.length <= 6, `${counts.fsyncDir.length} directory fsyncs for 41 files and 21 manifests`);
  // File by file, in slices below the batch size, to the same end.
  for (let i = 0; i < 20; i += 5) await applyPlans({ paths: single, component: 'test', plans: [SHARED, ...manyNodes(20)].filter((p) => p.node === undefined || Number(p.node.slice(5)) < i + 5), services: spy.control, log: SILENT_LOGGER });
  t.same(snapshotTree(batched.root), snapshotTree(single.root), 'the same files, modes and manifests');
  t.notOk(Object.keys(snapshotTree(batched.root)).some((f) => f.endsWith('.tmp')), 'no temp file left');
});

t.test('a batch that fails part way: the files renamed so far are restored, no temp file is left, the error names the file', async (t) => {
  const paths = scratchRoot(t);
  const spy = recordingServices();
  await apply(paths, [SHARED, ...manyNodes(20)], spy.control);
  const snap = snapshotTree(paths.root);
  let renames = 0;
  await t.rejects(
    withFsFault(
      {
        rename: async (a, b) => {
          if (++renames === 7) throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
          return fs.promises.rename(a, b);
        },
      },
      () => apply(paths, [SHARED, ...manyNodes(20, '0')], spy.control),
    ),
    { code: 'WRITE_FAILED', message: /^cannot write \/var\/lib\/uec-test\/hosts\/node-\d+: ENOSPC: no space left on device; previous files restored$/ },
  );
  t.same(snapshotTree(paths.root), snap, 'byte for byte the old tree, no temp file left');
  let opens = 0;
  await t.rejects(
    withFsFault({ open: async (p, f, m) => (++opens === 9 ? Promise.reject(Object.assign(new Error('no space left on device'), { code: 'ENOSPC' })) : fs.promises.open(p, f, m)) }, () =>
      apply(paths, [SHARED, ...manyNodes(20, '0')], spy.control),
    ),
    { code: 'WRITE_FAILED' },
  );
  t.same(snapshotTree(paths.root), snap, 'a temp file that could not be written: nothing changed');
  t.same(spy.calls, [], 'nothing reloaded');
});
