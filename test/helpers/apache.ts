/**
 * A real apache2 for a test, on loopback only: one process in the foreground (-X) with a
 * minimal server config in `dir` (run files, error log), the modules named loaded unless
 * already, the caller's lines, and the drop-in included; killed at the test's end.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Test } from 'tap';
import { freePort } from '../packages/mirror/real-tools';

export interface LoopbackApache {
  port: number;
  /** What apache2 printed so far (for failure messages). */
  output: () => string;
}

/** Starts apache2 with `modules` ([module name, .so file]), `lines` and `Include dropIn`. */
export async function startLoopbackApache(t: Test, opts: { dir: string; dropIn: string; modules: [string, string][]; lines?: string[] }): Promise<LoopbackApache> {
  const { dir } = opts;
  const port = await freePort();
  const load = (name: string, file: string) => [`<IfModule !${name}>`, `LoadModule ${name} /usr/lib/apache2/modules/${file}`, '</IfModule>'];
  const wrapper = path.join(dir, 'apache2.conf');
  fs.writeFileSync(
    wrapper,
    [
      'ServerName localhost', `DefaultRuntimeDir ${dir}`, `PidFile ${dir}/pid`, `Mutex file:${dir} default`, `ErrorLog ${dir}/error.log`,
      'User www-data', 'Group www-data', `Listen 127.0.0.1:${port}`,
      '<IfModule !mpm_prefork_module>', '<IfModule !mpm_worker_module>', ...load('mpm_event_module', 'mod_mpm_event.so'), '</IfModule>', '</IfModule>',
      ...opts.modules.flatMap(([name, file]) => load(name, file)),
      ...(opts.lines ?? []),
      `Include ${opts.dropIn}`, '',
    ].join('\n'),
  );
  const env = { ...process.env, APACHE_RUN_DIR: dir, APACHE_LOCK_DIR: dir, APACHE_LOG_DIR: dir };
  const apache = spawn('/usr/sbin/apache2', ['-X', '-f', wrapper], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  apache.stdout.on('data', (d: Buffer) => (out += d.toString()));
  apache.stderr.on('data', (d: Buffer) => (out += d.toString()));
  t.teardown(() => {
    apache.kill('SIGTERM');
  });
  return { port, output: () => out };
}
