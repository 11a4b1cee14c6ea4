/** A failed outbound request (key set, metadata or introspection). Internal: callers map it to a coded error. */
export class FetchFailure extends Error {
  /** HTTP status when the server answered, `undefined` for network errors, timeouts and refusals. */
  readonly status: number | undefined;

  constructor(message: string, status?: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FetchFailure';
    this.status = status;
  }
}

/** What every outbound request of one verifier shares. */
export interface HttpContext {
  readonly fetch: typeof fetch;
  /** Per-request deadline, covering the body too. */
  readonly timeoutMs: number;
  /** Largest response body read. */
  readonly maxBytes: number;
  /** Aborted when the verifier closes. */
  readonly signal: AbortSignal;
}

/** One outbound request. */
export interface JsonRequest {
  readonly method?: 'GET' | 'POST';
  readonly headers?: Record<string, string>;
  readonly body?: string;
}

const decoder = new TextDecoder('utf-8', { fatal: true });

async function readLimited(response: Response, maxBytes: number, abort: () => void): Promise<Uint8Array> {
  const reader = response.body?.getReader();
  if (!reader) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      // Stop the transfer itself, not only our reading of it: a hostile server could stream forever.
      abort();
      await reader.cancel().catch(() => {});
      throw new FetchFailure(`response body exceeds ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

/**
 * Fetches `url` and parses a JSON body of a 200 response, within the context's deadline and byte limit.
 * Redirects are refused (a redirect could move a key-set request to a host nobody configured). Throws
 * {@link FetchFailure} for every failure, with `status` set when the server answered something other than 200.
 */
export async function fetchJson(url: string, ctx: HttpContext, request: JsonRequest = {}): Promise<unknown> {
  if (ctx.signal.aborted) throw new FetchFailure('the token verifier is closed');
  const controller = new AbortController();
  const abort = () => controller.abort();
  ctx.signal.addEventListener('abort', abort, { once: true });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, ctx.timeoutMs);
  timer.unref?.();
  const doFetch = ctx.fetch;
  try {
    const response = await doFetch(url, {
      method: request.method ?? 'GET',
      headers: { accept: 'application/json', ...request.headers },
      body: request.body,
      redirect: 'error',
      signal: controller.signal,
    });
    if (response.status !== 200) {
      await response.body?.cancel().catch(() => {});
      throw new FetchFailure(`unexpected HTTP status ${response.status}`, response.status);
    }
    const declared = Number(response.headers.get('content-length') ?? Number.NaN);
    if (declared > ctx.maxBytes) {
      abort();
      throw new FetchFailure(`response body exceeds ${ctx.maxBytes} bytes`);
    }
    const bytes = await readLimited(response, ctx.maxBytes, abort);
    try {
      return JSON.parse(decoder.decode(bytes));
    } catch (cause) {
      throw new FetchFailure('response body is not JSON', undefined, { cause });
    }
  } catch (error) {
    if (timedOut)
      throw new FetchFailure(`no complete response within ${ctx.timeoutMs} ms`, undefined, { cause: error });
    if (ctx.signal.aborted)
      throw new FetchFailure('the token verifier is closed', undefined, { cause: error });
    if (error instanceof FetchFailure) throw error;
    throw new FetchFailure('request failed', undefined, { cause: error });
  } finally {
    clearTimeout(timer);
    ctx.signal.removeEventListener('abort', abort);
  }
}

/** True for a plain JSON object (not an array, not null). */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
