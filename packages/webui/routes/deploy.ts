/** Deploying nodes: all or nothing, then (unless asked not to) power them on in the background. */
import { deployNodes } from '../../../src/region/node-ops';
import { loadRoles } from '../../../src/contract/roles';
import { summariseNode, type NodeSummary } from '../live';
import { nodeRef } from '../services';
import { auditNodeRequest, auditRequest } from '../audit';
import { BASE, SMALL_BODY, field, json, list, seeOther, type Route } from './route';

export const deployRoutes: Route[] = [
  {
    method: 'POST',
    path: '/api/deploy',
    who: 'admin',
    csrf: true,
    bodyLimit: SMALL_BODY,
    async handler(ctx) {
      const { options, services, body, form, auth } = ctx;
      const who = auth.user.name;
      const refs = [...list(body, 'nodes'), ...list(body, 'node')].map(nodeRef);
      const roles = await loadRoles(options.paths);
      const before = await Promise.all(refs.map((ref) => options.store.find(ref)));
      const deployed = await deployNodes(options.store, refs, roles, { role: field(body, 'role') || undefined, release: field(body, 'release') || undefined }, options.clock);
      for (const node of deployed) await auditNodeRequest(ctx, 'node.deploy', before.find((n) => n?.systemId === node.systemId) ?? null, node);
      options.log.info(`${who} deployed ${deployed.map((n) => n.hostname).join(', ')}`);
      const powerOn = !['false', '0', 'off', 'no'].includes(field(body, 'power_on').toLowerCase()) && !(form && field(body, 'power_on') === '');
      if (powerOn) {
        // In the background: the result of each power-on is an event on the node, seen live.
        for (const node of deployed) {
          void services
            .power(node.systemId, 'on', who)
            .then(() => auditRequest(ctx, 'power.on', { systemId: node.systemId, hostname: node.hostname }))
            .catch(() => undefined);
        }
      }
      return json({ deployed: deployed.map(summariseNode), powerOn });
    },
    formReply(_ctx, value) {
      const v = value as { deployed?: NodeSummary[] } | null;
      return v && Array.isArray(v.deployed) ? seeOther(`${BASE}/deploy?watch=${v.deployed.map((n) => n.systemId).join(',')}`) : undefined;
    },
  },
];
