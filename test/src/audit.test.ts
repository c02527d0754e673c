import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import * as ts from 'typescript';
import {
  AUDIT_ACTIONS,
  AUDIT_LINE_LIMIT,
  AUDIT_LOG,
  REDACTED,
  appendAuditEntry,
  createAuditEntry,
  describeActor,
  isSecretField,
  loadAuditEntries,
  parseAuditText,
  parseSince,
  renderAuditLine,
  selectAuditEntries,
  selectChanges,
  selectPage,
  selectProcessActor,
  type AuditEntry,
} from '../../src/core/audit';
import { withFsFault } from '../../src/core/fs-ops';
import { createLogger } from '../../src/core/log';
import { REPO_ROOT, scratchRoot } from '../helpers/scratch';

const T0 = new Date('2026-12-06T09:00:00.000Z');

t.test('the actor of a process: the unix user, the sudo user behind root, a maintainer script', async (t) => {
  t.same(selectProcessActor({}, 'alice'), { kind: 'unix', user: 'alice' });
  t.same(selectProcessActor({ SUDO_USER: 'alice' }, 'root'), { kind: 'unix', user: 'alice' }, 'root through sudo: the user who ran sudo');
  t.same(selectProcessActor({ SUDO_USER: 'alice' }, 'bob'), { kind: 'unix', user: 'bob' }, 'SUDO_USER counts only for root');
  t.same(selectProcessActor({ UEC_PROVISIONING_ACTOR: 'debconf:uec-provisioning-dhcpd', SUDO_USER: 'alice' }, 'root'), { kind: 'debconf', package: 'uec-provisioning-dhcpd', user: 'root' });
  t.same(selectProcessActor({ DPKG_MAINTSCRIPT_PACKAGE: 'uec-provisioning-webui' }, 'root'), { kind: 'debconf', package: 'uec-provisioning-webui', user: 'root' }, "dpkg's own variable");
  t.same(selectProcessActor({ UEC_PROVISIONING_ACTOR: 'debconf:Bad Name!' }, 'alice'), { kind: 'unix', user: 'alice' }, 'a malformed claim is ignored');
  t.same(selectProcessActor({ UEC_PROVISIONING_ACTOR: 'web:admin' }, 'alice'), { kind: 'unix', user: 'alice' }, 'only debconf may be claimed');
  t.equal(describeActor({ kind: 'token', user: 'admin', token: '0123456789ab', name: 'ci' }), 'token:admin/ci(0123456789ab)');
});

t.test('changes: only the fields that differ, secrets redacted by field name', async (t) => {
  t.same(selectChanges({ a: 1, b: 'x', macs: ['m1'] }, { a: 1, b: 'y', macs: ['m1', 'm2'] }), { b: { before: 'x', after: 'y' }, macs: { before: ['m1'], after: ['m1', 'm2'] } });
  t.same(selectChanges(null, { hostname: 'h' }), { hostname: { before: null, after: 'h' } });
  t.same(selectChanges({ address: '10.0.0.1', password: 'old-bmc-secret' }, { address: '10.0.0.1', password: 'new-bmc-secret' }), { password: { before: REDACTED, after: REDACTED } });
  t.same(selectChanges({ password: '' }, { password: 'p' }), { password: { before: '', after: REDACTED } }, 'empty stays visible: set vs cleared');
  for (const name of ['password', 'bmc_password', 'token', 'api.token', 'secret', 'digest', 'region.key', 'passwd']) t.ok(isSecretField(name), `${name} is secret`);
  for (const name of ['hostname', 'region.authorized_keys_file', 'mirror.keyring', 'macs', 'keys']) t.notOk(isSecretField(name), `${name} is not`);
  const line = renderAuditLine(createAuditEntry({ kind: 'unix', user: 'a' }, 'bmc.set', { systemId: 'node-x' }, { password: { before: 'raw-secret-1', after: 'raw-secret-2' } }, T0));
  t.notMatch(line, /raw-secret/, 'the renderer redacts again whatever the caller passed');
});

