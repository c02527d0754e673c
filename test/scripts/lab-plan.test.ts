import t from 'tap';
import { buildMagicPacket } from '../../packages/webui/power';
import { LabUsageError, parseLabArgs, parseMagicPacket, planLab, renderDebconf, renderIpmiSimConfig, renderShellCommand, selectLabProcess, selectStages } from '../../scripts/lab-plan';

t.test('command line: defaults, flags, and one clear line naming a bad argument', async (t) => {
  t.same(parseLabArgs([]), { mode: 'up', machines: 3, proxy: false, ci: false, port: 8480 });
  t.same(parseLabArgs(['--machines', '2', '--ci', '--proxy', '--port=9000']), { mode: 'up', machines: 2, proxy: true, ci: true, port: 9000 });
  t.equal(parseLabArgs(['--machines=6']).machines, 6);
  t.equal(parseLabArgs(['--down']).mode, 'down');
  t.equal(parseLabArgs(['--help']).mode, 'help');
  t.throws(() => parseLabArgs(['--machines', '0']), new LabUsageError('--machines needs a number from 1 to 6, not "0"'));
  t.throws(() => parseLabArgs(['--machines', '7']), { name: 'LabUsageError' });
  t.throws(() => parseLabArgs(['--machines']), /--machines needs a number from 1 to 6, not ""/);
  t.throws(() => parseLabArgs(['--port', '80']), /--port needs a number from 1024 to 65535/);
  t.throws(() => parseLabArgs(['--bogus']), /unknown argument "--bogus"/);
});

t.test('plan: own namespaces, a firmware mix, machine 2 on a BMC, shim only with Secure Boot', async (t) => {
  const three = planLab({ machines: 3, proxy: false });
  t.same(three.namespaces, { lan: 'uecl-lan', appliance: 'uecl-appl' });
  t.same(three.machines.map((m) => [m.label, m.firmware, m.power, m.enlists]), [
    ['m1', 'bios', 'wol', true],
    ['m2', 'uefi', 'ipmi', true],
    ['m3', 'uefi-secure', 'wol', false],
  ]);
  t.equal(three.uefiLoader, 'shim', 'Secure Boot needs the signed shim');
  t.equal(new Set(three.machines.map((m) => m.mac)).size, 3);
  t.equal(three.machines[1]!.bmcAddress, '10.67.0.3');
  const proxied = planLab({ machines: 3, proxy: true });
  t.same(proxied.machines.map((m) => m.firmware), ['bios', 'uefi', 'uefi'], '--proxy: no Secure Boot (GRUB does not follow a proxy-DHCP answer)');
  t.equal(proxied.uefiLoader, 'ipxe');
  const two = planLab({ machines: 2, proxy: true });
  t.equal(two.uefiLoader, 'ipxe');
  t.equal(two.namespaces.site, 'uecl-site');
  t.match(renderDebconf(two, 'pw'), /dhcpd\/mode select proxy\n/);
  t.match(renderDebconf(three, 'pw'), /dhcpd\/mode select full\n.*\n.*range string 10\.67\.0\.100-10\.67\.0\.150\n.*admin-password password pw\n$/);
  t.ok(planLab({ machines: 6, proxy: false }).machines.every((m) => m.tap.length <= 15));
});

t.test('ipmi_sim files: the BMC address, the VM port, the user, the start command; quotes refused', async (t) => {
  const m = planLab({ machines: 2, proxy: false }).machines[1]!;
  const conf = renderIpmiSimConfig(m, { user: 'admin', password: 'secret', startCommand: "exec qemu -name 'a b'" });
  t.match(conf, /addr 10\.67\.0\.3 623\n/);
  t.match(conf, /serial 15 127\.0\.0\.1 9002 codec VM\n/);
  t.match(conf, /startcmd "exec qemu -name 'a b'"\n/);
  t.match(conf, /user 2 true "admin" "secret" admin 10/);
  t.throws(() => renderIpmiSimConfig(m, { user: 'admin', password: 'a"b', startCommand: 'x' }), /ipmi_sim cannot quote/);
  t.throws(() => renderIpmiSimConfig(planLab({ machines: 1, proxy: false }).machines[0]!, { user: 'a', password: 'b', startCommand: 'x' }), /has no BMC/);
  t.equal(renderShellCommand(['qemu', '-serial', 'file:/x y', "it's"]), `qemu -serial 'file:/x y' 'it'\\''s'`);
});

