/**
 * scripts/test-summary.js: the end of scripts/run-tests. The fixtures are real output of
 * `npx tap --reporter=tap` (tap 20) on small throwaway test files:
 *   clean.tap              test/architecture.test.ts: nothing skipped
 *   skips.tap              { skip: 'reason' } on a test, nested skips (reason, none, `true`),
 *                          t.skip(), { todo } and t.todo(), an assertion with { skip }
 *   escapes-and-plans.tap  "#" and "\" in a name, a failing todo, t.plan(0, reason) in a
 *                          subtest and as a whole file
 *   failure.tap            a failed assertion whose YAML block quotes "ok 1 - … # SKIP …"
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t, { type Test } from 'tap';
import { REPO_ROOT } from '../helpers/scratch';

const SCRIPT = path.join(REPO_ROOT, 'scripts/test-summary.js');
const FIXTURES = path.join(__dirname, 'fixtures/test-summary');

/** Run the script on a fixture with an allowlist of these lines; its stdout lines and status. */
function summary(t: Test, fixture: string, allowlist: string[] | null = []): { lines: string[]; last: string; status: number | null } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uec-test-summary-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const allowlistFile = path.join(dir, 'skip-allowlist.txt');
  if (allowlist !== null) fs.writeFileSync(allowlistFile, ['# comment', '', ...allowlist].join('\n') + '\n');
  const r = spawnSync(process.execPath, [SCRIPT, path.join(FIXTURES, fixture), allowlistFile], { encoding: 'utf8', cwd: REPO_ROOT });
  t.equal(r.stderr, '', 'nothing on stderr');
  const lines = r.stdout.trimEnd().split('\n').map((l) => l.replace(allowlistFile, 'ALLOWLIST'));
  return { lines, last: lines[lines.length - 1] ?? '', status: r.status };
}

const SKIPS = [
  'test/zz-skipdemo.test.ts > needs netns: SKIP network namespaces unavailable',
  'test/zz-skipdemo.test.ts > outer > inner skipped: SKIP needs root',
  'test/zz-skipdemo.test.ts > outer > t.skip call: SKIP (no reason given)',
  'test/zz-skipdemo.test.ts > outer > bool skip: SKIP (no reason given)',
  'test/zz-skipdemo.test.ts > outer > a todo: TODO not yet',
  'test/zz-skipdemo.test.ts > outer > todo no fn: TODO (no reason given)',
  'test/zz-skipdemo.test.ts > outer > assert ok: SKIP assert skip reason',
];

t.test('nothing skipped → "N passed, 0 failed, 0 skipped", exit 0', async (t) => {
  const r = summary(t, 'clean.tap');
  t.same(r.lines, ['skips allowed by ALLOWLIST: none', '17 passed, 0 failed, 0 skipped']);
  t.equal(r.status, 0);
});

t.test('every skip and todo, nested or not, is named with its reason and counted as failed', async (t) => {
  const r = summary(t, 'skips.tap');
  t.same(r.lines, ['skipped or todo, not in ALLOWLIST (counted as failed):', ...SKIPS.map((s) => `  ${s}`), 'skips allowed by ALLOWLIST: none', '1 passed, 7 failed, 0 skipped']);
  t.equal(r.status, 1);
});

t.test('no allowlist file is an empty one', async (t) => {
  const r = summary(t, 'skips.tap', null);
  t.equal(r.last, '1 passed, 7 failed, 0 skipped');
  t.equal(r.status, 1);
});

t.test('allowlist entries match a whole name path or a whole reason, with *, and are printed with their why', async (t) => {
  const r = summary(t, 'skips.tap', [
    'network namespaces unavailable | this runner has no netns (example)',
    'test/zz-skipdemo.test.ts > outer > * | the outer group is a demo',
    'needs | a prefix is not a whole reason: matches nothing',
  ]);
  t.same(r.lines, [
    'skips allowed by ALLOWLIST:',
    `  ${SKIPS[0]} (allowed: this runner has no netns (example))`,
    ...SKIPS.slice(1).map((s) => `  ${s} (allowed: the outer group is a demo)`),
    'note: ALLOWLIST entry "needs" matched nothing',
    '1 passed, 0 failed, 7 skipped',
  ]);
  t.equal(r.status, 0);
});

t.test('partly allowed: the rest still fail the run', async (t) => {
  const r = summary(t, 'skips.tap', ['needs root | example']);
  t.equal(r.last, '1 passed, 6 failed, 1 skipped');
  t.ok(r.lines.includes(`  ${SKIPS[1]} (allowed: example)`));
  t.notOk(r.lines.some((l) => l.includes('needs root') && !l.includes('allowed')), 'not also listed as refused');
  t.equal(r.status, 1);
});

t.test('an allowlist entry without a reason is refused and fails the run', async (t) => {
  const r = summary(t, 'clean.tap', ['test/architecture.test.ts > *', 'needs root |  ']);
  t.same(r.lines, [
    'ALLOWLIST:3: an entry is "PATTERN | WHY", with a reason: test/architecture.test.ts > *',
    'ALLOWLIST:4: an entry is "PATTERN | WHY", with a reason: needs root |',
    'skips allowed by ALLOWLIST: none',
    '17 passed, 2 failed, 0 skipped',
  ]);
  t.equal(r.status, 1);
});

