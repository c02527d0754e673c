/**
 * Checks for values that end up inside generated config files. Each returns null when the
 * value is fine for that format, else a short reason. Nothing here escapes: a value that
 * would need escaping is refused, so no newline or quote can be smuggled into dnsmasq,
 * apache or preseed files.
 */
import { isIPv4 } from 'node:net';

export type FormatName = 'line' | 'hostname' | 'mac' | 'ipv4' | 'url' | 'interface' | 'path' | 'kernel-args' | 'word';

// Control characters are exactly what this must find.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * What no configuration value may hold, of any type: C0 and C1 control characters (newline,
 * tab, NEL), DEL, and the Unicode line and paragraph separators, which some readers (the
 * INI line parser, JavaScript, log viewers) take for line breaks.
 */
// eslint-disable-next-line no-control-regex
const LINE_BREAKING = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

export function checkNoLineBreaks(value: string): string | null {
  return LINE_BREAKING.test(value) ? 'contains a control character or line separator (newline, tab, U+2028, U+2029)' : null;
}

/**
 * A lone UTF-16 surrogate (a JSON body can carry "\ud894") is not a character: written as
 * UTF-8 it becomes U+FFFD, so the value would not read back as it was set.
 */
export function checkWellFormed(value: string): string | null {
  return /[\ud800-\udfff]/u.test(value) ? 'is not valid Unicode (it holds a lone UTF-16 surrogate)' : null;
}

/**
 * A value quoted for a one-line message: JSON.stringify, plus the characters it leaves raw
 * that could still break or hide a line (DEL, C1 controls, U+2028, U+2029).
 */
export function quoteValue(value: string): string {
  return JSON.stringify(value).replace(/[\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * A message made one line for a terminal or a log: line feeds, carriage returns, NEL and the
 * Unicode line and paragraph separators written as escapes. The CLI's last guard, whatever
 * quoted (or did not quote) the values in the message.
 */
export function escapeLineBreaks(message: string): string {
  return message.replace(/[\r\n\u0085\u2028\u2029]/g, (c) => (c === '\n' ? '\\n' : c === '\r' ? '\\r' : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
}

export function checkLine(value: string): string | null {
  if (CONTROL.test(value)) return 'contains a newline or control character';
  if (value.length > 4096) return 'is longer than 4096 characters';
  return null;
}

/** RFC 1123 host name: labels of letters, digits and inner hyphens, at most 253 characters. */
export function checkHostname(value: string): string | null {
  if (value.length === 0 || value.length > 253) return 'must be 1 to 253 characters';
  for (const label of value.replace(/\.$/, '').split('.')) {
    if (!/^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(label)) {
      return `label ${quoteValue(label)} is not a valid DNS label (letters, digits, inner hyphens, 1-63 characters)`;
    }
  }
  return null;
}

/** Six colon-separated hex octets, as dnsmasq and pxelinux expect. */
export function checkMac(value: string): string | null {
  return /^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$/.test(value) ? null : 'is not a MAC address like 52:54:00:12:34:56';
}

export function normaliseMac(value: string): string {
  return value.toLowerCase();
}

export function checkIPv4(value: string): string | null {
  return isIPv4(value) ? null : 'is not an IPv4 address';
}

/**
 * http(s) URL without spaces, quotes or control characters, at most 2048 characters: URLs go
 * on preseed, apache and mirror lines with a suffix, and those lines stop at 4096.
 */
export function checkUrl(value: string): string | null {
  if (value.length > 2048) return 'is longer than 2048 characters';
  if (/[\s"'`\\<>]/.test(value) || CONTROL.test(value)) return 'contains a space, quote, backslash or control character';
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'is not a URL';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'must be an http:// or https:// URL';
  if (!url.hostname) return 'has no host';
  return null;
}

/** Linux interface name: 1-15 characters, no slash, colon, space or dot-only names. */
export function checkInterface(value: string): string | null {
  if (!/^[A-Za-z0-9_.@-]{1,15}$/.test(value) || value === '.' || value === '..') {
    return 'is not a network interface name (1-15 letters, digits, "_", "-", ".", "@")';
  }
  return null;
}

/** An absolute path of at most 1024 characters (it goes on config lines with more around it). */
export function checkPath(value: string): string | null {
  if (!value.startsWith('/')) return 'must be an absolute path';
  if (value.length > 1024) return 'is longer than 1024 characters';
  if (CONTROL.test(value) || /["'\s\\]/.test(value)) return 'contains a space, quote, backslash or control character';
  if (value.split('/').includes('..')) return 'must not contain ".."';
  return null;
}

/** Kernel command line arguments: space-separated words, no quotes, no control characters. */
export function checkKernelArgs(value: string): string | null {
  if (CONTROL.test(value)) return 'contains a newline or control character';
  if (/["'`\\;$]/.test(value)) return 'contains a quote, backslash, ";" or "$"';
  return null;
}

/** Characters GRUB's script parser and iPXE's command line give meaning to. */
export function checkBootScriptChars(value: string): string | null {
  return /[{}|&<>#]/.test(value) ? 'contains a GRUB or iPXE script character ({ } | & < > #)' : null;
}

/**
 * [boot] kernel_args, the admin's extra arguments: what every boot file that carries them
 * accepts (pxelinux APPEND, GRUB linux, iPXE kernel). The schema and every renderer call this.
 */
export function checkExtraKernelArgs(value: string): string | null {
  if (value.length > 2048) return 'is longer than 2048 characters';
  return checkLine(value) ?? checkNoLineBreaks(value) ?? checkKernelArgs(value) ?? checkBootScriptChars(value);
}

/**
 * A bare token: letters, digits, dot, underscore, plus, hyphen; at most 64 characters. Words
 * become directory and file names (images/<os>/<release>/<arch>) and go on boot-loader lines
 * of at most 4096 characters, so an unbounded one was stored and then broke every boot file.
 */
export function checkWord(value: string): string | null {
  if (!/^[A-Za-z0-9._+-]+$/.test(value)) return 'must be letters, digits, ".", "_", "+" or "-"';
  return value.length > 64 ? 'is longer than 64 characters' : null;
}

export const FORMAT_CHECKS: Record<FormatName, (value: string) => string | null> = {
  line: checkLine,
  hostname: checkHostname,
  mac: checkMac,
  ipv4: checkIPv4,
  url: checkUrl,
  interface: checkInterface,
  path: checkPath,
  'kernel-args': checkExtraKernelArgs,
  word: checkWord,
};
