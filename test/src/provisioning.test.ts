import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import t from 'tap';
import { UecError } from '../../src/core/errors';
import { addNode, deployNode, disableNetboot, releaseNode } from '../../src/region/node-ops';
import { validateContent } from '../../src/core/validators';
import { listen, startFixture } from '../helpers/region-fixture';
import type { ImageSettings } from '../../src/edge/boot';
import { readStoreFiles } from '../helpers/node-store-files';

async function get(url: string, init?: RequestInit) {
  const res = await fetch(url, init);
  return { status: res.status, body: await res.text(), headers: res.headers };
}

t.test('per-node iPXE scripts: enlist for an unknown MAC, install when deploying, local otherwise', async (t) => {
  const f = await startFixture(t);
  const boot = await get(`${f.provisioningUrl}/boot/ipxe`);
  t.equal(boot.status, 200);
  t.match(boot.body, /^#!ipxe/);
  t.match(boot.body, /http:\/\/192\.0\.2\.10:5248/);

  const unknown = await get(`${f.provisioningUrl}/boot/ipxe/node?mac=52-54-00-00-00-01`);
  t.equal(unknown.status, 200);
  t.match(unknown.body, /imgfetch --name enlisted http:\/\/192\.0\.2\.10:5248\/enlist\?mac=\$\{netX\/mac:hexhyp\}&buildarch=\$\{uec-arch\}&platform=\$\{platform\}&manufacturer=\$\{manufacturer:uristring\}&product=\$\{product:uristring\}&serial=\$\{serial:uristring\}&uuid=\$\{uuid\}/);

  const node = await addNode(f.store, { hostname: 'web1', macs: ['52:54:00:00:00:01'] }, f.clock);
  f.lan.neighbour('10.0.0.5', '52:54:00:00:00:01');
  const ready = await get(`${f.provisioningUrl}/boot/ipxe/node?mac=52:54:00:00:00:01`);
  t.match(ready.body, /boots from its local disk \(status ready\)/);
  t.match(ready.body, /sanboot/);

  await deployNode(f.store, node.systemId, await f.region.loadRoles(), {}, f.clock);
  const install = await get(`${f.provisioningUrl}/boot/ipxe/node?mac=52:54:00:00:00:01`, f.lan.from('10.0.0.5'));
  t.match(install.body, /^kernel http:\/\/192\.0\.2\.10:5248\/boot\/images\/debian\/bookworm\/amd64\/linux initrd=initrd\.gz auto=true priority=critical url=http:\/\/192\.0\.2\.10:5248\/preseed\/node-\w+ interface=auto hostname=web1 domain=example\.org netcfg\/dhcp_timeout=60 netcfg\/no_default_route=true console=ttyS0,115200$/m);
  t.match(install.body, /^initrd --name initrd\.gz http:\/\/192\.0\.2\.10:5248\/boot\/images\/debian\/bookworm\/amd64\/initrd\.gz$/m);
  t.notOk(install.body.includes(node.token), 'no token in a boot script');

  await disableNetboot(f.store, node.systemId, f.clock);
  t.match((await get(`${f.provisioningUrl}/boot/ipxe/node?mac=52:54:00:00:00:01`)).body, /netboot disabled after its install/);
  t.equal((await get(`${f.provisioningUrl}/boot/ipxe/node?mac=nope`)).status, 400);
  t.equal((await get(`${f.provisioningUrl}/boot/ipxe/node`)).status, 400);
});

t.test('boot.image_server: apache2 (or auto with its drop-in enabled) puts the kernel and initrd on apache2\'s port and path; provisioning and auto without it keep them here', async (t) => {
  const f = await startFixture(t);
  const node = await addNode(f.store, { hostname: 'web1', macs: ['52:54:00:00:00:01'] }, f.clock);
  f.lan.neighbour('10.0.0.5', '52:54:00:00:00:01');
  await deployNode(f.store, node.systemId, await f.region.loadRoles(), {}, f.clock);
  const script = async () => (await get(`${f.provisioningUrl}/boot/ipxe/node?mac=52:54:00:00:00:01`, f.lan.from('10.0.0.5'))).body;
  let enabled = false;
  const cases: [ImageSettings['server'], number, boolean, string][] = [
    ['apache2', 80, false, 'http://192.0.2.10/uec-provisioning-images/debian/bookworm/amd64'],
    ['apache2', 8080, false, 'http://192.0.2.10:8080/uec-provisioning-images/debian/bookworm/amd64'],
    ['auto', 80, true, 'http://192.0.2.10/uec-provisioning-images/debian/bookworm/amd64'],
    ['auto', 80, false, 'http://192.0.2.10:5248/boot/images/debian/bookworm/amd64'],
    ['provisioning', 80, true, 'http://192.0.2.10:5248/boot/images/debian/bookworm/amd64'],
  ];
  for (const [server, apachePort, apacheEnabled, dir] of cases) {
    f.provisioning.images = { settings: { server, apachePort }, apacheEnabled: async () => enabled };
    enabled = apacheEnabled;
    const body = await script();
    const what = `${server}, port ${apachePort}, drop-in ${apacheEnabled ? 'enabled' : 'not enabled'}`;
    t.ok(body.includes(`\nkernel ${dir}/linux initrd=initrd.gz auto=true `), `${what}: kernel from ${dir}`);
    t.ok(body.includes(`\ninitrd --name initrd.gz ${dir}/initrd.gz\n`), `${what}: initrd from ${dir}`);
    t.match(body, /url=http:\/\/192\.0\.2\.10:5248\/preseed\//, `${what}: the preseed stays on the provisioning service`);
  }
});

t.test('the install script and preseed only to the node: another MAC, loopback, a routed stranger after the binding → 403, logged; local and enlist scripts to anyone', async (t) => {
  const f = await startFixture(t);
  const roles = await f.region.loadRoles();
  const node = await deployNode(f.store, (await addNode(f.store, { hostname: 'web1', macs: ['52:54:00:00:00:01'] }, f.clock)).systemId, roles, {}, f.clock);
  f.lan.neighbour('10.0.0.5', '52:54:00:00:00:01');
  f.lan.neighbour('10.0.0.66', '52:54:00:00:00:66');
  const script = `${f.provisioningUrl}/boot/ipxe/node?mac=52:54:00:00:00:01`;
  const preseed = `${f.provisioningUrl}/preseed/${node.systemId}`;
  const file = () => readStoreFiles(f.paths);
  const before = file();
  for (const from of ['10.0.0.66', '127.0.0.1']) {
    for (const url of [script, preseed]) {
      const r = await get(url, f.lan.from(from));
      t.same([r.status, r.body], [403, 'forbidden\n'], `${url.slice(f.provisioningUrl.length)} from ${from}`);
    }
  }
  t.equal(file(), before, 'nothing stored');
  t.ok(f.lines.some((l) => l.includes(`refused the install boot script (asked for 52:54:00:00:00:01) of web1 (${node.systemId}) to 10.0.0.66 (neighbour MAC 52:54:00:00:00:66)`)), 'logged: node, address, neighbour');
  t.ok(f.lines.some((l) => l.includes(`refused the preseed of web1 (${node.systemId}) to 127.0.0.1`)), 'loopback logged');
  t.equal((await get(script, f.lan.from('10.0.0.5'))).status, 200, 'the node gets its script');
  t.equal((await get(preseed, f.lan.from('10.0.0.5'))).status, 200, 'and its preseed');
  t.equal((await get(preseed, f.lan.from('10.9.0.1'))).status, 403, 'a routed stranger once the node bound the deploy');
  // Another node, ready: its local-disk script to anyone; an unknown MAC: the enlist script to anyone.
  await addNode(f.store, { hostname: 'web2', macs: ['52:54:00:00:00:02'] }, f.clock);
  t.match((await get(`${f.provisioningUrl}/boot/ipxe/node?mac=52:54:00:00:00:02`, f.lan.from('10.0.0.66'))).body, /boots from its local disk/);
  t.match((await get(`${f.provisioningUrl}/boot/ipxe/node?mac=52:54:00:00:00:03`, f.lan.from('127.0.0.1'))).body, /imgfetch --name enlisted/);
});

t.test('with the context cache on, a new deploy\'s preseed has the new token and the last deploy\'s token gets no first-boot script', async (t) => {
  const f = await startFixture(t, { cacheMs: 60_000 });
  const roles = await f.region.loadRoles();
  const added = await addNode(f.store, { hostname: 'web1', macs: ['52:54:00:00:00:01'] }, f.clock);
  const first = await deployNode(f.store, added.systemId, roles, {}, f.clock);
  f.lan.neighbour('10.0.0.5', '52:54:00:00:00:01');
  const from = f.lan.from('10.0.0.5');
  t.ok((await get(`${f.provisioningUrl}/preseed/${first.systemId}`, from)).body.includes(`token=${first.token}`));
  t.equal((await get(`${f.provisioningUrl}/preseed/${first.systemId}/firstboot?token=${first.token}`, from)).status, 200);
  await releaseNode(f.store, first.systemId, f.clock);
  const second = await deployNode(f.store, first.systemId, roles, {}, f.clock);
  const preseed = (await get(`${f.provisioningUrl}/preseed/${first.systemId}`, from)).body;
  t.ok(preseed.includes(`token=${second.token}`) && !preseed.includes(first.token), 'the new token, not a cached one');
  t.equal((await get(`${f.provisioningUrl}/preseed/${first.systemId}/firstboot?token=${first.token}`, from)).status, 403, 'the last deploy\'s token');
  t.ok(f.lines.some((l) => l.includes(`refused the first-boot script of ${first.systemId} to 10.0.0.5: unknown node or wrong token`)), 'logged with the address');
  t.equal((await get(`${f.provisioningUrl}/preseed/${first.systemId}/firstboot?token=${second.token}`, from)).status, 200);
});

t.test('a routed node with a reservation: its script and preseed from that address only', async (t) => {
  const f = await startFixture(t);
  const node = await deployNode(f.store, (await addNode(f.store, { hostname: 'far1', macs: ['52:54:00:00:10:01'], ipv4: '10.3.0.5' }, f.clock)).systemId, await f.region.loadRoles(), {}, f.clock);
  t.equal((await get(`${f.provisioningUrl}/preseed/${node.systemId}`, f.lan.from('10.3.0.6'))).status, 403, 'first request, but not the reserved address');
  t.equal((await get(`${f.provisioningUrl}/boot/ipxe/node?mac=52:54:00:00:10:01`, f.lan.from('10.3.0.5'))).status, 200);
  t.equal((await get(`${f.provisioningUrl}/preseed/${node.systemId}`, f.lan.from('10.3.0.5'))).status, 200);
});

t.test('preseeds over HTTP: install, commissioning, enlist; each passes debconf-set-selections -c', async (t) => {
  const f = await startFixture(t);
  const node0 = await addNode(f.store, { hostname: 'web1', macs: ['52:54:00:00:00:01'] }, f.clock);
  f.lan.neighbour('10.0.0.5', '52:54:00:00:00:01');
  const from = f.lan.from('10.0.0.5');
  t.equal((await get(`${f.provisioningUrl}/preseed/${node0.systemId}`, from)).status, 409, 'a ready node gets no preseed');
  const node = await deployNode(f.store, node0.systemId, await f.region.loadRoles(), {}, f.clock);
  const install = await get(`${f.provisioningUrl}/preseed/${node.systemId}`, from);
  t.equal(install.status, 200);
  t.match(install.body, /^# uec-provisioning preseed: install debian bookworm \(amd64\) as role server/);
  t.ok(install.body.includes(`status/installing?token=${node.token}`), 'the machine itself receives its token');
  await validateContent('debconf', 'install', install.body);
  const commissioning = await get(`${f.provisioningUrl}/preseed/${node.systemId}?type=commissioning`, from);
  t.match(commissioning.body, /^# uec-provisioning preseed: commission web1/);
  await validateContent('debconf', 'commissioning', commissioning.body);
  const enlist = await get(`${f.provisioningUrl}/preseed/enlist`);
  t.match(enlist.body, /not enlisted/);
  await validateContent('debconf', 'enlist', enlist.body);
  t.equal((await get(`${f.provisioningUrl}/preseed/${node.systemId}?type=bogus`, from)).status, 400);
  t.equal((await get(`${f.provisioningUrl}/preseed/node-zzzzzz`, from)).status, 404);
  t.ok(f.lines.some((l) => l.includes(`preseed install for web1 (${node.systemId}) from templates/preseeds/install.mustache`)), 'the chosen template is logged');
  t.notOk(f.lines.some((l) => l.includes(node.token)), 'the token is never logged');
  // An admin's more specific template wins over the shipped one.
  fs.mkdirSync(f.paths.resolve('/etc/uec-provisioning/preseeds'), { recursive: true });
  fs.writeFileSync(f.paths.resolve('/etc/uec-provisioning/preseeds/install_debian_amd64.mustache'), '# admin for {{hostname}}\nd-i netcfg/get_hostname string {{hostname}}\n');
  // The template directories are listed at most once a second: the admin's file shows after it.
  await new Promise((resolve) => setTimeout(resolve, 1100));
  await f.store.update((nodes) => void (nodes[0]!.hostname = 'web9'));
  const admin = await get(`${f.provisioningUrl}/preseed/${node.systemId}`, from);
  t.equal(admin.body, '# admin for web9\nd-i netcfg/get_hostname string web9\n');
});

t.test('first-boot script needs the node token and the node\'s address', async (t) => {
  const f = await startFixture(t);
  const added = await addNode(f.store, { hostname: 'web1', macs: ['52:54:00:00:00:01'] }, f.clock);
  const node = await deployNode(f.store, added.systemId, await f.region.loadRoles(), {}, f.clock);
  f.lan.neighbour('10.0.0.5', '52:54:00:00:00:01');
  f.lan.neighbour('10.0.0.6', '52:54:00:00:00:66');
  const from = f.lan.from('10.0.0.5');
  t.equal((await get(`${f.provisioningUrl}/preseed/${node.systemId}/firstboot`, from)).status, 403);
  t.equal((await get(`${f.provisioningUrl}/preseed/${node.systemId}/firstboot?token=wrong`, from)).status, 403);
  t.equal((await get(`${f.provisioningUrl}/preseed/node-zzzzzz/firstboot?token=${node.token}`, from)).status, 403);
  t.equal((await get(`${f.provisioningUrl}/preseed/${node.systemId}/firstboot?token=${node.token}`, f.lan.from('10.0.0.6'))).status, 403, 'the right token from another MAC');
  t.equal((await get(`${f.provisioningUrl}/preseed/${node.systemId}/firstboot?token=${added.token}`, from)).status, 403, 'the token from before the deploy');
  const ok = await get(`${f.provisioningUrl}/preseed/${node.systemId}/firstboot?token=${node.token}`, from);
  t.equal(ok.status, 200);
  t.ok(ok.body.includes(`status/deployed?token=${node.token}`));
});

t.test('region down → 503 with Retry-After', async (t) => {
  // A port that was just free: nothing listens there.
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise((resolve) => probe.close(resolve));
  const f = await startFixture(t, { regionUrl: `http://127.0.0.1:${port}` });
  for (const p of ['/boot/ipxe/node?mac=52:54:00:00:00:01', '/preseed/node-abc123', '/enlist?mac=52:54:00:00:00:01', '/preseed/node-abc123/firstboot?token=x']) {
    const r = await get(`${f.provisioningUrl}${p}`);
    t.equal(r.status, 503, p);
    t.equal(r.headers.get('retry-after'), '5');
    t.equal(r.body, 'region unavailable, try again\n');
  }
  t.ok(f.lines.some((l) => /region http:\/\/127\.0\.0\.1:\d+ is unavailable/.test(l)), 'the reason is logged');
  t.ok((await get(`${f.provisioningUrl}/preseed/enlist`)).status === 200, 'the enlist preseed needs no region');
});

t.test('the region answering the context but not the claim → 503 with Retry-After, nothing served', async (t) => {
  const f = await startFixture(t);
  const node = await deployNode(f.store, (await addNode(f.store, { hostname: 'web1', macs: ['52:54:00:00:00:01'] }, f.clock)).systemId, await f.region.loadRoles(), {}, f.clock);
  f.lan.neighbour('10.0.0.5', '52:54:00:00:00:01');
  const region = f.provisioning.region;
  f.provisioning.region = { ...region, claimAddress: () => Promise.reject(new UecError('UPSTREAM_FAILED', 'region http://192.0.2.10:5248 is unavailable: claim refused by the test')) };
  for (const p of ['/boot/ipxe/node?mac=52:54:00:00:00:01', `/preseed/${node.systemId}`, `/preseed/${node.systemId}/firstboot?token=${node.token}`]) {
    const r = await get(`${f.provisioningUrl}${p}`, f.lan.from('10.0.0.5'));
    t.equal(r.status, 503, p);
    t.equal(r.headers.get('retry-after'), '5');
    t.notOk(r.body.includes(node.systemId), 'nothing of the node');
  }
  t.ok(f.lines.some((l) => l.includes('claim refused by the test')), 'the reason is logged');
});

t.test('slow region → timeout → 503 with Retry-After; the region answering an error → 503 too', async (t) => {
  const pending: (() => void)[] = [];
  const slow = await listen(t, (_req, res) => void pending.push(() => res.end('{}')));
  t.teardown(() => pending.forEach((p) => p()));
  const f = await startFixture(t, { regionUrl: slow, timeoutMs: 200 });
  const r = await get(`${f.provisioningUrl}/preseed/node-abc123`);
  t.equal(r.status, 503);
  t.equal(r.headers.get('retry-after'), '5');
  t.ok(f.lines.some((l) => l.includes('no answer within 200 ms')));
  const broken = await listen(t, (_req, res) => {
    res.writeHead(500);
    res.end('boom');
  });
  const g = await startFixture(t, { regionUrl: broken });
  t.equal((await get(`${g.provisioningUrl}/boot/ipxe/node?mac=52:54:00:00:00:01`)).status, 503);
});

t.test('/boot/<file>: files of the tree; traversal, dot-files and symlinks out of the allowlist → 404', async (t) => {
  const f = await startFixture(t);
  const bootDir = f.provisioning.bootDir;
  fs.mkdirSync(path.join(bootDir, 'images/debian/bookworm/amd64'), { recursive: true });
  fs.writeFileSync(path.join(bootDir, 'images/debian/bookworm/amd64/linux'), 'KERNEL');
  fs.writeFileSync(path.join(bootDir, '.hidden'), 'x');
  fs.mkdirSync(f.paths.resolve('/etc'), { recursive: true });
  fs.writeFileSync(f.paths.resolve('/etc/secret'), 'SECRET');
  fs.symlinkSync(f.paths.resolve('/etc/secret'), path.join(bootDir, 'escape'));
  fs.symlinkSync('/etc/passwd', path.join(bootDir, 'passwd'));
  fs.symlinkSync('images/debian/bookworm/amd64/linux', path.join(bootDir, 'inside'));
  fs.symlinkSync('/usr/lib/ipxe/ipxe.efi', path.join(bootDir, 'ipxe.efi'));
  fs.symlinkSync('/usr/lib/ipxe/../../../etc/passwd', path.join(bootDir, 'sneaky'));
  const ok = await get(`${f.provisioningUrl}/boot/images/debian/bookworm/amd64/linux`);
  t.equal(ok.status, 200);
  t.equal(ok.body, 'KERNEL');
  t.equal((await get(`${f.provisioningUrl}/boot/inside`)).body, 'KERNEL', 'a link inside the tree');
  fs.symlinkSync('/usr/lib/ipxe/ipxe.pxe', path.join(bootDir, 'ipxe.pxe'));
  fs.symlinkSync('/boot/vmlinuz', path.join(bootDir, 'vmlinuz'));
  t.equal((await get(`${f.provisioningUrl}/boot/ipxe.pxe`)).status, 200, 'a link into the allowlisted loader directory');
  // Debian's ipxe package links /usr/lib/ipxe/ipxe.efi to /boot/ipxe.efi: that one file is allowed.
  t.equal((await get(`${f.provisioningUrl}/boot/ipxe.efi`)).status, fs.existsSync('/boot/ipxe.efi') ? 200 : 404, 'ipxe.efi through its /boot link');
  t.equal((await fetch(`${f.provisioningUrl}/boot/images/debian/bookworm/amd64/linux`, { method: 'HEAD' })).headers.get('content-length'), '6');
  for (const p of ['escape', 'passwd', 'vmlinuz', 'sneaky', '.hidden', 'images', 'images/../../../../etc/secret', 'images/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/secret', '%2e%2e%2fescape', 'images//debian', 'nosuchfile', 'images/debian/bookworm/amd64/linux%00']) {
    const r = await get(`${f.provisioningUrl}/boot/${p}`);
    t.equal(r.status, 404, p);
    t.notOk(r.body.includes('SECRET') || r.body.includes('root:'), `${p}: nothing leaked`);
  }
  // Raw request paths, not normalised by a client.
  for (const raw of ['/boot/../../etc/secret', '/boot/images/../../escape']) {
    const status = await new Promise<string>((resolve) => {
      const s = net.connect(Number(new URL(f.provisioningUrl).port), '127.0.0.1', () => s.end(`GET ${raw} HTTP/1.0\r\n\r\n`));
      let data = '';
      s.on('data', (d) => (data += d.toString()));
      s.on('end', () => resolve(data));
    });
    t.match(status, /^HTTP\/1\.1 404/, raw);
    t.notOk(status.includes('SECRET'));
  }
  t.ok(f.lines.some((l) => l.includes('refused /boot/escape: it resolves outside the boot tree')));
  t.equal((await get(`${f.provisioningUrl}/boot/ipxe`, { method: 'POST' })).status, 405);
});

t.test('enlistment through the provisioning server reaches the region', async (t) => {
  const f = await startFixture(t);
  const r = await get(`${f.provisioningUrl}/enlist?mac=52-54-00-0a-0b-0c&buildarch=arm64&platform=efi&manufacturer=QEMU&product=virt&serial=&uuid=`);
  t.equal(r.status, 201);
  const nodes = await f.store.list();
  t.same(nodes.map((n) => [n.macs[0], n.arch, n.subarch, n.status, n.hardware]), [['52:54:00:0a:0b:0c', 'arm64', 'uefi', 'new', { manufacturer: 'QEMU', product: 'virt', platform: 'efi' }]]);
  t.equal((await get(`${f.provisioningUrl}/enlist?mac=bad`)).status, 400);
  t.equal((await get(`${f.provisioningUrl}/enlist?mac=52-54-00-0a-0b-0c`)).status, 200, 'twice: no duplicate');
  t.equal((await f.store.list()).length, 1);
});
