import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type AuthSec,
  type AuthSecEnvOptions,
  AuthSecError,
  createAuthSec,
  createFileOnce,
  createJsonLinesAuditSink,
  createLogger,
  createOAuthClient,
  createServiceAccessFactory,
  type IssuerOptions,
  type Logger,
  type MasterKeyRing,
  type Principal,
  requiredScopes,
  type SecretBackend,
  type ServiceAccess,
} from '@authsec/core';
import { openStorageFromEnv, type Storage, seedDemoTenant } from '@authsec/core/postgres';
import { createEnvironmentLogin } from './login/environment.js';
import { createToolLogin } from './login/index.js';
import type { AuthSecTool, LoginProvider } from './types.js';

/**
 * The embedded defaults behind `runMcpServerWithOAuth` when no engine is passed: everything comes from the
 * `AUTHSEC_*` contract, and what is missing is embedded for development only (a local dev IdP when
 * `AUTHSEC_ISSUER` is absent, PGlite when `AUTHSEC_DATABASE_URL` is absent, a key file when
 * `AUTHSEC_MASTER_KEY` is absent), loudly, and never in production or off loopback.
 */

/** What {@link openDefaults} needs. */
export interface DefaultsOptions {
  readonly appName: string;
  readonly tools: readonly AuthSecTool[];
  readonly env: AuthSecEnvOptions;
  /** The raw environment (for `NODE_ENV`). */
  readonly rawEnv: Readonly<Record<string, string | undefined>>;
  readonly transport: 'stdio' | 'http';
  /** The canonical resource (audience); for stdio, absent means a stable URN of the app's own. */
  readonly resourceUrl: string | undefined;
  readonly host: string;
  readonly clientId: string | undefined;
  readonly clientSecret: string | undefined;
  /** Whether to build the tool-based login. */
  readonly login: boolean;
  /**
   * More scopes the login asks for, read at the first `oauth_start` (a v2 server's declarations are made after
   * the engine exists). Default: none beyond those of `tools`.
   */
  readonly scopes?: () => Iterable<string>;
  /**
   * stdio only: the login completes across processes (a detached callback helper per data folder) and its
   * `session_id` is bound to the data folder. Default `false`.
   */
  readonly crossProcess?: boolean;
}

/** Everything the defaults opened; `close` releases it all. */
export interface Defaults {
  readonly authsec: AuthSec;
  readonly storage: Storage;
  readonly login: LoginProvider | undefined;
  readonly audience: string;
  readonly issuers: readonly string[];
  readonly masterKey: MasterKeyRing;
  /** Where service credentials live: Vault when `AUTHSEC_VAULT_ADDR` is set, else the encrypted Postgres store. */
  readonly secrets: SecretBackend;
  /** The `services` of a tool's context, over {@link Defaults.secrets}. */
  readonly services: (principal: Principal) => ServiceAccess;
  close(): Promise<void>;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost', '[::1]']);

/** The audience a stdio server accepts by default: a stable identifier derived from its name. */
export function defaultStdioAudience(appName: string): string {
  const slug = appName
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 60);
  return `urn:authsec:${slug || 'mcp-server'}`;
}

function devMode(options: DefaultsOptions): { allowed: boolean; why: string } {
  if (options.rawEnv.NODE_ENV === 'production') return { allowed: false, why: 'NODE_ENV is production' };
  if (!LOOPBACK.has(options.host)) return { allowed: false, why: `HOST ${options.host} is not loopback` };
  return { allowed: true, why: '' };
}

async function readOrCreateJson<T>(file: string, create: () => Promise<T>): Promise<T> {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  // A process that raced us may have written first; use theirs so every process signs and verifies alike.
  return JSON.parse(createFileOnce(file, JSON.stringify(await create()), 0o600)) as T;
}

interface EmbeddedIdp {
  readonly issuer: string;
  close(): Promise<void>;
}

