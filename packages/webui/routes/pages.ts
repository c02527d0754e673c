/** The server-rendered pages (GET only; their forms post to the API routes) and the static files. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { formatValue } from '../../../src/core/config';
import { describeError } from '../../../src/core/errors';
import { compareNodes, getNode } from '../../../src/region/node-store';
import { loadRoles } from '../../../src/contract/roles';
import { listImages, loadHealth, loadLeases } from '../health';
import { loadBootPanel, renderBootPanel } from '../boot-panel';
import { summariseNode, type NodeSummary } from '../live';
import * as pages from '../pages';
import { NODE_REF, nodeRef } from '../services';
import { HttpError, NO_BODY, htmlPage, written, type Outcome, type Route, type SignedInContext } from './route';

const STATIC_NAME = /^[a-z0-9-]{1,40}\.(js|css)$/;

function page(pathPattern: string, render: (ctx: SignedInContext, user: pages.PageUser, flash: string) => Promise<string>): Route {
  return {
    method: 'GET',
    path: pathPattern,
    who: 'session',
    csrf: false,
    bodyLimit: NO_BODY,
    handler: async (ctx): Promise<Outcome> => htmlPage(await render(ctx, ctx.services.pageUser(ctx.auth), ctx.url.searchParams.get('msg') ?? '')),
  };
}

export const pageRoutes: Route[] = [
  page('/', async ({ options }, user, flash) => {
    // Counts kept by the store: no node is read. (Statuses with no node are left out, as before.)
    const counts = Object.fromEntries(Object.entries(await options.store.countByStatus()).filter(([, n]) => n > 0));
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    return pages.dashboardPage(user, flash, total, counts, await loadHealth({ paths: options.paths, config: await options.loadConfig() }));
  }),
  page('/nodes', async ({ options, services, url }, user, flash) => {
    const result = await services.queryNodes(url);
    const roles = await loadRoles(options.paths).catch(() => []);
    return pages.nodesPage(user, flash, result, url.searchParams, roles.map((r) => r.name));
  }),
  page('/nodes/:ref', async ({ options, services, params }, user, flash) => {
    const node = await getNode(options.store, nodeRef(params.ref ?? ''));
    const config = await options.loadConfig();
    let preseed: { template: string; text: string } | { error: string };
    try {
      preseed = await services.preseedPreview(node);
    } catch (err) {
      preseed = { error: describeError(err) };
    }
    const bmc = await options.bmcs.get(node.systemId);
    const leases = await loadLeases(options.paths, config, node.macs);
    const boot = renderBootPanel(await loadBootPanel(node, new Date()));
    return pages.nodePage(user, flash, node, summariseNode(node), preseed, bmc ? { address: bmc.address, user: bmc.user, cipherSuite: bmc.cipherSuite } : null, leases, boot);
  }),
  page('/deploy', async ({ options, url }, user, flash) => {
    const watch = (url.searchParams.get('watch') ?? '').split(',').filter((id) => NODE_REF.test(id));
    // A bounded page per status the page shows (not every node), and the watched ones.
    const byId = new Map<string, NodeSummary>();
    for (const status of ['new', 'ready', 'deploying', 'failed', 'deployed'] as const) {
      for (const node of (await options.store.page({ status, limit: 1000 })).nodes) byId.set(node.systemId, summariseNode(node));
    }
    for (const id of watch.slice(0, 1000)) {
      const node = await options.store.find(id);
      if (node) byId.set(node.systemId, summariseNode(node));
    }
    const nodes = [...byId.values()].sort((a, b) => compareNodes(a, b));
    const roles = await loadRoles(options.paths).catch(() => []);
    return pages.deployPage(user, flash, nodes, roles.map((r) => ({ name: r.name, releases: Object.keys(r.packages).sort() })), watch);
  }),
  page('/images', async ({ options, services }, user, flash) => pages.imagesPage(user, flash, await listImages(options.paths), Boolean(services.imagesCommand()))),
  page('/settings', async ({ options }, user, flash) => {
    const config = await options.loadConfig();
    const rows = [...config.settings.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([key, s]) => {
      const [section, name] = key.split('.') as [string, string];
      const spec = options.schema[section]?.keys[name];
      return { key, value: formatValue(s.value), origin: s.origin, description: spec?.description ?? '', values: spec?.values ? [...spec.values] : null, type: spec?.type ?? 'string' };
    });
    return pages.settingsPage(user, flash, rows);
  }),
  page('/account', async ({ options, auth }, user, flash) => {
    const tokens = (await options.accounts.listTokens(auth.user.role === 'admin' ? undefined : auth.user.name)).map(({ digest: _d, ...t }) => t);
    const users = auth.user.role === 'admin' ? (await options.accounts.list()).map((u) => ({ name: u.name, role: u.role })) : [];
    return pages.accountPage(user, flash, tokens, users);
  }),
  {
    method: 'GET',
    path: '/static/:name',
    who: 'public',
    csrf: false,
    bodyLimit: NO_BODY,
    async handler({ options, params, req, res }) {
      const name = params.name ?? '';
      if (!STATIC_NAME.test(name)) throw new HttpError(404, 'not found');
      let content: Buffer;
      try {
        content = await fs.promises.readFile(path.join(options.staticDir, name));
      } catch {
        throw new HttpError(404, 'not found');
      }
      const type = name.endsWith('.js') ? 'text/javascript; charset=utf-8' : 'text/css; charset=utf-8';
      res.writeHead(200, { 'Content-Type': type, 'Content-Length': String(content.length), 'Cache-Control': 'max-age=300', 'X-Content-Type-Options': 'nosniff' });
      res.end(req.method === 'HEAD' ? undefined : content);
      return written(200);
    },
  },
];
