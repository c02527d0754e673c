/** Nodes: list, add, import from CSV, show, remove, release, power, BMC details, preseed preview, DHCP lease. */
import { publicNode } from '../../../src/node';
import { addNode, recordNodeEvent, releaseNode, removeNode } from '../../../src/node-ops';
import { getNode } from '../../../src/node-store';
import { loadLeases } from '../health';
import { summariseNode } from '../live';
import { POWER_ACTIONS, parseBmc, type PowerAction } from '../power';
import { nodeRef } from '../services';
import { BASE, CSV_BODY, HttpError, NO_BODY, SMALL_BODY, field, json, list, seeOther, type Route } from './route';

export const nodeRoutes: Route[] = [
  {
    method: 'GET',
    path: '/api/nodes',
    who: 'session',
    csrf: false,
    bodyLimit: NO_BODY,
    handler: async (ctx) => json(await ctx.services.queryNodes(ctx.url)),
  },
  {
    method: 'POST',
    path: '/api/nodes',
    who: 'admin',
    csrf: true,
    bodyLimit: SMALL_BODY,
    async handler({ options, body, auth }) {
      const macs = [...list(body, 'macs'), ...field(body, 'mac').split(/[\s,;]+/)].filter(Boolean);
      const node = await addNode(
        options.store,
        {
          hostname: field(body, 'hostname'),
          macs,
          arch: field(body, 'arch') || undefined,
          role: field(body, 'role') || undefined,
          release: field(body, 'release') || undefined,
          ipv4: field(body, 'ipv4') || undefined,
        },
        options.clock,
      );
      options.log.info(`${auth.user.name} added node ${node.hostname} (${node.systemId})`);
      return json(publicNode(node), 201);
    },
  },
  {
    method: 'POST',
    path: '/api/nodes/import',
    who: 'admin',
    csrf: true,
    bodyLimit: CSV_BODY,
    async handler({ options, services, body, bodyText, req, auth }) {
      const csv = field(body, 'csv') || ((req.headers['content-type'] ?? '').startsWith('text/csv') ? bodyText : '');
      const created = await services.importCsv(csv);
      options.log.info(`${auth.user.name} imported ${created.length} node(s) from CSV`);
      return json({ imported: created.length, nodes: created.map(summariseNode) }, 201);
    },
  },
  {
    method: 'GET',
    path: '/api/nodes/:ref',
    who: 'session',
    csrf: false,
    bodyLimit: NO_BODY,
    async handler({ options, params }) {
      const node = await getNode(options.store, nodeRef(params.ref ?? ''));
      return json({ ...publicNode(node), bmc: Boolean(await options.bmcs.get(node.systemId)), stage: summariseNode(node).stage });
    },
  },
  {
    method: 'DELETE',
    path: '/api/nodes/:ref',
    who: 'admin',
    csrf: true,
    bodyLimit: SMALL_BODY,
    async handler({ options, params, auth }) {
      const node = await removeNode(options.store, nodeRef(params.ref ?? ''));
      await options.bmcs.set(node.systemId, null);
      options.log.info(`${auth.user.name} removed node ${node.hostname} (${node.systemId})`);
      return json({ removed: node.systemId });
    },
    formReply: () => seeOther(`${BASE}/nodes`),
  },
  {
    method: 'POST',
    path: '/api/nodes/:ref/release',
    who: 'admin',
    csrf: true,
    bodyLimit: SMALL_BODY,
    async handler({ options, params, auth }) {
      const node = await releaseNode(options.store, nodeRef(params.ref ?? ''), options.clock);
      options.log.info(`${auth.user.name} released ${node.hostname}`);
      return json(summariseNode(node));
    },
  },
  {
    method: 'POST',
    path: '/api/nodes/:ref/power',
    who: 'admin',
    csrf: true,
    bodyLimit: SMALL_BODY,
    async handler({ services, params, body, auth }) {
      const ref = nodeRef(params.ref ?? '');
      const action = field(body, 'action');
      if (!(POWER_ACTIONS as readonly string[]).includes(action)) throw new HttpError(400, `action must be one of ${POWER_ACTIONS.join(', ')}`);
      return json({ message: await services.power(ref, action as PowerAction, auth.user.name) });
    },
  },
  {
    method: 'GET',
    path: '/api/nodes/:ref/bmc',
    who: 'session',
    csrf: false,
    bodyLimit: NO_BODY,
    async handler({ options, params }) {
      const node = await getNode(options.store, nodeRef(params.ref ?? ''));
      const bmc = await options.bmcs.get(node.systemId);
      return json(bmc ? { address: bmc.address, user: bmc.user } : null);
    },
  },
  ...(['PUT', 'POST'] as const).map(
    (method): Route => ({
      method,
      path: '/api/nodes/:ref/bmc',
      who: 'admin',
      csrf: true,
      bodyLimit: SMALL_BODY,
      async handler({ options, params, body, auth }) {
        const ref = nodeRef(params.ref ?? '');
        const bmc = parseBmc({ address: field(body, 'address'), user: field(body, 'user'), password: field(body, 'password') });
        const node = await getNode(options.store, ref);
        await options.bmcs.set(node.systemId, bmc);
        await recordNodeEvent(options.store, node.systemId, 'edited', `BMC details set (${bmc.address}) by ${auth.user.name}`, options.clock);
        return json({ address: bmc.address, user: bmc.user });
      },
    }),
  ),
  {
    method: 'DELETE',
    path: '/api/nodes/:ref/bmc',
    who: 'admin',
    csrf: true,
    bodyLimit: SMALL_BODY,
    async handler({ options, params, auth }) {
      const node = await getNode(options.store, nodeRef(params.ref ?? ''));
      await options.bmcs.set(node.systemId, null);
      await recordNodeEvent(options.store, node.systemId, 'edited', `BMC details removed by ${auth.user.name}`, options.clock);
      return json({ removed: true });
    },
  },
  {
    method: 'GET',
    path: '/api/nodes/:ref/preseed',
    who: 'session',
    csrf: false,
    bodyLimit: NO_BODY,
    async handler({ options, services, params }) {
      const node = await getNode(options.store, nodeRef(params.ref ?? ''));
      return json({ node: node.systemId, ...(await services.preseedPreview(node)) });
    },
  },
  {
    method: 'GET',
    path: '/api/nodes/:ref/lease',
    who: 'session',
    csrf: false,
    bodyLimit: NO_BODY,
    async handler({ options, params }) {
      const node = await getNode(options.store, nodeRef(params.ref ?? ''));
      const leases = await loadLeases(options.paths, await options.loadConfig(), node.macs);
      return json({ leases, leaseFile: leases !== null });
    },
  },
];
