#!/usr/bin/env node
// Developer helper (needs the npm registry): pack, from package-lock.json, every package the
// Debian build needs into vendor/npm/, so `dpkg-buildpackage` works offline from a checkout.
//   runtime: the production dependency tree, bundled in uec-provisioning-common
//   build:   typescript and the @types packages tsc needs to compile src/ and packages/
// Writes vendor/npm/MANIFEST: "<group> <install path> <tarball> <sha512 integrity>" per line.
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const repo = path.resolve(__dirname, '..');
const lock = JSON.parse(fs.readFileSync(path.join(repo, 'package-lock.json'), 'utf8'));
const out = path.join(repo, 'vendor', 'npm');
const BUILD_ROOTS = ['typescript', '@types/node', '@types/mustache', '@types/ini'];

function entry(p) {
  const e = lock.packages[p];
  if (!e) throw new Error(`${p} is not in package-lock.json`);
  return e;
}

// Build group: the named roots and their dependencies, resolved the way node does.
function closure(roots) {
  const seen = new Set();
  const visit = (installPath) => {
    if (seen.has(installPath)) return;
    seen.add(installPath);
    for (const dep of Object.keys(entry(installPath).dependencies || {})) {
      let base = installPath;
      for (;;) {
        const candidate = `${base}/node_modules/${dep}`;
        if (lock.packages[candidate]) { visit(candidate); break; }
        const idx = base.lastIndexOf('/node_modules/');
        if (idx < 0) { visit(`node_modules/${dep}`); break; }
        base = base.slice(0, idx);
      }
    }
  };
  roots.forEach((r) => visit(`node_modules/${r}`));
  return [...seen];
}

// Runtime group: exactly the production tree npm would install (npm ls --omit=dev).
const runtime = execFileSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: repo, encoding: 'utf8' })
  .split('\n')
  .filter((p) => p.startsWith(`${repo}/node_modules/`))
  .map((p) => path.relative(repo, p));
const build = closure(BUILD_ROOTS);
fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(out, { recursive: true });
const lines = [];
for (const [group, list] of [['runtime', runtime], ['build', build]]) {
  for (const installPath of list.sort()) {
    const e = entry(installPath);
    const name = installPath.slice(installPath.lastIndexOf('node_modules/') + 'node_modules/'.length);
    const file = `${name.replace('/', '-').replace('@', '')}-${e.version}.tgz`;
    if (!fs.existsSync(path.join(out, file))) {
      execFileSync('npm', ['pack', '--silent', '--pack-destination', out, `${name}@${e.version}`], { stdio: ['ignore', 'ignore', 'inherit'] });
    }
    lines.push(`${group} ${installPath} ${file} ${e.integrity}`);
  }
}
fs.writeFileSync(path.join(out, 'MANIFEST'), lines.join('\n') + '\n');
console.log(`vendor/npm: ${lines.length} packages`);
