import t from 'tap';
import { normaliseClientAddress } from '../../src/core/neighbours';
import { selectAddressOwnership, type OwnershipFacts } from '../../src/contract/node-address';

const NODE: OwnershipFacts = { hostname: 'web1', systemId: 'node-abc123', macs: ['52:54:00:00:00:01', '52:54:00:00:00:02'], ipv4: '' };
const onLink = (mac: string) => ({ mac, router: false });
const router = { mac: '02:00:00:00:00:fe', router: true };

t.test('(a) on-link: the neighbour MAC decides, whatever the address', async (t) => {
  t.same(selectAddressOwnership(NODE, '10.0.0.5', onLink('52:54:00:00:00:01')), { owned: true, rule: 'neighbour', bind: true }, 'the boot MAC, nothing bound yet: binds');
  t.same(selectAddressOwnership(NODE, '10.0.0.7', onLink('52:54:00:00:00:02')), { owned: true, rule: 'neighbour', bind: true }, 'any of its MACs');
  t.same(selectAddressOwnership({ ...NODE, boundAddress: '10.0.0.5' }, '10.0.0.8', onLink('52:54:00:00:00:01')), { owned: true, rule: 'neighbour', bind: false }, 'a new DHCP address after the reboot: accepted by MAC, the binding kept');
  const other = selectAddressOwnership(NODE, '10.0.0.9', onLink('52:54:00:00:00:99'));
  t.equal(other.owned, false, 'another MAC');
  t.match(other, { reason: /on-link client 10\.0\.0\.9 has MAC 52:54:00:00:00:99, not one of the node's/ });
  t.equal(selectAddressOwnership({ ...NODE, ipv4: '10.0.0.9' }, '10.0.0.9', onLink('52:54:00:00:00:99')).owned, false, 'another MAC on the reserved address (a spoofed IP) is refused');
  t.equal(selectAddressOwnership({ ...NODE, boundAddress: '10.0.0.9' }, '10.0.0.9', onLink('52:54:00:00:00:99')).owned, false, 'another MAC on the bound address is refused');
});

t.test('(b) the reservation, for a routed client', async (t) => {
  const reserved = { ...NODE, ipv4: '10.1.0.5' };
  t.same(selectAddressOwnership(reserved, '10.1.0.5', null), { owned: true, rule: 'reservation', bind: true });
  t.same(selectAddressOwnership(reserved, '10.1.0.5', router), { owned: true, rule: 'reservation', bind: true }, 'behind a router');
  t.match(selectAddressOwnership(reserved, '10.1.0.6', null), { owned: false, reason: /routed client 10\.1\.0\.6 \(no neighbour entry\) is not the node's reserved address 10\.1\.0\.5/ });
  t.match(selectAddressOwnership(reserved, '10.1.0.6', router), { owned: false, reason: /behind router MAC 02:00:00:00:00:fe/ }, 'no first-claim binding when there is a reservation');
});

t.test('(c) no entry or a router, no reservation: the first request binds, later ones must match', async (t) => {
  t.same(selectAddressOwnership(NODE, '10.2.0.5', null), { owned: true, rule: 'binding', bind: true }, 'first: binds');
  t.same(selectAddressOwnership(NODE, '10.2.0.5', router), { owned: true, rule: 'binding', bind: true }, 'a router entry counts as routed');
  const bound = { ...NODE, boundAddress: '10.2.0.5' };
  t.same(selectAddressOwnership(bound, '10.2.0.5', null), { owned: true, rule: 'binding', bind: false });
  t.match(selectAddressOwnership(bound, '10.2.0.6', null), { owned: false, reason: /this deploy is bound to 10\.2\.0\.5/ });
  t.same(selectAddressOwnership({ ...NODE, boundAddress: '' }, '10.2.0.6', null), { owned: true, rule: 'binding', bind: true }, 'an empty binding is none');
});

t.test('only IPv4 host addresses are a node\'s: loopback, IPv6, unspecified, multicast refused before anything else', async (t) => {
  for (const client of ['127.0.0.1', '127.1.2.3', '::1', 'fe80::1', '0.0.0.0', '224.0.0.1', '255.255.255.255', '?', '']) {
    const o = selectAddressOwnership({ ...NODE, ipv4: '10.0.0.5', boundAddress: client }, client, onLink('52:54:00:00:00:01'));
    t.equal(o.owned, false, JSON.stringify(client));
    t.match(o, { reason: /nodes call from an IPv4 host address/ });
  }
});

t.test('normaliseClientAddress: an IPv4-mapped IPv6 address is its IPv4', async (t) => {
  t.equal(normaliseClientAddress('::ffff:10.0.0.5'), '10.0.0.5');
  t.equal(normaliseClientAddress('::FFFF:10.0.0.5'), '10.0.0.5');
  t.equal(normaliseClientAddress('10.0.0.5'), '10.0.0.5');
  t.equal(normaliseClientAddress('fe80::1'), 'fe80::1');
  t.equal(normaliseClientAddress('::ffff:127.0.0.1'), '127.0.0.1');
});
