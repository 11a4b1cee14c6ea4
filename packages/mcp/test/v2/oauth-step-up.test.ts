/**
 * The 403 step-up completed end to end by the v2 client (`@modelcontextprotocol/client` 2.4.0) as a real OAuth
 * client against the real dev IdP (oidc-provider), in both protocol eras: a token granted `read` only, a call
 * that needs `write` refused with 403 `insufficient_scope` by the request pipeline, the client's OAuth provider
 * sent back to the IdP with the challenge's scopes, and the retry served.
 */

import { createAuthSec, silentLogger } from '@authsec/core';
import { DEMO_USERS, type DevIdp, signIn, startDevIdp } from '@authsec/dev-idp';
import {
  Client,
  type OAuthClientProvider,
  StreamableHTTPClientTransport,
  UnauthorizedError,
} from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as z from 'zod';
import type { RunningHttpServer } from '../../src/endpoint.js';
import { protect, startMcpV2HttpServer } from '../../src/v2/index.js';
import { freePort } from '../helpers/http.js';

const ADMIN = DEMO_USERS.find((u) => u.email.startsWith('admin@'))!;

type Provider = OAuthClientProvider & {
  readonly authorizations: URL[];
  code: string | undefined;
  /** The redirect's `iss` (RFC 9207), which the v2 client checks against the authorization server. */
  iss: string | undefined;
  /** The tokens saved last. */
  granted(): Tokens | undefined;
};
type Tokens = { access_token: string; token_type: string; scope?: string; refresh_token?: string };

/** What a desktop client keeps, with the browser replaced by the dev IdP's sign-in form. */
function provider(redirectUrl: string, consentScope: string): Provider {
  let tokens: Tokens | undefined;
  let client: unknown;
  let verifier: string | undefined;
  let state: string | undefined;
  const self: Provider = {
    authorizations: [],
    code: undefined,
    iss: undefined,
    get redirectUrl() {
      return redirectUrl;
    },
    get clientMetadata() {
      return {
        redirect_uris: [redirectUrl],
        // No refresh token: a refresh cannot widen a grant, so the step-up must go back to the IdP.
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
        client_name: 'AuthSec v2 step-up test',
        scope: 'openid read write',
      };
    },
    state: () => {
      state = crypto.randomUUID();
      return state;
    },
    clientInformation: () => client as never,
    saveClientInformation: (info) => {
      client = info;
    },
    tokens: () => tokens,
    granted: () => tokens,
    saveTokens: (saved) => {
      tokens = saved as never;
    },
    saveCodeVerifier: (v) => {
      verifier = v;
    },
    codeVerifier: () => {
      if (verifier === undefined) throw new Error('no code verifier saved');
      return verifier;
    },
    async redirectToAuthorization(authorizationUrl) {
      self.authorizations.push(new URL(authorizationUrl));
      const url = new URL(authorizationUrl);
      // The first consent narrows the grant to `read`, as a user unticking a box would.
      if (self.authorizations.length === 1) url.searchParams.set('scope', consentScope);
      const back = await signIn(url, ADMIN.email, ADMIN.password);
      expect(back.searchParams.get('state')).toBe(state);
      self.code = back.searchParams.get('code') ?? undefined;
      self.iss = back.searchParams.get('iss') ?? undefined;
      if (self.code === undefined) throw new Error(`no code in the redirect: ${back.href}`);
    },
  };
  return self;
}

describe.each(['modern', 'legacy'] as const)(
  'step-up with the v2 client against the dev IdP, %s era',
  (era) => {
    let idp: DevIdp;
    let http: RunningHttpServer;
    let url: string;
    const clients: Client[] = [];

    beforeAll(async () => {
      idp = await startDevIdp({ logger: silentLogger });
      url = `http://127.0.0.1:${await freePort()}/mcp`;
      const authsec = createAuthSec({ issuers: [idp.issuer], audience: url, logger: silentLogger });
      const server = protect(authsec, { name: 'step-up', version: '1.0.0' });
      // `read` and `write` are what the metadata's scopes_supported names (the client registers with them).
      server.registerTool(
        'hello',
        { description: 'Readers', requirement: { scopes: ['read'] } },
        async () => ({
          content: [{ type: 'text', text: 'hi' }],
        }),
      );
      server.registerTool(
        'create_resource',
        {
          description: 'Needs write',
          inputSchema: z.object({ name: z.string() }),
          requirement: { scopes: ['write'] },
        },
        async ({ name }) => ({ content: [{ type: 'text', text: `created ${name}` }] }),
      );
      http = await startMcpV2HttpServer({
        server,
        authsec,
        port: Number(new URL(url).port),
        authorizationServers: [idp.issuer],
      });
    });

    afterAll(async () => {
      await Promise.allSettled(clients.map((c) => c.close()));
      await http?.close();
      await idp?.close();
    });

    const newClient = () => {
      const client = new Client(
        { name: 'v2-step-up', version: '1.0.0' },
        era === 'modern' ? { versionNegotiation: { mode: { pin: '2026-07-28' } } } : {},
      );
      clients.push(client);
      return client;
    };

    it('re-authorizes with the challenge scopes after a 403 insufficient_scope, and the retry is served', async () => {
      const oauth = provider(`http://127.0.0.1:${await freePort()}/callback`, 'read');
      // The first connection is refused (401) and sends the user to the IdP.
      const first = new StreamableHTTPClientTransport(new URL(url), { authProvider: oauth });
      const refused = await newClient()
        .connect(first)
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(refused).toBeInstanceOf(UnauthorizedError);
      await first.finishAuth(oauth.code!, oauth.iss);
      expect(oauth.granted()?.scope?.split(' ')).not.toContain('write');

      const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: oauth });
      const client = newClient();
      await client.connect(transport);
      expect(client.getProtocolEra()).toBe(era);
      expect((await client.listTools()).tools.map((t) => t.name)).toEqual(['hello']);

      // The pipeline refuses with 403 before the handler runs; the client goes back to the IdP for `write`.
      const stepUp = await client.callTool({ name: 'create_resource', arguments: { name: 'x' } }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(stepUp).toBeInstanceOf(UnauthorizedError);
      expect(oauth.authorizations).toHaveLength(2);
      const second = oauth.authorizations[1]!;
      expect(second.searchParams.get('scope')?.split(' ')).toEqual(expect.arrayContaining(['write', 'read']));
      expect(second.searchParams.get('resource')).toBe(url);
      await transport.finishAuth(oauth.code!, oauth.iss);
      expect(oauth.granted()?.scope?.split(' ')).toEqual(expect.arrayContaining(['read', 'write']));

      // The retry with the wider token is served, and the tool is now listed.
      const created = await client.callTool({ name: 'create_resource', arguments: { name: 'stepped-up' } });
      expect(created.isError).toBeFalsy();
      expect((created.content as { text?: string }[])[0]?.text).toBe('created stepped-up');
      expect((await client.listTools()).tools.map((t) => t.name)).toEqual(['hello', 'create_resource']);
    });
  },
);
