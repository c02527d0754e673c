import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { buildEffectiveConfig } from '../../../src/core/config';
import { mergeSchemas } from '../../../src/configurator/component';
import { createLogger } from '../../../src/core/log';
import { staticNetworkFacts } from '../../../src/core/network-facts';
import { runCommand } from '../../../src/core/run-command';
import { loadTemplate, templateDirs } from '../../../src/core/template';
import { validateContent } from '../../../src/core/validators';
import { component } from '../../../packages/webui';
import { APACHE_CONF, renderApacheConf } from '../../../packages/webui/render';
import { REPO_ROOT, scratchRoot } from '../../helpers/scratch';
import { ADMIN, startHarness } from './harness';
import { startLoopbackApache } from '../../helpers/apache';

const FIXTURE = path.join(__dirname, 'fixtures/default/expected', APACHE_CONF);

t.test('the apache2 drop-in: golden file, accepted by apache2 -t with mod_proxy and mod_headers loaded, and by the plan validator', async (t) => {
  const paths = scratchRoot(t);
  const schema = mergeSchemas([component]);
  const context = {
    paths,
    config: buildEffectiveConfig(schema, [{ file: 'test', values: new Map([['webui.port', 5249]]) }]),
    templates: templateDirs(paths, path.join(REPO_ROOT, 'templates')),
    network: staticNetworkFacts([]),
    log: createLogger({ level: 'error', json: false, write: () => undefined }),
    nodes: async () => [],
  };
  t.same(await component.plan(context), [], 'no apache2 (no /etc/apache2): no drop-in');
  fs.mkdirSync(paths.resolve('/etc/apache2'), { recursive: true });
  const plans = await component.plan(context);
  t.equal(plans.length, 1);
  const plan = plans[0]!;
  t.equal(plan.path, APACHE_CONF);
  t.equal(plan.validate, 'apache2');
  if (process.env.UPDATE_GOLDEN) {
    fs.mkdirSync(path.dirname(FIXTURE), { recursive: true });
    fs.writeFileSync(FIXTURE, plan.content);
  }
  t.equal(plan.content, fs.readFileSync(FIXTURE, 'utf8'), 'matches the golden file (UPDATE_GOLDEN=1 rewrites it)');
  await validateContent('apache2', APACHE_CONF, plan.content);
  t.match(plan.content, /RequestHeader set X-Forwarded-Proto "https" env=HTTPS/, 'the scheme goes to the service (the Secure cookie flag)');
  t.match(plan.content, /RequestHeader set X-Forwarded-Proto "http" env=!HTTPS/, "a client's own X-Forwarded-Proto is replaced over http");
  // The real check with the modules the package enables (apache2_invoke enmod proxy_http headers).
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uec-webui-apache-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const candidate = path.join(dir, 'uec-provisioning-webui.conf');
  fs.writeFileSync(candidate, plan.content);
  const wrapper = path.join(dir, 'apache2.conf');
  fs.writeFileSync(
    wrapper,
    ['ServerRoot /etc/apache2', 'ServerName localhost', `DefaultRuntimeDir ${dir}`, `PidFile ${dir}/pid`, `Mutex file:${dir} default`, 'ErrorLog /dev/null',
      'IncludeOptional mods-enabled/*.load', 'IncludeOptional mods-enabled/*.conf', 'Include mods-available/proxy.load', 'Include mods-available/proxy_http.load',
      '<IfModule !headers_module>', 'Include mods-available/headers.load', '</IfModule>', `Include ${candidate}`, ''].join('\n'),
  );
  const env = { ...process.env, APACHE_RUN_DIR: dir, APACHE_LOCK_DIR: dir, APACHE_LOG_DIR: dir, APACHE_RUN_USER: 'www-data', APACHE_RUN_GROUP: 'www-data' };
  const ok = await runCommand('apache2ctl', ['-t', '-f', wrapper], { env });
  t.equal(ok.code, 0, ok.stderr);
  t.match(`${ok.stdout}${ok.stderr}`, /Syntax OK/);
  fs.writeFileSync(candidate, plan.content.replace('ProxyPreserveHost On', 'ProxyPreserveHost Maybe'));
  const bad = await runCommand('apache2ctl', ['-t', '-f', wrapper], { env });
  t.not(bad.code, 0, 'a bad proxy directive is caught: the check is real');
  fs.writeFileSync(candidate, plan.content.replace('RequestHeader set X-Forwarded-Proto "http"', 'RequestHeader sett X-Forwarded-Proto "http"'));
  const badHeader = await runCommand('apache2ctl', ['-t', '-f', wrapper], { env });
  t.not(badHeader.code, 0, 'a bad RequestHeader is caught: mod_headers is loaded for the check');
});

t.test('through a real apache2 with the drop-in: a client cannot forge its address or https', { skip: fs.existsSync('/usr/sbin/apache2') ? false : 'no apache2' }, async (t) => {
  const h = await startHarness(t);
  const template = await loadTemplate(templateDirs(h.paths, path.join(REPO_ROOT, 'templates')), 'webui/apache-proxy.conf.mustache');
  const dropIn = renderApacheConf(template, h.port);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uec-webui-apache-run-'));
  fs.chmodSync(dir, 0o755);
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const candidate = path.join(dir, 'uec-provisioning-webui.conf');
  fs.writeFileSync(candidate, dropIn.content);
  const apache = await startLoopbackApache(t, {
    dir,
    dropIn: candidate,
    modules: [['authz_core_module', 'mod_authz_core.so'], ['proxy_module', 'mod_proxy.so'], ['proxy_http_module', 'mod_proxy_http.so'], ['headers_module', 'mod_headers.so']],
  });
  const { port } = apache;
  const base = `http://127.0.0.1:${port}/uec-provisioning`;
  let answer: Response | undefined;
  for (let i = 0; i < 100 && !answer; i++) {
    answer = await fetch(`${base}/login`).catch(() => undefined);
    if (!answer) await new Promise((r) => setTimeout(r, 100));
  }
  t.equal(answer?.status, 200, `apache2 proxies the login page ${apache.output()}`);
  const forged = await fetch(`${base}/api/session`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Forwarded-Proto': 'https', 'X-Forwarded-For': '203.0.113.7' },
    body: JSON.stringify(ADMIN),
  });
  t.equal(forged.status, 200);
  t.notMatch(forged.headers.get('set-cookie') ?? '', /Secure/, "over http the client's X-Forwarded-Proto: https is replaced");
  t.ok(h.logs.some((l) => /admin logged in from 127\.0\.0\.1/.test(l)), 'the address is the one apache2 saw, not the forged hop');
  t.notOk(h.logs.some((l) => l.includes('203.0.113.7')), 'the forged address is never used');
});