t.test('a line stays under PIPE_BUF, whatever it holds, and is one line', async (t) => {
  const huge = createAuditEntry({ kind: 'unix', user: 'a' }, 'config.set', { keys: 'k '.repeat(3000) }, Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`f${i}`, { before: 'x'.repeat(500), after: 'y\u2028'.repeat(500) }])), T0);
  const line = renderAuditLine(huge);
  t.ok(Buffer.byteLength(line) <= AUDIT_LINE_LIMIT, `${Buffer.byteLength(line)} bytes`);
  t.ok(AUDIT_LINE_LIMIT < 4096);
  t.equal(line.indexOf('\n'), line.length - 1);
  t.notMatch(line, /\u2028/);
  const parsed = JSON.parse(line) as AuditEntry;
  t.equal(parsed.truncated, true);
  t.equal(parsed.action, 'config.set');
  const small = renderAuditLine(createAuditEntry({ kind: 'web', user: 'admin' }, 'node.add', { systemId: 'node-1', hostname: 'h' }, {}, T0));
  t.same(JSON.parse(small), { time: '2026-12-06T09:00:00.000Z', actor: { kind: 'web', user: 'admin' }, action: 'node.add', target: { systemId: 'node-1', hostname: 'h' }, changes: {} });
});

function entry(i: number, actor: AuditEntry['actor'], action: AuditEntry['action'], target: Record<string, string>): AuditEntry {
  return createAuditEntry(actor, action, target, {}, new Date(T0.getTime() + i * 60_000));
}

t.test('filters: actor text, action or group, target text, since; newest first; pages', async (t) => {
  const all = [
    entry(0, { kind: 'unix', user: 'alice' }, 'config.set', { keys: 'server.interface' }),
    entry(1, { kind: 'web', user: 'admin' }, 'node.add', { systemId: 'node-aaaaaa', hostname: 'web1' }),
    entry(2, { kind: 'token', user: 'admin', token: '0123456789ab', name: 'ci' }, 'node.remove', { systemId: 'node-aaaaaa', hostname: 'web1' }),
    entry(3, { kind: 'debconf', package: 'uec-provisioning-dhcpd', user: 'root' }, 'config.set', { keys: 'dhcp.mode' }),
  ];
  const actions = (list: AuditEntry[]) => list.map((e) => e.action);
  t.same(actions(selectAuditEntries(all, {})), ['config.set', 'node.remove', 'node.add', 'config.set'], 'newest first');
  t.same(actions(selectAuditEntries(all, { actor: 'admin' })), ['node.remove', 'node.add']);
  t.same(actions(selectAuditEntries(all, { actor: 'token:' })), ['node.remove']);
  t.same(actions(selectAuditEntries(all, { actor: 'debconf' })), ['config.set']);
  t.same(actions(selectAuditEntries(all, { action: 'node' })), ['node.remove', 'node.add'], 'a group');
  t.same(actions(selectAuditEntries(all, { action: 'nod' })), [], 'not a prefix of a word');
  t.same(actions(selectAuditEntries(all, { target: 'WEB1' })), ['node.remove', 'node.add']);
  t.same(actions(selectAuditEntries(all, { since: new Date(T0.getTime() + 2 * 60_000) })), ['config.set', 'node.remove']);
  t.same(selectPage([1, 2, 3, 4, 5], 2, 2), { items: [3, 4], page: 2, pages: 3 });
  t.same(selectPage([1, 2, 3], 9, 2), { items: [3], page: 2, pages: 2 }, 'past the end: the last page');
  t.same(selectPage([], 1, 2), { items: [], page: 1, pages: 1 });
});

t.test('--since: ISO dates and times, ages; anything else is null', async (t) => {
  t.equal(parseSince('2026-12-01', T0)?.toISOString(), '2026-12-01T00:00:00.000Z');
  t.equal(parseSince('2026-12-06T08:30Z', T0)?.toISOString(), '2026-12-06T08:30:00.000Z');
  t.equal(parseSince('12h', T0)?.toISOString(), '2026-12-05T21:00:00.000Z');
  t.equal(parseSince('30m', T0)?.toISOString(), '2026-12-06T08:30:00.000Z');
  for (const bad of ['yesterday', '12', '2026-13-45', '', '1w']) t.equal(parseSince(bad, T0), null, JSON.stringify(bad));
});

t.test('append: a new log is 0640; lines append; reading from the end is capped', async (t) => {
  const paths = scratchRoot(t);
  const file = paths.resolve(AUDIT_LOG);
  t.same(await loadAuditEntries(paths), { entries: [], partial: false, bytesRead: 0, malformed: 0 }, 'no log yet: nothing');
  const old = process.umask(0o077);
  try {
    for (let i = 0; i < 10; i++) t.ok(await appendAuditEntry(paths, entry(i, { kind: 'unix', user: 'u' }, 'node.add', { hostname: `h${i}` })));
  } finally {
    process.umask(old);
  }
  t.equal(fs.statSync(file).mode & 0o777, 0o640);
  const all = await loadAuditEntries(paths);
  t.equal(all.entries.length, 10);
  t.equal(all.partial, false);
  const lineBytes = fs.readFileSync(file, 'utf8').split('\n')[0]!.length + 1;
  const tail = await loadAuditEntries(paths, Math.floor(lineBytes * 3.5));
  t.equal(tail.partial, true);
  t.ok(tail.bytesRead <= lineBytes * 3.5);
  t.same(tail.entries.map((e) => e.target.hostname), ['h7', 'h8', 'h9'], 'the cut first line is skipped, not counted as malformed');
  t.equal(tail.malformed, 0);
  t.same(parseAuditText('not json\n{"x":1}\n', false).malformed, 2);
});

