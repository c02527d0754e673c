/**
 * Roles: what a deployed machine becomes (a plain server, or one of the UEC components).
 * A role is a small deb822-style data file, the format Debian admins read every day:
 *
 *   Role: node-controller
 *   Description: UEC node controller (runs the instances)
 *   Tasks: standard, ssh-server
 *   Packages-lucid: eucalyptus-nc
 *   Preseed:
 *    d-i preseed/late_command ...        (continuation lines start with one space)
 *   Late-Commands:
 *    in-target systemctl enable foo
 *
 * Shipped roles are in /usr/share/uec-provisioning/templates/roles/, the admin's in
 * /etc/uec-provisioning/roles.d/ (same name wins). Parsing is pure; loading reads both.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UecError, describeError } from '../core/errors';
import { checkLine, checkWord } from '../core/formats';
import type { Paths } from '../core/paths';
import { createRecentLoader, type RecentOptions } from '../core/recent';
import { templateDirs } from '../core/template';

export const ROLE_DIRS = {
  admin: '/etc/uec-provisioning/roles.d',
  /** Beside the shipped templates (templates/roles/ in a checkout). */
  shipped: '/usr/share/uec-provisioning/templates/roles',
} as const;

export interface Role {
  name: string;
  description: string;
  /** tasksel tasks, e.g. standard, ssh-server. */
  tasks: string[];
  /** Package lists by release codename; a release missing here cannot take the role. */
  packages: Record<string, string[]>;
  /** d-i preseed lines added to the node's preseed. */
  preseed: string[];
  /** Commands run at the end of the install (d-i late_command), one per line. */
  lateCommands: string[];
  /** System path of the file it came from. */
  file: string;
}

function fail(file: string, line: number, message: string): UecError {
  return new UecError('INVALID_VALUE', `${file}:${line}: ${message}`);
}

