import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

import { DevIdpError } from './errors.js';

/**
 * A user of the development IdP. Every field except `password` may end up in the access tokens the IdP
 * issues for this user (RFC 9068 JWTs), under the same claim name.
 */
export interface DevUser {
  /** Subject identifier. Default: {@link deriveSubject} of the email, stable across restarts. */
  sub?: string;
  /** Login name on the sign-in form (compared case-insensitively) and the `email` claim. */
  email: string;
  /** Plain-text password: this is a development IdP, its users are fixtures. */
  password: string;
  /** Display name (`name` claim). */
  name?: string;
  /** Tenant the user belongs to (`tenant_id` claim); matches `^[a-z0-9][a-z0-9-]{0,54}$`. */
  tenant_id: string;
  /** `roles` claim. Default `[]`. */
  roles?: string[];
  /** `groups` claim. Default `[]`. */
  groups?: string[];
  /**
   * Scopes the user may be granted. A requested scope outside this list is not granted (no error), so the
   * token's `scope` is the requested scopes that the user holds. Default `[]`.
   */
  scopes?: string[];
  /** `resources` claim. Default `[]`. */
  resources?: string[];
  /** `permissions` claim (`resource:action`). Default `[]`. */
  permissions?: string[];
}

/** A {@link DevUser} with every default filled in, as {@link DevIdp.users} lists it. */
export interface ResolvedDevUser extends DevUser {
  readonly sub: string;
  readonly roles: string[];
  readonly groups: string[];
  readonly scopes: string[];
  readonly resources: string[];
  readonly permissions: string[];
}

const TENANT_ID = /^[a-z0-9][a-z0-9-]{0,54}$/;
const LIST_FIELDS = ['roles', 'groups', 'scopes', 'resources', 'permissions'] as const;

/**
 * The stable subject identifier used for a user without an explicit `sub`: `dev-` followed by the first 24
 * hex digits of SHA-256 over the lowercased email. The same email always gives the same `sub`.
 */
export function deriveSubject(email: string): string {
  return `dev-${createHash('sha256').update(`authsec-dev-idp:${email.trim().toLowerCase()}`).digest('hex').slice(0, 24)}`;
}

function fail(where: string, message: string): never {
  throw new DevIdpError('INVALID_USERS', `${where}: ${message}`);
}

function optionalString(where: string, record: Record<string, unknown>, key: string): string | undefined {
  const value = record[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length === 0) fail(where, `"${key}" must be a non-empty string`);
  return value;
}

function stringList(where: string, record: Record<string, unknown>, key: string): string[] {
  const value = record[key];
  if (value === undefined) return [];
  if (
    !Array.isArray(value) ||
    !value.every((item): item is string => typeof item === 'string' && item !== '')
  ) {
    fail(where, `"${key}" must be an array of non-empty strings`);
  }
  return [...new Set(value)];
}

/**
 * Validates a user list and fills in defaults. Throws a {@link DevIdpError} `INVALID_USERS` that names the
 * offending user and field; emails and subjects must be unique.
 */
export function resolveDevUsers(users: readonly unknown[], source = 'users'): ResolvedDevUser[] {
  if (!Array.isArray(users)) fail(source, 'must be an array of users');
  const emails = new Set<string>();
  const subs = new Set<string>();
  return users.map((raw, index) => {
    const where = `${source}[${index}]`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(where, 'must be an object');
    const record = raw as Record<string, unknown>;
    const email = optionalString(where, record, 'email');
    const password = optionalString(where, record, 'password');
    const tenantId = optionalString(where, record, 'tenant_id');
    if (email === undefined) fail(where, '"email" is required');
    if (password === undefined) fail(where, '"password" is required');
    if (tenantId === undefined) fail(where, '"tenant_id" is required');
    if (!TENANT_ID.test(tenantId)) fail(where, `"tenant_id" must match ${TENANT_ID.source}`);
    const sub = optionalString(where, record, 'sub') ?? deriveSubject(email);
    const name = optionalString(where, record, 'name');
    const key = email.trim().toLowerCase();
    if (emails.has(key)) fail(where, `duplicate email ${email}`);
    if (subs.has(sub)) fail(where, `duplicate sub ${sub}`);
    emails.add(key);
    subs.add(sub);
    const lists = Object.fromEntries(
      LIST_FIELDS.map((field) => [field, stringList(where, record, field)]),
    ) as {
      [K in (typeof LIST_FIELDS)[number]]: string[];
    };
    const user: ResolvedDevUser = {
      sub,
      email,
      password,
      ...(name === undefined ? {} : { name }),
      tenant_id: tenantId,
      ...lists,
    };
    return Object.freeze(user);
  });
}

/** Reads and validates a JSON users file (an array of {@link DevUser}). */
export async function loadUsersFile(path: string): Promise<ResolvedDevUser[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    throw new DevIdpError('INVALID_USERS', `cannot read users file ${path}`, { cause });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw new DevIdpError('INVALID_USERS', `users file ${path} is not valid JSON`, { cause });
  }
  if (!Array.isArray(parsed)) fail(path, 'must contain a JSON array of users');
  return resolveDevUsers(parsed, path);
}

/** Absolute path of the `demo-users.json` file shipped with this package. */
export const DEMO_USERS_FILE: string = fileURLToPath(new URL('../demo-users.json', import.meta.url));

/**
 * The demo users of tenant `acme-corp` (the contents of `demo-users.json`): an administrator, an analyst and
 * a deployer, with the obvious development passwords `admin-password`, `analyst-password` and
 * `deployer-password`. These are the users the IdP serves when no users are given.
 */
export const DEMO_USERS: readonly ResolvedDevUser[] = Object.freeze(
  resolveDevUsers(JSON.parse(readFileSync(DEMO_USERS_FILE, 'utf8')), 'demo-users.json'),
);

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

// Compared against when the login names no known user, so a miss costs the same as a wrong password.
const NO_USER_DIGEST = digest('\u0000no such user\u0000');

/** Looks users up by email or `sub` and checks passwords in constant time. */
export class UserDirectory {
  readonly users: readonly ResolvedDevUser[];
  readonly #byEmail = new Map<string, ResolvedDevUser>();
  readonly #bySub = new Map<string, ResolvedDevUser>();

  constructor(users: readonly ResolvedDevUser[]) {
    this.users = Object.freeze([...users]);
    for (const user of users) {
      this.#byEmail.set(user.email.trim().toLowerCase(), user);
      this.#bySub.set(user.sub, user);
    }
  }

  /** The user with this `sub`, if any. */
  bySub(sub: string): ResolvedDevUser | undefined {
    return this.#bySub.get(sub);
  }

  /** The user with this email (case-insensitive) or, failing that, this `sub`. */
  find(emailOrSub: string): ResolvedDevUser | undefined {
    return this.#byEmail.get(emailOrSub.trim().toLowerCase()) ?? this.#bySub.get(emailOrSub);
  }

  /** The user whose email and password match, compared as SHA-256 digests with `timingSafeEqual`. */
  authenticate(login: string, password: string): ResolvedDevUser | undefined {
    const user = this.#byEmail.get(login.trim().toLowerCase());
    const expected = user ? digest(user.password) : NO_USER_DIGEST;
    const matches = timingSafeEqual(expected, digest(password));
    return user && matches ? user : undefined;
  }
}
