import * as path from 'node:path';

/**
 * Every path the product touches resolves under a root prefix (`--root DIR`, or the
 * UEC_PROVISIONING_ROOT environment variable, default `/`), so the whole stack can be
 * configured and tested inside a scratch directory.
 */
export const ROOT_ENV = 'UEC_PROVISIONING_ROOT';

export interface Paths {
  readonly root: string;
  /** Map an absolute system path such as /etc/dnsmasq.d/x.conf to its place under the root. */
  resolve(systemPath: string): string;
  /** Inverse of resolve, for messages: the system path a resolved path stands for. */
  systemPathOf(resolvedPath: string): string;
}

export const SYSTEM = {
  configDir: '/etc/uec-provisioning',
  configFile: '/etc/uec-provisioning/uec-provisioning.conf',
  configDropInDir: '/etc/uec-provisioning/conf.d',
  managedDropIn: '/etc/uec-provisioning/conf.d/50-managed.conf',
  templateOverrideDir: '/etc/uec-provisioning/templates',
  stateDir: '/var/lib/uec-provisioning',
  generatedManifest: '/var/lib/uec-provisioning/generated-files.json',
  logDir: '/var/log/uec-provisioning',
} as const;

export function createPaths(root: string): Paths {
  if (!path.isAbsolute(root)) throw new Error(`root prefix must be an absolute path, got "${root}"`);
  const normalRoot = path.resolve(root);
  return {
    root: normalRoot,
    resolve(systemPath: string): string {
      if (!path.isAbsolute(systemPath)) throw new Error(`not an absolute path: "${systemPath}"`);
      // Normalise first so ".." cannot climb out of the root.
      return path.join(normalRoot, path.resolve('/', systemPath));
    },
    systemPathOf(resolvedPath: string): string {
      if (normalRoot === '/') return resolvedPath;
      const rel = path.relative(normalRoot, resolvedPath);
      return rel.startsWith('..') ? resolvedPath : path.join('/', rel);
    },
  };
}

/** The root from an explicit option, else the environment, else `/`. */
export function rootFrom(option: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(option ?? env[ROOT_ENV] ?? '/');
}
