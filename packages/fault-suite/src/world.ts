/**
 * The callers of the fault suite and the soak, and what each of them may do: `count` users of the real dev IdP
 * (`@authsec/dev-idp`), all in one tenant, whose tokens carry no roles at all. Roles come only from the
 * tenant's grants in the directory (PostgreSQL), so every decision goes through database-validated claims:
 *
 * - caller `i % 3 === 0`: granted `admin`: may call `admin_panel`, `view_reports` and `hello`;
 * - caller `i % 3 === 1`: granted `analyst`: may call `view_reports` and `hello`, is denied `admin_panel`;
 * - caller `i % 3 === 2`: granted nothing: may call `hello` only.
 *
 * Calls cycle through {@link TOOLS}, so the expected decision of every call is known in advance.
 */
import { randomBytes } from 'node:crypto';
import { parseMasterKey, silentLogger } from '@authsec/core';
import { openStorage } from '@authsec/core/postgres';
import { type DevIdp, startDevIdp } from '@authsec/dev-idp';

/** The tenant every caller belongs to. */
export const TENANT = 'fault-suite';

/** The tools callers cycle through. */
export const TOOLS = ['admin_panel', 'view_reports', 'hello'] as const;
export type FaultTool = (typeof TOOLS)[number];

/** One caller: a dev IdP user, the role granted to it (if any), and its token. */
export interface Caller {
  readonly index: number;
  readonly email: string;
  readonly sub: string;
  readonly role: 'admin' | 'analyst' | undefined;
  /** A dev IdP access token for the mount the caller talks to. */
  token: string;
}

/** The tool of call `k` of caller `index`. */
export function toolOf(index: number, k: number): FaultTool {
  return TOOLS[(index + k) % TOOLS.length]!;
}

/** Whether the caller may call `tool`: what the decision must be. */
export function expectedAllowed(caller: Pick<Caller, 'role'>, tool: FaultTool): boolean {
  if (tool === 'hello') return true;
  if (tool === 'view_reports') return caller.role !== undefined;
  return caller.role === 'admin';
}

/** What the answer of an allowed call must say (the sample tools' texts). */
export function expectedText(caller: Pick<Caller, 'email'>, tool: FaultTool): string {
  if (tool === 'hello') return `Hello, ${caller.email}!`;
  return tool === 'admin_panel' ? 'Admin panel accessed' : 'Business reports';
}

/** The dev IdP with the callers' users, and the master key the storage seals with. */
export interface World {
  readonly idp: DevIdp;
  readonly callers: Caller[];
  /** `AUTHSEC_MASTER_KEY` form (base64 of 32 bytes), for the fleet. */
  readonly masterKey: string;
  close(): Promise<void>;
}

function roleOf(index: number): Caller['role'] {
  return index % 3 === 0 ? 'admin' : index % 3 === 1 ? 'analyst' : undefined;
}

/** Starts the dev IdP with `count` users of {@link TENANT} (tokens without roles). */
export async function startWorld(count: number): Promise<World> {
  const users = Array.from({ length: count }, (_, i) => ({
    email: `caller-${i}@fault-suite.example`,
    password: `password-${i}`,
    tenant_id: TENANT,
    scopes: ['read'],
  }));
  const idp = await startDevIdp({ users, logger: silentLogger, accessTokenTtlSeconds: 3600 });
  const callers = idp.users.map((user, index) => ({
    index,
    email: user.email,
    sub: user.sub,
    role: roleOf(index),
    token: '',
  }));
  return { idp, callers, masterKey: randomBytes(32).toString('base64'), close: () => idp.close() };
}

/** Issues each caller's token for the MCP URL it will call (`audienceOf(caller)`). */
export async function issueTokens(world: World, audienceOf: (caller: Caller) => string): Promise<void> {
  for (const caller of world.callers) {
    caller.token = await world.idp.issueToken(caller.email, {
      audience: audienceOf(caller),
      scopes: ['read'],
      ttlSeconds: 3600,
    });
  }
}

/**
 * Migrates the storage on `databaseUrl`, creates {@link TENANT} with the catalog roles `admin` and `analyst`,
 * and grants them to the callers (bound to the dev IdP as their issuer), through the same storage API the
 * `authsec` command uses.
 */
export async function seedDirectory(world: World, databaseUrl: string): Promise<void> {
  const storage = await openStorage({
    databaseUrl,
    masterKey: parseMasterKey(world.masterKey),
    issuers: [world.idp.issuer],
    logger: silentLogger,
  });
  try {
    await storage.tenancy.create(TENANT);
    for (const role of ['admin', 'analyst']) await storage.directory.admin.addCatalog(TENANT, 'role', role);
    for (const caller of world.callers) {
      if (caller.role === undefined) continue;
      await storage.directory.admin.grant(
        TENANT,
        caller.sub,
        { roles: [caller.role] },
        { issuer: world.idp.issuer },
      );
    }
  } finally {
    await storage.close();
  }
}
