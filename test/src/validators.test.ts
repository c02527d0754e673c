import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { validateDebconf } from '../../src/core/validators';

/** A debconf.conf pointing at a File database in dir. */
function debconfRc(dir: string): string {
  const rc = path.join(dir, 'debconf.conf');
  fs.writeFileSync(rc, `Config: configdb\nTemplates: templatedb\n\nName: configdb\nDriver: File\nFilename: ${dir}/config.dat\n\nName: templatedb\nDriver: File\nFilename: ${dir}/templates.dat\n`);
  return rc;
}

t.test('the debconf check uses a private database: a locked debconf database does not fail it', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uec-debconf-lock-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const rc = debconfRc(dir);
  // Another process holds "the" database (what dpkg does during an install).
  const holder = spawn('perl', ['-e', '$| = 1; use Debconf::Db; Debconf::Db->load; print "held\\n"; sleep 30'], { env: { ...process.env, DEBCONF_SYSTEMRC: rc } });
  t.teardown(() => holder.kill('SIGKILL'));
  await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()));
  const good = path.join(dir, 'good.cfg');
  fs.writeFileSync(good, 'd-i debian-installer/locale string en_US.UTF-8\n');
  // Proof the lock is real: the plain command against that database fails.
  const direct = spawnSync('debconf-set-selections', ['-c', good], { env: { ...process.env, DEBCONF_SYSTEMRC: rc }, encoding: 'utf8' });
  t.not(direct.status, 0, `the held database refuses a second user: ${direct.stderr.trim()}`);
  const saved = process.env.DEBCONF_SYSTEMRC;
  process.env.DEBCONF_SYSTEMRC = rc;
  t.teardown(() => { if (saved === undefined) delete process.env.DEBCONF_SYSTEMRC; else process.env.DEBCONF_SYSTEMRC = saved; });
  const outcome = await validateDebconf(good);
  t.ok(outcome.ok, `valid preseed passes while the database is held (${outcome.message})`);
  const bad = path.join(dir, 'bad.cfg');
  fs.writeFileSync(bad, 'd-i broken\n');
  const refused = await validateDebconf(bad);
  t.notOk(refused.ok, 'a malformed line is still refused');
  t.match(refused.message, /parse error/);
});
