import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Test } from 'tap';
import { createPaths, type Paths } from '../../src/core/paths';

/** A scratch root (world-readable, for daemons that drop privileges), removed after the test. */
export function scratchRoot(t: Test): Paths {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uec-root-'));
  fs.chmodSync(dir, 0o755);
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return createPaths(dir);
}

/** Write a file under a scratch root, creating directories. */
export function put(paths: Paths, systemPath: string, content: string, mode = 0o644): string {
  const file = paths.resolve(systemPath);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, content, { mode });
  return file;
}

/** Every file under a directory with its bytes and mode, for "nothing changed" assertions. */
export function snapshotTree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    if (!fs.existsSync(d)) return;
    for (const entry of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, entry.name);
      if (entry.isDirectory()) walk(p);
      else out[path.relative(dir, p)] = `${(fs.statSync(p).mode & 0o7777).toString(8)} ${fs.readFileSync(p, 'base64')}`;
    }
  };
  walk(dir);
  return out;
}

export const REPO_ROOT = path.resolve(__dirname, '..', '..');

/** Copy the checkout's tracked and new files (not node_modules, dist or .git), as `git ls-files -co --exclude-standard` lists them, to `dest`. */
export function copyCheckout(dest: string): void {
  const files = execFileSync('git', ['ls-files', '-co', '--exclude-standard', '-z'], { cwd: REPO_ROOT, encoding: 'utf8' }).split('\0').filter(Boolean);
  for (const f of files) {
    const src = path.join(REPO_ROOT, f);
    if (!fs.existsSync(src)) continue;
    fs.mkdirSync(path.dirname(path.join(dest, f)), { recursive: true });
    fs.copyFileSync(src, path.join(dest, f));
    fs.chmodSync(path.join(dest, f), fs.statSync(src).mode & 0o777);
  }
}