/** Parse one role file (pure). Every value is one safe line; unknown fields are errors. */
export function parseRole(text: string, file: string): Role {
  const fields = new Map<string, { value: string[]; line: number }>();
  let current: { value: string[]; line: number } | undefined;
  const lines = text.split('\n');
  lines.forEach((raw, index) => {
    const lineNo = index + 1;
    if (raw.startsWith('#')) return;
    if (raw.trim() === '') {
      current = undefined;
      return;
    }
    if (/^[ \t]/.test(raw)) {
      if (!current) throw fail(file, lineNo, 'continuation line without a field before it');
      const content = raw.slice(1);
      current.value.push(content === '.' ? '' : content);
      return;
    }
    const m = /^([A-Za-z][A-Za-z0-9-]*):[ \t]*(.*)$/.exec(raw);
    if (!m) throw fail(file, lineNo, `not a "Field: value" line: ${JSON.stringify(raw)}`);
    const name = m[1]!.toLowerCase();
    if (fields.has(name)) throw fail(file, lineNo, `field ${m[1]} is given twice`);
    current = { value: m[2] ? [m[2].trimEnd()] : [], line: lineNo };
    fields.set(name, current);
  });
  const single = (name: string): string => (fields.get(name)?.value ?? []).join(' ').trim();
  const list = (name: string): string[] =>
    single(name)
      .split(/[\s,]+/)
      .filter(Boolean);
  const name = single('role');
  if (!name) throw fail(file, 1, 'missing the Role: field');
  if (checkWord(name)) throw fail(file, fields.get('role')!.line, `role name ${JSON.stringify(name)} ${checkWord(name)}`);
  const role: Role = {
    name,
    description: single('description'),
    tasks: list('tasks'),
    packages: {},
    preseed: (fields.get('preseed')?.value ?? []).filter((l) => l.trim() !== ''),
    lateCommands: (fields.get('late-commands')?.value ?? []).filter((l) => l.trim() !== ''),
    file,
  };
  for (const [field, entry] of fields) {
    if (field.startsWith('packages-')) {
      const release = field.slice('packages-'.length);
      if (checkWord(release)) throw fail(file, entry.line, `release ${JSON.stringify(release)} ${checkWord(release)}`);
      role.packages[release] = list(field);
    } else if (!['role', 'description', 'tasks', 'preseed', 'late-commands'].includes(field)) {
      throw fail(file, entry.line, `unknown field ${JSON.stringify(field)} (known: Role, Description, Tasks, Packages-<release>, Preseed, Late-Commands)`);
    }
  }
  for (const word of [...role.tasks, ...Object.values(role.packages).flat()]) {
    const problem = checkWord(word);
    if (problem) throw fail(file, 1, `package or task ${JSON.stringify(word)} ${problem}`);
  }
  for (const line of [...role.preseed, ...role.lateCommands, role.description]) {
    const problem = checkLine(line);
    if (problem) throw fail(file, 1, `${JSON.stringify(line)} ${problem}`);
  }
  for (const line of role.lateCommands) {
    // late_command is one shell line joined with ';': a stray backslash-newline or an
    // unbalanced quote would break every command after it.
    if ((line.match(/'/g) ?? []).length % 2 !== 0 || (line.match(/"/g) ?? []).length % 2 !== 0) {
      throw fail(file, 1, `late command ${JSON.stringify(line)} has an unbalanced quote`);
    }
  }
  return role;
}

async function readRoleDir(dir: string, systemDir: string): Promise<Role[]> {
  let names: string[];
  try {
    names = (await fs.promises.readdir(dir)).filter((n) => n.endsWith('.role')).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new UecError('CONFIG_UNREADABLE', `cannot list roles in ${systemDir}: ${describeError(err)}`, { cause: err });
  }
  const roles: Role[] = [];
  for (const name of names) {
    const text = await fs.promises.readFile(path.join(dir, name), 'utf8');
    roles.push(parseRole(text, path.join(systemDir, name)));
  }
  return roles;
}

/** The shipped directory: roles/ inside the shipped template directory. */
export function shippedRoleDir(paths: Paths): string {
  return path.join(templateDirs(paths).shipped, 'roles');
}

/** Every role, the admin's winning over a shipped one of the same name; sorted by name. */
export async function loadRoles(paths: Paths, shippedDir: string = shippedRoleDir(paths)): Promise<Role[]> {
  const byName = new Map<string, Role>();
  for (const role of await readRoleDir(shippedDir, ROLE_DIRS.shipped)) byName.set(role.name, role);
  for (const role of await readRoleDir(paths.resolve(ROLE_DIRS.admin), ROLE_DIRS.admin)) byName.set(role.name, role);
  return [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * loadRoles for a server's request paths: the role files read at most once a second (every
 * context a boot script, preseed or feed answer needs would otherwise read and parse them all
 * again); an edited role is seen within the second. The CLI reads them fresh (loadRoles).
 */
export function createRolesLoader(paths: Paths, options: RecentOptions & { shippedDir?: string } = {}): () => Promise<Role[]> {
  return createRecentLoader(() => loadRoles(paths, options.shippedDir), options);
}

export function selectRole(roles: readonly Role[], name: string): Role {
  const role = roles.find((r) => r.name === name);
  if (!role) throw new UecError('ROLE_UNKNOWN', `no role ${JSON.stringify(name)} (roles: ${roles.map((r) => r.name).join(', ') || 'none'})`);
  return role;
}

/**
 * The packages a role installs on a release, or ROLE_UNKNOWN saying which releases it does
 * support: an install that cannot succeed is refused before the machine boots.
 */
export function selectRolePackages(role: Role, release: string): string[] {
  const packages = role.packages[release];
  if (packages) return packages;
  if (Object.keys(role.packages).length === 0) return [];
  throw new UecError(
    'ROLE_UNKNOWN',
    `role ${role.name} has no package list for release ${release}: its packages exist only for ${Object.keys(role.packages).sort().join(', ')} (see ${role.file})`,
  );
}