// One development IdP per machine and port: the first process hosts it with keys kept in the data folder, the
// others use it and watch it. When the host exits, one of them hosts it again on the same port with the same
// keys, so the issuer and the keys every process trusts stay the same (tokens and remembered logins stay valid;
// refresh tokens held by the old host's memory do not).
async function embeddedIdp(env: AuthSecEnvOptions, logger: Logger): Promise<EmbeddedIdp> {
  let devIdp: typeof import('@authsec/dev-idp');
  try {
    devIdp = await import('@authsec/dev-idp');
  } catch (cause) {
    throw new AuthSecError(
      'CONFIG_INVALID',
      'AUTHSEC_ISSUER is not set and @authsec/dev-idp is not installed: set AUTHSEC_ISSUER to your authorization server',
      { cause },
    );
  }
  const dir = join(env.dataDir, 'dev-idp');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const jwks = await readOrCreateJson(join(dir, 'signing-keys.json'), () => devIdp.generateSigningKeys());
  const issuer = `http://127.0.0.1:${env.devIdpPort}`;

  // Hosts the IdP, or returns undefined when the port is taken (by another process's IdP, checked by the caller).
  const host = async (): Promise<{ readonly issuer: string; close(): Promise<void> } | undefined> => {
    try {
      const idp = await devIdp.startDevIdp({ host: '127.0.0.1', port: env.devIdpPort, jwks, logger });
      process.stderr.write(
        `[authsec] DEVELOPMENT MODE: embedded OAuth server at ${idp.issuer} (demo users: ${idp.users
          .map((u) => u.email)
          .join(', ')}); set AUTHSEC_ISSUER for real use\n`,
      );
      return idp;
    } catch (error) {
      const text = `${(error as NodeJS.ErrnoException).code ?? ''} ${String((error as Error)?.message ?? error)}`;
      if (/EADDRINUSE|in use/i.test(text)) return undefined;
      throw error;
    }
  };
  const isOurIdp = async (): Promise<boolean> => {
    try {
      const response = await fetch(`${issuer}/.well-known/openid-configuration`, {
        signal: AbortSignal.timeout(3000),
      });
      return ((await response.json()) as { issuer?: unknown }).issuer === issuer;
    } catch {
      return false;
    }
  };

  let hosted = await host();
  // Port 0 means "any free port": that IdP belongs to this process alone, under the port it was given.
  if (env.devIdpPort === 0) {
    if (!hosted) throw new AuthSecError('INTERNAL', 'The development IdP could not start on a free port');
    return hosted;
  }
  if (!hosted && !(await isOurIdp())) {
    throw new AuthSecError(
      'CONFIG_INVALID',
      `AUTHSEC_DEV_IDP_PORT: port ${env.devIdpPort} is in use by something that is not an AuthSec development IdP`,
    );
  }
  if (!hosted) logger.info('Using the development IdP another process hosts', { issuer });
  let checking = false;
  const watchdog = setInterval(() => {
    if (hosted || checking) return;
    checking = true;
    void (async () => {
      try {
        if (!(await isOurIdp())) {
          hosted = await host();
          if (hosted)
            logger.warn('The development IdP host went away: this process hosts it now', { issuer });
        }
      } catch (error) {
        logger.warn('Could not host the development IdP', { cause: String(error) });
      } finally {
        checking = false;
      }
    })();
  }, 1000);
  watchdog.unref();
  return {
    issuer,
    async close() {
      clearInterval(watchdog);
      await hosted?.close();
    },
  };
}

