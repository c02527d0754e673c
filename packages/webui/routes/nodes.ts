/** Nodes: list, add, import from CSV, show, remove, release, power, BMC details, preseed preview, DHCP lease. */
import { selectChanges } from '../../../src/core/audit';
import { publicNode } from '../../../src/contract/node';
import { addNode, recordNodeEvent, releaseNode, removeNode } from '../../../src/region/node-ops';
import { getNode } from '../../../src/region/node-store';
import { loadLeases } from '../health';
import { summariseNode } from '../live';
import { POWER_ACTIONS, parseBmc, type Bmc, type PowerAction } from '../power';
import { nodeRef } from '../services';
import { auditNodeRequest, auditRequest } from '../audit';
import { BASE, CSV_BODY, HttpError, NO_BODY, SMALL_BODY, field, json, list, seeOther, type Route } from './route';

/** What the API shows of a BMC (pure): never the password; an unpinned cipher suite is 'auto'. */
function publicBmc(bmc: Bmc): { address: string; user: string; cipher_suite: number | 'auto' } {
  return { address: bmc.address, user: bmc.user, cipher_suite: bmc.cipherSuite ?? 'auto' };
}

/** A BMC as the audit log compares it (pure): the cipher suite always present ('auto' when unpinned); the password is redacted by selectChanges. */
function auditBmc(bmc: Bmc | undefined): Record<string, unknown> | null {
  return bmc ? { ...bmc, cipherSuite: bmc.cipherSuite ?? 'auto' } : null;
}

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
    async handler(ctx) {
      const { options, body, auth } = ctx;
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
      await auditNodeRequest(ctx, 'node.add', null, node);
      return json(publicNode(node), 201);
    },
  },
  {
    method: 'POST',
    path: '/api/nodes/import',
    who: 'admin',
    csrf: true,
    bodyLimit: CSV_BODY,
    async handler(ctx) {
      const { options, services, body, bodyText, req, auth } = ctx;
      const csv = field(body, 'csv') || ((req.headers['content-type'] ?? '').startsWith('text/csv') ? bodyText : '');
      const created = await services.importCsv(csv);
      options.log.info(`${auth.user.name} imported ${created.length} node(s) from CSV`);
      for (const node of created) await auditNodeRequest(ctx, 'nodes.import', null, node);
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
    async handler(ctx) {
      const { options, params, auth } = ctx;
      const node = await removeNode(options.store, nodeRef(params.ref ?? ''));
      await auditNodeRequest(ctx, 'node.remove', node, null);
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
    async handler(ctx) {
      const { options, params, auth } = ctx;
      const before = await getNode(options.store, nodeRef(params.ref ?? ''));
      const node = await releaseNode(options.store, before.systemId, options.clock);
      if (JSON.stringify(before) !== JSON.stringify(node)) await auditNodeRequest(ctx, 'node.release', before, node);
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
    async handler(ctx) {
      const { options, services, params, body, auth } = ctx;
      const ref = nodeRef(params.ref ?? '');
      const action = field(body, 'action');
      if (!(POWER_ACTIONS as readonly string[]).includes(action)) throw new HttpError(400, `action must be one of ${POWER_ACTIONS.join(', ')}`);
      const message = await services.power(ref, action as PowerAction, auth.user.name);
      const node = await getNode(options.store, ref);
      await auditRequest(ctx, `power.${action as PowerAction}`, { systemId: node.systemId, hostname: node.hostname });
      return json({ message });
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
      return json(bmc ? publicBmc(bmc) : null);
    },
  },
  ...(['PUT', 'POST'] as const).map(
    (method): Route => ({
      method,
      path: '/api/nodes/:ref/bmc',
      who: 'admin',
      csrf: true,
      bodyLimit: SMALL_BODY,
      async handler(ctx) {
        const { options, params, body, auth } = ctx;
        const ref = nodeRef(params.ref ?? '');
        const bmc = parseBmc({ address: field(body, 'address'), user: field(body, 'user'), password: field(body, 'password'), cipherSuite: field(body, 'cipher_suite') });
        const node = await getNode(options.store, ref);
        const before = await options.bmcs.get(node.systemId);
        await options.bmcs.set(node.systemId, bmc);
        await auditRequest(ctx, 'bmc.set', { systemId: node.systemId, hostname: node.hostname }, selectChanges(auditBmc(before), auditBmc(bmc)));
        await recordNodeEvent(options.store, node.systemId, 'edited', `BMC details set (${bmc.address}, cipher suite ${bmc.cipherSuite ?? 'auto'}) by ${auth.user.name}`, options.clock);
        return json(publicBmc(bmc));
      },
    }),
  ),
  {
    method: 'DELETE',
    path: '/api/nodes/:ref/bmc',
    who: 'admin',
    csrf: true,
    bodyLimit: SMALL_BODY,
    async handler(ctx) {
      const { options, params, auth } = ctx;
      const node = await getNode(options.store, nodeRef(params.ref ?? ''));
      const before = await options.bmcs.get(node.systemId);
      await options.bmcs.set(node.systemId, null);
      if (before) await auditRequest(ctx, 'bmc.remove', { systemId: node.systemId, hostname: node.hostname }, selectChanges(auditBmc(before), null));
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
