import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { buildEffectiveConfig } from '../../../src/config';
import { mergeSchemas } from '../../../src/component';
import { createLogger } from '../../../src/log';
import { staticNetworkFacts } from '../../../src/network-facts';
import { runCommand } from '../../../src/run-command';
import { templateDirs } from '../../../src/template';
import { validateContent } from '../../../src/validators';
import { component } from '../../../packages/webui';
import { APACHE_CONF } from '../../../packages/webui/render';
import { REPO_ROOT, scratchRoot } from '../../helpers/scratch';

const FIXTURE = path.join(__dirname, 'fixtures/default/expected', APACHE_CONF);

t.test('the apache2 drop-in: golden file, accepted by apache2 -t with mod_proxy loaded, and by the plan validator', async (t) => {
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
  // The real check with the proxy modules the package enables (apache2_invoke enmod proxy_http).
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uec-webui-apache-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const candidate = path.join(dir, 'uec-provisioning-webui.conf');
  fs.writeFileSync(candidate, plan.content);
  const wrapper = path.join(dir, 'apache2.conf');
  fs.writeFileSync(
    wrapper,
    ['ServerRoot /etc/apache2', 'ServerName localhost', `DefaultRuntimeDir ${dir}`, `PidFile ${dir}/pid`, `Mutex file:${dir} default`, 'ErrorLog /dev/null',
      'IncludeOptional mods-enabled/*.load', 'IncludeOptional mods-enabled/*.conf', 'Include mods-available/proxy.load', 'Include mods-available/proxy_http.load', `Include ${candidate}`, ''].join('\n'),
  );
  const env = { ...process.env, APACHE_RUN_DIR: dir, APACHE_LOCK_DIR: dir, APACHE_LOG_DIR: dir, APACHE_RUN_USER: 'www-data', APACHE_RUN_GROUP: 'www-data' };
  const ok = await runCommand('apache2ctl', ['-t', '-f', wrapper], { env });
  t.equal(ok.code, 0, ok.stderr);
  t.match(`${ok.stdout}${ok.stderr}`, /Syntax OK/);
  fs.writeFileSync(candidate, plan.content.replace('ProxyPreserveHost On', 'ProxyPreserveHost Maybe'));
  const bad = await runCommand('apache2ctl', ['-t', '-f', wrapper], { env });
  t.not(bad.code, 0, 'a bad proxy directive is caught: the check is real');
});
