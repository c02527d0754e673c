/**
 * Bench smoke for scripts/bench-bootstorm.ts: a storm of 5 machines against the compiled
 * product (`npm run build` first, as CI's build stage does) and the static baseline, in
 * network namespaces. Behaviour only, never a time: every machine got through DHCP, TFTP and
 * every HTTP step in both phases, its own reservation, its own boot script and preseed, and the
 * baseline served the same bytes. The pure parts are checked on their own below.
 */
import * as path from 'node:path';
import t from 'tap';
import {
  bootStormUnavailableReason,
  parseHttpSteps,
  parseImageTransfers,
  parseLeases,
  percentile,
  renderBaselineApache,
  renderBaselineDnsmasq,
  renderProductApache,
  renderStormTable,
  runBootStorm,
  selectMachinesServedImages,
  selectStormNode,
  summarizeCpuProfile,
} from '../../scripts/bench-bootstorm';
import { REPO_ROOT } from '../helpers/scratch';

const CLI = path.join(REPO_ROOT, 'dist/src/cli.js');

t.test('selectStormNode: distinct MACs, reserved addresses and hostnames for 1,000 machines, all inside 10.80.8.0/21', async (t) => {
  const nodes = Array.from({ length: 1000 }, (_, i) => selectStormNode(i));
  for (const key of ['mac', 'ipv4', 'hostname'] as const) t.equal(new Set(nodes.map((n) => n[key])).size, 1000, `${key}s are distinct`);
  t.same(selectStormNode(0), { hostname: 'storm0001', mac: '52:54:00:b5:00:00', ipv4: '10.80.8.1' });
  t.same(selectStormNode(999), { hostname: 'storm1000', mac: '52:54:00:b5:03:e7', ipv4: '10.80.11.250' });
  for (const n of nodes) {
    const [a, b, c, d] = n.ipv4.split('.').map(Number);
    if (!(a === 10 && b === 80 && c! >= 8 && c! < 16 && d! >= 1 && d! <= 254)) t.fail(`${n.ipv4} is outside 10.80.8.0/21 or not a host address`);
  }
});

t.test('percentile: nearest rank, whatever the order', async (t) => {
  t.equal(percentile([5, 1, 4, 2, 3], 0.5), 3);
  t.equal(percentile([5, 1, 4, 2, 3], 0.99), 5);
  t.equal(percentile(Array.from({ length: 100 }, (_, i) => 100 - i), 0.99), 99);
  t.ok(Number.isNaN(percentile([], 0.5)), 'no samples: NaN, not 0');
});

t.test('parseLeases: MAC → address from a dnsmasq lease file', async (t) => {
  const leases = parseLeases('1765000000 52:54:00:B5:00:01 10.80.8.2 storm0002 *\n1765000000 52:54:00:b5:00:00 10.80.8.1 storm0001 01:52:54:00:b5:00:00\n\n');
  t.equal(leases.get('52:54:00:b5:00:01'), '10.80.8.2', 'MAC lower-cased');
  t.equal(leases.get('52:54:00:b5:00:00'), '10.80.8.1');
  t.equal(leases.size, 2);
});

t.test('renderBaselineDnsmasq: two processes as in the product, DHCP with one dhcp-host line per node, TFTP alone on the given root', async (t) => {
  const nodes = [0, 1].map((i) => ({ ...selectStormNode(i), systemId: `node-${i}` }));
  const { dhcp, tftp } = renderBaselineDnsmasq({ dir: '/d', tftpRoot: '/boot-tree', loader: 'undionly.kpxe', nodes });
  t.match(dhcp, /^dhcp-host=52:54:00:b5:00:00,10\.80\.8\.1,storm0001$/m);
  t.match(dhcp, /^dhcp-host=52:54:00:b5:00:01,10\.80\.8\.2,storm0002$/m);
  t.match(dhcp, /^dhcp-boot=tag:bios,undionly\.kpxe,,10\.80\.0\.1$/m);
  t.notMatch(dhcp, /^(enable-tftp|tftp-root=)/m, 'the DHCP one serves no TFTP');
  t.match(tftp, /^enable-tftp$/m);
  t.match(tftp, /^tftp-root=\/boot-tree$/m);
  t.notMatch(tftp, /^dhcp-/m, 'the TFTP one answers no DHCP');
  t.not(/^pid-file=.*$/m.exec(dhcp)?.[0], /^pid-file=.*$/m.exec(tftp)?.[0], 'each its own pid file');
});