/** Opens the storage, the engine and the login from the environment (see the module comment). */
export async function openDefaults(options: DefaultsOptions): Promise<Defaults> {
  const { env } = options;
  const logger = createLogger({ level: env.logLevel });
  const dev = devMode(options);
  const closers: (() => Promise<void>)[] = [];
  const closeAll = async () => {
    for (const close of closers.reverse()) await close().catch(() => {});
  };
  try {
    let issuers: readonly IssuerOptions[] = env.issuers;
    if (issuers.length === 0) {
      if (!dev.allowed) {
        throw new AuthSecError('CONFIG_INVALID', `AUTHSEC_ISSUER is required (${dev.why})`);
      }
      const idp = await embeddedIdp(env, logger);
      closers.push(() => idp.close());
      issuers = [{ issuer: idp.issuer }];
    }
    const audience =
      options.resourceUrl ??
      (options.transport === 'stdio' ? defaultStdioAudience(options.appName) : undefined);
    if (audience === undefined) {
      throw new AuthSecError(
        'CONFIG_INVALID',
        'AUTHSEC_RESOURCE_URL is not set: it names this server (the token audience)',
      );
    }
    if (options.resourceUrl === undefined)
      logger.info('Accepting tokens issued for this audience', { audience });

    // The master key, the database (embedded only in development) and the engine options wired to them.
    const opened = await openStorageFromEnv(env, { development: dev.allowed, issuers, audience, logger });
    closers.push(() => opened.close());
    const { storage, masterKey } = opened;
    if (env.seed && dev.allowed && (await seedDemoTenant(storage.tenancy, storage.directory))) {
      process.stderr.write(
        '[authsec] DEVELOPMENT MODE: seeded the demo tenant acme-corp into an empty database\n',
      );
    }

    const authsec = createAuthSec({
      ...opened.options,
      audit: { sinks: [storage.audit, createJsonLinesAuditSink()] },
    });
    // The engine does not close the storage it was given; close it after the engine has flushed.
    closers.push(() => authsec.close());

    // Service credentials: Vault when AUTHSEC_VAULT_ADDR is set (never a fallback to the database), else the
    // encrypted store in the tenants' own schemas.
    let secrets: SecretBackend = storage.secrets;
    if (env.vault) {
      const { createVaultSecretBackend } = await import('@authsec/core/vault').catch((cause: unknown) => {
        throw new AuthSecError(
          'CONFIG_INVALID',
          'AUTHSEC_VAULT_ADDR is set but node-vault is not installed: add node-vault to your dependencies',
          { cause },
        );
      });
      const vault = createVaultSecretBackend({ ...env.vault, logger });
      closers.push(() => vault.close());
      secrets = vault;
      logger.info('Service credentials are read from HashiCorp Vault', {
        addr: new URL(env.vault.addr).origin,
        mount: env.vault.mount,
      });
    }
    const services = createServiceAccessFactory({ backend: secrets, authsec });

    let login: LoginProvider | undefined;
    if (env.accessToken !== undefined && options.transport !== 'stdio') {
      throw new AuthSecError(
        'CONFIG_INVALID',
        `${env.accessToken.variable} is for stdio servers; over HTTP every request carries its own token`,
      );
    }
    if (options.login && env.accessToken !== undefined) {
      // Credentials from the environment (the spec's recommendation for stdio) replace the oauth_* login.
      const created = await createEnvironmentLogin({ authsec, credential: env.accessToken, logger });
      login = created;
      closers.push(() => created.close());
    } else if (options.login) {
      const issuer = issuers[0]!.issuer;
      const clientId = options.clientId ?? (env.issuers.length === 0 ? 'authsec-dev' : undefined);
      if (!clientId) {
        throw new AuthSecError('CONFIG_INVALID', 'AUTHSEC_CLIENT_ID is required for the tool-based login');
      }
      const scopes = new Set(['openid', 'offline_access']);
      // Ask for every scope a tool can use; the server grants only what the user holds.
      for (const tool of options.tools) {
        if (tool.requirement)
          for (const scope of requiredScopes(authsec.compile(tool.requirement))) scopes.add(scope);
      }
      const allScopes = (): string[] => [...new Set([...scopes, ...(options.scopes?.() ?? [])])];
      const appKey = createHash('sha256').update(options.appName).digest('hex').slice(0, 16);
      login = createToolLogin({
        authsec,
        sessions: storage.sessions,
        logger,
        oauth: () =>
          createOAuthClient({
            issuer,
            clientId,
            ...(options.clientSecret ? { clientSecret: options.clientSecret } : {}),
            resource: audience,
            scopes: allScopes(),
            logger,
          }),
        handoff:
          options.transport === 'stdio' && options.crossProcess === true ? { dataDir: env.dataDir } : false,
        remember:
          options.transport === 'stdio' && env.rememberLogin
            ? { file: join(env.dataDir, 'logins', `${appKey}.sealed`), masterKey }
            : false,
      });
      const created = login;
      closers.push(() => created.close());
    }
    return {
      authsec,
      storage,
      login,
      audience,
      issuers: issuers.map((i) => i.issuer),
      masterKey,
      secrets,
      services,
      close: closeAll,
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}
