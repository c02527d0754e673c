/**
 * A require hook for the child processes of crash tests (node-store.test.ts kills its writer
 * 200 times): .ts files are transpiled once with typescript's transpileModule, as
 * ts-node/register/transpile-only does, and the output is kept on disk keyed by path, size and
 * mtime, so a new worker starts in a fraction of a second instead of loading the compiler.
 */
/* global require, process */
/* eslint-disable @typescript-eslint/no-require-imports -- a CommonJS require hook */
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');

const dir = path.join(os.tmpdir(), `uec-ts-cache-${process.getuid ? process.getuid() : 'u'}`);
fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
let ts;

require.extensions['.ts'] = function compileTs(module, filename) {
  const st = fs.statSync(filename);
  const key = crypto.createHash('sha256').update(`${filename}\0${st.size}\0${st.mtimeMs}`).digest('hex');
  const cached = path.join(dir, `${key}.js`);
  let code;
  try {
    code = fs.readFileSync(cached, 'utf8');
  } catch {
    ts = ts || require('typescript');
    code = ts.transpileModule(fs.readFileSync(filename, 'utf8'), {
      fileName: filename,
      compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
    }).outputText;
    const temp = `${cached}.${process.pid}.tmp`;
    fs.writeFileSync(temp, code);
    fs.renameSync(temp, cached);
  }
  module._compile(code, filename);
};
