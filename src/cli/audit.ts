/** `uec-provisioning audit`: read the audit log (docs/audit.md), newest first, filtered. */
import { AUDIT_LOG, AUDIT_READ_LIMIT, formatAuditEntry, loadAuditEntries, parseSince, selectAuditEntries } from '../core/audit';
import { usageError, type Command, type Values } from '../configurator/command';

function optional(values: Values, key: string): string | undefined {
  const v = values[key];
  return typeof v === 'string' ? v : undefined;
}

export const AUDIT_COMMANDS: Command[] = [
  {
    words: ['audit'],
    args: '[--actor X] [--action Y] [--since T]',
    summary: 'show who changed what (the audit log), newest first',
    options: { actor: { type: 'string' }, action: { type: 'string' }, target: { type: 'string' }, since: { type: 'string' }, limit: { type: 'string' } },
    optionHelp: [
      ['--actor X', 'only changes by actors whose name holds X (admin, web:admin, debconf, unix:alice)'],
      ['--action Y', 'only this action (node.add) or group (node)'],
      ['--target Z', 'only changes whose target holds Z (system id, hostname, key, user)'],
      ['--since T', 'only changes at or after T: an ISO 8601 date or time, or an age (30m, 12h, 7d)'],
      ['--limit N', 'at most N entries (default all that were read)'],
    ],
    async run(session, positionals, values) {
      if (positionals.length > 0) throw usageError(`audit takes no arguments (got ${JSON.stringify(positionals[0])})`);
      const sinceText = optional(values, 'since');
      const since = sinceText === undefined ? undefined : parseSince(sinceText, new Date());
      if (since === null) throw usageError(`--since ${JSON.stringify(sinceText)} is neither an ISO 8601 date/time nor an age such as 12h or 7d`);
      const limitText = optional(values, 'limit');
      const limit = limitText === undefined ? Infinity : Number(limitText);
      if (limitText !== undefined && !(Number.isInteger(limit) && limit > 0)) throw usageError(`--limit ${JSON.stringify(limitText)} is not a positive whole number`);
      const read = await loadAuditEntries(session.paths);
      const entries = selectAuditEntries(read.entries, { actor: optional(values, 'actor'), action: optional(values, 'action'), target: optional(values, 'target'), since }).slice(0, limit);
      if (read.partial) session.log.warn(`${AUDIT_LOG} is larger than ${AUDIT_READ_LIMIT / 1024 / 1024} MiB: only its last ${AUDIT_READ_LIMIT / 1024 / 1024} MiB were read (older entries: read the file itself, and its rotated copies)`);
      if (read.malformed > 0) session.log.warn(`${read.malformed} line(s) of ${AUDIT_LOG} are not audit entries; skipped`);
      if (session.json) session.io.stdout(`${JSON.stringify(entries, null, 2)}\n`);
      else for (const e of entries) session.io.stdout(`${formatAuditEntry(e)}\n`);
      return 0;
    },
  },
];
