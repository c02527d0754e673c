import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fsOps } from './fs-ops';

export interface WriteOptions {
  mode: number;
  uid?: number;
  gid?: number;
}

/**
 * Write a file so that readers see either the old or the new content, never a mix:
 * a dot-prefixed temp file beside the target (dnsmasq and apache skip dot-files in their
 * conf dirs), fsync, explicit mode and owner, rename, fsync of the directory. The temp
 * file is removed whatever happens.
 */
export async function atomicWrite(target: string, content: string | Buffer, options: WriteOptions): Promise<void> {
  const ops = fsOps();
  const temp = await writeTempFile(target, content, { ...options, sync: true });
  try {
    await ops.rename(temp, target);
  } catch (err) {
    await ops.unlink(temp).catch(() => undefined);
    throw err;
  }
  await ops.fsyncDir(path.dirname(target));
}

/**
 * The first half of an atomic write: the content in a dot-prefixed temp file beside the
 * target, mode and owner set, fsynced only with `sync`. For many files at once (an apply of
 * many node files) the caller syncs once (`fsOps().syncAll()`), then renames each temp over
 * its target and fsyncs each directory once, so a crash leaves every target old or new, as
 * atomicWrite does, at the cost of two syncs instead of two per file. Returns the temp
 * file's path; on failure nothing is left.
 */
export async function writeTempFile(target: string, content: string | Buffer, options: WriteOptions & { sync?: boolean }): Promise<string> {
  const ops = fsOps();
  const dir = path.dirname(target);
  await ops.mkdir(dir, 0o755);
  const temp = path.join(dir, `.${path.basename(target)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await ops.open(temp, 'wx', options.mode);
  try {
    await handle.writeFile(content);
    await handle.chmod(options.mode); // the umask may have narrowed the mode given to open
    if (options.uid !== undefined && options.gid !== undefined) await handle.chown(options.uid, options.gid);
    if (options.sync) await handle.sync();
  } catch (err) {
    await handle.close().catch(() => undefined);
    await ops.unlink(temp).catch(() => undefined);
    throw err;
  }
  await handle.close();
  return temp;
}

/** Remove a file if present (and fsync its directory); absent is not an error. */
export async function removeFile(target: string, options: { syncDir?: boolean } = {}): Promise<boolean> {
  const ops = fsOps();
  try {
    await ops.unlink(target);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
  if (options.syncDir !== false) await ops.fsyncDir(path.dirname(target));
  return true;
}