t.test('magic packets: the product\'s own bytes give its MAC; anything else is not one', async (t) => {
  t.equal(parseMagicPacket(buildMagicPacket('52:54:00:67:00:11')), '52:54:00:67:00:11');
  t.equal(parseMagicPacket(Buffer.concat([buildMagicPacket('52:54:00:67:00:11'), Buffer.alloc(6, 1)])), '52:54:00:67:00:11', 'with a SecureOn password');
  const bad = buildMagicPacket('52:54:00:67:00:11');
  bad[51] = 0xaa;
  t.equal(parseMagicPacket(bad), undefined, 'one copy of the MAC differs');
  t.equal(parseMagicPacket(Buffer.alloc(102, 0xff).fill(0, 0, 1)), undefined, 'no sync stream');
  t.equal(parseMagicPacket(Buffer.alloc(10, 0xff)), undefined, 'too short');
  t.equal(parseMagicPacket(Buffer.alloc(102, 0xff)), undefined, 'all 0xff: the broadcast address is no machine');
  const multicast = Buffer.alloc(102, 0xff);
  for (let i = 0; i < 16; i++) Buffer.from('01005e000001', 'hex').copy(multicast, 6 + i * 6);
  t.equal(parseMagicPacket(multicast), undefined, 'nor a multicast one');
});

t.test('stages: first appearance, in order, only from the deploy on', async (t) => {
  const ev = (at: string, type: string) => ({ at, type, message: '' });
  const events = [ev('2026-01-01T00:00:00Z', 'netboot'), ev('2026-01-01T00:01:00Z', 'power'), ev('2026-01-01T00:01:10Z', 'netboot'), ev('2026-01-01T00:01:20Z', 'netboot'), ev('2026-01-01T00:02:00Z', 'preseed'), ev('2026-01-01T00:02:05Z', 'status'), ev('2026-01-01T00:02:10Z', 'installing')];
  t.same(selectStages(events), ['netboot', 'power', 'preseed', 'installing']);
  t.same(selectStages(events, Date.parse('2026-01-01T00:01:00Z')), ['power', 'netboot', 'preseed', 'installing']);
});

t.test('selectLabProcess: the lab\'s qemu, ipmi_sim, site and appliance dnsmasq and agent; not another job\'s dnsmasq in its own namespace', async (t) => {
  const run = '/var/tmp/uec-provisioning-lab';
  const root = '0::/\n';
  const p = (comm: string, cmdline: string, cgroup = root) => selectLabProcess({ comm, cmdline, cgroup }, run);
  t.ok(p('qemu-system-x86', 'qemu-system-x86_64 -netdev tap,ifname=uecl-t1 -device virtio-net-pci,mac=52:54:00:67:00:11'));
  t.notOk(p('qemu-system-x86', 'qemu-system-x86_64 -device virtio-net-pci,mac=52:54:00:66:00:13'), 'another test\'s VM');
  t.ok(p('ipmi_sim', `ipmi_sim -n -c ${run}/bmc-m2/lan.conf`));
  t.notOk(p('ipmi_sim', 'ipmi_sim -n -c /tmp/uec-ipmi-x/lan.conf'), 'a test\'s BMC');
  t.ok(p('dnsmasq', `dnsmasq --keep-in-foreground --dhcp-leasefile=${run}/site.leases`), 'the site\'s dnsmasq');
  t.ok(p('dnsmasq', 'dnsmasq --keep-in-foreground --conf-file=/etc/uec-provisioning/dnsmasq-dhcpd.conf', '1:name=systemd:/uec-tests/uecl-appliance-30455-1/system.slice/uec-provisioning-dhcpd.service\n'), 'the appliance\'s dnsmasq, by its container\'s cgroup');
  t.notOk(p('dnsmasq', 'dnsmasq --keep-in-foreground --log-facility=- --conf-file=/tmp/uec-bench-apply-uSNItW/etc/uec-provisioning/dnsmasq-dhcpd.conf'), 'a benchmark\'s dnsmasq in its own namespace');
  t.notOk(p('dnsmasq', 'dnsmasq --conf-file=/etc/uec-provisioning/dnsmasq-dhcpd.conf', '1:name=systemd:/uec-tests/uec-installed-2211-1/system.slice/x.service\n'), 'another test\'s appliance container');
  t.ok(p('node', `node -r ts-node/register/transpile-only scripts/lab-agent.ts ${run}/webui.sock 10.67.0.1:80`));
  t.notOk(p('node', 'node -r ts-node/register/transpile-only -e require("/work/main/scripts/lab-agent.ts").main(["/tmp/x/agent.sock","10.69.0.1:8081"])'), 'the agent test\'s own agent');
  t.notOk(p('sh', `sh -c exec ip netns exec uect-1-lan node -e require("/work/main/scripts/lab-agent.ts")`), 'a test helper\'s shell naming the file (CI: in the host\'s namespace beside the lab)');
});
