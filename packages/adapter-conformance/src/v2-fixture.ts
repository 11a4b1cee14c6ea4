/**
 * A v2 fixture for adapters' own tests: an engine trusting a local signer, a protected v2 server declaring the
 * sample requirements (each tool answers with its caller), the v2 client in either era, closed together.
 */

import { type AuthSec, type AuthSecOptions, createAuthSec, silentLogger } from '@authsec/core';
import { type ProtectedMcpServer, protect } from '@authsec/mcp/v2';
import { SAMPLE_REQUIREMENTS } from '@authsec/sample-tools';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { createSigner, freePort } from './index.js';

/** The issuer of the fixture's tokens. */
export const ISSUER = 'https://idp.adapter-v2.example';

/** An engine on a free port's resource URL, its signer, and a protected v2 server with the sample tools. */
export interface Fixture {
  readonly url: string;
  readonly port: number;
  readonly authsec: AuthSec;
  readonly server: ProtectedMcpServer;
  /** A token for this resource, lasting `expiresIn` seconds (default 600). */
  token(claims: Record<string, unknown>, options?: { audience?: string; expiresIn?: number }): string;
}

export async function fixture(engine: Partial<AuthSecOptions> = {}): Promise<Fixture> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/mcp`;
  const signer = createSigner(ISSUER);
  const authsec = createAuthSec({
    issuers: [{ issuer: ISSUER, keys: [signer.jwk] }],
    audience: url,
    logger: silentLogger,
    scopes: { implies: { write: ['read'] } },
    ...engine,
  });
  const server = protect(authsec, { name: 'adapter-v2', version: '1.0.0' });
  for (const [name, requirement] of Object.entries(SAMPLE_REQUIREMENTS))
    server.registerTool(name, { description: `The ${name} tool`, requirement }, async (_args, context) => ({
      content: [{ type: 'text', text: `${name} by ${context.principal?.subject}` }],
    }));
  const token: Fixture['token'] = (claims, options = {}) => {
    const now = Math.floor(Date.now() / 1000);
    return signer.sign({ aud: options.audience ?? url, exp: now + (options.expiresIn ?? 600), ...claims });
  };
  return { url, port, authsec, server, token };
}

export type Era = 'modern' | 'legacy';
export const ERAS: readonly Era[] = ['modern', 'legacy'];

const clients: Client[] = [];
/** The v2 client pinned to 2026-07-28 (`modern`) or negotiating the 2025 era (`legacy`). */
export async function connect(
  url: string,
  token: string,
  era: Era,
  /** Receives every response's headers (what the application's middleware set shows there). */
  seen?: Headers[],
): Promise<Client> {
  const client = new Client(
    { name: 'adapter-v2-test', version: '1.0.0' },
    era === 'modern' ? { versionNegotiation: { mode: { pin: '2026-07-28' } } } : {},
  );
  await client.connect(
    new StreamableHTTPClientTransport(new URL(url), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
      ...(seen === undefined
        ? {}
        : {
            fetch: async (input: string | URL | Request, init?: RequestInit) => {
              const response = await fetch(input, init);
              seen.push(response.headers);
              return response;
            },
          }),
    }),
  );
  clients.push(client);
  return client;
}

export async function closeAll(): Promise<void> {
  await Promise.allSettled(clients.splice(0).map((c) => c.close()));
}

export const text = (result: unknown) => (result as { content: { text?: string }[] }).content[0]?.text;

/** What a call answers, with the tool's name masked: a hidden tool must answer exactly as an unknown one. */
export async function attempt(client: Client, name: string): Promise<string> {
  try {
    const result = await client.callTool({ name, arguments: {} });
    return JSON.stringify(result).replaceAll(name, '<name>');
  } catch (error) {
    const { code, message } = error as { code?: number; message?: string };
    return `${code} ${String(message).replaceAll(name, '<name>')}`;
  }
}