t.test('escaped names, a failing todo and skip plans (subtest and whole file)', async (t) => {
  const r = summary(t, 'escapes-and-plans.tap');
  t.same(r.lines.slice(0, 5), [
    'skipped or todo, not in ALLOWLIST (counted as failed):',
    '  test/zz-skipdemo2.test.ts > name with # hash and \\ backslash: SKIP reason with # hash',
    '  test/zz-skipdemo2.test.ts > failing todo: TODO (no reason given)',
    '  test/zz-skipdemo2.test.ts > planned zero: SKIP nothing to do here',
    '  test/zz-skipdemo3.test.ts: SKIP whole file skipped: no qemu',
  ]);
  t.equal(r.last, '1 passed, 4 failed, 0 skipped');
});

t.test('a YAML block quoting TAP-like lines is not read as tests; tap\'s failures count', async (t) => {
  const r = summary(t, 'failure.tap');
  t.same(r.lines, ['skips allowed by ALLOWLIST: none', '1 passed, 1 failed, 0 skipped']);
  t.equal(r.status, 1);
});

t.test('skips in tap\'s count that cannot be found by name fail the run', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uec-test-summary-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const log = path.join(dir, 'odd.tap');
  fs.writeFileSync(log, 'some reporter that prints no TAP\n# { total: 5, pass: 3, skip: 1, todo: 1 }\n');
  const r = spawnSync(process.execPath, [SCRIPT, log, path.join(dir, 'none.txt')], { encoding: 'utf8' });
  t.equal(r.stdout.trimEnd().split('\n').pop(), '3 passed, 2 failed, 0 skipped');
  t.match(r.stdout, /2 skipped or todo test\(s\) in tap's summary not found by name/);
  t.equal(r.status, 1);
});

t.test('no tap summary (lint, typecheck or build failed) → "0 passed, 1 failed"', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uec-test-summary-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const log = path.join(dir, 'lint.log');
  fs.writeFileSync(log, '> eslint .\n\n/work/main/src/x.ts\n  1:1  error  something\n');
  const r = spawnSync(process.execPath, [SCRIPT, log], { encoding: 'utf8', cwd: REPO_ROOT });
  t.equal(r.stdout.trimEnd().split('\n').pop(), '0 passed, 1 failed');
  t.equal(r.status, 1);
});

t.test('the checked-in allowlist parses, and every entry gives a reason', async (t) => {
  const r = summary(t, 'clean.tap', fs.readFileSync(path.join(REPO_ROOT, 'test/skip-allowlist.txt'), 'utf8').split('\n'));
  t.equal(r.status, 0, r.lines.join('\n'));
  t.notOk(r.lines.some((l) => l.includes('an entry is')));
});

/** The script on several fixtures one after the other (two tap runs in one log), with UEC_TAP_RUNS. */
function summaryOfRuns(t: Test, fixtures: string[], runs: string | undefined): { last: string; lines: string[]; status: number | null } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uec-test-summary-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const log = path.join(dir, 'tap.log');
  fs.writeFileSync(log, fixtures.map((f) => fs.readFileSync(path.join(FIXTURES, f), 'utf8')).join(''));
  fs.writeFileSync(path.join(dir, 'allow.txt'), '');
  const env = { ...process.env };
  delete env.UEC_TAP_RUNS;
  if (runs !== undefined) env.UEC_TAP_RUNS = runs;
  const r = spawnSync(process.execPath, [SCRIPT, log, path.join(dir, 'allow.txt')], { encoding: 'utf8', cwd: REPO_ROOT, env });
  const lines = r.stdout.trimEnd().split('\n');
  return { last: lines[lines.length - 1] ?? '', lines, status: r.status };
}

t.test('two tap runs in one log (the VM tests beside the others): their totals are added', async (t) => {
  const both = summaryOfRuns(t, ['clean.tap', 'failure.tap'], '2');
  t.equal(both.last, '18 passed, 1 failed, 0 skipped');
  t.equal(both.status, 1);
  const clean = summaryOfRuns(t, ['clean.tap', 'clean.tap'], '2');
  t.same([clean.last, clean.status], ['34 passed, 0 failed, 0 skipped', 0]);
});

t.test('a run that did not finish (its summary missing) fails the count, whatever the others say', async (t) => {
  const one = summaryOfRuns(t, ['clean.tap'], '2');
  t.equal(one.status, 1);
  t.match(one.lines.join('\n'), /expected the summaries of 2 tap run\(s\), found 1: a run did not finish/);
  t.equal(one.last, '17 passed, 1 failed, 0 skipped');
  const two = summaryOfRuns(t, ['clean.tap', 'clean.tap'], undefined);
  t.equal(two.status, 1, 'two summaries where one run was expected is a problem too');
});
