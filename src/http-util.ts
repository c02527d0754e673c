/**
 * Small helpers for the HTTP services (node:http, no framework): replies, bounded bodies,
 * bearer tokens, and a request log line that never contains a token.
 */
import * as fs from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface Reply {
  status: number;
  body: string | Buffer;
  /** Stream this file instead of body (kernel and initrd are tens of megabytes). */
  file?: string;
  size?: number;
  type?: string;
  headers?: Record<string, string>;
}

export function text(status: number, body: string, headers: Record<string, string> = {}): Reply {
  return { status, body: body.endsWith('\n') || body === '' ? body : `${body}\n`, type: 'text/plain; charset=utf-8', headers };
}

export function json(status: number, value: unknown, headers: Record<string, string> = {}): Reply {
  return { status, body: `${JSON.stringify(value)}\n`, type: 'application/json', headers };
}

export function send(res: ServerResponse, reply: Reply, method = 'GET'): void {
  if (reply.file !== undefined) {
    res.writeHead(reply.status, { 'Content-Type': reply.type ?? 'application/octet-stream', 'Content-Length': String(reply.size ?? 0), ...reply.headers });
    if (method === 'HEAD') {
      res.end();
      return;
    }
    const stream = fs.createReadStream(reply.file);
    stream.on('error', () => res.destroy());
    stream.pipe(res);
    return;
  }
  const body = typeof reply.body === 'string' ? Buffer.from(reply.body) : reply.body;
  res.writeHead(reply.status, {
    'Content-Type': reply.type ?? 'application/octet-stream',
    'Content-Length': String(body.length),
    'Cache-Control': 'no-store',
    ...reply.headers,
  });
  res.end(method === 'HEAD' ? undefined : body);
}

/** The request body, at most `limit` bytes (enlistment and call-backs are tiny). */
export async function readBody(req: IncomingMessage, limit = 16 * 1024): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw Object.assign(new Error(`request body over ${limit} bytes`), { status: 413 });
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The bearer token from Authorization, else the `token` query parameter (d-i's wget sends no headers). */
export function presentedToken(req: IncomingMessage, url: URL): string | null {
  const auth = req.headers.authorization;
  if (auth?.startsWith('Bearer ')) return auth.slice('Bearer '.length).trim();
  return url.searchParams.get('token');
}

/** The path and query for logs, with any token value replaced. */
export function loggablePath(url: URL): string {
  const safe = new URL(url.href);
  if (safe.searchParams.has('token')) safe.searchParams.set('token', '***');
  return `${safe.pathname}${safe.search}`;
}
