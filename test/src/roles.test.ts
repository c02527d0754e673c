import * as path from 'node:path';
import t from 'tap';
import { UecError } from '../../src/core/errors';
import { createRolesLoader, loadRoles, parseRole, selectRole, selectRolePackages } from '../../src/contract/roles';
import { SHIPPED_TEMPLATES } from '../helpers/region-fixture';
import { put, scratchRoot } from '../helpers/scratch';

const shipped = path.join(SHIPPED_TEMPLATES, 'roles');

t.test('the five UEC roles and server are shipped and parse', async (t) => {
  const paths = scratchRoot(t);
  const roles = await loadRoles(paths, shipped);
  t.same(roles.map((r) => r.name), ['cloud-controller', 'cluster-controller', 'node-controller', 'server', 'storage-controller', 'walrus']);
  for (const r of roles) {
    t.ok(r.description.length > 10, `${r.name} has a description`);
    t.ok(Object.keys(r.packages).length > 0, `${r.name} names packages per release`);
    t.equal(r.file, `/usr/share/uec-provisioning/templates/roles/${r.name}.role`);
  }
  const server = selectRole(roles, 'server');
  t.same(selectRolePackages(server, 'bookworm'), ['openssh-server']);
  t.same(server.tasks, ['standard', 'ssh-server']);
});

t.test('an admin role in roles.d is added; one with a shipped name replaces it', async (t) => {
  const paths = scratchRoot(t);
  put(paths, '/etc/uec-provisioning/roles.d/web.role', 'Role: web\nDescription: web server\nTasks: standard\nPackages-bookworm: nginx, certbot\nPreseed:\n d-i foo/bar string x\nLate-Commands:\n in-target systemctl enable nginx\n');
  put(paths, '/etc/uec-provisioning/roles.d/server.role', 'Role: server\nDescription: local server\nPackages-bookworm: openssh-server vim\n');
  put(paths, '/etc/uec-provisioning/roles.d/README', 'not a role');
  const roles = await loadRoles(paths, shipped);
  const web = selectRole(roles, 'web');
  t.same(web.packages, { bookworm: ['nginx', 'certbot'] });
  t.same(web.preseed, ['d-i foo/bar string x']);
  t.same(web.lateCommands, ['in-target systemctl enable nginx']);
  t.equal(web.file, '/etc/uec-provisioning/roles.d/web.role');
  t.equal(selectRole(roles, 'server').description, 'local server');
  t.equal(roles.length, 7);
});

t.test('unknown role → ROLE_UNKNOWN listing the roles', async (t) => {
  const roles = await loadRoles(scratchRoot(t), shipped);
  const err = t.throws(() => selectRole(roles, 'nosuch')) as UecError;
  t.equal(err.code, 'ROLE_UNKNOWN');
  t.match(err.message, /no role "nosuch" \(roles: cloud-controller, cluster-controller, node-controller, server, storage-controller, walrus\)/);
});

t.test('a release lacking the role\'s packages → a clear refusal naming the releases it has', async (t) => {
  const roles = await loadRoles(scratchRoot(t), shipped);
  for (const name of ['cloud-controller', 'cluster-controller', 'node-controller', 'storage-controller', 'walrus']) {
    const err = t.throws(() => selectRolePackages(selectRole(roles, name), 'bookworm')) as UecError;
    t.equal(err.code, 'ROLE_UNKNOWN', name);
    t.match(err.message, new RegExp(`role ${name} has no package list for release bookworm: its packages exist only for .*lucid.* \\(see /usr/share/uec-provisioning/templates/roles/${name}\\.role\\)`));
  }
  t.same(selectRolePackages(parseRole('Role: bare\n', 'x'), 'bookworm'), [], 'a role with no package lists fits any release');
});

t.test('bad role files: one line naming file and line', async (t) => {
  const cases: [string, RegExp][] = [
    ['Description: x\n', /^f\.role:1: missing the Role: field$/],
    ['Role: a b\n', /^f\.role:1: role name "a b"/],
    ['Role: a\nColour: blue\n', /^f\.role:2: unknown field "colour"/],
    ['Role: a\nRole: b\n', /^f\.role:2: field Role is given twice$/],
    [' leading\n', /^f\.role:1: continuation line without a field/],
    ['Role: a\nnot a field line\n', /^f\.role:2: not a "Field: value" line/],
    ['Role: a\nPackages-book worm: x\n', /^f\.role:2: not a "Field: value" line/],
    ['Role: a\nPackages-bookworm: ok bad;pkg\n', /package or task "bad;pkg"/],
    ['Role: a\nLate-Commands:\n echo \'unbalanced\n', /late command .* has an unbalanced quote/],
  ];
  for (const [text, message] of cases) {
    const err = t.throws(() => parseRole(text, 'f.role')) as UecError;
    t.equal(err.code, 'INVALID_VALUE', JSON.stringify(text));
    t.match(err.message, message);
  }
  const paths = scratchRoot(t);
  put(paths, '/etc/uec-provisioning/roles.d/bad.role', 'Role: bad\nFoo: 1\n');
  await t.rejects(loadRoles(paths, shipped), { code: 'INVALID_VALUE', message: /^\/etc\/uec-provisioning\/roles\.d\/bad\.role:2: unknown field/ });
});

t.test('createRolesLoader: the role files read at most once a second; an edit is seen after it', async (t) => {
  const paths = scratchRoot(t);
  let clock = 50_000;
  const load = createRolesLoader(paths, { shippedDir: shipped, now: () => clock });
  put(paths, '/etc/uec-provisioning/roles.d/web.role', 'Role: web\nDescription: web server\nPackages-bookworm: nginx\n');
  t.same(selectRole(await load(), 'web').packages, { bookworm: ['nginx'] });
  put(paths, '/etc/uec-provisioning/roles.d/web.role', 'Role: web\nDescription: web server\nPackages-bookworm: apache2\n');
  clock += 500;
  t.same(selectRole(await load(), 'web').packages, { bookworm: ['nginx'] }, 'within the second: the roles read before');
  clock += 500;
  t.same(selectRole(await load(), 'web').packages, { bookworm: ['apache2'] }, 'a second later: the edit');
  put(paths, '/etc/uec-provisioning/roles.d/bad.role', 'Role: bad\nColour: blue\n');
  clock += 1000;
  await t.rejects(load(), { code: 'INVALID_VALUE', message: /bad\.role:2: unknown field "colour"/ });
  put(paths, '/etc/uec-provisioning/roles.d/bad.role', 'Role: bad\n');
  t.ok((await load()).some((r) => r.name === 'bad'), 'a failed read is not kept');
});
