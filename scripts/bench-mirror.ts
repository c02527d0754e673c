/**
 * `npm run bench` (mirror part), measured, never asserted:
 *  - incremental `mirror sync` when nothing changed upstream: time and bytes fetched
 *    (aim: near zero), against the first full sync;
 *  - proxy mode: bytes fetched from upstream for K installs of the same package set through
 *    apt-cacher-ng against one install (aim: ratio close to 1).
 * Everything on loopback: a reprepro test archive, a private apt-cacher-ng, a scratch root.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildEffectiveConfig, type ConfigValue } from '../src/core/config';
import { SILENT_LOGGER } from '../src/core/log';
import { createPaths } from '../src/core/paths';
import { loadTemplate, templateDirs } from '../src/core/template';
import { COMMON_SCHEMA } from '../packages/common/config-schema';
import { MIRROR_SCHEMA } from '../packages/mirror/config-schema';
import { parseMirrorSettings } from '../packages/mirror/model';
import { MIRROR_TEMPLATES } from '../packages/mirror/render';
import { syncMirrorTree } from '../packages/mirror/sync';
import { freeAptCacherNgPort, privateApt, startAptCacherNg } from '../test/packages/mirror/real-tools';
import { createTestArchive, serveDirectory } from '../test/packages/mirror/test-archive';

const K = 5;

async function main(): Promise<void> {
  const archive = createTestArchive();
  for (let i = 0; i < 20; i++) archive.addPackage('stable', `uec-bench-${i}`, '1.0');
  const upstream = await serveDirectory(archive.publicDir, '127.0.0.1', await freeAptCacherNgPort());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uec-bench-mirror-'));
  fs.chmodSync(dir, 0o755);
  try {
    const paths = createPaths(dir);
    fs.mkdirSync(paths.resolve('/etc'), { recursive: true });
    fs.copyFileSync(archive.keyring, paths.resolve('/etc/test-archive.gpg'));
    const values = new Map<string, ConfigValue>([
      ['mirror.mode', 'mirror'],
      ['mirror.upstream', upstream.url],
      ['mirror.suites', 'stable testing'],
      ['mirror.keyring', '/etc/test-archive.gpg'],
      ['mirror.min_free_mb', 1],
    ]);
    const settings = parseMirrorSettings(buildEffectiveConfig({ ...COMMON_SCHEMA, ...MIRROR_SCHEMA }, [{ file: 'bench', values }]));
    const mirrorListTemplate = await loadTemplate(templateDirs(paths, path.join(__dirname, '..', 'templates')), MIRROR_TEMPLATES.mirrorList);
    const timed = async () => {
      upstream.reset();
      const start = process.hrtime.bigint();
      const state = await syncMirrorTree({ paths, settings, mirrorListTemplate, log: SILENT_LOGGER });
      return { ms: Number(process.hrtime.bigint() - start) / 1e6, bytes: upstream.bytesSent(), requests: upstream.requests().length, files: state.files };
    };
    const full = await timed();
    const incremental: { ms: number; bytes: number; requests: number }[] = [];
    for (let i = 0; i < 3; i++) incremental.push(await timed());
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
    console.log('| measurement | time | bytes from upstream | requests |');
    console.log('|---|---|---|---|');
    console.log(`| first mirror sync (${full.files} package files, 2 suites) | ${full.ms.toFixed(0)} ms | ${full.bytes} | ${full.requests} |`);
    console.log(`| incremental mirror sync, nothing changed (median of 3) | ${median(incremental.map((x) => x.ms)).toFixed(0)} ms | ${median(incremental.map((x) => x.bytes))} | ${median(incremental.map((x) => x.requests))} |`);

    const port = await freeAptCacherNgPort();
    const acng = await startAptCacherNg(path.join(dir, 'acng'), `Port: ${port}\nAllowUserPorts: 80 ${new URL(upstream.url).port}\n`, port);
    try {
      const packages = ['uec-hello', 'uec-world', ...Array.from({ length: 20 }, (_, i) => `uec-bench-${i}`)];
      const bytesPerInstall: number[] = [];
      for (let i = 0; i < K; i++) {
        upstream.reset();
        const apt = privateApt(path.join(dir, `apt${i}`), `deb ${upstream.url} stable main`, archive.keyring, `http://127.0.0.1:${port}/`);
        await apt.run(['update']);
        fs.mkdirSync(path.join(dir, `dl${i}`));
        await apt.run(['download', ...packages], path.join(dir, `dl${i}`));
        bytesPerInstall.push(upstream.bytesSent());
      }
      const total = bytesPerInstall.reduce((a, b) => a + b, 0);
      console.log(`| proxy: bytes from upstream for ${K} installs of ${packages.length} packages / 1 install | ratio ${(total / (bytesPerInstall[0] ?? 1)).toFixed(2)} | ${total} / ${bytesPerInstall[0]} | |`);
    } finally {
      await acng.stop();
    }
  } finally {
    await upstream.close();
    archive.remove();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
