// The web UI's Images page and dashboard list what `images import` stored: each image is a
// symlink <boot>/images/<os>/<release>/<arch> → a sibling directory .<arch>-<id>, beside
// which an import may leave .<arch>.link-<id> (the temporary link) or .<arch>-manual-<id>
// (a hand-made directory moved aside), and <boot>/.staging-<id> while it runs.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { mergeSchemas } from '../../../src/configurator/component';
import { loadConfig } from '../../../src/core/config';
import { component as common } from '../../../packages/common';
import { importImage, listImages as listImportedImages } from '../../../packages/tftpd/images';
import { component as tftpd } from '../../../packages/tftpd';
import { component as webui } from '../../../packages/webui';
import { listImages, loadHealth } from '../../../packages/webui/health';
import { put, scratchRoot } from '../../helpers/scratch';

const BOOT = '/var/lib/uec-provisioning/boot';

t.test('an image stored as a symlink to its .<arch>-<id> sibling is listed; the dot-siblings are not', async (t) => {
  const paths = scratchRoot(t);
  const release = paths.resolve(`${BOOT}/images/debian/bookworm`);
  put(paths, `${BOOT}/images/debian/bookworm/.amd64-0123456789ab/linux`, 'kernel\n');
  put(paths, `${BOOT}/images/debian/bookworm/.amd64-0123456789ab/initrd.gz`, 'initrd\n'.repeat(10));
  put(paths, `${BOOT}/images/debian/bookworm/.amd64-0123456789ab/image.json`, '{}\n');
  fs.symlinkSync('.amd64-0123456789ab', path.join(release, 'amd64'));
  // What an interrupted import can leave: a temporary link, a moved-aside directory, staging.
  fs.symlinkSync('.amd64-0123456789ab', path.join(release, '.amd64.link-cafebabe'));
  put(paths, `${BOOT}/images/debian/bookworm/.amd64-manual-deadbeef/linux`, 'old kernel\n');
  put(paths, `${BOOT}/.staging-0123456789ab/image/linux`, 'half copied');
  // A link whose directory is gone is no image.
  fs.symlinkSync('.arm64-000000000000', path.join(release, 'arm64'));

  const images = await listImages(paths);
  t.same(images.map((i) => `${i.os}/${i.release}/${i.arch}`), ['debian/bookworm/amd64']);
  t.same(images[0]?.files, ['image.json', 'initrd.gz', 'linux']);
  t.equal(images[0]?.bytes, 3 + 7 + 70);

  const config = await loadConfig(paths, mergeSchemas([common, tftpd, webui]));
  const health = await loadHealth({ paths, config, processNames: async () => new Set<string>() });
  t.match(health.find((h) => h.name === 'Images'), { state: 'ok', detail: '1 imported (bookworm/amd64)' });
});

t.test('what `images import` stores is what the web UI lists', async (t) => {
  const paths = scratchRoot(t);
  const tree = path.join(paths.root, 'src-tree');
  fs.mkdirSync(path.join(tree, 'debian-installer/amd64'), { recursive: true });
  fs.writeFileSync(path.join(tree, 'version.info'), 'Debian version:  12 (bookworm)\nInstaller build: 20990101\n');
  fs.writeFileSync(path.join(tree, 'debian-installer/amd64/linux'), 'kernel\n');
  fs.writeFileSync(path.join(tree, 'debian-installer/amd64/initrd.gz'), 'initrd\n'.repeat(100));
  const tarball = path.join(paths.root, 'netboot.tar.gz');
  const tar = spawnSync('tar', ['-czf', tarball, '-C', tree, '.'], { encoding: 'utf8' });
  t.equal(tar.status, 0, tar.stderr);
  const source = { kind: 'tarball' as const, location: tarball };
  const defaults = { os: 'debian', release: 'bookworm', arch: 'amd64' };
  await importImage({ paths, source, defaults });
  await importImage({ paths, source, defaults, release: 'trixie' });
  t.ok(fs.lstatSync(paths.resolve(`${BOOT}/images/debian/bookworm/amd64`)).isSymbolicLink(), 'the import stores a symlink');

  const imported = (await listImportedImages(paths)).map((i) => `${i.os}/${i.release}/${i.arch}`);
  t.same(imported, ['debian/bookworm/amd64', 'debian/trixie/amd64']);
  t.same((await listImages(paths)).map((i) => `${i.os}/${i.release}/${i.arch}`), imported);
});
