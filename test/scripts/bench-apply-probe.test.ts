/** The bench's DHCP prober (scripts/bench-apply/dhcp-probe.ts): the DISCOVER it sends, the OFFER it reads. */
import t from 'tap';
import { parseOffer, renderDiscover } from '../../scripts/bench-apply/dhcp-probe';

const XID = Buffer.from([1, 2, 3, 4]);

t.test('a DISCOVER: BOOTREQUEST, broadcast flag, the MAC as chaddr, message type 1', async (t) => {
  const p = renderDiscover('52:54:00:ab:cd:ef', XID);
  t.same([p[0], p[1], p[2], p.readUInt16BE(10)], [1, 1, 6, 0x8000]);
  t.same(p.subarray(4, 8), XID);
  t.same([...p.subarray(28, 34)], [0x52, 0x54, 0x00, 0xab, 0xcd, 0xef]);
  t.same([...p.subarray(236, 244)], [99, 130, 83, 99, 53, 1, 1, 255]);
});

t.test('an OFFER for our xid gives its address; anything else gives null', async (t) => {
  const offer = Buffer.alloc(300);
  offer[0] = 2;
  XID.copy(offer, 4);
  Buffer.from([10, 32, 1, 7]).copy(offer, 16);
  Buffer.from([99, 130, 83, 99, 0, 1, 4, 255, 255, 255, 0, 53, 1, 2, 255]).copy(offer, 236);
  t.equal(parseOffer(offer, XID), '10.32.1.7', 'pad and another option skipped');
  t.equal(parseOffer(offer, Buffer.from([9, 9, 9, 9])), null, 'another exchange');
  const ack = Buffer.from(offer);
  ack[236 + 13] = 5;
  t.equal(parseOffer(ack, XID), null, 'an ACK is not an offer');
  t.equal(parseOffer(offer.subarray(0, 100), XID), null, 'too short');
});
