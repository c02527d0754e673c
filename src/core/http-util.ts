/**
 * Small helpers for the HTTP services (node:http, no framework): replies, bounded bodies,
 * bearer tokens, and a request log line that never contains a token.
 */
import * as fs from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream';

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

/**
 * Read size for a streamed file (a kernel or initrd): 256 KiB reads instead of the stream
 * default's 64 KiB, four times fewer reads, socket writes and stream callbacks per byte.
 * Larger reads cost more, not less, with many clients at once (scripts/bench-bootstorm/send-cost.ts,
 * 50 downloads at a time: 1 MiB reads doubled the CPU per GB and the peak RSS).
 */
export const FILE_CHUNK_BYTES = 256 * 1024;

export function send(res: ServerResponse, reply: Reply, method = 'GET'): void {
  if (reply.file !== undefined) {
    const size = reply.size ?? 0;
    res.writeHead(reply.status, { 'Content-Type': reply.type ?? 'application/octet-stream', 'Content-Length': String(size), ...reply.headers });
    if (method === 'HEAD' || size === 0) {
      res.end();
      return;
    }
    // Never more bytes than Content-Length promised (a file growing while it is served would
    // corrupt a kept-alive connection). pipeline() respects the socket's back-pressure and
    // closes the file when the client goes away mid-transfer (pipe() left it open).
    const stream = fs.createReadStream(reply.file, { highWaterMark: FILE_CHUNK_BYTES, end: size - 1 });
    // A file cut short since its stat, or a read error: the client must see a broken transfer.
    stream.once('end', () => {
      if (stream.bytesRead < size) res.destroy();
    });
    pipeline(stream, res, (err) => {
      if (err) res.destroy();
    });
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

/** A request body over its route's limit: answered 413, and the connection closed after the answer. */
export class BodyTooLargeError extends Error {
  readonly status = 413;
  constructor(readonly limit: number) {
    super(`request body over ${limit} bytes`);
  }
}

/** What is still read (and dropped) of a body over the limit before the 413 goes out, so the client sees it rather than a reset. */
const DRAIN_BYTES = 1024 * 1024;
const DRAIN_MS = 2000;

/**
 * The request body, at most `limit` bytes (enlistment and call-backs are tiny), with
 * Content-Length or chunked. A larger body rejects with BodyTooLargeError; the request is
 * never destroyed here: the rest is read and dropped (up to 1 MiB or 2 s more) so the caller
 * can answer 413 with `Connection: close` (`tooLargeHeaders`) and the client reads that answer.
 */
export function readBody(req: IncomingMessage, limit = 16 * 1024): Promise<string> {
  return new Promise((resolve, reject) => {
    if (req.readableEnded) return resolve('');
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (err?: Error) => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('close', onClose);
      clearTimeout(timer);
      if (over) {
        // Keep dropping what still arrives until the connection closes after the answer.
        req.on('data', () => undefined);
        reject(new BodyTooLargeError(limit));
      } else if (err) reject(err);
      else resolve(Buffer.concat(chunks).toString('utf8'));
    };
    const refuse = () => {
      over = true;
      chunks.length = 0;
      timer = setTimeout(finish, DRAIN_MS);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (over) {
        if (size > limit + DRAIN_BYTES) finish();
      } else if (size > limit) refuse();
      else chunks.push(chunk);
    };
    const onEnd = () => finish();
    const onClose = () => finish(Object.assign(new Error('the client closed the connection before the body ended'), { code: 'ECONNRESET' }));
    req.on('error', () => undefined); // a reset client: 'close' settles the promise
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('close', onClose);
    const declared = Number(req.headers['content-length'] ?? '0');
    if (declared > limit) {
      over = true;
      // Worth draining only when it ends soon; otherwise answer now.
      if (declared > limit + DRAIN_BYTES) finish();
      else timer = setTimeout(finish, DRAIN_MS);
    }
  });
}

/** Headers for the 413 answer: the connection is closed once the answer is sent. */
export const tooLargeHeaders: Readonly<Record<string, string>> = { Connection: 'close' };

/** The value of a JSON body that must be an object; null and a non-object are 400s like bad JSON. */
export function parseJsonObject(body: string): { value: Record<string, unknown> } | { error: string } {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return { error: 'the body is not valid JSON' };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return { error: 'the body must be a JSON object' };
  return { value: value as Record<string, unknown> };
}

/** A percent-decoded path segment, or null when its percent-encoding is malformed (a 400, never a 500). */
export function decodePathSegment(segment: string): string | null {
  try {
    return decodeURIComponent(segment);
  } catch {
    return null;
  }
}

/** The client's address, read when the request starts: the socket is gone once the connection closes. */
export function clientAddress(req: IncomingMessage): string {
  return (req.socket as IncomingMessage['socket'] | null)?.remoteAddress ?? '?';
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
