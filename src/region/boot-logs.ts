/**
 * Reads what dnsmasq logged for `nodes why`: the journal of the two units on an installed
 * host (they log to syslog, which the journal keeps), or log files the admin names (a
 * dnsmasq `log-facility=FILE`, or /var/log/syslog on a host without journald).
 */
import * as fs from 'node:fs';
import { UecError, describeError } from '../core/errors';
import { runCommand, type CommandResult } from '../core/run-command';
import { parseDnsmasqLog, parseJournal, type WireEvent } from './boot-trace';

/** The units whose dnsmasq logs DHCP and TFTP (debian/uec-provisioning-{dhcpd,tftpd}.service). */
export const BOOT_LOG_UNITS = ['uec-provisioning-dhcpd', 'uec-provisioning-tftpd'] as const;

export interface BootLogs {
  events: WireEvent[];
  /** Where they came from, for the output: "journal" or the files. */
  source: string;
  /** Set when the journal could not be read: the trace then has the timeline only. */
  warning: string;
}

export type JournalReader = (args: readonly string[]) => Promise<CommandResult>;

const readJournal: JournalReader = (args) => runCommand('journalctl', args, { timeoutMs: 60_000 });

export function renderJournalArgs(since: Date): string[] {
  return [...BOOT_LOG_UNITS.flatMap((u) => ['-u', u]), '-o', 'json', '--no-pager', '--since', `@${Math.floor(since.getTime() / 1000)}`];
}

export async function loadBootLogs(options: { files: readonly string[]; since: Date; now: Date; journal?: JournalReader }): Promise<BootLogs> {
  const since = options.since.toISOString();
  if (options.files.length > 0) {
    const events: WireEvent[] = [];
    for (const file of options.files) {
      let text: string;
      try {
        text = await fs.promises.readFile(file, 'utf8');
      } catch (err) {
        throw new UecError('USAGE', `cannot read the dnsmasq log ${file}: ${describeError(err)}`, { cause: err });
      }
      events.push(...parseDnsmasqLog(text, options.now));
    }
    return { events: events.filter((e) => e.at >= since), source: options.files.join(', '), warning: '' };
  }
  let result: CommandResult;
  try {
    result = await (options.journal ?? readJournal)(renderJournalArgs(options.since));
  } catch (err) {
    return { events: [], source: 'journal', warning: `the journal could not be read (journalctl: ${describeError(err)}): DHCP and TFTP are left out; give dnsmasq's log with --log FILE` };
  }
  if (result.code !== 0) {
    const why = result.stderr.trim().split('\n')[0] || `exit status ${String(result.code)}`;
    return { events: [], source: 'journal', warning: `the journal could not be read (journalctl: ${why}): DHCP and TFTP are left out; give dnsmasq's log with --log FILE` };
  }
  return { events: parseJournal(result.stdout), source: 'journal', warning: '' };
}
