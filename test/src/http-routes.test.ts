import t from 'tap';
import { selectRoute, type Method } from '../../src/core/http-routes';

const routes: { name: string; methods: readonly Method[]; pattern: RegExp }[] = [
  { name: 'bootstrap', methods: ['GET', 'HEAD'], pattern: /^\/boot\/ipxe$/ },
  { name: 'file', methods: ['GET'], pattern: /^\/boot\/(.+)$/ },
  { name: 'claim', methods: ['POST'], pattern: /^\/api\/v1\/nodes\/([a-z0-9-]+)\/claim$/ },
  { name: 'claim-get', methods: ['GET'], pattern: /^\/api\/v1\/nodes\/([a-z0-9-]+)\/(claim)$/ },
];

t.test('selectRoute: first route whose path and method match; its captures; HEAD runs a GET route', async (t) => {
  t.match(selectRoute(routes, 'GET', '/boot/ipxe'), { route: { name: 'bootstrap' }, params: [] }, 'table order decides between overlapping paths');
  t.match(selectRoute(routes, 'GET', '/boot/a/b'), { route: { name: 'file' }, params: ['a/b'] });
  t.match(selectRoute(routes, 'HEAD', '/boot/a'), { route: { name: 'file' } });
  t.match(selectRoute(routes, 'POST', '/api/v1/nodes/node-abc/claim'), { route: { name: 'claim' }, params: ['node-abc'] });
  t.match(selectRoute(routes, 'GET', '/api/v1/nodes/node-abc/claim'), { route: { name: 'claim-get' }, params: ['node-abc', 'claim'] }, 'a later route with the method');
});

t.test('selectRoute: a path some route has with another method → the methods to Allow; no route → null', async (t) => {
  t.same(selectRoute(routes, 'DELETE', '/api/v1/nodes/node-abc/claim'), { allow: ['POST', 'GET'] });
  t.same(selectRoute(routes, 'POST', '/boot/ipxe'), { allow: ['GET', 'HEAD'] }, 'every matching route adds its methods');
  t.equal(selectRoute(routes, 'GET', '/nowhere'), null);
  t.equal(selectRoute(routes, 'GET', '/api/v1/nodes/NODE/claim'), null);
});
