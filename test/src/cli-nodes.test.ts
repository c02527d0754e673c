import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { main, type Io } from '../../src/cli';
import { staticNetworkFacts } from '../../src/core/network-facts';
import type { Node } from '../../src/contract/node';
import type { Role } from '../../src/contract/roles';
import { readStoredNodes } from '../helpers/node-store-files';
import { SHIPPED_TEMPLATES } from '../helpers/region-fixture';
import { put, scratchRoot, snapshotTree } from '../helpers/scratch';

// Under --root the packages are not installed: the shipped templates come from the checkout.
process.env.UEC_PROVISIONING_TEMPLATES = SHIPPED_TEMPLATES;

const network = staticNetworkFacts(
  [
    { name: 'eth0', mac: '52:54:00:00:00:01', up: true, loopback: false, virtual: false, ipv4: [{ address: '10.20.0.5', prefix: 24 }], ipv6: [] },
    { name: 'lo', mac: '00:00:00:00:00:00', up: true, loopback: true, virtual: false, ipv4: [{ address: '127.0.0.1', prefix: 8 }], ipv6: [] },
  ],
  { interface: 'eth0', gateway: '10.20.0.1' },
);

function cliIn(root: string) {
  return async (...args: string[]) => {
    let stdout = '';
    let stderr = '';
    const io: Io = { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), env: { UEC_PROVISIONING_SERVICE_CONTROL: 'none' } };
    const code = await main(['--root', root, ...args], io, { network });
    return { code, stdout, stderr };
  };
}

t.test('nodes add|list|show|edit|remove with --json, under --root', async (t) => {
  const paths = scratchRoot(t);
  const cli = cliIn(paths.root);
  const added = await cli('nodes', 'add', 'web1', '--mac', '52-54-00-00-00-01', '--mac', '52:54:00:00:00:02', '--arch', 'arm64', '--no-apply', '--json');
  t.equal(added.code, 0, added.stderr);
  const node = JSON.parse(added.stdout) as Node;
  t.same([node.hostname, node.macs, node.arch, node.status], ['web1', ['52:54:00:00:00:01', '52:54:00:00:00:02'], 'arm64', 'ready']);
  t.match(node.token, /^.{4}…$/, 'token masked in --json');
  const plain = await cli('nodes', 'add', 'web2', '--mac', '52:54:00:00:00:03', '--status', 'new', '--no-apply');
  t.match(plain.stdout, /^node-[a-z0-9]{6}\n$/);
  const list = JSON.parse((await cli('nodes', 'list', '--json')).stdout) as Node[];
  t.same(list.map((n) => [n.hostname, n.status]), [['web1', 'ready'], ['web2', 'new']]);
  t.same((JSON.parse((await cli('nodes', 'list', '--status', 'new', '--json')).stdout) as Node[]).map((n) => n.hostname), ['web2']);
  t.match((await cli('nodes', 'list')).stdout, /^HOSTNAME .*\nweb1 +node-\w+ +ready +server +arm64\/generic +52:54:00:00:00:01,52:54:00:00:00:02\n/);
  const shown = await cli('nodes', 'show', '52:54:00:00:00:02');
  t.match(shown.stdout, /^system id +node-/);
  t.match(shown.stdout, /events:\n {2}\S+ {2}created/);
  const full = { nodes: await readStoredNodes(paths) };
  for (const out of [shown.stdout, (await cli('nodes', 'show', 'web1', '--json')).stdout, (await cli('nodes', 'list', '--json')).stdout]) {
    for (const n of full.nodes) t.notOk(out.includes(n.token), 'no full token shown');
  }
  const edited = JSON.parse((await cli('nodes', 'edit', 'web1', '--hostname', 'web9', '--role', 'walrus', '--no-apply', '--json')).stdout) as Node;
  t.same([edited.hostname, edited.role], ['web9', 'walrus']);
  const removed = JSON.parse((await cli('nodes', 'remove', 'web9', '--no-apply', '--json')).stdout) as Node[];
  t.same(removed.map((n) => n.hostname), ['web9']);
  t.same((JSON.parse((await cli('nodes', 'list', '--json')).stdout) as Node[]).map((n) => n.hostname), ['web2']);
});

