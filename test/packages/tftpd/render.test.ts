import * as fs from 'node:fs';
import t from 'tap';
import { applyPlans } from '../../../src/core/apply';
import type { ComponentContext } from '../../../src/configurator/component';
import { loadConfig } from '../../../src/core/config';
import { SILENT_LOGGER } from '../../../src/core/log';
import { staticNetworkFacts } from '../../../src/core/network-facts';
import type { ServiceControl, ServiceSpec } from '../../../src/core/services';
import { templateDirs } from '../../../src/core/template';
import { validateContent } from '../../../src/core/validators';
import { COMMON_SCHEMA } from '../../../packages/common/config-schema';
import { component, loadTftpdTemplates } from '../../../packages/tftpd';
import { TFTPD_SCHEMA } from '../../../packages/tftpd/config-schema';
import { checkGrubValue, macFileName, renderTftpdNodePlans, renderTftpdPlans, type TftpdModel } from '../../../packages/tftpd/render';
import { put, REPO_ROOT, scratchRoot, snapshotTree } from '../../helpers/scratch';
import { checkGolden } from '../../helpers/golden';
import { spawnSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';

/** GRUB's own parser on every generated GRUB file (grub-script-check from grub-common). */
function grubScriptCheck(t: { equal: (a: unknown, b: unknown, m: string) => unknown }, plans: { path: string; content: string }[]): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uec-grub-check-'));
  try {
    for (const plan of plans.filter((p) => /\/grub\/grub\.cfg/.test(p.path))) {
      const file = path.join(dir, path.basename(plan.path));
      fs.writeFileSync(file, plan.content);
      const r = spawnSync('grub-script-check', [file], { encoding: 'utf8' });
      t.equal(r.status, 0, `grub-script-check accepts ${plan.path} ${r.stderr ?? ''}`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
import { NODES } from './nodes';

const FIXTURES = path.join(__dirname, 'fixtures');

const TEMPLATES = { override: '/nonexistent', shipped: `${REPO_ROOT}/templates` };
const SCHEMA = { ...COMMON_SCHEMA, ...TFTPD_SCHEMA };

function model(extra: Partial<TftpdModel> = {}): TftpdModel {
  return {
    tftpRoot: '/var/lib/uec-provisioning/boot',
    pidFile: '/run/uec-provisioning-tftpd/dnsmasq.pid',
    interface: 'eth1',
    user: 'dnsmasq',
    group: 'nogroup',
    httpBase: 'http://192.0.2.10:5248',
    domain: 'example.org',
    kernelArgs: 'console=ttyS0,115200',
    nodes: NODES,
    ...extra,
  };
}

t.test('golden: three nodes (install, deployed with netboot off, ready) on eth1', async (t) => {
  const plans = renderTftpdPlans(model(), await loadTftpdTemplates(TEMPLATES));
  checkGolden(t, FIXTURES, 'nodes', plans);
  grubScriptCheck(t, plans);
  for (const plan of plans.filter((p) => p.validate === 'dnsmasq')) await validateContent('dnsmasq', plan.path, plan.content);
  t.ok(plans.find((p) => p.path.endsWith('/pxelinux.cfg/01-52-54-00-00-00-11')), 'every MAC of a node gets its own file');
});

t.test('golden: no nodes, listening on all interfaces', async (t) => {
  const plans = renderTftpdPlans(model({ interface: null, nodes: [], kernelArgs: '', domain: '' }), await loadTftpdTemplates(TEMPLATES));
  checkGolden(t, FIXTURES, 'empty-all', plans);
  grubScriptCheck(t, plans);
  for (const plan of plans.filter((p) => p.validate === 'dnsmasq')) await validateContent('dnsmasq', plan.path, plan.content);
});

t.test('the config dnsmasq gets is TFTP only, read-only and never bound to the wildcard', async (t) => {
  const conf = renderTftpdPlans(model(), await loadTftpdTemplates(TEMPLATES)).find((p) => p.path === '/etc/uec-provisioning/dnsmasq-tftpd.conf')!;
  const lines = conf.content.split('\n').filter((l) => l && !l.startsWith('#'));
  for (const wanted of ['port=0', 'enable-tftp', 'tftp-root=/var/lib/uec-provisioning/boot', 'bind-dynamic', 'interface=eth1', 'pid-file=/run/uec-provisioning-tftpd/dnsmasq.pid']) t.ok(lines.includes(wanted), wanted);
  t.notOk(lines.some((l) => l.startsWith('dhcp-')), 'no DHCP option at all');
  t.same(conf.services?.map((s) => [s.name, s.restart]), [['uec-provisioning-tftpd', true]], 'a changed config restarts the dedicated instance');
});

t.test('bad input: one clear error, no file', async (t) => {
  const templates = await loadTftpdTemplates(TEMPLATES);
  t.throws(() => renderTftpdPlans(model({ kernelArgs: 'quiet {evil}' }), templates), { code: 'INVALID_VALUE', message: /GRUB/ }, 'a GRUB script character in kernel_args');
  t.throws(() => renderTftpdPlans(model({ kernelArgs: 'a\nb' }), templates), { code: 'INVALID_VALUE' }, 'a newline in kernel_args');
  t.throws(() => renderTftpdPlans(model({ interface: 'eth0\nenable-dhcp' }), templates), { code: 'INVALID_VALUE', message: /interface/ }, 'a newline in the interface');
  t.throws(() => renderTftpdPlans(model({ tftpRoot: '/srv/tftp root' }), templates), { code: 'INVALID_VALUE', message: /tftp root/ });
  t.equal(checkGrubValue('console=ttyS0,115200 priority=critical'), null);
  t.equal(macFileName('52:54:00:AB:cd:01'), '01-52-54-00-ab-cd-01');
});

function recordingControl(): ServiceControl & { calls: ServiceSpec[] } {
  const calls: ServiceSpec[] = [];
  return { kind: 'none', calls, reload: async (s) => (calls.push(s), 'reloaded') };
}

t.test('apply under a scratch root: files written, second apply writes and restarts nothing, node changes restart nothing', async (t) => {
  const paths = scratchRoot(t);
  put(paths, '/etc/uec-provisioning/uec-provisioning.conf', '[server]\ninterface = eth1\n');
  const config = await loadConfig(paths, SCHEMA);
  let nodes = NODES;
  const context = (): ComponentContext => ({
    paths,
    config,
    templates: templateDirs(paths, `${REPO_ROOT}/templates`),
    network: staticNetworkFacts([{ name: 'eth1', mac: '52:54:00:aa:bb:cc', ipv4: [{ address: '192.0.2.10', prefix: 24 }], ipv6: [], up: true, loopback: false, virtual: false }]),
    log: SILENT_LOGGER,
    nodes: async () => nodes,
  });
  const apply = async (control: ServiceControl) => applyPlans({ paths, component: 'tftpd', plans: await component.plan(context()), services: control, log: SILENT_LOGGER });
  const first = recordingControl();
  const r1 = await apply(first);
  t.equal(r1.written.length, 3 + 2 * 4, 'config, two defaults and two files for each of four MACs');
  t.same(first.calls.map((s) => s.name), ['uec-provisioning-tftpd'], 'restarted once');
  const conf = fs.readFileSync(paths.resolve('/etc/uec-provisioning/dnsmasq-tftpd.conf'), 'utf8');
  t.match(conf, `tftp-root=${paths.resolve('/var/lib/uec-provisioning/boot')}\n`, 'tftp-root resolves under --root, so the file runs as is');
  t.match(fs.readFileSync(paths.resolve('/var/lib/uec-provisioning/boot/pxelinux.cfg/01-52-54-00-00-00-01'), 'utf8'), /url=http:\/\/192\.0\.2\.10:5248\/preseed\/node-aaaaaa/);

  const before = snapshotTree(paths.root);
  const second = recordingControl();
  const r2 = await apply(second);
  t.same([r2.written, r2.removed, second.calls], [[], [], []], 'second apply: nothing written, nothing restarted');
  t.same(snapshotTree(paths.root), before, 'tree byte-identical');

  nodes = [{ ...NODES[0]!, status: 'deployed', netboot: false }, NODES[2]!];
  const third = recordingControl();
  const r3 = await apply(third);
  t.same(r3.removed.sort(), ['/var/lib/uec-provisioning/boot/grub/grub.cfg-01-52-54-00-00-00-02', '/var/lib/uec-provisioning/boot/pxelinux.cfg/01-52-54-00-00-00-02'], 'a removed node loses its files');
  t.equal(r3.written.length, 4, 'the deployed node now boots locally on both MACs (pxelinux and GRUB)');
  t.same(third.calls, [], 'node changes need no restart: TFTP opens boot files per request');
  t.match(fs.readFileSync(paths.resolve('/var/lib/uec-provisioning/boot/pxelinux.cfg/01-52-54-00-00-00-01'), 'utf8'), /LOCALBOOT 0/);
});

t.test('one node rendered alone: the same files, naming the node, as in the full render', async (t) => {
  const templates = await loadTftpdTemplates(TEMPLATES);
  const all = renderTftpdPlans(model(), templates);
  t.same(all.filter((p) => p.node === undefined).map((p) => p.path), ['/etc/uec-provisioning/dnsmasq-tftpd.conf', '/var/lib/uec-provisioning/boot/grub/grub.cfg', '/var/lib/uec-provisioning/boot/pxelinux.cfg/default'], 'only the shared files name no node');
  for (const node of NODES) {
    const alone = renderTftpdNodePlans(model(), templates, [node]);
    t.ok(alone.length > 0 && alone.every((p) => p.node === node.systemId), `${node.hostname}: every file names it`);
    t.same(alone, all.filter((p) => p.node === node.systemId), `${node.hostname}: byte for byte the full render's`);
  }
});
