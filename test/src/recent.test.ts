import t from 'tap';
import { createRecentLoader } from '../../src/core/recent';

t.test('a recent loader reads at most once per period; concurrent calls share a read; a failed read is not kept', async (t) => {
  let clock = 10_000;
  let reads = 0;
  let fail = false;
  const load = createRecentLoader(
    async () => {
      reads++;
      if (fail) throw new Error(`read ${reads} failed`);
      return `value ${reads}`;
    },
    { maxAgeMs: 1000, now: () => clock },
  );
  t.same(await Promise.all([load(), load(), load()]), ['value 1', 'value 1', 'value 1'], 'concurrent calls share one read');
  clock += 999;
  t.equal(await load(), 'value 1', 'kept within the period');
  t.equal(reads, 1);
  clock += 1;
  t.equal(await load(), 'value 2', 'read again once the period is over');
  clock += 1000;
  fail = true;
  await t.rejects(load(), { message: 'read 3 failed' });
  fail = false;
  t.equal(await load(), 'value 4', 'the failure was not kept: the next call reads again');
  clock -= 5000;
  t.equal(await load(), 'value 5', 'a clock set back reads again rather than keeping a value for ever');
});
