/**
 * The load side: callers that speak MCP over Streamable HTTP in the legacy protocol era (`2025-11-25`): a
 * stateful session per caller (`initialize`, `notifications/initialized`, with `fetch`), then `tools/call`
 * after `tools/call` over `node:http` with a keep-alive agent (a fraction of `fetch`'s client CPU, which on a
 * 2-core machine is CPU the servers under test do not get), each answer classified against the decision the
 * caller's grants imply.
 */
import { Agent, request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Caller, expectedAllowed, expectedText, type FaultTool, toolOf } from './world.js';

const PROTOCOL_VERSION = '2025-11-25';

/** How one `tools/call` was answered. */
export type OutcomeKind =
  /** Allowed: the tool's own answer. */
  | 'allowed'
  /** Denied: an `isError` result with `authsec/error` code `PERMISSION_DENIED`. */
  | 'denied'
  /** Refused before any decision: HTTP 503, body code `SERVICE_UNAVAILABLE`, with `Retry-After`. */
  | 'refused'
  /** Refused at the decision: an `isError` result with `authsec/error` code `SERVICE_UNAVAILABLE`. */
  | 'refused-in-call'
  /** Anything else (another status, a malformed answer, a connection error): a failure of the run. */
  | 'error';

/** One call and its answer. */
export interface Outcome {
  readonly caller: number;
  readonly tool: FaultTool;
  /** The call's arguments (unique per call: their digest identifies its audit row). */
  readonly args: { readonly call: string };
  readonly kind: OutcomeKind;
  /** For allowed and denied: whether that was the decision the grants imply. */
  readonly right: boolean;
  /** When the answer arrived (`Date.now()`). */
  readonly at: number;
  /** For `error`: what was wrong (status, start of the body or the error). */
  readonly detail?: string;
}

/** The headers of an MCP POST with `token` (and the session, once there is one). */
export function mcpHeaders(token: string, sessionId?: string): Record<string, string> {
  return {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'mcp-protocol-version': PROTOCOL_VERSION,
    authorization: `Bearer ${token}`,
    ...(sessionId ? { 'mcp-session-id': sessionId } : {}),
  };
}

interface RpcAnswer {
  readonly result?: {
    readonly isError?: boolean;
    readonly content?: readonly { readonly type: string; readonly text?: string }[];
    readonly _meta?: Record<string, { readonly code?: string } | undefined>;
  };
  readonly error?: { readonly code: number; readonly message: string };
}

/** The JSON-RPC response in a body: plain JSON, or the `data:` line of an event stream that carries it. */
function parseRpc(contentType: string, text: string): RpcAnswer | undefined {
  if (!contentType.includes('text/event-stream')) return JSON.parse(text) as RpcAnswer;
  for (const line of text.split('\n')) {
    if (!line.startsWith('data:')) continue;
    const message = JSON.parse(line.slice(5)) as RpcAnswer;
    if ('result' in message || 'error' in message) return message;
  }
  return undefined;
}

/** Sends `initialize` with `token` (no session yet): the raw response. */
export function sendInitialize(url: string, token: string): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: mcpHeaders(token),
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: {
        protocolVersion: PROTOCOL_VERSION,
        capabilities: {},
        clientInfo: { name: 'authsec-fault-suite', version: '1.0.0' },
      },
    }),
  });
}

/** Opens the caller's session at `url`; returns its id. Throws with the status when refused. */
export async function openSession(url: string, token: string): Promise<string> {
  const init = await sendInitialize(url, token);
  const text = await init.text();
  const sessionId = init.headers.get('mcp-session-id');
  if (init.status !== 200 || !sessionId) {
    throw new Error(`initialize answered HTTP ${init.status}: ${text.slice(0, 200)}`);
  }
  const initialized = await fetch(url, {
    method: 'POST',
    headers: mcpHeaders(token, sessionId),
    body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
  });
  await initialized.arrayBuffer();
  if (initialized.status !== 202)
    throw new Error(`notifications/initialized answered HTTP ${initialized.status}`);
  return sessionId;
}

/** Keep-alive connections for the calls, as many as there are callers at once. */
const agent = new Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY });

interface Answer {
  readonly status: number;
  readonly contentType: string;
  readonly retryAfter: string | undefined;
  readonly text: string;
}

