/**
 * The DEP-8 suite (debian/tests) run by Debian's autopkgtest under a real systemd: a clean
 * Debian 12 (the cached bookworm image, overlaid) boots with systemd as PID 1 in a
 * systemd-nspawn container inside this test's own network namespace; autopkgtest, installed
 * there offline from the image's apt cache, makes a local apt repository of this checkout's
 * .debs and runs each test with the null runner (the container is the testbed), installing
 * the tests' Depends with apt. The tests add their own links and a client namespace inside
 * the container: nothing reaches a real network. The container is thrown away afterwards, so
 * the purge test's breaks-testbed restriction is ignored.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { bookwormImage, bookwormUnavailableReason, bootContainer, builtDebs, copyInto, overlayRoot, type Container } from '../helpers/bookworm';
import { createTestNetwork } from '../helpers/netns';
import { REPO_ROOT } from '../helpers/scratch';

// The whole file: a build of the .debs when the checkout changed (about a minute), the
// container, and autopkgtest (3-4 minutes here).
t.setTimeout(1_800_000);

const DIR = '/srv/dep8';
/** The tests debian/tests/control declares, in order. */
const TESTS = fs.readFileSync(path.join(REPO_ROOT, 'debian/tests/control'), 'utf8')
  .split('\n')
  .filter((l) => l.startsWith('Tests:'))
  .flatMap((l) => l.slice('Tests:'.length).split(/[\s,]+/).filter(Boolean));

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** Copies debian/ as git sees it (tracked and new files, not build output) under `dest`. */
function copyDebianDir(dest: string): void {
  const r = spawnSync('git', ['ls-files', '-co', '--exclude-standard', '-z', '--', 'debian'], { cwd: REPO_ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`git ls-files failed: ${r.stderr}`);
  for (const f of r.stdout.split('\0').filter(Boolean)) {
    const src = path.join(REPO_ROOT, f);
    if (!fs.existsSync(src)) continue;
    fs.mkdirSync(path.dirname(path.join(dest, f)), { recursive: true });
    fs.copyFileSync(src, path.join(dest, f));
    fs.chmodSync(path.join(dest, f), fs.statSync(src).mode & 0o777);
  }
}

/** "NAME RESULT [detail]" lines of autopkgtest's summary file. */
function parseSummary(text: string): Map<string, string> {
  const results = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^(\S+)\s+(PASS|FAIL|SKIP|FLAKY|BROKEN|NEUTRAL)\b(.*)$/.exec(line.trim());
    if (m) results.set(m[1] ?? '', `${m[2] ?? ''}${m[3] ?? ''}`.trim());
  }
  return results;
}

/** Each test's wall time from autopkgtest's log: first to last "autopkgtest [HH:MM:SS]: test NAME:" line. */
function testTimes(log: string): Map<string, number> {
  const spans = new Map<string, { first: number; last: number }>();
  for (const m of log.matchAll(/^autopkgtest \[(\d\d):(\d\d):(\d\d)\]: test ([^:\s]+):/gm)) {
    const at = (Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3])) * 1000;
    const name = m[4] ?? '';
    const span = spans.get(name);
    if (span) span.last = at;
    else spans.set(name, { first: at, last: at });
  }
  return new Map([...spans].map(([name, s]) => [name, s.last - s.first]));
}

function readInside(container: Container, file: string): string {
  try {
    return fs.readFileSync(path.join(container.root, file), 'utf8');
  } catch {
    return '';
  }
}

const tail = (text: string, lines: number) => text.split('\n').slice(-lines).join('\n');

t.test('DEP-8 tests under autopkgtest with systemd as PID 1', { skip: bookwormUnavailableReason(), timeout: 1_500_000 }, async (t) => {
  t.ok(TESTS.length >= 5, `debian/tests/control declares the tests: ${TESTS.join(', ')}`);
  const net = createTestNetwork(t, { name: 'dep8' });
  const ns = await net.ns('appl');
  const root = overlayRoot(t, bookwormImage());
  const { debs } = builtDebs();
  copyInto(root, `${DIR}/debs`, debs);
  copyDebianDir(path.join(root, DIR, 'src'));

  let start = Date.now();
  const container = await bootContainer(t, net, ns, root, { name: 'dep8' });
  t.comment(`container boot: ${seconds(Date.now() - start)}`);

  try {
    start = Date.now();
    await container.must(['apt-get', 'install', '-y', '-q', 'autopkgtest'], { timeoutMs: 300_000 });
    t.comment(`autopkgtest installed offline: ${seconds(Date.now() - start)}`);

    start = Date.now();
    // DEP8_TESTS="a b" runs only those (when working on one test).
    const only = (process.env.DEP8_TESTS ?? '').split(/\s+/).filter(Boolean).map((name) => `--test-name=${name}`).join(' ');
    const run = await container.exec(
      ['sh', '-c', `exec autopkgtest --ignore-restrictions=breaks-testbed --output-dir=${DIR}/out ${only} ${DIR}/debs/*.deb ${DIR}/src/ -- null`],
      { timeoutMs: 1_200_000 },
    );
    const total = Date.now() - start;
    const summary = readInside(container, `${DIR}/out/summary`);
    const log = readInside(container, `${DIR}/out/log`) || run.stdout + run.stderr;
    t.comment(`autopkgtest total: ${seconds(total)} (exit ${run.code}${run.timedOut ? ', timed out' : ''})`);
    const times = testTimes(log);
    t.comment(`summary:\n${summary.trim() || '(none)'}`);

    const results = parseSummary(summary);
    let failed = false;
    for (const name of TESTS.filter((n) => !process.env.DEP8_TESTS || process.env.DEP8_TESTS.split(/\s+/).includes(n))) {
      const result = results.get(name) ?? 'missing from the summary';
      const time = times.get(name);
      t.comment(`${name}: ${result}${time === undefined ? '' : ` in ${seconds(time)}`}`);
      if (!t.equal(result, 'PASS', `DEP-8 test ${name} passes`)) {
        failed = true;
        t.comment(`${name} stdout (tail):\n${tail(readInside(container, `${DIR}/out/${name}-stdout`), 40)}`);
        t.comment(`${name} stderr (tail):\n${tail(readInside(container, `${DIR}/out/${name}-stderr`), 40)}`);
      }
    }
    if (failed || run.code !== 0) {
      // autopkgtest's whole output directory, kept on the host for a closer look.
      const kept = fs.mkdtempSync(path.join(os.tmpdir(), 'uec-dep8-'));
      fs.cpSync(path.join(container.root, DIR, 'out'), kept, { recursive: true });
      t.comment(`autopkgtest's output directory copied to ${kept}`);
      t.comment(`autopkgtest log (tail):\n${tail(log, 60)}`);
      const journal = await container.exec(['journalctl', '-n', '100', '--no-pager'], { timeoutMs: 30_000 });
      t.comment(`journal (last 100 lines):\n${journal.stdout}`);
    }
    t.equal(run.code, 0, 'autopkgtest exits 0');
  } finally {
    await container.stop();
  }
});
