import t from 'tap';
import { enlistUrl, imagePath, ipxeBootstrapUrl, preseedUrl, renderKernelArgs, selectBootAction } from '../../src/edge/boot';
import { createNode } from '../../src/contract/node';
import { selectContextBootAction } from '../../src/edge/provisioning';
import { sampleContext } from '../helpers/region-fixture';

const node = createNode({ hostname: 'web1', macs: ['52:54:00:00:00:01'] }, new Date(0), { systemId: 'node-abc123', token: 't'.repeat(32) });
const urls = { httpBase: 'http://192.0.2.10:5248' };

t.test('boot action: enlist unknown, install only when deploying with netboot on, local otherwise', async (t) => {
  t.equal(selectBootAction(undefined), 'enlist');
  t.equal(selectContextBootAction(null), 'enlist');
  for (const status of ['new', 'commissioning', 'ready', 'deployed', 'failed'] as const) {
    t.equal(selectBootAction({ ...node, status }), 'local', status);
    t.equal(selectContextBootAction(sampleContext({ status })), 'local', `context ${status}`);
  }
  t.equal(selectBootAction({ ...node, status: 'deploying' }), 'install');
  t.equal(selectContextBootAction(sampleContext({ status: 'deploying' })), 'install');
  t.equal(selectBootAction({ ...node, status: 'deploying', netboot: false }), 'local');
  t.equal(selectContextBootAction(sampleContext({ status: 'deploying', netboot: false })), 'local');
});

t.test('URLs and kernel arguments', async (t) => {
  t.equal(imagePath('debian', 'bookworm', 'arm64'), 'images/debian/bookworm/arm64');
  t.equal(preseedUrl(urls, node), 'http://192.0.2.10:5248/preseed/node-abc123');
  t.equal(enlistUrl(urls), 'http://192.0.2.10:5248/enlist');
  t.equal(ipxeBootstrapUrl(urls), 'http://192.0.2.10:5248/boot/ipxe');
  t.equal(
    renderKernelArgs(node, urls, { domain: 'example.org', extra: 'console=ttyS0' }),
    'auto=true priority=critical url=http://192.0.2.10:5248/preseed/node-abc123 interface=auto hostname=web1 domain=example.org netcfg/dhcp_timeout=60 netcfg/no_default_route=true console=ttyS0',
  );
  t.notOk(renderKernelArgs(node, urls, { domain: 'example.org', extra: '' }).includes(node.token), 'no token on the kernel line');
  t.throws(() => renderKernelArgs(node, urls, { domain: 'example.org', extra: 'a\nb' }), { code: 'INVALID_VALUE', message: /kernel arguments for web1/ });
  t.throws(() => renderKernelArgs(node, { httpBase: 'http://x y' }, { domain: 'd', extra: '' }), { code: 'INVALID_VALUE', message: /preseed URL/ });
});
