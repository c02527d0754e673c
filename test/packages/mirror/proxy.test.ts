/**
 * Proxy mode with real parts: the rendered apt-cacher-ng drop-in in a private apt-cacher-ng
 * (own config dir, cache, log and port) in front of the loopback test archive; two apt-get
 * runs with separate state download the same package, and the second is served from the
 * cache (apt-cacher-ng's transfer log, and the upstream's byte count).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { buildEffectiveConfig, type ConfigValue } from '../../../src/core/config';
import { createPaths } from '../../../src/core/paths';
import { templateDirs } from '../../../src/core/template';
import { validateContent } from '../../../src/core/validators';
import { COMMON_SCHEMA } from '../../../packages/common/config-schema';
import { loadMirrorTemplates } from '../../../packages/mirror/index';
import { MIRROR_SCHEMA } from '../../../packages/mirror/config-schema';
import { parseMirrorSettings } from '../../../packages/mirror/model';
import { renderMirrorPlans, selectArchiveSettings } from '../../../packages/mirror/render';
import { REPO_ROOT } from '../../helpers/scratch';
import { freeAptCacherNgPort, privateApt, startAptCacherNg } from './real-tools';
import { createTestArchive, serveDirectory } from './test-archive';

t.test('proxy mode: apt-cacher-ng serves the install, the second download is a cache hit', async (t) => {
  const archive = createTestArchive();
  t.teardown(() => archive.remove());
  // apt-cacher-ng cannot reach an upstream above port 32767 either (see freeAptCacherNgPort).
  const upstream = await serveDirectory(archive.publicDir, '127.0.0.1', await freeAptCacherNgPort());
  t.teardown(() => upstream.close());
  const port = await freeAptCacherNgPort();
  const values = new Map<string, ConfigValue>([
    ['mirror.mode', 'proxy'],
    ['mirror.proxy_port', port],
    ['archive.main_archive', upstream.url],
    ['archive.ports_archive', upstream.url],
  ]);
  const config = buildEffectiveConfig({ ...COMMON_SCHEMA, ...MIRROR_SCHEMA }, [{ file: 't', values }]);
  const settings = parseMirrorSettings(config);
  const templates = await loadMirrorTemplates({ templates: templateDirs(createPaths('/'), path.join(REPO_ROOT, 'templates')) });
  const inputs = { settings, templates, host: '127.0.0.1', archive: { main_archive: upstream.url, ports_archive: upstream.url } };
  const dropIn = renderMirrorPlans(inputs).find((p) => p.path === '/etc/apt-cacher-ng/zz_uec-provisioning.conf');
  t.ok(dropIn, 'proxy mode plans the apt-cacher-ng drop-in');
  await validateContent('apt-cacher-ng', dropIn?.path ?? '', dropIn?.content ?? '');
  const proxy = selectArchiveSettings(inputs)?.http_proxy ?? '';
  t.equal(proxy, `http://127.0.0.1:${port}/`, 'preseeds get apt-cacher-ng as mirror/http/proxy');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uec-mirror-proxy-'));
  fs.chmodSync(dir, 0o755);
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const acng = await startAptCacherNg(path.join(dir, 'acng'), dropIn?.content ?? '', port);
  t.teardown(() => acng.stop());

  const install = async (n: number) => {
    const apt = privateApt(path.join(dir, `apt${n}`), `deb ${upstream.url} stable main`, archive.keyring, proxy);
    await apt.run(['update']);
    const dl = path.join(dir, `dl${n}`);
    fs.mkdirSync(dl);
    await apt.run(['download', 'uec-hello'], dl);
    return fs.readdirSync(dl);
  };
  const debRequests = () => upstream.requests().filter((r) => r.endsWith('uec-hello_1.0_all.deb')).length;
  t.same(await install(1), ['uec-hello_1.0_all.deb'], 'first download through the proxy');
  t.equal(debRequests(), 1, 'the proxy fetched the package from upstream once');
  const firstRequests = upstream.requests().length;
  t.same(await install(2), ['uec-hello_1.0_all.deb'], 'second download through the proxy');
  t.equal(debRequests(), 1, 'the second download did not reach upstream');
  const second = upstream.requests().slice(firstRequests);
  t.same(second.filter((r) => r.includes('/pool/')), [], `the second install fetched no package file upstream, only index revalidation: ${second.join(', ')}`);

  // apt-cacher-ng's transfer log, one line per transfer: "time|I|bytes|client|path" for data
  // that came in from upstream, "time|O|bytes|client|path" for data sent to a client.
  // It writes a transfer's line when the transfer ends, which can be just after apt-get has
  // its file (a CI run read the log before the second "O" line): wait for it a while.
  const readDebLines = () => {
    const text = fs.readFileSync(path.join(acng.logDir, 'apt-cacher.log'), 'utf8');
    return { text, kinds: text.split('\n').filter((l) => l.endsWith('/uec-hello_1.0_all.deb')).map((l) => l.split('|')[1]) };
  };
  let { text: log, kinds: debLines } = readDebLines();
  for (let i = 0; i < 100 && debLines.filter((d) => d === 'O').length < 2; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    ({ text: log, kinds: debLines } = readDebLines());
  }
  t.same(debLines.filter((d) => d === 'I').length, 1, `apt-cacher-ng fetched the package once:\n${log}`);
  t.same(debLines.filter((d) => d === 'O').length, 2, 'and sent it to both clients (the second from its cache)');
});
