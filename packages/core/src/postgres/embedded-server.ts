import { chmod, unlink } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from '../types.js';

/**
 * A PostgreSQL wire-protocol server in front of one PGlite instance, on a UNIX socket, so that several
 * processes can use the one embedded database that a data folder holds (PGlite itself serves one process).
 *
 * PGlite is one backend with one session. Several client connections therefore take turns on it, and a turn
 * must never split what the protocol treats as one unit:
 * - an extended-protocol exchange (Parse, Bind, Describe, Execute ... Sync) runs as one batch: another
 *   connection's Parse between this connection's Parse and Bind would replace the unnamed statement (the
 *   `@electric-sql/pglite-socket` server queues single messages, and does exactly that when a large message
 *   arrives in several chunks);
 * - an open transaction (or an exchange ended by Flush instead of Sync) keeps the backend for its connection
 *   until it ends; a connection that goes away mid-transaction is rolled back.
 *
 * Session state is shared by every connection (one backend): `SET`, named prepared statements and `LISTEN`
 * are not per connection. AuthSec uses none of them; notifications do not reach other connections.
 */

/** What the server needs from PGlite. */
export interface WireBackend {
  /** Runs protocol messages, streaming the backend's answer. */
  execProtocolRawStream(
    message: Uint8Array,
    options: { onRawData: (data: Uint8Array) => void },
  ): Promise<void>;
  /** True inside a transaction block (also a failed one). */
  isInTransaction(): boolean;
}

/** Options of {@link startWireServer}. */
export interface WireServerOptions {
  /** Path of the UNIX socket to listen on; an old file there is removed first. */
  readonly socketPath: string;
  readonly logger: Logger;
  /**
   * A connection that holds the backend (open transaction) without sending anything while others wait is
   * closed (and rolled back) after this, ms. Default 30000.
   */
  readonly idleHolderTimeoutMs?: number;
  /** Largest accepted protocol message, bytes. Default 64 MiB. */
  readonly maxMessageBytes?: number;
  /**
   * Called when the backend throws (a JavaScript or WebAssembly failure, not an SQL error, which travels in
   * the protocol): PGlite may be unusable from then on, so the host should give the database up.
   */
  readonly onBackendError?: (error: unknown) => void;
}

/** A running {@link startWireServer}. */
export interface WireServer {
  readonly socketPath: string;
  /** Open client connections. */
  connections(): number;
  /** Stops listening, closes every connection and waits for the batch in progress. Idempotent. */
  close(): Promise<void>;
}

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;
const PROTOCOL_3 = 196608;

interface Connection {
  readonly id: number;
  readonly socket: Socket;
  buffer: Buffer;
  started: boolean;
  /** Messages of the batch being assembled. */
  group: Buffer[];
  /** The last batch run ended with Flush: the exchange continues until Sync. */
  awaitingSync: boolean;
  closed: boolean;
}

interface Batch {
  readonly conn: Connection;
  readonly data: Buffer;
  /** The connection is gone: end what it left open instead of running anything. */
  readonly cleanup?: boolean;
  /** The batch ends with Flush (the exchange is not finished). */
  readonly flush?: boolean;
}

const SYNC = Buffer.from([0x53, 0, 0, 0, 4]);

