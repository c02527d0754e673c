/** Reading a Prometheus scrape in tests: one sample's value, and Debian's promtool as the checker. */
import { spawnSync } from 'node:child_process';

export const PROMTOOL = '/usr/bin/promtool';

/** The value of the sample `name{labels}` (labels in any order; all given must match), or undefined. */
export function sampleValue(scrape: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of scrape.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = new Map([...(m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1]!, x[2]!]));
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) return Number(m[4]);
  }
  return undefined;
}

/** Every metric family named in the scrape's # TYPE lines. */
export function metricNames(scrape: string): string[] {
  return [...scrape.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!);
}

/** `promtool check metrics` on the scrape: its exit status and what it printed (lint problems). */
export function checkWithPromtool(scrape: string): { status: number | null; output: string } {
  const r = spawnSync(PROMTOOL, ['check', 'metrics'], { input: scrape, encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}`.trim() };
}
