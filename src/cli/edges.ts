/**
 * `uec-provisioning edges`: the region's registry of provisioning servers on other hosts
 * (src/region/edges.ts). `edges add` prints the new edge's key once; the admin puts it on the
 * edge (provisioning.edge_key_file, 0600). Every change is audited (never the key).
 */
import { loadProcessActor, recordAudit, selectChanges } from '../core/audit';
import { usageError, type Command, type Session, type Values } from '../configurator/command';
import { createEdgeRegistry, publicEdge, type PublicEdge } from '../region/edges';

function strings(value: unknown): string[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value.map(String) : [String(value)];
}

function oneName(words: string, positionals: string[]): string {
  if (positionals.length !== 1) throw usageError(`${words} needs exactly one edge NAME`);
  return positionals[0]!;
}

function subnetsOf(words: string, values: Values): string[] {
  const subnets = strings(values.subnet);
  if (subnets.length === 0) throw usageError(`${words} needs at least one --subnet CIDR`);
  return subnets;
}

/** The table of `edges list` (pure). */
export function renderEdgeTable(edges: readonly PublicEdge[]): string {
  const rows = [['NAME', 'SUBNETS', 'LAST CONTACT', 'STATE'], ...edges.map((e) => [e.name, e.subnets.join(','), e.lastContact || 'never', e.revoked ? `revoked ${e.revokedAt}` : 'live'])];
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i < 3 ? cell.padEnd(widths[i]!) : cell)).join('  ')).join('\n') + '\n';
}

const audit = (session: Session) => ({ actor: loadProcessActor(session.io.env), log: session.log });

export const EDGE_COMMANDS: Command[] = [
  {
    words: ['edges', 'list'],
    args: '',
    summary: 'list the registered edges: subnets, last contact, revoked or live',
    options: {},
    optionHelp: [],
    async run(session, positionals) {
      if (positionals.length > 0) throw usageError('edges list takes no arguments');
      const edges = (await createEdgeRegistry(session.paths).list()).map(publicEdge);
      session.io.stdout(session.json ? `${JSON.stringify(edges, null, 2)}\n` : renderEdgeTable(edges));
      return 0;
    },
  },
  {
    words: ['edges', 'add'],
    args: 'NAME --subnet CIDR...',
    summary: "register an edge (a provisioning server on another host) and print its key once",
    options: { subnet: { type: 'string', multiple: true } },
    optionHelp: [['--subnet CIDR', 'a subnet the edge serves (repeat, or comma-separated); no overlap with another edge']],
    async run(session, positionals, values) {
      const name = oneName('edges add', positionals);
      const { edge, key } = await createEdgeRegistry(session.paths).add(name, subnetsOf('edges add', values));
      const { actor, log } = audit(session);
      await recordAudit(session.paths, actor, 'edge.register', { edge: edge.name }, selectChanges(null, { subnets: edge.subnets }), log);
      session.log.info(`registered edge ${edge.name} (${edge.subnets.join(', ')}); its key is printed once: put it on the edge, 0600, and set provisioning.edge_key_file there`);
      session.io.stdout(session.json ? `${JSON.stringify({ ...publicEdge(edge), key }, null, 2)}\n` : `${key}\n`);
      return 0;
    },
  },
  {
    words: ['edges', 'revoke'],
    args: 'NAME',
    summary: "revoke an edge's key: its next request to the region is refused",
    options: {},
    optionHelp: [],
    async run(session, positionals) {
      const name = oneName('edges revoke', positionals);
      const { before, after } = await createEdgeRegistry(session.paths).revoke(name);
      if (before.revokedAt) {
        session.log.info(`edge ${name} was already revoked at ${before.revokedAt}`);
        return 0;
      }
      const { actor, log } = audit(session);
      await recordAudit(session.paths, actor, 'edge.revoke', { edge: name }, selectChanges({ revoked: false }, { revoked: true }), log);
      session.log.info(`revoked edge ${name} at ${after.revokedAt}`);
      return 0;
    },
  },
  {
    words: ['edges', 'assign'],
    args: 'NAME --subnet CIDR...',
    summary: "set the subnets an edge serves (replaces its list)",
    options: { subnet: { type: 'string', multiple: true } },
    optionHelp: [['--subnet CIDR', 'a subnet the edge serves (repeat, or comma-separated); the list replaces the old one']],
    async run(session, positionals, values) {
      const name = oneName('edges assign', positionals);
      const { before, after } = await createEdgeRegistry(session.paths).assign(name, subnetsOf('edges assign', values));
      const changes = selectChanges({ subnets: before.subnets }, { subnets: after.subnets });
      if (Object.keys(changes).length === 0) {
        session.log.info(`edge ${name} already serves ${after.subnets.join(', ')}`);
        return 0;
      }
      const { actor, log } = audit(session);
      await recordAudit(session.paths, actor, 'edge.assign', { edge: name }, changes, log);
      session.log.info(`edge ${name} now serves ${after.subnets.join(', ')}`);
      return 0;
    },
  },
];
