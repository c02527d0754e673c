import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { installLoaders, LOADERS } from '../../../packages/tftpd/loaders';
import { scratchRoot } from '../../helpers/scratch';

const BOOT = '/var/lib/uec-provisioning/boot';

t.test('loaders from the installed Debian packages: copied (not linked), byte-identical, second run copies nothing', async (t) => {
  const paths = scratchRoot(t);
  const first = await installLoaders({ paths, secureBoot: true });
  t.same(first.map((r) => `${r.name} ${r.outcome}`), LOADERS.map((l) => `${l.name} copied`));
  for (const loader of LOADERS) {
    const copy = paths.resolve(`${BOOT}/${loader.name}`);
    t.ok(fs.lstatSync(copy).isFile(), `${loader.name} is a regular file`);
    t.ok(fs.readFileSync(copy).equals(fs.readFileSync(loader.source)), `${loader.name} equals ${loader.source}`);
    t.equal(fs.statSync(copy).mode & 0o7777, 0o644);
  }
  const second = await installLoaders({ paths, secureBoot: true });
  t.same(second.map((r) => r.outcome), LOADERS.map(() => 'unchanged'), 'idempotent');
});

t.test('missing optional loaders (shim, GRUB) are skipped with a note and stale copies removed; a missing required one is an error', async (t) => {
  const paths = scratchRoot(t);
  const source = path.join(paths.root, 'system');
  for (const loader of LOADERS.filter((l) => !l.optional)) {
    fs.mkdirSync(path.dirname(path.join(source, loader.source)), { recursive: true });
    fs.writeFileSync(path.join(source, loader.source), `fake ${loader.name}`);
  }
  fs.mkdirSync(paths.resolve(BOOT), { recursive: true });
  fs.writeFileSync(paths.resolve(`${BOOT}/shimx64.efi`), 'stale copy from an uninstalled shim-signed');
  const results = await installLoaders({ paths, secureBoot: true, sourceRoot: source });
  t.same(
    results.filter((r) => r.outcome !== 'copied').map((r) => [r.name, r.outcome, r.note]),
    [
      ['shimx64.efi', 'removed', 'shim-signed is not installed'],
      ['mmx64.efi', 'skipped', 'shim-signed is not installed'],
      ['grubx64.efi', 'skipped', 'grub-efi-amd64-signed is not installed'],
    ],
  );
  t.notOk(fs.existsSync(paths.resolve(`${BOOT}/shimx64.efi`)));
  fs.rmSync(path.join(source, '/usr/lib/PXELINUX/pxelinux.0'));
  await t.rejects(installLoaders({ paths, secureBoot: true, sourceRoot: source }), { code: 'WRITE_FAILED', message: /pxelinux\.0 is missing: reinstall pxelinux/ });
});

t.test('secure_boot_loaders off: shim and GRUB are not copied', async (t) => {
  const paths = scratchRoot(t);
  const results = await installLoaders({ paths, secureBoot: false });
  t.same(results.filter((r) => r.outcome === 'skipped').map((r) => r.name), ['shimx64.efi', 'mmx64.efi', 'grubx64.efi']);
});