t.test('bad input: one line naming the culprit, exit status by code, store unchanged', async (t) => {
  const paths = scratchRoot(t);
  const cli = cliIn(paths.root);
  await cli('nodes', 'add', 'web1', '--mac', '52:54:00:00:00:01', '--no-apply');
  const before = snapshotTree(paths.root);
  const cases: [string[], number, RegExp][] = [
    [['nodes', 'add', 'bad_host', '--mac', '52:54:00:00:00:09', '--no-apply'], 3, /hostname "bad_host" label "bad_host" is not a valid DNS label.*\(code=INVALID_VALUE\)/],
    [['nodes', 'add', 'web2', '--mac', '52:54:00:00:00', '--no-apply'], 3, /MAC "52:54:00:00:00" is not a MAC address.*\(code=INVALID_VALUE\)/],
    [['nodes', 'add', 'web2', '--mac', '52:54:00:00:00:01', '--no-apply'], 9, /MAC 52:54:00:00:00:01 is already used by web1.*\(code=NODE_CONFLICT\)/],
    [['nodes', 'show', 'nosuch'], 9, /no node "nosuch".*\(code=NODE_UNKNOWN\)/],
    [['nodes', 'deploy', 'web1', '--role', 'nosuch', '--no-apply'], 9, /no role "nosuch".*\(code=ROLE_UNKNOWN\)/],
    [['nodes', 'deploy', 'web1', '--role', 'cloud-controller', '--no-apply'], 9, /role cloud-controller has no package list for release bookworm: its packages exist only for karmic, lucid.*\(code=ROLE_UNKNOWN\)/],
    [['roles', 'show', 'nosuch'], 9, /no role "nosuch".*\(code=ROLE_UNKNOWN\)/],
    [['preseed', 'web1', '--type', 'bogus'], 2, /--type must be one of install, commissioning, enlist/],
    [['nodes', 'add', 'web3', '--no-apply'], 3, /node "web3" needs at least one MAC address \(code=INVALID_VALUE\)/],
    [['nodes', 'add', '--no-apply'], 2, /nodes add needs exactly one HOSTNAME/],
  ];
  for (const [args, code, message] of cases) {
    const r = await cli(...args);
    t.equal(r.code, code, args.join(' '));
    t.equal(r.stderr.trim().split('\n').length, 1, `${args.join(' ')}: one line`);
    t.match(r.stderr, message);
  }
  t.same(snapshotTree(paths.root), before, 'nothing changed');
});

t.test('nodes deploy and release with --json; deploy twice → NODE_STATE', async (t) => {
  const paths = scratchRoot(t);
  const cli = cliIn(paths.root);
  await cli('nodes', 'add', 'web1', '--mac', '52:54:00:00:00:01', '--no-apply');
  await cli('nodes', 'add', 'web2', '--mac', '52:54:00:00:00:02', '--status', 'new', '--no-apply');
  const deployed = await cli('nodes', 'deploy', 'web1', 'web2', '--release', 'trixie', '--no-apply', '--json');
  t.equal(deployed.code, 0, deployed.stderr);
  t.same((JSON.parse(deployed.stdout) as Node[]).map((n) => [n.hostname, n.status, n.release]), [['web1', 'deploying', 'trixie'], ['web2', 'deploying', 'trixie']]);
  const again = await cli('nodes', 'deploy', 'web1', '--no-apply');
  t.equal(again.code, 9);
  t.match(again.stderr, /is deploying; it cannot become deploying \(code=NODE_STATE\)/);
  const released = JSON.parse((await cli('nodes', 'release', 'web1', '--no-apply', '--json')).stdout) as Node[];
  t.same(released.map((n) => [n.status, n.netboot]), [['ready', true]]);
});

