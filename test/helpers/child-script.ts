/**
 * Running a few lines of JavaScript in a child `node -e` process that uses the project's
 * modules: the compiled ones (npm test builds them first; UEC_TEST_DIST names another build),
 * else the sources through ts-node. For tests with several writer processes at once.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO_ROOT } from './scratch';

const DIST = process.env.UEC_TEST_DIST ?? path.join(REPO_ROOT, 'dist');
/** True when the compiled modules are there (then the children need no ts-node). */
export const USE_DIST = fs.existsSync(path.join(DIST, 'src/cli.js'));

/** tap's loader hooks and variables stay out of the children. */
export const CHILD_ENV: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS' && !k.startsWith('TAP') && !k.startsWith('_TAPJS')));

/** A `require(…)` expression for a module of the project, e.g. moduleRequire('src/core/config'). */
export function moduleRequire(module: string): string {
  return `require(${JSON.stringify(USE_DIST ? path.join(DIST, `${module}.js`) : path.join(REPO_ROOT, `${module}.ts`))})`;
}

/** Run `body` (JavaScript; its arguments are process.argv.slice(1)) in a child; stdout ignored. */
export function runChildScript(body: string, args: string[]): Promise<{ code: number | null; stderr: string }> {
  const script = `${USE_DIST ? '' : "require('ts-node/register/transpile-only');"}\n${body}`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script, '--', ...args], { cwd: REPO_ROOT, env: CHILD_ENV, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}
