/**
 * The end-to-end suite of every HTTP sample app on the v2 SDK line, written once: the built server
 * (`node dist/main.js`) on embedded defaults (its own dev IdP, PGlite, the demo tenant), and the v2 client
 * (`@modelcontextprotocol/client`) as a real OAuth client, pinned to 2026-07-28 and in the 2025 legacy era.
 * Without a token it is refused with a 401, discovers the dev IdP through the protected resource metadata,
 * registers, authorizes with code + PKCE + `resource` through the IdP's sign-in form (checking `iss`, RFC 9207),
 * lists exactly the caller's tools, and steps up after a 403 `insufficient_scope`.
 */
import type { ResolvedDevUser } from '@authsec/dev-idp';
import {
  Client,
  type OAuthClientProvider,
  StreamableHTTPClientTransport,
  UnauthorizedError,
} from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from './index.js';
import {
  builtApp,
  DEMO_ADMIN,
  DEMO_ADMIN_TOOLS,
  DEMO_ANALYST,
  DEMO_ANALYST_TOOLS,
  TestOAuthProvider,
  textOf,
} from './oauth-client-e2e.js';

const ERAS = ['modern', 'legacy'] as const;

/** Defines the v2 suite for the app `APP` whose built entry is `MAIN_JS` (with `env` added to its environment). */
export function defineOAuthClientE2EV2(APP: string, MAIN_JS: string, env: Record<string, string> = {}): void {
  describe(`${APP}: the v2 client as a real OAuth client, both eras`, () => {
    const app = builtApp(APP, MAIN_JS, env);
    let mcpUrl: string;
    let issuer: string;
    const clients: Client[] = [];
    beforeAll(async () => {
      ({ mcpUrl, issuer } = await app.start());
    });
    afterAll(async () => {
      await Promise.allSettled(clients.map((c) => c.close()));
      await app.stop();
    });

    const newProvider = async (
      user: ResolvedDevUser,
      options?: ConstructorParameters<typeof TestOAuthProvider>[2],
    ) => new TestOAuthProvider(user, `http://127.0.0.1:${await freePort()}/callback`, options);
    // The provider is the one the v1 suite uses: the two SDK lines' provider interfaces agree on what it does.
    const asV2 = (provider: TestOAuthProvider) => provider as unknown as OAuthClientProvider;

    for (const era of ERAS) {
      const newClient = () => {
        const client = new Client(
          { name: `${APP}-e2e-v2`, version: '1.0.0' },
          era === 'modern' ? { versionNegotiation: { mode: { pin: '2026-07-28' } } } : {},
        );
        clients.push(client);
        return client;
      };

      /** The first connection is refused (401) and sends the user to the IdP; the code is exchanged. */
      const authorize = async (provider: TestOAuthProvider) => {
        const first = new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: asV2(provider) });
        const refused = await newClient()
          .connect(first)
          .then(
            () => undefined,
            (e: unknown) => e,
          );
        expect(refused).toBeInstanceOf(UnauthorizedError);
        expect(provider.iss).toBe(issuer);
        await first.finishAuth(provider.code!, provider.iss);
      };
      const connect = async (provider: TestOAuthProvider) => {
        const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), {
          authProvider: asV2(provider),
        });
        const client = newClient();
        await client.connect(transport);
        expect(client.getProtocolEra()).toBe(era);
        return { client, transport };
      };

      it(`${era} era: discovers the dev IdP, authorizes with code + PKCE + resource, lists exactly each user's tools`, async () => {
        for (const [user, tools] of [
          [DEMO_ADMIN, DEMO_ADMIN_TOOLS],
          [DEMO_ANALYST, DEMO_ANALYST_TOOLS],
        ] as const) {
          const provider = await newProvider(user);
          await authorize(provider);
          const [authorization] = provider.authorizations;
          expect(authorization?.origin).toBe(issuer);
          expect(authorization?.searchParams.get('resource')).toBe(mcpUrl);
          expect(authorization?.searchParams.get('code_challenge_method')).toBe('S256');
          const { client } = await connect(provider);
          expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual([...tools].sort());
          expect(textOf(await client.callTool({ name: 'hello', arguments: {} }))).toContain(user.email);
        }
      });

      it(`${era} era: steps up after a 403 insufficient_scope, and the retry is served`, async () => {
        // No refresh token: a refresh cannot widen a grant, so the step-up must go back to the IdP.
        const provider = await newProvider(DEMO_ADMIN, {
          grantTypes: ['authorization_code'],
          consentScope: 'read',
        });
        await authorize(provider);
        expect(provider.tokens()?.scope).toBe('read');
        const { client, transport } = await connect(provider);
        expect((await client.listTools()).tools.map((t) => t.name)).not.toContain('create_resource');
        const stepUp = await client.callTool({ name: 'create_resource', arguments: { name: 'x' } }).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(stepUp).toBeInstanceOf(UnauthorizedError);
        expect(provider.authorizations).toHaveLength(2);
        expect(provider.authorizations[1]?.searchParams.get('scope')?.split(' ')).toEqual(
          expect.arrayContaining(['write', 'read']),
        );
        await transport.finishAuth(provider.code!, provider.iss);
        const created = await client.callTool({ name: 'create_resource', arguments: { name: 'stepped-up' } });
        expect(created.isError).toBeFalsy();
        expect(textOf(created)).toContain("Resource 'stepped-up' created successfully!");
        expect((await client.listTools()).tools.map((t) => t.name)).toContain('create_resource');
      });
    }
  });
}