t.test('preseed NODE --type: what the machine receives, token masked, passes debconf; --json', async (t) => {
  const paths = scratchRoot(t);
  const cli = cliIn(paths.root);
  await cli('nodes', 'add', 'web1', '--mac', '52:54:00:00:00:01', '--no-apply');
  await cli('nodes', 'deploy', 'web1', '--no-apply');
  const token = (await readStoredNodes(paths))[0]!.token;
  const install = await cli('preseed', 'web1');
  t.equal(install.code, 0, install.stderr);
  t.match(install.stdout, /^# uec-provisioning preseed: install debian bookworm \(amd64\) as role server/);
  t.match(install.stdout, /status\/installing\?token=.{4}…\(masked\)/);
  t.notOk(install.stdout.includes(token), 'masked');
  t.match(install.stderr, /install preseed for web1 from templates\/preseeds\/install\.mustache/);
  const shown = await cli('preseed', 'web1', '--show-token');
  t.ok(shown.stdout.includes(token), '--show-token shows it');
  for (const type of ['commissioning', 'enlist']) {
    const r = await cli('preseed', 'web1', '--type', type, '--json');
    t.equal(r.code, 0, r.stderr);
    const data = JSON.parse(r.stdout) as { type: string; template: string; preseed: string };
    t.equal(data.type, type);
    t.equal(data.template, `templates/preseeds/${type}.mustache`);
    t.notOk(data.preseed.includes(token));
  }
});

t.test('roles list|show with --json, including an admin role', async (t) => {
  const paths = scratchRoot(t);
  const cli = cliIn(paths.root);
  put(paths, '/etc/uec-provisioning/roles.d/web.role', 'Role: web\nDescription: web server\nPackages-bookworm: nginx\n');
  const roles = JSON.parse((await cli('roles', 'list', '--json')).stdout) as Role[];
  t.same(roles.map((r) => r.name), ['cloud-controller', 'cluster-controller', 'node-controller', 'server', 'storage-controller', 'walrus', 'web']);
  t.match((await cli('roles', 'list')).stdout, /^server +bookworm,trixie +Plain Debian server/m);
  const web = JSON.parse((await cli('roles', 'show', 'web', '--json')).stdout) as Role;
  t.same(web.packages, { bookworm: ['nginx'] });
  t.match((await cli('roles', 'show', 'walrus')).stdout, /^packages +lucid: eucalyptus-walrus$/m);
});

t.test('templates check: shipped templates pass; a syntax error and an unknown variable are named with file and line', async (t) => {
  const paths = scratchRoot(t);
  const cli = cliIn(paths.root);
  const ok = await cli('templates', 'check', '--json');
  t.equal(ok.code, 0, ok.stderr);
  t.same((JSON.parse(ok.stdout) as { problems: string[] }).problems, []);
  put(paths, '/etc/uec-provisioning/preseeds/install_debian.mustache', 'd-i a/b string {{hostname}}\nd-i c/d string {{#role_preseed}}\n');
  put(paths, '/etc/uec-provisioning/preseeds/install_role-web.mustache', '# ok\n\nd-i a/b string {{no_such_variable}}\n');
  const bad = await cli('templates', 'check', '--json');
  t.equal(bad.code, 4);
  const problems = (JSON.parse(bad.stdout) as { problems: string[] }).problems;
  t.equal(problems.length, 2);
  t.match(problems[0], /^TEMPLATE_SYNTAX: \/etc\/uec-provisioning\/preseeds\/install_debian\.mustache:3: Unclosed section "role_preseed"/);
  t.match(problems[1], /^TEMPLATE_MISSING_VARIABLE: \/etc\/uec-provisioning\/preseeds\/install_role-web\.mustache:3: variable "no_such_variable" has no value$/);
  t.match(bad.stderr, /install_role-web\.mustache:3: variable "no_such_variable"/);
  t.match(bad.stderr, /2 of \d+ templates and roles have problems.*\(code=TEMPLATE_SYNTAX\)/);
  put(paths, '/etc/uec-provisioning/templates/boot/ipxe-local.mustache', '#!ipxe\n{{nope}}\n');
  const boot = await cli('templates', 'check', '--json');
  t.match((JSON.parse(boot.stdout) as { problems: string[] }).problems.join('\n'), /\/etc\/uec-provisioning\/templates\/boot\/ipxe-local\.mustache:2: variable "nope"/);
  t.ok(fs.existsSync(path.join(SHIPPED_TEMPLATES, 'preseeds/install.mustache')));
});
