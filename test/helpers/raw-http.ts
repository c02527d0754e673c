/** Requests the fetch API cannot send as asked: a body chunked without Content-Length, or one larger than a limit. */
import * as http from 'node:http';

export interface RawAnswer {
  /** The status, when an answer came before the connection closed. */
  status?: number;
  body?: string;
  /** The client-side error when none came (ECONNRESET, socket hang up…). */
  error?: string;
}

/**
 * POST `body` to `url`: with Content-Length, or (`chunked`) in 4 KiB chunks without it.
 * Resolves with the answer or the connection's error; never rejects.
 */
export function postRaw(url: string, body: Buffer, options: { chunked?: boolean; headers?: Record<string, string> } = {}): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const headers: Record<string, string> = { ...options.headers };
    if (!options.chunked) headers['Content-Length'] = String(body.length);
    const req = http.request(url, { method: 'POST', headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', (err) => resolve({ status: res.statusCode, error: err.message }));
    });
    req.on('error', (err) => resolve({ error: (err as NodeJS.ErrnoException).code ?? err.message }));
    if (options.chunked) {
      for (let at = 0; at < body.length; at += 4096) req.write(body.subarray(at, at + 4096));
      req.end();
    } else {
      req.end(body);
    }
  });
}