function simpleQuery(text: string): Buffer {
  const body = Buffer.from(`${text}\0`, 'utf8');
  const head = Buffer.alloc(5);
  head.write('Q', 0, 'latin1');
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

/** Starts serving `backend` on a UNIX socket. The socket file is made 0600. */
export async function startWireServer(backend: WireBackend, options: WireServerOptions): Promise<WireServer> {
  const { logger, socketPath } = options;
  const idleHolderTimeoutMs = options.idleHolderTimeoutMs ?? 30_000;
  const maxMessageBytes = options.maxMessageBytes ?? 64 * 1024 * 1024;
  const conns = new Set<Connection>();
  let queue: Batch[] = [];
  let holder: Connection | undefined;
  let running: Promise<void> | undefined;
  let idleTimer: NodeJS.Timeout | undefined;
  let nextId = 1;
  let closed = false;

  const clearIdleTimer = () => {
    if (idleTimer) clearTimeout(idleTimer);
    idleTimer = undefined;
  };

  const drop = (conn: Connection) => {
    if (conn.closed) return;
    conn.closed = true;
    conns.delete(conn);
    queue = queue.filter((b) => b.conn !== conn);
    if (holder === conn) {
      // Whatever it left open is ended before anyone else runs.
      queue.unshift({ conn, data: Buffer.alloc(0), cleanup: true });
    }
    if (!conn.socket.destroyed) conn.socket.destroy();
    pump();
  };

  const next = (): Batch | undefined => {
    if (holder) {
      const i = queue.findIndex((b) => b.conn === holder);
      return i === -1 ? undefined : queue.splice(i, 1)[0];
    }
    return queue.shift();
  };

  const runBatch = async (batch: Batch): Promise<void> => {
    const { conn } = batch;
    clearIdleTimer();
    if (batch.cleanup) {
      const ignore = () => {};
      if (conn.awaitingSync) await backend.execProtocolRawStream(SYNC, { onRawData: ignore });
      if (backend.isInTransaction()) {
        await backend.execProtocolRawStream(simpleQuery('ROLLBACK'), { onRawData: ignore });
      }
      conn.awaitingSync = false;
      holder = undefined;
      return;
    }
    await backend.execProtocolRawStream(batch.data, {
      // The view points into PGlite's memory, which the next statement reuses: copy before queueing.
      onRawData: (data) => {
        if (!conn.closed && data.length > 0) conn.socket.write(Buffer.from(data));
      },
    });
    conn.awaitingSync = batch.flush === true;
    holder = backend.isInTransaction() || conn.awaitingSync ? conn : undefined;
  };

  const loop = async () => {
    for (;;) {
      const batch = next();
      if (!batch) break;
      try {
        await runBatch(batch);
      } catch (error) {
        // A JavaScript-level failure (not an SQL error, which travels in the protocol): this connection's state
        // is unknown, so it is closed; a transaction it held is rolled back by drop().
        logger.warn('Embedded database: a connection failed and was closed', { error: String(error) });
        if (batch.cleanup) holder = undefined;
        else drop(batch.conn);
        options.onBackendError?.(error);
      }
    }
  };

  function pump(): void {
    if (running || closed) return;
    running = loop().finally(() => {
      running = undefined;
      if (closed || queue.length === 0) return;
      // Work queued while the loop was finishing.
      if (!holder || queue.some((b) => b.conn === holder)) {
        pump();
        return;
      }
      // Stopped because the holder has nothing queued while others wait: bound how long it may keep them.
      if (idleTimer) return;
      const idle = holder;
      idleTimer = setTimeout(() => {
        idleTimer = undefined;
        if (holder !== idle) return;
        logger.warn('Embedded database: a connection idle in a transaction blocked others and was closed');
        drop(idle);
      }, idleHolderTimeoutMs);
      idleTimer.unref();
    });
  }

  const enqueue = (conn: Connection, data: Buffer, flush = false) => {
    queue.push({ conn, data, flush });
    if (holder === conn) clearIdleTimer();
    pump();
  };

  const onData = (conn: Connection, chunk: Buffer) => {
    conn.buffer = conn.buffer.length === 0 ? chunk : Buffer.concat([conn.buffer, chunk]);
    while (!conn.closed) {
      const buf = conn.buffer;
      if (!conn.started) {
        if (buf.length < 8) return;
        const length = buf.readInt32BE(0);
        if (length < 8 || length > 10_000) return drop(conn);
        if (buf.length < length) return;
        const code = buf.readInt32BE(4);
        const message = buf.subarray(0, length);
        conn.buffer = buf.subarray(length);
        if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
          conn.socket.write('N');
        } else if (code === PROTOCOL_3) {
          conn.started = true;
          enqueue(conn, Buffer.from(message));
        } else {
          // Cancel requests (nothing to cancel: one statement runs at a time) and unknown protocols.
          if (code !== CANCEL_REQUEST) logger.warn('Embedded database: unknown startup message refused');
          return drop(conn);
        }
        continue;
      }
      if (buf.length < 5) return;
      const length = buf.readInt32BE(1);
      if (length < 4 || length > maxMessageBytes) return drop(conn);
      if (buf.length < length + 1) return;
      const type = String.fromCharCode(buf[0] ?? 0);
      const message = buf.subarray(0, length + 1);
      conn.buffer = buf.subarray(length + 1);
      if (type === 'X') return drop(conn);
      conn.group.push(Buffer.from(message));
      // Sync and a simple Query end a unit of work; Flush asks for the answers so far and keeps the backend.
      if (type === 'S' || type === 'Q' || type === 'H') {
        const data = conn.group.length === 1 ? (conn.group[0] as Buffer) : Buffer.concat(conn.group);
        conn.group = [];
        enqueue(conn, data, type === 'H');
      }
    }
  };

  await unlink(socketPath).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
  });
  const server: Server = createServer((socket) => {
    if (closed) {
      socket.destroy();
      return;
    }
    const conn: Connection = {
      id: nextId++,
      socket,
      buffer: Buffer.alloc(0),
      started: false,
      group: [],
      awaitingSync: false,
      closed: false,
    };
    conns.add(conn);
    // Serving others never keeps this process alive by itself: when it exits, another process takes over.
    socket.unref();
    socket.on('data', (chunk: Buffer) => onData(conn, chunk));
    socket.on('error', () => drop(conn));
    socket.on('close', () => drop(conn));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (error) => logger.warn('Embedded database socket error', { error: String(error) }));
  server.unref();
  await chmod(socketPath, 0o600);

  return {
    socketPath,
    connections: () => conns.size,
    async close() {
      if (closed) return;
      closed = true;
      clearIdleTimer();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const conn of [...conns]) {
          conn.closed = true;
          conn.socket.destroy();
        }
        conns.clear();
        queue = [];
      });
      await running;
      // A transaction left open by a connection that was cut is not committed.
      if (backend.isInTransaction()) {
        await backend.execProtocolRawStream(simpleQuery('ROLLBACK'), { onRawData: () => {} }).catch(() => {});
      }
      await unlink(socketPath).catch(() => {});
    },
  };
}
