/**
 * An edge's on-disk queue of what it must tell the region (issue 14 item 4): the installers'
 * status and disable-netboot call-backs it took, the boot events it saw, and enlistments it
 * took while the region was away. Each event gets a unique id; the region records an id once
 * (POST /api/v1/nodes/<id>/events with "id"), so a delivery repeated after a crash or a lost
 * answer changes nothing.
 *
 * One append-only file, EDGE_DIR/outbox.jsonl, one JSON line per record:
 *   {"event": {id, type, systemId, message, at, query?}}   appended and fdatasync'd before
 *                                                          the machine is answered 200
 *   {"done": "<id>"}                                       the region took it (or refused it
 *                                                          for good); appended after delivery
 * Loading cuts off a last line a kill left without its newline (that event was never
 * answered 200, so the machine tries again); the pending events are the events without a
 * "done", in the order they were taken. When nothing is pending the file is emptied.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { UecError, describeError } from '../core/errors';
import type { EdgeEventType } from '../contract/region-api';
import { readWholeLines } from './edge-cache';

const OUTBOX = 'outbox.jsonl';

export interface OutboxEvent {
  /** Unique: 22 base64url characters of random bytes. */
  id: string;
  /** An event of a node, or 'enlist' (an unknown machine; systemId ''). */
  type: EdgeEventType | 'enlist';
  systemId: string;
  message: string;
  /** ISO 8601: when the edge took it. */
  at: string;
  /** enlist only: the machine's query string (mac=…&buildarch=…), passed on as it came. */
  query?: string;
}

export interface Outbox {
  /** Stores the event durably (fdatasync) and resolves with it; only then may the machine be answered. */
  append(event: Omit<OutboxEvent, 'id' | 'at'>, at?: Date): Promise<OutboxEvent>;
  /** The events not yet delivered, oldest first. */
  pending(): readonly OutboxEvent[];
  /** The region took the event (or refused it for good): it is not sent again. */
  done(id: string): Promise<void>;
  /** Called after each append. */
  onAppend(listener: () => void): void;
  close(): Promise<void>;
}

type Record_ = { event: OutboxEvent } | { done: string };

function fail(message: string, cause?: unknown): UecError {
  return new UecError('STORE_FAILED', message, cause === undefined ? undefined : { cause });
}

export function newEventId(random: (size: number) => Buffer = randomBytes): string {
  return random(16).toString('base64url');
}

export async function openOutbox(dir: string): Promise<Outbox> {
  const file = path.join(dir, OUTBOX);
  await fs.promises.mkdir(dir, { recursive: true, mode: 0o700 });
  const whole = await readWholeLines(file);
  const pending = new Map<string, OutboxEvent>();
  let lineNo = 0;
  for (const raw of whole.text.split('\n')) {
    lineNo++;
    if (raw === '') continue;
    let record: Record_;
    try {
      record = JSON.parse(raw) as Record_;
    } catch (err) {
      throw fail(`edge outbox ${file} line ${lineNo} is not JSON: ${describeError(err)}`, err);
    }
    if ('event' in record && typeof record.event?.id === 'string') pending.set(record.event.id, record.event);
    else if ('done' in record && typeof record.done === 'string') pending.delete(record.done);
    else throw fail(`edge outbox ${file} line ${lineNo} is neither an event nor a delivery`);
  }
  const handle = await fs.promises.open(file, 'a+', 0o600);
  if (whole.keep !== whole.size) {
    await handle.truncate(whole.keep);
    await handle.sync();
  }
  let records = lineNo;
  const listeners: (() => void)[] = [];
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(work: () => Promise<T>): Promise<T> => {
    const run = queue.then(work);
    queue = run.catch(() => undefined);
    return run;
  };

  return {
    append: (input, at = new Date()) =>
      serial(async () => {
        const event: OutboxEvent = { id: newEventId(), type: input.type, systemId: input.systemId, message: input.message, at: at.toISOString(), ...(input.query !== undefined ? { query: input.query } : {}) };
        try {
          await handle.write(`${JSON.stringify({ event })}\n`);
          await handle.datasync();
        } catch (err) {
          throw fail(`cannot append to edge outbox ${file}: ${describeError(err)}`, err);
        }
        records++;
        pending.set(event.id, event);
        for (const listener of listeners) listener();
        return event;
      }),
    pending: () => [...pending.values()],
    done: (id) =>
      serial(async () => {
        if (!pending.has(id)) return;
        try {
          if (pending.size === 1 && records > 100) {
            // The last pending event delivered: start the file again rather than let it grow.
            await handle.truncate(0);
            records = 0;
          } else {
            await handle.write(`${JSON.stringify({ done: id })}\n`);
            records++;
          }
          // Not synced: a "done" lost in a crash means one more delivery, which the region ignores.
        } catch (err) {
          throw fail(`cannot record a delivery in edge outbox ${file}: ${describeError(err)}`, err);
        }
        pending.delete(id);
      }),
    onAppend: (listener) => void listeners.push(listener),
    close: () => serial(() => handle.close()),
  };
}
