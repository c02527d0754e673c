/**
 * One HTTP/1.1 request written byte for byte on a TCP socket: any method, any target (raw
 * unicode, bad percent-encoding), any headers (Content-Length that lies, duplicated, chunked
 * framing that is wrong). fetch and http.request refuse most of that.
 */
import * as net from 'node:net';

export interface RawRequest {
  method: string;
  target: string;
  headers: [string, string][];
  body: Buffer;
  /**
   * The framing promises more body than is sent (Content-Length too large): a server rightly
   * waits for the rest, so no answer within the time limit is no fault.
   */
  incomplete?: boolean;
}

export interface RawReply {
  /** The status of the first answer, when one came. */
  status?: number;
  /** The answer's body as text (to check the one-line error), when one came. */
  body: string;
  /** No answer and the server closed the connection (it may, for a malformed request). */
  closed: boolean;
  /** Nothing at all within the time limit. */
  timedOut: boolean;
}

export function sendRaw(port: number, request: RawRequest, timeoutMs = request.incomplete ? 1000 : 5000): Promise<RawReply> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = (timedOut: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const raw = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(raw);
      const split = raw.indexOf('\r\n\r\n');
      const body = split >= 0 ? Buffer.from(raw.slice(split + 4), 'latin1').toString('utf8') : '';
      resolve({ status: m ? Number(m[1]) : undefined, body, closed: !m && !timedOut, timedOut: timedOut && !m });
    };
    const timer = setTimeout(() => finish(true), timeoutMs);
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      // An event stream never ends: the status line and headers are the answer.
      if (/^HTTP\/1\.[01] \d{3}[^]*\r\n\r\n/.test(Buffer.concat(chunks).toString('latin1')) && /text\/event-stream/i.test(Buffer.concat(chunks).toString('latin1'))) finish(false);
    });
    socket.on('error', () => finish(false));
    socket.on('close', () => finish(false));
    const head = [`${request.method} ${request.target} HTTP/1.1`, 'Host: 127.0.0.1', ...request.headers.map(([k, v]) => `${k}: ${v}`), 'Connection: close', '', ''].join('\r\n');
    // No half-close: Node's server ends a half-closed connection before an answer that takes a
    // moment (an await) is written, which would look like no answer at all.
    socket.write(Buffer.concat([Buffer.from(head, 'utf8'), request.body]));
  });
}