/** POSTs `body` to `url` on the keep-alive agent; rejects on a connection error. */
function post(url: URL, headers: Record<string, string>, body: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: 'POST', agent, headers: { ...headers, 'content-length': Buffer.byteLength(body) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            contentType: res.headers['content-type'] ?? '',
            retryAfter: res.headers['retry-after'],
            text: Buffer.concat(chunks).toString('utf8'),
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Calls `tool` once in the session and classifies the answer. */
export async function callTool(
  url: URL,
  caller: Caller,
  sessionId: string,
  tool: FaultTool,
  id: number,
  args: { readonly call: string },
): Promise<Outcome> {
  const base = { caller: caller.index, tool, args };
  const fail = (detail: string): Outcome => ({
    ...base,
    kind: 'error',
    right: false,
    at: Date.now(),
    detail,
  });
  let response: Answer;
  try {
    response = await post(
      url,
      mcpHeaders(caller.token, sessionId),
      JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: tool, arguments: args } }),
    );
  } catch (error) {
    return fail(`request failed: ${String(error)}`);
  }
  const { status, text } = response;
  const at = Date.now();
  if (status === 503) {
    let code: unknown;
    try {
      code = (JSON.parse(text) as { code?: unknown }).code;
    } catch {
      return fail(`503 without a JSON body: ${text.slice(0, 200)}`);
    }
    if (code !== 'SERVICE_UNAVAILABLE') return fail(`503 with code ${String(code)}`);
    if (response.retryAfter === undefined) return fail('503 without Retry-After');
    return { ...base, kind: 'refused', right: true, at };
  }
  if (status !== 200) return fail(`HTTP ${status}: ${text.slice(0, 200)}`);
  let answer: RpcAnswer | undefined;
  try {
    answer = parseRpc(response.contentType, text);
  } catch {
    return fail(`unparsable answer: ${text.slice(0, 200)}`);
  }
  const result = answer?.result;
  if (!result) return fail(`no result: ${text.slice(0, 200)}`);
  const allowed = expectedAllowed(caller, tool);
  if (result.isError) {
    const code = result._meta?.['authsec/error']?.code;
    if (code === 'SERVICE_UNAVAILABLE') return { ...base, kind: 'refused-in-call', right: true, at };
    if (code === 'PERMISSION_DENIED') return { ...base, kind: 'denied', right: !allowed, at };
    return fail(`isError result with code ${String(code)}: ${result.content?.[0]?.text ?? ''}`);
  }
  const said = result.content?.[0]?.text;
  return { ...base, kind: 'allowed', right: allowed && said === expectedText(caller, tool), at };
}

/** Options of {@link drive}. */
export interface DriveOptions {
  /** The MCP URL each caller talks to. */
  readonly urlOf: (caller: Caller) => string;
  /** Whether a caller should make another call (asked before each one). */
  readonly more: () => boolean;
  /** Receives every outcome, as it arrives. */
  readonly record: (outcome: Outcome) => void;
  /** Pause after a refusal before the next call, ms (a client backing off). Default 50. */
  readonly backoffMs?: number;
}

/**
 * Runs every caller concurrently, each one call at a time in its own session (opened first), until `more()`
 * says stop. A caller whose session cannot be opened rejects the whole run.
 */
export async function drive(callers: readonly Caller[], sessions: readonly string[], options: DriveOptions) {
  const backoffMs = options.backoffMs ?? 50;
  await Promise.all(
    callers.map(async (caller, i) => {
      const url = new URL(options.urlOf(caller));
      const sessionId = sessions[i]!;
      for (let k = 0; options.more(); k++) {
        const tool = toolOf(caller.index, k);
        const outcome = await callTool(url, caller, sessionId, tool, k + 1, { call: `${caller.index}-${k}` });
        options.record(outcome);
        if (outcome.kind !== 'allowed' && outcome.kind !== 'denied') await sleep(backoffMs);
      }
    }),
  );
}

/** Opens every caller's session (in parallel, a few at a time). */
export async function openSessions(
  callers: readonly Caller[],
  urlOf: (caller: Caller) => string,
): Promise<string[]> {
  const sessions: string[] = new Array(callers.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(20, callers.length) }, async () => {
      while (next < callers.length) {
        const i = next++;
        sessions[i] = await openSession(urlOf(callers[i]!), callers[i]!.token);
      }
    }),
  );
  return sessions;
}
