/**
 * The TFTP transfers for /metrics (docs/metrics.md, "TFTP"): the TFTP-only dnsmasq has no
 * TFTP counters of its own, so its log lines (`sent … to …`, `failed sending … to …`, `file …
 * not found for …`, `error N … received from …`) are counted, read from the journal of
 * uec-provisioning-tftpd a little at each scrape. The lines are parsed by boot-trace.ts's
 * parser, the one `nodes why` uses; this module only selects what to count and reads on from
 * where the last read stopped (the journal's cursor).
 */
import type { TftpRead, TftpTransfer } from '../core/metrics';
import { runCommand } from '../core/run-command';
import type { JournalReader } from './boot-logs';
import { parseJournal, selectTftpFileRole, type WireEvent } from './boot-trace';

/** The TFTP-only dnsmasq's unit (debian/uec-provisioning-tftpd.service). */
export const TFTP_UNIT = 'uec-provisioning-tftpd';
/** A scrape waits at most this long for journalctl; what came before the cut-off still counts. */
export const TFTP_READ_TIMEOUT_MS = 1000;

const KIND_OF_ROLE = { loader: 'loader', config: 'config', kernel: 'image', other: 'other' } as const;

/** Pure: the TFTP transfers among dnsmasq's events (DHCP lines and the rest left out). */
export function selectTftpTransfers(events: readonly WireEvent[]): TftpTransfer[] {
  const out: TftpTransfer[] = [];
  for (const e of events) {
    if (e.source !== 'tftp') continue;
    const kind = KIND_OF_ROLE[selectTftpFileRole(e.file)];
    if (e.kind === 'tftp-sent') out.push({ result: 'sent', kind });
    else if (e.detail === 'not found') out.push({ result: 'not_found', kind });
    else if (e.detail === 'failed sending') out.push({ result: 'failed', kind });
    else out.push({ result: 'aborted', kind });
  }
  return out;
}

/** Pure: journalctl's arguments, on from a cursor, or (the first read) from a time. */
export function renderTftpJournalArgs(from: { cursor: string } | { since: Date }): string[] {
  const start = 'cursor' in from ? ['--after-cursor', from.cursor] : ['--since', `@${Math.floor(from.since.getTime() / 1000)}`];
  return ['-u', TFTP_UNIT, '-o', 'json', '--no-pager', '--quiet', ...start];
}

/** Pure: the complete records of `journalctl -o json` output (a read cut off mid-record loses that record, never half of it). */
export function selectCompleteRecords(stdout: string): string {
  return stdout.slice(0, stdout.lastIndexOf('\n') + 1);
}

/** Pure: the cursor of the last record in `journalctl -o json` output, '' when it has none. */
export function selectLastCursor(records: string): string {
  const lines = records.split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]!.trim();
    if (!line) continue;
    try {
      const cursor = (JSON.parse(line) as { __CURSOR?: unknown }).__CURSOR;
      if (typeof cursor === 'string' && cursor) return cursor;
    } catch {
      // Not a record: keep looking.
    }
  }
  return '';
}

/**
 * The reader serve registers as the metrics' readTftpTransfers: each call reads the journal
 * of uec-provisioning-tftpd from where the last one stopped (the first: from `since`, the
 * service's start), at most `timeoutMs`. A read cut off keeps the complete records it got and
 * the next goes on after them; journalctl failing (or missing) counts nothing and moves nothing.
 * Calls must not overlap (the metrics module runs one at a time).
 */
export function watchTftpTransfers(options: { since: Date; journal?: JournalReader; timeoutMs?: number }): () => Promise<TftpRead> {
  const timeoutMs = options.timeoutMs ?? TFTP_READ_TIMEOUT_MS;
  const journal: JournalReader = options.journal ?? ((args) => runCommand('journalctl', args, { timeoutMs }));
  let cursor = '';
  return async () => {
    const args = renderTftpJournalArgs(cursor ? { cursor } : { since: options.since });
    // A journalctl that cannot be started (ENOENT) rejects: the scrape says uecp_tftp_log_up 0.
    const result = await journal(args);
    const cutOff = result.signal !== null;
    if (!cutOff && result.code !== 0) {
      const why = result.stderr.trim().split('\n')[0] || `exit status ${String(result.code)}`;
      return { transfers: [], problem: `journalctl -u ${TFTP_UNIT}: ${why}` };
    }
    const records = cutOff ? selectCompleteRecords(result.stdout) : result.stdout;
    cursor = selectLastCursor(records) || cursor;
    const transfers = selectTftpTransfers(parseJournal(records));
    return { transfers, problem: cutOff ? `journalctl -u ${TFTP_UNIT}: cut off after ${timeoutMs} ms (the next scrape reads on)` : '' };
  };
}
