/**
 * `npm run bench`: speed of the shared core, measured (never asserted in tests). Prints a
 * Markdown table for the README. Runs under a scratch root; starts no service.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { applyPlans, type FilePlan } from '../src/core/apply';
import { loadConfig, writeManagedSettings } from '../src/core/config';
import { SILENT_LOGGER } from '../src/core/log';
import { createPaths } from '../src/core/paths';
import { NO_SERVICE_CONTROL } from '../src/core/services';
import { COMMON_SCHEMA } from '../packages/common/config-schema';

async function time(runs: number, body: () => Promise<unknown>): Promise<{ median: number; p99: number }> {
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = process.hrtime.bigint();
    await body();
    samples.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  samples.sort((a, b) => a - b);
  return { median: samples[Math.floor(runs / 2)] ?? 0, p99: samples[Math.floor(runs * 0.99)] ?? 0 };
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uec-bench-'));
  try {
    const paths = createPaths(dir);
    fs.mkdirSync(paths.resolve('/etc/uec-provisioning/conf.d'), { recursive: true });
    await writeManagedSettings(paths, COMMON_SCHEMA, new Map([['server.interface', 'eth0']]));
    for (let i = 0; i < 20; i++) fs.writeFileSync(paths.resolve(`/etc/uec-provisioning/conf.d/6${String(i).padStart(2, '0')}-x.conf`), '[log]\nlevel = info\n');
    const load = await time(200, () => loadConfig(paths, COMMON_SCHEMA));
    const plans = (n: number, v: string): FilePlan[] =>
      Array.from({ length: n }, (_, i) => ({ path: `/etc/uec-bench/f${i}.conf`, content: `# file ${i}\nvalue=${v}\n`, mode: 0o644 }));
    const opts = { paths, component: 'bench', services: NO_SERVICE_CONTROL, log: SILENT_LOGGER };
    await applyPlans({ ...opts, plans: plans(100, 'a') });
    const noop = await time(50, () => applyPlans({ ...opts, plans: plans(100, 'a') }));
    let flip = false;
    const changed = await time(20, () => {
      flip = !flip;
      return applyPlans({ ...opts, plans: plans(100, flip ? 'b' : 'a') });
    });
    const rows = [
      ['load config (main file + 21 drop-ins)', load],
      ['apply 100 unchanged files (no write, no reload)', noop],
      ['apply 100 changed files (atomic write + fsync each)', changed],
    ] as const;
    console.log('| measurement | median | p99 |\n|---|---|---|');
    for (const [name, r] of rows) console.log(`| ${name} | ${r.median.toFixed(2)} ms | ${r.p99.toFixed(2)} ms |`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void main();
