#!/usr/bin/env node
// CI helper: the last lines of scripts/run-tests, from tap's TAP output (`tap --reporter=tap`).
//   node scripts/test-summary.js TAP_LOG [ALLOWLIST]      (ALLOWLIST: test/skip-allowlist.txt)
//   UEC_TAP_RUNS=N: the log holds N tap runs one after the other; their totals are added.
// Every skipped or todo test is listed by its name path ("file > subtest > test") and reason.
// One that no allowlist entry matches counts as failed: a runner without root, network
// namespaces, /dev/net/tun or qemu must fail, not pass with the real tests skipped. So do
// skips and todos in tap's "# { total: … }" count that cannot be found by name, and a
// malformed allowlist. Ends with the plain line CI parses, "N passed, N failed, N skipped"
// (skipped: the allowed ones); exits 1 when anything failed or tap printed no summary.
//
// Allowlist: one entry a line, "PATTERN | WHY", # comments. PATTERN (`*` matches any text)
// must match the whole name path or the whole skip/todo reason; WHY must not be empty.
'use strict';
const fs = require('node:fs');

/** TAP escapes "#" and "\" in names and reasons. */
function unescapeTap(text) {
  return text.replace(/\\([\\#])/g, '$1');
}

/** Split "name # directive" at the first "#" that is not escaped. */
function splitDirective(text) {
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '\\') i++;
    else if (text[i] === '#') return [text.slice(0, i).trim(), text.slice(i + 1).trim()];
  }
  return [text.trim(), ''];
}

/**
 * Every test point with a SKIP or TODO directive, at any depth, with the names of the
 * subtests around it (from the "# Subtest: NAME" lines, four spaces an indent level).
 */
function parseSkips(tap) {
  const stack = [];
  const skips = [];
  let yaml = false;
  for (const line of tap.split('\n')) {
    // A failure's YAML block (source excerpts, diffs) is not TAP.
    if (yaml) {
      if (line.trim() === '...') yaml = false;
      continue;
    }
    if (line.trim() === '---') {
      yaml = true;
      continue;
    }
    const subtest = /^( *)# Subtest: (.*)$/.exec(line);
    if (subtest) {
      const depth = Math.floor(subtest[1].length / 4);
      stack.length = depth;
      stack[depth] = unescapeTap(subtest[2].trim());
      continue;
    }
    const point = /^( *)(not )?ok\b *(?:\d+)? *(?:- )?(.*)$/.exec(line);
    if (!point) continue;
    const depth = Math.floor(point[1].length / 4);
    const [name, directive] = splitDirective(point[3]);
    const d = /^(skip|todo)\S*\s*(.*)$/i.exec(directive);
    if (!d) continue;
    const kind = d[1].toUpperCase();
    skips.push({ path: [...stack.slice(0, depth), unescapeTap(name)].join(' > '), kind, reason: unescapeTap(d[2].trim()) });
  }
  return skips;
}

/**
 * The totals of tap's "# { total: 8, pass: 1, todo: 2, skip: 5 }" lines, or null when there is
 * none. A log may hold several tap runs one after the other (scripts/run-tests runs the VM
 * tests beside the others): each run ends with one such line, and they are added; `runs` is
 * how many were found.
 */
function parseTotals(tap) {
  const lines = tap.split('\n').filter((l) => /^# \{ total: \d+/.test(l));
  if (lines.length === 0) return null;
  const totals = { total: 0, pass: 0, fail: 0, skip: 0, todo: 0, runs: lines.length };
  for (const line of lines) for (const m of line.matchAll(/(\w+): (\d+)/g)) totals[m[1]] = (totals[m[1]] ?? 0) + Number(m[2]);
  return totals;
}

function parseAllowlist(text, file) {
  const entries = [];
  const problems = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const bar = line.indexOf(' | ');
    const pattern = bar < 0 ? line : line.slice(0, bar).trim();
    const why = bar < 0 ? '' : line.slice(bar + 3).trim();
    if (!pattern || !why) {
      problems.push(`${file}:${i + 1}: an entry is "PATTERN | WHY", with a reason: ${line}`);
      return;
    }
    const regex = new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
    entries.push({ pattern, why, regex, used: false });
  });
  return { entries, problems };
}

function summarize(tap, allowlistText, allowlistFile, expectedRuns = 1) {
  const out = [];
  const totals = parseTotals(tap);
  if (!totals) {
    out.push('tap printed no "# { total: … }" summary: lint, typecheck or build failed, or tap did not finish');
    out.push('0 passed, 1 failed');
    return { lines: out, failed: 1 };
  }
  const { entries, problems } = parseAllowlist(allowlistText, allowlistFile);
  // A run that did not finish has no summary line: its tests must not vanish from the count.
  if (totals.runs !== expectedRuns) problems.push(`expected the summaries of ${expectedRuns} tap run(s), found ${totals.runs}: a run did not finish`);
  const skips = parseSkips(tap);
  const allowed = [];
  const refused = [];
  for (const s of skips) {
    const entry = entries.find((e) => e.regex.test(s.path) || (s.reason !== '' && e.regex.test(s.reason)));
    if (entry) {
      entry.used = true;
      allowed.push({ ...s, why: entry.why });
    } else refused.push(s);
  }
  const describe = (s) => `${s.path}: ${s.kind}${s.reason ? ` ${s.reason}` : ' (no reason given)'}`;
  const unexplained = Math.max(0, totals.skip + totals.todo - skips.length);
  for (const p of problems) out.push(p);
  if (refused.length > 0) {
    out.push(`skipped or todo, not in ${allowlistFile} (counted as failed):`);
    for (const s of refused) out.push(`  ${describe(s)}`);
  }
  if (unexplained > 0) out.push(`${unexplained} skipped or todo test(s) in tap's summary not found by name in its output (counted as failed)`);
  if (allowed.length === 0) out.push(`skips allowed by ${allowlistFile}: none`);
  else {
    out.push(`skips allowed by ${allowlistFile}:`);
    for (const s of allowed) out.push(`  ${describe(s)} (allowed: ${s.why})`);
  }
  for (const e of entries) if (!e.used) out.push(`note: ${allowlistFile} entry "${e.pattern}" matched nothing`);
  const failed = totals.fail + refused.length + unexplained + problems.length;
  out.push(`${totals.pass} passed, ${failed} failed, ${allowed.length} skipped`);
  return { lines: out, failed };
}

function main(argv) {
  const [logFile, allowlistFile = 'test/skip-allowlist.txt'] = argv;
  if (!logFile) {
    console.error('usage: test-summary.js TAP_LOG [ALLOWLIST]');
    return 2;
  }
  const tap = fs.readFileSync(logFile, 'utf8');
  let allowlistText = '';
  try {
    allowlistText = fs.readFileSync(allowlistFile, 'utf8');
  } catch (err) {
    if (err.code !== 'ENOENT') throw err;
  }
  // UEC_TAP_RUNS: how many tap runs the log holds (scripts/run-tests: 2).
  const { lines, failed } = summarize(tap, allowlistText, allowlistFile, Number(process.env.UEC_TAP_RUNS ?? '1'));
  process.stdout.write(`${lines.join('\n')}\n`);
  return failed > 0 ? 1 : 0;
}

if (require.main === module) process.exitCode = main(process.argv.slice(2));
module.exports = { parseSkips, parseTotals, parseAllowlist, summarize };
