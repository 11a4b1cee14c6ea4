import { Interrupted } from './errors.js';

/**
 * The command's standard input (normally `process.stdin`): `service set|rotate` read a secret value from it,
 * and its end stops `audit tail --follow`.
 */
export interface InputStream {
  on(event: 'data', listener: (chunk: string | Uint8Array) => void): unknown;
  on(event: 'end' | 'close', listener: () => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
  removeListener(event: 'data', listener: (chunk: string | Uint8Array) => void): unknown;
  removeListener(event: 'end' | 'close', listener: () => void): unknown;
  removeListener(event: 'error', listener: (error: Error) => void): unknown;
  resume?(): unknown;
  pause?(): unknown;
  /** True for a terminal (a person typing), as on `process.stdin`. */
  readonly isTTY?: boolean;
}

/** Why {@link readAll} stopped without the whole input. */
export const TOO_LARGE = Symbol('too large');

/**
 * Every byte of `stream` until its end, or {@link TOO_LARGE} as soon as it exceeds `maxBytes` (the rest is
 * not read). Rejects with {@link Interrupted} when `signal` aborts. Leaves the stream paused and without the
 * listeners it added, so a process whose stdin is a terminal can still exit.
 */
export function readAll(
  stream: InputStream,
  maxBytes: number,
  signal: AbortSignal,
): Promise<Buffer | typeof TOO_LARGE> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const wipe = () => {
      for (const chunk of chunks) chunk.fill(0);
      chunks.length = 0;
    };
    const finish = (settle: () => void) => {
      stream.removeListener('data', onData);
      stream.removeListener('end', onEnd);
      stream.removeListener('close', onEnd);
      stream.removeListener('error', onError);
      signal.removeEventListener('abort', onAbort);
      stream.pause?.();
      settle();
    };
    const onData = (chunk: string | Uint8Array) => {
      const buffer = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.from(chunk);
      size += buffer.length;
      if (size > maxBytes) {
        buffer.fill(0);
        wipe();
        finish(() => resolve(TOO_LARGE));
        return;
      }
      chunks.push(buffer);
    };
    const onEnd = () =>
      finish(() => {
        const all = Buffer.concat(chunks);
        wipe();
        resolve(all);
      });
    const onError = (error: Error) =>
      finish(() => {
        wipe();
        reject(error);
      });
    const onAbort = () =>
      finish(() => {
        wipe();
        reject(new Interrupted());
      });
    if (signal.aborted) {
      reject(new Interrupted());
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('close', onEnd);
    stream.on('error', onError);
    stream.resume?.();
  });
}
