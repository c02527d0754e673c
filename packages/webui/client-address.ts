/**
 * Who is asking: the socket peer, unless the peer is a trusted reverse proxy (apache2 on the
 * same host by default, webui.trusted_proxies), in which case the last X-Forwarded-For hop
 * (the address the proxy itself saw) and its X-Forwarded-Proto. A client that talks to the
 * service directly cannot change its address or the cookie's Secure flag with these headers.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { isIP } from 'node:net';

export const DEFAULT_TRUSTED_PROXIES = '127.0.0.1 ::1';

export interface ClientInfo {
  /** The address the login throttle and the logs use. */
  address: string;
  /** The client reached the proxy over https: the session cookie gets Secure. */
  secure: boolean;
}

/** One spelling per address: an IPv4-mapped IPv6 peer (::ffff:127.0.0.1) is the IPv4 address. */
export function normaliseAddress(address: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  return mapped ? mapped[1]! : address.toLowerCase();
}

/** The trusted proxies setting: IPv4 or IPv6 addresses separated by spaces or commas; null when a word is not one (pure). */
export function parseTrustedProxies(value: string): string[] | null {
  const words = value.split(/[\s,]+/).filter(Boolean);
  return words.every((w) => isIP(w) !== 0) ? words.map(normaliseAddress) : null;
}

/** The config check of webui.trusted_proxies: null when fine, else why. */
export function checkTrustedProxies(value: string): string | null {
  const bad = value.split(/[\s,]+/).filter(Boolean).find((w) => isIP(w) === 0);
  return bad === undefined ? null : `${JSON.stringify(bad)} is not an IPv4 or IPv6 address (list addresses separated by spaces)`;
}

function lastValue(header: string | string[] | undefined): string {
  const joined = Array.isArray(header) ? header.join(',') : (header ?? '');
  const parts = joined.split(',');
  return (parts[parts.length - 1] ?? '').trim();
}

/** The client of a request from `peer` with these headers (pure). */
export function selectClient(peer: string, headers: IncomingHttpHeaders, trusted: readonly string[]): ClientInfo {
  const address = normaliseAddress(peer);
  if (!trusted.includes(address)) return { address, secure: false };
  const hop = lastValue(headers['x-forwarded-for']);
  return {
    address: hop && isIP(hop) !== 0 ? normaliseAddress(hop) : address,
    secure: lastValue(headers['x-forwarded-proto']).toLowerCase() === 'https',
  };
}
