/**
 * The client side of the MCP throughput benchmark, with `fetch`: opening a stateful Streamable HTTP session the
 * way an SDK client does (`initialize`, then `notifications/initialized`), and checking one `tools/call`
 * answer, whether the server answered in JSON or as a server-sent event stream.
 */

/** The protocol version the benchmark speaks (the newest SDK 1.32.2 knows). */
export const PROTOCOL_VERSION = '2025-11-25';

/** Headers of every MCP POST; `extra` adds `authorization` and `mcp-session-id`. */
export function mcpHeaders(extra: Record<string, string> = {}): Record<string, string> {
  return {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'mcp-protocol-version': PROTOCOL_VERSION,
    ...extra,
  };
}

/** A JSON-RPC response message. */
export interface RpcResponse {
  readonly jsonrpc: '2.0';
  readonly id: number | string | null;
  readonly result?: Record<string, unknown>;
  readonly error?: { readonly code: number; readonly message: string };
}

/** The JSON-RPC response in an HTTP response: the JSON body, or the `data:` event that carries a response. */
export async function readRpcResponse(response: Response): Promise<RpcResponse> {
  const text = await response.text();
  if (!(response.headers.get('content-type') ?? '').includes('text/event-stream')) {
    return JSON.parse(text) as RpcResponse;
  }
  for (const line of text.split('\n')) {
    if (!line.startsWith('data:')) continue;
    const message = JSON.parse(line.slice(5)) as Partial<RpcResponse>;
    if ('result' in message || 'error' in message) return message as RpcResponse;
  }
  throw new Error(`no JSON-RPC response in the event stream: ${text.slice(0, 200)}`);
}

/** The body of a `tools/call` of `hello` with request id `id`. */
export function helloCall(id: number): string {
  return JSON.stringify({
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name: 'hello', arguments: {} },
  });
}

/**
 * Opens a session: `initialize` (refused unless 200 with a result and an `Mcp-Session-Id`), then
 * `notifications/initialized` (202). Returns the session id.
 */
export async function openSession(url: string, auth: Record<string, string>): Promise<string> {
  const init = await fetch(url, {
    method: 'POST',
    headers: mcpHeaders(auth),
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: {
        protocolVersion: PROTOCOL_VERSION,
        capabilities: {},
        clientInfo: { name: 'authsec-bench', version: '1.0.0' },
      },
    }),
  });
  const sessionId = init.headers.get('mcp-session-id');
  const answer = await readRpcResponse(init);
  if (init.status !== 200 || answer.error || !answer.result || !sessionId) {
    throw new Error(`initialize failed: HTTP ${init.status} ${JSON.stringify(answer).slice(0, 200)}`);
  }
  const initialized = await fetch(url, {
    method: 'POST',
    headers: mcpHeaders({ ...auth, 'mcp-session-id': sessionId }),
    body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
  });
  await initialized.arrayBuffer();
  if (initialized.status !== 202) throw new Error(`notifications/initialized: HTTP ${initialized.status}`);
  return sessionId;
}

/**
 * One `tools/call` of `hello` on a session; throws unless it is a successful result whose text is `expected`.
 * Returns the response's content type (JSON or event stream), for the report.
 */
export async function checkHelloCall(
  url: string,
  headers: Record<string, string>,
  expected: string,
  id: number,
): Promise<string> {
  const response = await fetch(url, { method: 'POST', headers, body: helloCall(id) });
  const contentType = response.headers.get('content-type') ?? '';
  const answer = await readRpcResponse(response);
  const result = answer.result as { isError?: boolean; content?: { text?: string }[] } | undefined;
  if (response.status !== 200 || answer.id !== id || !result || result.isError || answer.error) {
    throw new Error(`tools/call failed: HTTP ${response.status} ${JSON.stringify(answer).slice(0, 300)}`);
  }
  const text = result.content?.map((c) => c.text ?? '').join('') ?? '';
  if (text !== expected) throw new Error(`tools/call answered ${JSON.stringify(text)}, expected ${expected}`);
  return contentType.split(';')[0] ?? contentType;
}
