/**
 * The first-boot script's report (templates/boot/firstboot.sh.mustache), run by sh against a
 * real HTTP server: 200 reports and removes itself; 403 (the region no longer takes this
 * install's token: the deploy already ended) removes itself too instead of retrying on every
 * boot; no answer or a 5xx is tried again. It runs in a private mount namespace whose
 * /etc/systemd/system and /usr/local/sbin are empty tmpfs, with systemctl and sleep stubbed.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t, { type Test } from 'tap';
import { createPaths } from '../../src/core/paths';
import { loadTemplate, renderTemplate, templateDirs } from '../../src/core/template';
import { listen } from '../helpers/region-fixture';
import { REPO_ROOT } from '../helpers/scratch';

async function runReport(t: Test, answer: number): Promise<{ code: number | null; stderr: string; calls: string[]; requests: number }> {
  let requests = 0;
  const base = await listen(t, (req, res) => {
    requests++;
    res.writeHead(answer, { 'Content-Type': 'text/plain' });
    res.end(answer === 200 ? 'ok\n' : 'no\n');
  });
  const template = await loadTemplate(templateDirs(createPaths('/'), path.join(REPO_ROOT, 'templates')), 'boot/firstboot.sh.mustache');
  const script = renderTemplate(template, { hostname: 'web1', system_id: 'node-abc123', admin_user: 'debian', authorized_keys: [], deployed_url: `${base}/metadata/latest/node-abc123/status/deployed?token=t` }, (v) => v);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uec-firstboot-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'firstboot'), script, { mode: 0o755 });
  fs.mkdirSync(path.join(dir, 'bin'));
  fs.writeFileSync(path.join(dir, 'bin/systemctl'), `#!/bin/sh\necho "systemctl $*" >> ${dir}/calls\n`, { mode: 0o755 });
  fs.writeFileSync(path.join(dir, 'bin/sleep'), `#!/bin/sh\necho "sleep $*" >> ${dir}/calls\n`, { mode: 0o755 });
  const inner = [
    'set -e',
    'mount -t tmpfs tmpfs /etc/systemd/system',
    'mount -t tmpfs tmpfs /usr/local/sbin',
    'touch /etc/systemd/system/uec-provisioning-firstboot.service /usr/local/sbin/uec-provisioning-firstboot',
    `set +e; PATH=${dir}/bin:$PATH sh ${dir}/firstboot report; code=$?`,
    `[ -e /etc/systemd/system/uec-provisioning-firstboot.service ] && echo unit-kept >> ${dir}/calls`,
    'exit $code',
  ].join('\n');
  // Not spawnSync: the HTTP server answering the script runs in this process.
  const r = await new Promise<{ status: number | null; stderr: string }>((resolve, reject) => {
    const child = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', inner], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stderr }));
  });
  const calls = fs.existsSync(path.join(dir, 'calls')) ? fs.readFileSync(path.join(dir, 'calls'), 'utf8').trim().split('\n') : [];
  return { code: r.status, stderr: r.stderr, calls, requests };
}

t.test('200: reported once, the unit disabled and removed', async (t) => {
  const r = await runReport(t, 200);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.requests, 1);
  t.same(r.calls, ['systemctl disable uec-provisioning-firstboot.service']);
});

t.test('403 (the deploy already ended): not retried on every boot; disabled and removed, said on stderr', async (t) => {
  const r = await runReport(t, 403);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.requests, 1, 'asked once');
  t.same(r.calls, ['systemctl disable uec-provisioning-firstboot.service']);
  t.match(r.stderr, /refused the report \(403/);
});

t.test('503: tried 10 times, 30 s apart, then kept for the next boot', async (t) => {
  const r = await runReport(t, 503);
  t.equal(r.code, 1);
  t.equal(r.requests, 10);
  t.equal(r.calls.filter((c) => c === 'sleep 30').length, 10);
  t.ok(r.calls.includes('unit-kept'), 'the unit stays for the next boot');
  t.match(r.stderr, /could not report deployed/);
});