t.test('renderProductApache / renderBaselineApache: the same server part; the product includes the drop-in, the baseline aliases the same URL itself', async (t) => {
  const product = renderProductApache({ dir: '/d', dropIn: '/root/etc/apache2/conf-available/uec-provisioning-boot.conf' });
  const baseline = renderBaselineApache({ dir: '/d', docroot: '/d/www', images: '/root/boot/images' });
  t.match(product, /^Include \/root\/etc\/apache2\/conf-available\/uec-provisioning-boot\.conf$/m);
  t.match(product, /^Listen 10\.80\.0\.1:8080$/m);
  t.notMatch(product, /^Listen 10\.80\.0\.1:5248$/m, 'serve keeps its own port');
  t.notMatch(product, /^(Alias|DocumentRoot)/m, 'the product apache2 serves only what the drop-in says');
  t.match(baseline, /^Listen 10\.80\.0\.1:5248$/m);
  t.match(baseline, /^Listen 10\.80\.0\.1:8080$/m);
  t.match(baseline, /^Alias \/uec-provisioning-images\/ \/root\/boot\/images\/$/m);
  const tuning = (conf: string) => conf.split('\n').filter((l) => /^(LoadModule (mpm_event|authz_core|alias)_module|KeepAlive|ServerLimit|MaxRequestWorkers|ThreadsPerChild|User|Group|LogFormat) /.test(l));
  t.same(tuning(product), tuning(baseline), 'same MPM, modules, tuning and log format');
  t.equal(tuning(product).length, 10);
  t.not(/^PidFile .*$/m.exec(product)?.[0], /^PidFile .*$/m.exec(baseline)?.[0], 'each its own pid file');
});

t.test('parseImageTransfers / selectMachinesServedImages: machines that got both images whole, from the access log', async (t) => {
  const log = [
    '10.80.0.1 GET /uec-provisioning-images/debian/bookworm/amd64/linux 200 800',
    '10.80.8.1 GET /uec-provisioning-images/debian/bookworm/amd64/linux 200 800',
    '10.80.8.1 GET /uec-provisioning-images/debian/bookworm/amd64/initrd.gz 200 4000',
    '10.80.8.2 GET /uec-provisioning-images/debian/bookworm/amd64/linux 200 800',
    '10.80.8.2 GET /uec-provisioning-images/debian/bookworm/amd64/initrd.gz 200 3999',
    '10.80.8.3 GET /uec-provisioning-images/debian/bookworm/amd64/linux 200 800',
    '10.80.8.4 GET /uec-provisioning-images/debian/bookworm/amd64/linux 404 -',
    '10.80.8.4 HEAD /uec-provisioning-images/debian/bookworm/amd64/initrd.gz 200 4000',
    '10.80.8.5 GET /boot/images/debian/bookworm/amd64/linux 200 800',
    '10.80.8.5 GET /boot/images/debian/bookworm/amd64/initrd.gz 200 4000',
    '',
  ].join('\n');
  const transfers = parseImageTransfers(log);
  t.equal(transfers.length, 7, 'GETs of linux and initrd.gz under /uec-provisioning-images/ only');
  t.same(transfers[6], { client: '10.80.8.4', file: 'linux', status: 404, bytes: 0 });
  t.same([...selectMachinesServedImages(transfers, { kernel: 800, initrd: 4000 })], ['10.80.8.1'], 'only 10.80.8.1 got both, whole: a short initrd, one file, a 404, a HEAD or another URL do not count');
});

t.test('parseHttpSteps: machine.sh\'s nine transfers → HTTP seconds by step; anything short is null', async (t) => {
  const lines = ['0 92160 0.010', '200 120 0.001', '200 700 0.002', '200 8222656 0.100', '200 40810276 0.400', '200 3000 0.020', '200 2 0.003', '200 2 0.004', '200 2 0.005'];
  const steps = parseHttpSteps(`${lines.join('\n')}\n`);
  t.ok(steps);
  t.equal(steps!.scripts.toFixed(3), '0.003');
  t.equal(steps!.images.toFixed(3), '0.500');
  t.equal(steps!.preseed.toFixed(3), '0.020');
  t.equal(steps!.callbacks.toFixed(3), '0.012');
  t.equal(parseHttpSteps(lines.slice(0, 8).join('\n')), null, 'eight lines: a machine that stopped early');
  t.equal(parseHttpSteps([...lines.slice(0, 8), '200 2 x'].join('\n')), null, 'a time that is no number');
});

