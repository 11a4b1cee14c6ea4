/**
 * Plain value types shared by every module. Nothing here imports a framework.
 */

/**
 * An authenticated caller: a user, or a machine client (client credentials: no email, `subject` = client id).
 * Always frozen. `roles`, `groups`, `scopes`, `resources` and `permissions` are the *effective* claims: with a
 * database configured, only those that exist in the tenant's catalog plus those granted in the database.
 */
export interface Principal {
  /** The token's `sub` (for machine callers, the client id). */
  readonly subject: string;
  /** The user's email, or `undefined` for machine callers. */
  readonly email: string | undefined;
  /** The validated tenant id (matches {@link TENANT_ID_PATTERN}). */
  readonly tenantId: string;
  /** The OAuth client the token was issued to (`client_id` / `azp`), when the token says. */
  readonly clientId: string | undefined;
  /** The issuer that signed the token. */
  readonly issuer: string;
  readonly roles: readonly string[];
  readonly groups: readonly string[];
  readonly scopes: readonly string[];
  readonly resources: readonly string[];
  /** `resource:action` permissions. */
  readonly permissions: readonly string[];
  /** Token expiry, seconds since the epoch. */
  readonly expiresAt: number;
  /**
   * The verified claim set. For handlers that need a custom claim; never log it, never put it in an audit
   * record or a tool result.
   */
  readonly claims: Readonly<Record<string, unknown>>;
}

/** The pattern every tenant id must match before it names anything (a schema, a database, a path). */
export const TENANT_ID_PATTERN = /^[a-z0-9][a-z0-9-]{0,54}$/;

/** True when `value` is a well-formed tenant id. */
export function isValidTenantId(value: unknown): value is string {
  return typeof value === 'string' && TENANT_ID_PATTERN.test(value);
}

/** One category of a requirement: a list (any of), or an explicit `{ allOf }` / `{ anyOf }`. */
export type CategoryRequirement =
  | readonly string[]
  | { readonly allOf: readonly string[] }
  | { readonly anyOf: readonly string[] };

/**
 * What a tool requires. Inside a category a plain list is satisfied by **any** listed value. Across categories,
 * `requireAll: false` (the default, as in the brief) allows the call when **any** given category is satisfied;
 * `requireAll: true` needs every given category. No category at all: any authenticated caller.
 */
export interface Requirement {
  readonly roles?: CategoryRequirement;
  readonly groups?: CategoryRequirement;
  readonly scopes?: CategoryRequirement;
  readonly resources?: CategoryRequirement;
  /** `resource:action` values; held when granted as such, or when `resource` and scope `action` are held. */
  readonly permissions?: CategoryRequirement;
  /** AND across categories. Default `false` (OR), which logs a one-time warning when several are given. */
  readonly requireAll?: boolean;
  /**
   * Conditions on a tool call, each a CEL expression over `args` (the validated arguments), `user` (`sub`,
   * `email`, `tenant`, `issuer`, `client`, `roles`, `groups`, `scopes`, `resources`, `permissions`) and `now`
   * (a timestamp): `'args.amount <= 1000'`, `'args.project.startsWith(user.sub + "/")'`. All must hold, after
   * the categories above (whatever `requireAll` says of them). Compiled with the requirement (a bad expression
   * is a `TypeError` there); checked when the tool runs; a condition that cannot be evaluated is not met.
   * Tools only: a resource, prompt or REST route requirement with `when` is refused.
   */
  readonly when?: string | readonly string[];
}

/** The five requirement categories, in a fixed order. */
export const CATEGORIES = ['roles', 'groups', 'scopes', 'resources', 'permissions'] as const;

/** One requirement category name. */
export type Category = (typeof CATEGORIES)[number];

/** Minimal structured logger. Defaults to JSON lines on stderr (stdout belongs to MCP under stdio). */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/** Milliseconds since the epoch. Injected so tests control time without patching `Date`. */
export type Clock = () => number;
