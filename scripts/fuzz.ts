/**
 * `npm run fuzz`: the fuzz suite (test/fuzz) with many more inputs than CI and a random seed,
 * then one table of what each surface saw. FUZZ_RUNS (default 20) multiplies every property's
 * CI count; FUZZ_SEED replays a run (the seed is printed first), FUZZ_SEED=fixed uses CI's
 * constant seeds (FUZZ_RUNS=1 FUZZ_SEED=fixed gives CI's counts). Extra arguments are test
 * files to run instead of the whole folder. Exit status: tap's.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Tally } from '../test/fuzz/lib';

const COLUMNS: [keyof Tally, string][] = [
  ['surface', 'surface'],
  ['tried', 'inputs tried'],
  ['accepted', 'accepted'],
  ['crashes', 'crashes'],
  ['wronglyAccepted', 'wrongly accepted'],
  ['stateChanged', 'state changed on rejection'],
  ['validated', 'accepted inputs checked by the real tools'],
  ['refusedByApply', 'accepted, then refused by apply (nothing written)'],
  ['rawSeparators', 'refusals with a raw U+2028/U+2029/U+0085 (known)'],
  ['partialMultiNode', 'failed multi-node commands that changed earlier nodes (known)'],
];

/** Tallies of the same surface (several properties, several files) added up, in first-seen order. */
export function sumTallies(tallies: Tally[]): Tally[] {
  const bySurface = new Map<string, Tally>();
  for (const t of tallies) {
    const sum = bySurface.get(t.surface);
    if (!sum) bySurface.set(t.surface, { ...t });
    else for (const [key] of COLUMNS.slice(1)) (sum[key] as number) += (t[key] as number | undefined) ?? 0;
  }
  return [...bySurface.values()];
}

export function renderTable(tallies: Tally[]): string {
  const rows = [COLUMNS.map(([, title]) => title), COLUMNS.map(() => '---'), ...tallies.map((t) => COLUMNS.map(([key]) => String(t[key] ?? 0)))];
  return rows.map((r) => `| ${r.join(' | ')} |`).join('\n') + '\n';
}

function main(): number {
  const root = path.resolve(__dirname, '..');
  const runs = process.env.FUZZ_RUNS ?? '20';
  const seed = process.env.FUZZ_SEED ?? String(Math.floor(Math.random() * 2 ** 31));
  const report = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'uec-fuzz-')), 'tallies.jsonl');
  const files = process.argv.slice(2);
  const targets = files.length > 0 ? files : fs.readdirSync(path.join(root, 'test/fuzz')).filter((f) => f.endsWith('.test.ts')).sort().map((f) => `test/fuzz/${f}`);
  process.stdout.write(`fuzz: FUZZ_RUNS=${runs} FUZZ_SEED=${seed} (replay with these two) on ${targets.join(' ')}\n`);
  const started = Date.now();
  const tap = spawnSync('npx', ['tap', '--timeout=7200', '--reporter=terse', ...targets], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, FUZZ_RUNS: runs, FUZZ_SEED: seed, FUZZ_REPORT: report },
  });
  const tallies = fs.existsSync(report) ? fs.readFileSync(report, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Tally) : [];
  process.stdout.write(`\nFUZZ_RUNS=${runs} FUZZ_SEED=${seed}, ${Math.round((Date.now() - started) / 1000)} s\n\n${renderTable(sumTallies(tallies))}`);
  fs.rmSync(path.dirname(report), { recursive: true, force: true });
  return tap.status ?? 1;
}

if (require.main === module) process.exitCode = main();
