/**
 * The TFTP transfers for /metrics (src/region/tftp-transfers.ts): dnsmasq 2.90's TFTP lines
 * (the captures of fixtures/boot-trace/, through the parser `nodes why` uses) → bounded
 * result/kind pairs, and the journal read on from its cursor at each call: every line counted
 * once, a failing journal counting nothing, a read cut off keeping its complete records.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { parseDnsmasqLog, parseJournal } from '../../src/region/boot-trace';
import { TFTP_UNIT, renderTftpJournalArgs, selectCompleteRecords, selectLastCursor, selectTftpTransfers, watchTftpTransfers } from '../../src/region/tftp-transfers';
import { createFakeJournal } from '../helpers/fake-journal';

const FIXTURES = path.join(__dirname, 'fixtures/boot-trace');
const fixture = (name: string) => fs.readFileSync(path.join(FIXTURES, name), 'utf8');
const NOW = new Date(2026, 11, 6, 16, 0, 0);
const ROOT = '/var/lib/uec-provisioning/boot';

t.test("dnsmasq's TFTP lines → result and kind; DHCP and other lines are not transfers", async (t) => {
  t.same(selectTftpTransfers(parseDnsmasqLog(fixture('tftp.log'), NOW)), [
    { result: 'sent', kind: 'loader' },
    { result: 'sent', kind: 'image' },
    { result: 'not_found', kind: 'other' },
    { result: 'sent', kind: 'loader' },
  ], 'undionly.kpxe, images/x/linux, nosuch (not found), undionly.kpxe again; the "cannot access" line is none');
  t.same(selectTftpTransfers(parseDnsmasqLog(fixture('tftp-aborted.log'), NOW)), [
    { result: 'failed', kind: 'other' },
    { result: 'failed', kind: 'other' },
  ], 'two clients gone half-way: dnsmasq\'s "failed sending"');
  t.same(selectTftpTransfers(parseDnsmasqLog(fixture('dhcp-full.log'), NOW)), [], 'DHCP lines count nothing');
  const line = (message: string) => `Dec  6 15:17:52 dnsmasq-tftp[30942]: ${message}`;
  const kinds = [
    `sent ${ROOT}/shimx64.efi to 10.66.0.100`,
    `sent ${ROOT}/grub/grub.cfg-01-52-54-00-66-00-13 to 10.66.0.100`,
    `sent ${ROOT}/pxelinux.cfg/default to 10.66.0.100`,
    `sent ${ROOT}/images/debian/bookworm/amd64/initrd.gz to 10.66.0.100`,
    `file ${ROOT}/grub/grub.cfg-0A420064 not found for 10.66.0.100`,
    'error 8 User aborted the transfer received from 10.66.0.100',
  ];
  t.same(selectTftpTransfers(parseDnsmasqLog(kinds.map(line).join('\n'), NOW)), [
    { result: 'sent', kind: 'loader' },
    { result: 'sent', kind: 'config' },
    { result: 'sent', kind: 'config' },
    { result: 'sent', kind: 'image' },
    { result: 'not_found', kind: 'config' },
    { result: 'aborted', kind: 'other' },
  ], 'absolute paths under the installed TFTP root (the start-up line with the root is long gone when a scrape reads on)');
});

t.test('journalctl arguments: the first read from the service start, then on from the cursor', async (t) => {
  const since = new Date('2026-12-06T15:00:00.900Z');
  t.same(renderTftpJournalArgs({ since }), ['-u', TFTP_UNIT, '-o', 'json', '--no-pager', '--quiet', '--since', `@${Date.parse('2026-12-06T15:00:00Z') / 1000}`]);
  t.same(renderTftpJournalArgs({ cursor: 's=ab;i=12' }), ['-u', 'uec-provisioning-tftpd', '-o', 'json', '--no-pager', '--quiet', '--after-cursor', 's=ab;i=12']);
});

t.test('records: only complete lines of a cut-off read; the last cursor', async (t) => {
  t.equal(selectCompleteRecords('{"a":1}\n{"b":'), '{"a":1}\n');
  t.equal(selectCompleteRecords('{"b":'), '');
  t.equal(selectLastCursor('{"__CURSOR":"c1"}\n{"__CURSOR":"c2"}\n'), 'c2');
  t.equal(selectLastCursor('{"__CURSOR":"c1"}\n-- No entries --\n\n'), 'c1', 'a line that is not a record is skipped');
  t.equal(selectLastCursor(''), '');
});

t.test('each line is counted once across reads; a read with nothing new keeps the cursor', async (t) => {
  const journal = createFakeJournal();
  journal.log(`dnsmasq-tftp[9]: sent ${ROOT}/ipxe.efi to 10.66.0.100`, new Date('2026-12-06T14:59:00Z'));
  const read = watchTftpTransfers({ since: new Date('2026-12-06T15:00:00Z'), journal: journal.read });
  journal.log(`dnsmasq-tftp[9]: TFTP root is ${ROOT}  `, new Date('2026-12-06T15:00:01Z'));
  journal.log(`dnsmasq-tftp[9]: sent ${ROOT}/shimx64.efi to 10.66.0.100`);
  journal.log(`dnsmasq-tftp[9]: sent ${ROOT}/grubx64.efi to 10.66.0.100`);
  t.same(await read(), { transfers: [{ result: 'sent', kind: 'loader' }, { result: 'sent', kind: 'loader' }], problem: '' }, 'from the service start: the line before it is not counted');
  t.same(journal.calls[0]!.slice(-2), ['--since', `@${Date.parse('2026-12-06T15:00:00Z') / 1000}`]);
  journal.log(`dnsmasq-tftp[9]: file ${ROOT}/grub/grub.cfg-0A420064 not found for 10.66.0.100`);
  journal.log(`dnsmasq-tftp[9]: sent ${ROOT}/images/debian/bookworm/amd64/linux to 10.66.0.100`);
  t.same(await read(), { transfers: [{ result: 'not_found', kind: 'config' }, { result: 'sent', kind: 'image' }], problem: '' }, 'only the lines logged since');
  const cursor = journal.calls[1]!.at(-1)!;
  t.same(journal.calls[1]!.slice(-2), ['--after-cursor', cursor], 'the second read goes on from a cursor');
  t.same(await read(), { transfers: [], problem: '' }, 'nothing new: nothing counted');
  const last = journal.calls[2]!.at(-1)!;
  t.not(last, cursor, 'the cursor moved on to the last record read');
  t.same(await read(), { transfers: [], problem: '' });
  t.equal(journal.calls[3]!.at(-1), last, '… and stays there while nothing new is logged');
});

t.test('a journal that fails: nothing counted, the cursor kept; journalctl missing rejects', async (t) => {
  const journal = createFakeJournal();
  const read = watchTftpTransfers({ since: new Date('2026-12-06T15:00:00Z'), journal: journal.read });
  journal.log(`dnsmasq-tftp[9]: sent ${ROOT}/shimx64.efi to 10.66.0.100`);
  t.equal((await read()).transfers.length, 1);
  journal.log(`dnsmasq-tftp[9]: sent ${ROOT}/grubx64.efi to 10.66.0.100`);
  journal.answer = () => ({ code: 1, signal: null, stdout: '', stderr: 'Failed to open files: Permission denied\n' });
  t.same(await read(), { transfers: [], problem: 'journalctl -u uec-provisioning-tftpd: Failed to open files: Permission denied' });
  journal.answer = undefined;
  t.same(await read(), { transfers: [{ result: 'sent', kind: 'loader' }], problem: '' }, 'back: the line logged meanwhile is counted, once');
  const missing = watchTftpTransfers({ since: new Date(), journal: () => Promise.reject(Object.assign(new Error('spawn journalctl ENOENT'), { code: 'ENOENT' })) });
  await t.rejects(missing(), /ENOENT/);
});

t.test('a read cut off at the time limit counts its complete records and the next reads on after them', async (t) => {
  const journal = createFakeJournal();
  const read = watchTftpTransfers({ since: new Date('2026-12-06T15:00:00Z'), journal: journal.read, timeoutMs: 1000 });
  for (let i = 0; i < 3; i++) journal.log(`dnsmasq-tftp[9]: sent ${ROOT}/shimx64.efi to 10.66.0.${100 + i}`);
  // journalctl killed part-way: two records and half of the third reached the pipe.
  journal.answer = (stdout) => {
    const lines = stdout.split('\n');
    return { code: null, signal: 'SIGTERM', stdout: `${lines[0]}\n${lines[1]}\n${lines[2]!.slice(0, 40)}`, stderr: '' };
  };
  const cut = await read();
  t.equal(cut.transfers.length, 2, 'the two complete records');
  t.match(cut.problem, /cut off after 1000 ms/);
  journal.answer = undefined;
  t.same(await read(), { transfers: [{ result: 'sent', kind: 'loader' }], problem: '' }, 'the third, once');
  t.equal(parseJournal(selectCompleteRecords('{"__REALTIME_TIMESTAMP":"1","MESSAGE":"sent /a to 1.2.3.4"}')).length, 0, 'a record without its newline is not parsed');
});

t.test("the real journalctl takes the arguments (this machine's journal, whatever it holds)", { skip: !fs.existsSync('/usr/bin/journalctl') && 'journalctl is not installed' }, async (t) => {
  const read = watchTftpTransfers({ since: new Date(), timeoutMs: 20_000 });
  const got = await read();
  t.equal(got.problem, '', 'journalctl ran to its end with exit status 0');
});
