#!/usr/bin/env node
// Offline: unpack one group of vendor/npm/MANIFEST ("runtime" or "build") into DEST, laid
// out exactly as package-lock.json places it, after checking each tarball's sha512 against
// the lockfile's integrity. Used by debian/rules; needs only node and tar.
'use strict';
const { execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const [group, dest] = process.argv.slice(2);
if (!group || !dest) {
  console.error('usage: install-vendored.js runtime|build DEST_NODE_MODULES_PARENT');
  process.exit(2);
}
const dir = path.resolve(__dirname, '..', 'vendor', 'npm');
const lines = fs.readFileSync(path.join(dir, 'MANIFEST'), 'utf8').split('\n').filter(Boolean);
let count = 0;
for (const line of lines) {
  const [lineGroup, installPath, file, integrity] = line.split(' ');
  if (lineGroup !== group) continue;
  const tarball = path.join(dir, file);
  const [algorithm, expected] = integrity.split(/-(.*)/s);
  const actual = crypto.createHash(algorithm).update(fs.readFileSync(tarball)).digest('base64');
  if (actual !== expected) {
    console.error(`install-vendored: ${file}: ${algorithm} mismatch with package-lock.json`);
    process.exit(1);
  }
  const target = path.join(dest, installPath);
  fs.rmSync(target, { recursive: true, force: true });
  fs.mkdirSync(target, { recursive: true });
  execFileSync('tar', ['-xzf', tarball, '--strip-components=1', '--no-same-owner', '--no-same-permissions', '-C', target]);
  count++;
}
if (count === 0) {
  console.error(`install-vendored: no packages in group "${group}"`);
  process.exit(1);
}
console.log(`install-vendored: ${count} ${group} packages in ${dest}`);