t.test('summarizeCpuProfile: a sample counts where its stack says, store before HTTP, idle and socket writes by their leaf', async (t) => {
  const frame = (functionName: string, url: string) => ({ functionName, url });
  const profile = {
    nodes: [
      { id: 1, callFrame: frame('(root)', ''), children: [2, 3, 4, 7] },
      { id: 2, callFrame: frame('(idle)', '') },
      { id: 3, callFrame: frame('handle', 'file:///x/dist/src/cli/serve.js'), children: [5] },
      { id: 5, callFrame: frame('update', 'file:///x/dist/src/region/node-store.js'), children: [6] },
      { id: 6, callFrame: frame('stringify', '') },
      { id: 4, callFrame: frame('Socket._write', 'node:net'), children: [8] },
      { id: 8, callFrame: frame('writeBuffer', '') },
      { id: 7, callFrame: frame('mystery', 'file:///x/elsewhere.js') },
    ],
    samples: [2, 6, 6, 8, 7, 3],
    timeDeltas: [1000, 2000, 2000, 3000, 500, 250],
  };
  t.same(summarizeCpuProfile(profile), [
    { category: 'node store: journal reads and appends, index lookups, copies, locks', ms: 4 },
    { category: 'socket writes (kernel, initrd, answers)', ms: 3 },
    { category: 'idle', ms: 1 },
    { category: 'other', ms: 0.5 },
    { category: 'HTTP, routing, logging, metrics', ms: 0.25 },
  ]);
});

t.test('a storm of 5 machines: zero errors, each its own reservation and preseed, the same bytes from the baseline', { skip: bootStormUnavailableReason(CLI), timeout: 600_000 }, async (t) => {
  const r = await runBootStorm({ n: 5, rampMs: 500, cli: CLI, log: (line) => t.comment(line) });
  t.same(r.product.errors, [], 'the product: no machine failed, and each leased its own reservation (dnsmasq\'s lease file)');
  t.same(r.baseline.errors, [], 'the baseline: the same');
  for (const phase of [r.product, r.baseline]) {
    t.equal(phase.machines.length, 5, `${phase.name}: 5 machines ran`);
    t.ok(
      phase.machines.every((m) => /^ok [\d.]+ [\d.]+ [\d.]+$/.test(m.line)),
      `${phase.name}: every machine reports DHCP, TFTP and HTTP times`,
    );
    t.ok(phase.servers.every((s) => s.peakRssKiB > 0), `${phase.name}: every server's memory was read`);
    t.equal(phase.httpSteps.length, 5, `${phase.name}: every machine's HTTP steps were read`);
  }
  t.same(r.differingBodies, [], 'the baseline answered every machine with the bytes the product did');
  t.equal(r.product.imagesFromApache, 5, 'the product: apache2 sent every machine its kernel and initrd, whole (its access log, by the machine\'s address)');
  t.equal(r.baseline.imagesFromApache, 5, 'the baseline: the same');
  t.equal(new Set(r.nodes.map((n) => n.systemId)).size, 5, 'five nodes');
  r.nodes.forEach((node, i) => {
    const got = r.bodies[i]!;
    t.match(got['node.ipxe'], new RegExp(`installing debian bookworm on ${node.hostname}\\b`), `${node.hostname}: its own install script`);
    t.match(got['node.ipxe'], new RegExp(`url=\\S+/preseed/${node.systemId}\\b`), `${node.hostname}: its script names its own preseed`);
    t.match(got['node.ipxe'], /^kernel http:\/\/10\.80\.0\.1:8080\/uec-provisioning-images\/debian\/bookworm\/amd64\/linux /m, `${node.hostname}: kernel from apache2's port`);
    t.match(got['node.ipxe'], /^initrd --name initrd\.gz http:\/\/10\.80\.0\.1:8080\/uec-provisioning-images\/debian\/bookworm\/amd64\/initrd\.gz$/m, `${node.hostname}: initrd from apache2's port`);
    t.match(got['node.ipxe'], /\burl=http:\/\/10\.80\.0\.1:5248\//, `${node.hostname}: preseed still from serve's port`);
    t.match(got.preseed, new RegExp(`^d-i netcfg/get_hostname string ${node.hostname}$`, 'm'), `${node.hostname}: its own preseed`);
    t.match(got.preseed, new RegExp(`/metadata/latest/${node.systemId}/status/installing\\?token=`), `${node.hostname}: its own call-back URL`);
    for (const s of ['installing', 'installed', 'deployed']) t.ok(got[s] !== undefined, `${node.hostname}: ${s} call-back answered`);
  });
  const table = renderStormTable(r).join('\n');
  t.match(table, /\| errors \| 0 \| 0 \|/, 'the table reports zero errors');
});