t.test('a failed append is logged as an error and does not throw', async (t) => {
  const paths = scratchRoot(t);
  const lines: string[] = [];
  const log = createLogger({ level: 'info', json: false, write: (l) => lines.push(l) });
  const eacces = Object.assign(new Error('permission denied'), { code: 'EACCES' });
  const ok = await withFsFault({ open: () => Promise.reject(eacces) }, () => appendAuditEntry(paths, entry(0, { kind: 'web', user: 'admin' }, 'node.add', { hostname: 'h' }), log));
  t.equal(ok, false);
  t.equal(lines.length, 1);
  t.match(lines[0], /^uec-provisioning: error: audit log \/var\/log\/uec-provisioning\/audit.log: could not record node.add by web:admin \(the change itself was made\): EACCES/);
});

/**
 * The writer as plain JavaScript (src/core/audit.ts and what it needs at run time, transpiled once
 * here) so that 20 node processes start fast; each appends long lines, which would mix if an
 * append were not one write.
 */
function buildWorker(dir: string): string {
  for (const name of ['audit', 'errors', 'fs-ops', 'paths']) {
    const out = ts.transpileModule(fs.readFileSync(path.join(REPO_ROOT, 'src', 'core', `${name}.ts`), 'utf8'), { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 } });
    fs.writeFileSync(path.join(dir, `${name}.js`), out.outputText);
  }
  const worker = path.join(dir, 'worker.js');
  fs.writeFileSync(
    worker,
    `const { appendAuditEntry, createAuditEntry } = require('./audit');
const { createPaths } = require('./paths');
const [root, id, count] = process.argv.slice(2);
(async () => {
  for (let i = 0; i < Number(count); i++) {
    const filler = (id + '-' + i + '-').repeat(1000).slice(0, 3000);
    const ok = await appendAuditEntry(createPaths(root), createAuditEntry({ kind: 'unix', user: 'worker-' + id }, 'config.set', { keys: 'worker.' + id + '.' + i }, { filler: { before: null, after: filler } }));
    if (!ok) process.exitCode = 1;
  }
})().catch((err) => { console.error(err); process.exitCode = 1; });
`,
  );
  return worker;
}

t.test('20 processes appending at once give 20 whole lines each', async (t) => {
  const paths = scratchRoot(t);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uec-audit-worker-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const worker = buildWorker(dir);
  const codes = await Promise.all(
    Array.from(
      { length: 20 },
      (_, i) =>
        new Promise<number | null>((resolve) => {
          const child = spawn(process.execPath, [worker, paths.root, String(i), '5'], { stdio: ['ignore', 'ignore', 'inherit'] });
          child.on('exit', (code) => resolve(code));
        }),
    ),
  );
  t.same(codes, Array(20).fill(0));
  const text = fs.readFileSync(paths.resolve(AUDIT_LOG), 'utf8');
  const lines = text.split('\n');
  t.equal(lines.pop(), '', 'ends with a newline');
  t.equal(lines.length, 100, '20 processes × 5 lines');
  const seen = new Set<string>();
  let long = 0;
  for (const line of lines) {
    const e = JSON.parse(line) as AuditEntry; // a mixed line would not parse
    if (Buffer.byteLength(line) > 3000 && Buffer.byteLength(line) < AUDIT_LINE_LIMIT) long++;
    seen.add(e.target.keys!);
  }
  t.equal(long, 100, 'every line long, still under the limit');
  t.equal(seen.size, 100, 'every line once');
  t.equal(fs.statSync(paths.resolve(AUDIT_LOG)).mode & 0o777, 0o640);
});

t.test('docs/audit.md lists every action, and only those', async (t) => {
  const doc = fs.readFileSync(path.join(REPO_ROOT, 'docs/audit.md'), 'utf8');
  const listed = [...doc.matchAll(/^\| `([a-z]+\.[a-z]+)` \|/gm)].map((m) => m[1]);
  t.same(listed.sort(), [...AUDIT_ACTIONS].sort());
});
