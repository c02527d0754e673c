/**
 * dhcp probe and set-mode's refusal, run as the real command inside a namespace (its own
 * interfaces, real network facts): another dnsmasq answering on the segment is found, full
 * mode is refused with DHCP_SERVER_FOUND and nothing written, --force overrides it, and
 * with no other server the probe reports none.
 */
import * as path from 'node:path';
import t from 'tap';
import { createTestNetwork, netnsUnavailableReason } from '../../helpers/netns';
import { REPO_ROOT, scratchRoot, snapshotTree } from '../../helpers/scratch';

const skip = netnsUnavailableReason();

t.test('probe finds the other server; full mode refused unless --force', { skip }, async (t) => {
  const paths = scratchRoot(t);
  const net = createTestNetwork(t, { name: 'probe' });
  const srv = await net.ns('srv');
  const site = await net.ns('site');
  await net.link({ ns: srv, ifname: 'prov0', cidr: '10.45.0.1/24' }, { ns: site, ifname: 's0', cidr: '10.45.0.254/24' });
  // A clean environment (env -i): tap adds its loader hooks to every child's environment.
  const env = ['/usr/bin/env', '-i', `PATH=${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`, 'UEC_PROVISIONING_SERVICE_CONTROL=none', `UEC_PROVISIONING_TEMPLATES=${path.join(REPO_ROOT, 'templates')}`];
  const cli = (args: string[]) =>
    net.exec(srv, [...env, process.execPath, '-r', 'ts-node/register/transpile-only', path.join(REPO_ROOT, 'src/cli.ts'), '--root', paths.root, ...args], { cwd: REPO_ROOT, timeoutMs: 60000 });

  const none = await cli(['dhcp', 'probe', '--interface', 'prov0', '--json']);
  t.equal(none.code, 0, none.stderr);
  t.same(JSON.parse(none.stdout), { interface: 'prov0', answers: [] }, 'no server yet');

  const other = net.spawn(site, ['dnsmasq', '--keep-in-foreground', '--log-facility=-', '--conf-file=/dev/null', '--port=0', '--interface=s0', '--bind-interfaces', '--no-ping', `--dhcp-leasefile=${paths.resolve('/site.leases')}`, `--pid-file=${paths.resolve('/site.pid')}`, '--dhcp-range=10.45.0.200,10.45.0.210,1h']);
  await other.waitForOutput(/DHCP, IP range/);

  const found = await cli(['dhcp', 'probe', '--interface', 'prov0', '--json']);
  t.equal(found.code, 0, found.stderr);
  const answers = (JSON.parse(found.stdout) as { answers: { server: string; offered: string }[] }).answers;
  t.same(answers.map((a) => a.server), ['10.45.0.254']);
  t.match(answers[0]?.offered, /^10\.45\.0\.2\d\d$/);

  const state = () => [snapshotTree(paths.resolve('/etc')), snapshotTree(paths.resolve('/var'))];
  const before = state();
  const refused = await cli(['dhcp', 'set-mode', 'full', '--interface', 'prov0']);
  t.equal(refused.code, 11, 'DHCP_SERVER_FOUND exits 11');
  t.match(refused.stderr, /error: another DHCP server \(10\.45\.0\.254\) answers on prov0: full mode refused; use proxy mode .* or --force \(code=DHCP_SERVER_FOUND\)/);
  t.same(state(), before, 'nothing written');

  const proxy = await cli(['dhcp', 'set-mode', 'proxy', '--interface', 'prov0']);
  t.equal(proxy.code, 0, proxy.stderr);
  t.equal((await cli(['config', 'get', 'dhcp.mode'])).stdout, 'proxy\n');

  const forced = await cli(['dhcp', 'set-mode', 'full', '--interface', 'prov0', '--force']);
  t.equal(forced.code, 0, forced.stderr);
  t.equal((await cli(['config', 'get', 'dhcp.mode'])).stdout, 'full\n');
  t.match(forced.stderr, /range 10\.45\.0\.128-10\.45\.0\.254/, 'proposed range: upper half of the subnet');
});
