/**
 * A stand-in for `journalctl -u uec-provisioning-tftpd -o json` (src/region/tftp-transfers.ts)
 * that keeps journalctl's semantics for the arguments the reader gives: --since @SECONDS
 * (records at or after that second), --after-cursor C (records after the one with cursor C),
 * each record with its __CURSOR and __REALTIME_TIMESTAMP. It records the arguments of each call.
 */
import type { CommandResult } from '../../src/core/run-command';

export interface FakeJournal {
  /** Append a line the TFTP dnsmasq wrote (as the journal stores its stderr: "dnsmasq-tftp[pid]: …"). */
  log(message: string, at?: Date): void;
  /** The reader to give watchTftpTransfers. */
  read(args: readonly string[]): Promise<CommandResult>;
  /** The arguments of each call so far. */
  calls: string[][];
  /** What the next calls answer instead (a failure, a cut-off), until set back to undefined. */
  answer: ((stdout: string) => CommandResult) | undefined;
  /** Resolve before each answer (to hold a read in progress). */
  gate: (() => Promise<void>) | undefined;
}

export function createFakeJournal(start = new Date('2026-12-06T15:00:00Z')): FakeJournal {
  const records: { cursor: string; micros: number; line: string }[] = [];
  let clock = start.getTime();
  const journal: FakeJournal = {
    calls: [],
    answer: undefined,
    gate: undefined,
    log(message, at) {
      clock = at ? at.getTime() : clock + 1000;
      const cursor = `s=fake;i=${(records.length + 1).toString(16)};t=${(clock * 1000).toString(16)}`;
      const micros = clock * 1000;
      records.push({ cursor, micros, line: JSON.stringify({ __CURSOR: cursor, __REALTIME_TIMESTAMP: String(micros), _SYSTEMD_UNIT: 'uec-provisioning-tftpd.service', SYSLOG_IDENTIFIER: 'dnsmasq', MESSAGE: message }) });
    },
    async read(args) {
      journal.calls.push([...args]);
      if (journal.gate) await journal.gate();
      const after = args.indexOf('--after-cursor');
      const since = args.indexOf('--since');
      let from = 0;
      if (after >= 0) {
        const i = records.findIndex((r) => r.cursor === args[after + 1]);
        if (i < 0) return { code: 1, signal: null, stdout: '', stderr: 'Failed to seek to cursor: Invalid argument\n' };
        from = i + 1;
      } else if (since >= 0) {
        const seconds = Number(String(args[since + 1]).replace(/^@/, ''));
        from = records.findIndex((r) => r.micros >= seconds * 1_000_000);
        if (from < 0) from = records.length;
      }
      const stdout = records
        .slice(from)
        .map((r) => `${r.line}\n`)
        .join('');
      return journal.answer ? journal.answer(stdout) : { code: 0, signal: null, stdout, stderr: '' };
    },
  };
  return journal;
}
