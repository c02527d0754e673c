/**
 * The shipped logrotate file for the audit log (debian/uec-provisioning-common.logrotate):
 * logrotate -d accepts it, and a real forced rotation of a copy pointed at a scratch root
 * keeps the old lines, recreates the log 0640 root:adm, and the next append goes to the new
 * file; a second rotation compresses the older copy (delaycompress).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { AUDIT_LOG, appendAuditEntry, createAuditEntry } from '../../src/core/audit';
import { REPO_ROOT, scratchRoot } from '../helpers/scratch';

const SHIPPED = path.join(REPO_ROOT, 'debian/uec-provisioning-common.logrotate');

function logrotate(args: string[]) {
  return spawnSync('logrotate', args, { encoding: 'utf8' });
}

t.test('logrotate -d accepts the shipped file, with the settings docs/audit.md states', async (t) => {
  const { root } = scratchRoot(t);
  const r = logrotate(['-d', '-s', path.join(root, 'state'), SHIPPED]);
  t.equal(r.error, undefined, 'logrotate is installed (scripts/run-tests installs it)');
  t.equal(r.status, 0, r.stderr);
  t.notMatch(`${r.stdout}${r.stderr}`, /error/i);
  t.match(`${r.stdout}${r.stderr}`, /considering log \/var\/log\/uec-provisioning\/audit\.log/);
  const text = fs.readFileSync(SHIPPED, 'utf8');
  for (const line of ['weekly', 'rotate 12', 'compress', 'delaycompress', 'missingok', 'notifempty', 'create 0640 root adm']) t.match(text, new RegExp(`^\\s+${line}$`, 'm'), line);
  t.match(text, /^\/var\/log\/uec-provisioning\/audit\.log \{$/m);
});

t.test('a forced rotation of a copy: old lines kept, the log recreated 0640 root:adm, appends go on', async (t) => {
  const paths = scratchRoot(t);
  const log = paths.resolve(AUDIT_LOG);
  const conf = path.join(paths.root, 'audit.logrotate');
  fs.writeFileSync(conf, fs.readFileSync(SHIPPED, 'utf8').replace(AUDIT_LOG, log), { mode: 0o644 });
  const state = path.join(paths.root, 'state');
  const entry = (n: number) => createAuditEntry({ kind: 'unix', user: 'root' }, 'node.add', { hostname: `h${n}` }, {});
  t.ok(await appendAuditEntry(paths, entry(1)));
  const first = logrotate(['-f', '-s', state, conf]);
  t.equal(first.status, 0, first.stderr);
  t.match(fs.readFileSync(`${log}.1`, 'utf8'), /"hostname":"h1"/, 'the old lines in audit.log.1');
  const created = fs.statSync(log);
  t.equal(created.mode & 0o777, 0o640);
  t.equal(created.size, 0);
  if (process.getuid?.() === 0) {
    t.equal(created.uid, 0);
    t.equal(created.gid, Number(/^adm:[^:]*:(\d+):/m.exec(fs.readFileSync('/etc/group', 'utf8'))?.[1]));
  }
  t.ok(await appendAuditEntry(paths, entry(2)));
  t.match(fs.readFileSync(log, 'utf8'), /"hostname":"h2"/, 'the next append goes to the new file');
  const second = logrotate(['-f', '-s', state, conf]);
  t.equal(second.status, 0, second.stderr);
  t.ok(fs.existsSync(`${log}.2.gz`), 'the older copy compressed');
  t.match(fs.readFileSync(`${log}.1`, 'utf8'), /"hostname":"h2"/, 'the newest copy not yet (delaycompress)');
});
