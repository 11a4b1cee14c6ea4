import { createServer } from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';

/** A free TCP port on 127.0.0.1 (the audience must name the port before the server starts). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (typeof address !== 'object' || address === null) throw new Error('no port');
  return address.port;
}

/** An official SDK client over Streamable HTTP, with a fixed bearer token (or none). */
export interface HttpTestClient {
  readonly client: Client;
  readonly transport: StreamableHTTPClientTransport;
  listChanged(): number;
  toolNames(): Promise<string[]>;
  close(): Promise<void>;
}

/** Connects an SDK `Client` to `url`, sending `Authorization: Bearer <token>` when a token is given. */
export async function connectHttpClient(url: string, token?: string): Promise<HttpTestClient> {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: token ? { headers: { Authorization: `Bearer ${token}` } } : {},
  });
  const client = new Client({ name: 'http-test-client', version: '1.0.0' });
  let count = 0;
  client.setNotificationHandler(ToolListChangedNotificationSchema, async () => {
    count++;
  });
  await client.connect(transport);
  return {
    client,
    transport,
    listChanged: () => count,
    async toolNames() {
      return (await client.listTools()).tools.map((t) => t.name);
    },
    close: () => client.close(),
  };
}

/** The body of an `initialize` request. */
export const INITIALIZE = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: {
    protocolVersion: '2025-11-25',
    capabilities: {},
    clientInfo: { name: 'raw-client', version: '1.0.0' },
  },
} as const;

/** Headers of a raw MCP POST. */
export function mcpHeaders(extra: Record<string, string> = {}): Record<string, string> {
  return {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'mcp-protocol-version': '2025-11-25',
    ...extra,
  };
}

/** A raw MCP POST. */
export function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: mcpHeaders(headers),
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}
