import { AuthSecError } from '../errors.js';
import { hasUnsafeDisplayChars } from '../identifiers.js';
import type { ClaimMapping, ClaimPreset } from '../options.js';

/** Principal fields read from a claim set. */
export const CLAIM_FIELDS = [
  'subject',
  'email',
  'tenant',
  'clientId',
  'roles',
  'groups',
  'scopes',
  'resources',
  'permissions',
] as const;

/** One principal field read from a claim set. */
export type ClaimField = (typeof CLAIM_FIELDS)[number];

/** The list-valued principal fields. */
type ListField = 'roles' | 'groups' | 'scopes' | 'resources' | 'permissions';

/**
 * One place a claim is read from, compiled from a path:
 * - `sub`: a top-level claim;
 * - `realm_access.roles`: tried whole first (keys may contain dots), then walked segment by segment;
 * - a `*` segment (`resource_access.*.roles`) matches every key at that level;
 * - a segment of `*` followed by a suffix matches every key ending with that suffix (the Auth0 preset reads
 *   namespaced claims such as `https://acme.example/roles` with the suffix `/roles`).
 */
export interface ClaimSource {
  /** The path as written. */
  readonly path: string;
  /** Its segments, or `undefined` when the path is one plain key. */
  readonly segments: readonly string[] | undefined;
  /** Lower-case string values read here (Entra's `tid`, whose GUIDs may be upper-case). */
  readonly lowerCase: boolean;
}

/** A validated claim mapping: for each principal field, the sources tried in order. */
export type CompiledClaimMapping = { readonly [F in ClaimField]: readonly ClaimSource[] };

/** The claims of one token, mapped but not yet checked against tenant policy. */
export interface MappedClaims {
  /** `sub`, or the client id for a machine caller without `sub`. Non-empty, at most 255 characters. */
  readonly subject: string;
  readonly email: string | undefined;
  /** The tenant the token names, as written (lower-cased where the source says so); not yet validated. */
  readonly tenant: string | undefined;
  readonly clientId: string | undefined;
  readonly roles: readonly string[];
  readonly groups: readonly string[];
  readonly scopes: readonly string[];
  readonly resources: readonly string[];
  readonly permissions: readonly string[];
}

type MappingSpec = { readonly [F in ClaimField]: readonly (string | { path: string; lowerCase: true })[] };

const GENERIC: MappingSpec = {
  subject: ['sub'],
  email: ['email'],
  tenant: ['tenant_id'],
  clientId: ['client_id', 'azp'],
  roles: ['roles'],
  groups: ['groups'],
  scopes: ['scope', 'scp', 'scopes'],
  resources: ['resources'],
  permissions: ['permissions'],
};

const PRESETS: Readonly<Record<ClaimPreset, MappingSpec>> = {
  generic: GENERIC,
  // Client roles of every client in the token are merged with realm roles. To take one client's roles only,
  // map `roles: ['realm_access.roles', 'resource_access.<client>.roles']`.
  keycloak: {
    ...GENERIC,
    clientId: ['azp', 'client_id'],
    roles: ['realm_access.roles', 'resource_access.*.roles'],
    scopes: ['scope'],
  },
  auth0: {
    ...GENERIC,
    email: ['email', '*/email'],
    tenant: ['tenant_id', '*/tenant_id'],
    clientId: ['azp', 'client_id'],
    roles: ['roles', '*/roles'],
    groups: ['groups', '*/groups'],
    scopes: ['scope'],
    resources: ['resources', '*/resources'],
    permissions: ['permissions', '*/permissions'],
  },
  entra: {
    ...GENERIC,
    email: ['email', 'upn'],
    tenant: ['tenant_id', { path: 'tid', lowerCase: true }],
    clientId: ['azp', 'appid', 'client_id'],
    scopes: ['scp'],
  },
  okta: {
    ...GENERIC,
    clientId: ['cid', 'client_id'],
    scopes: ['scp', 'scope'],
  },
};

const PRESET_NAMES = Object.keys(PRESETS) as ClaimPreset[];

function configError(path: string, message: string): never {
  throw new AuthSecError('CONFIG_INVALID', `${path}: ${message}`);
}

function compileSource(path: string, lowerCase: boolean): ClaimSource {
  const segments = path.includes('.') || path.startsWith('*') ? path.split('.') : undefined;
  return Object.freeze({ path, segments: segments && Object.freeze(segments), lowerCase });
}

function compileSpec(spec: MappingSpec): CompiledClaimMapping {
  const out = {} as Record<ClaimField, readonly ClaimSource[]>;
  for (const field of CLAIM_FIELDS) {
    out[field] = Object.freeze(
      spec[field].map((entry) =>
        typeof entry === 'string' ? compileSource(entry, false) : compileSource(entry.path, entry.lowerCase),
      ),
    );
  }
  return Object.freeze(out);
}

const COMPILED_PRESETS = Object.fromEntries(
  PRESET_NAMES.map((name) => [name, compileSpec(PRESETS[name])]),
) as Record<ClaimPreset, CompiledClaimMapping>;

/**
 * Validates and compiles a claim mapping: a preset name (`'generic'`, `'keycloak'`, `'auth0'`, `'entra'`,
 * `'okta'`), or a mapping whose fields replace those of its `preset` (default `'generic'`). `undefined` is
 * `'generic'`. Throws `CONFIG_INVALID` naming `optionPath` for unknown presets, unknown fields and bad paths.
 */
export function compileClaimMapping(
  mapping: ClaimPreset | (ClaimMapping & { readonly preset?: ClaimPreset }) | undefined,
  optionPath = 'claims',
): CompiledClaimMapping {
  if (mapping === undefined) return COMPILED_PRESETS.generic;
  if (typeof mapping === 'string') {
    if (!Object.hasOwn(COMPILED_PRESETS, mapping)) {
      configError(optionPath, `unknown preset '${mapping}' (one of ${PRESET_NAMES.join(', ')})`);
    }
    return COMPILED_PRESETS[mapping];
  }
  if (typeof mapping !== 'object' || mapping === null || Array.isArray(mapping)) {
    configError(optionPath, 'must be a preset name or a mapping object');
  }
  const presetName = mapping.preset ?? 'generic';
  if (typeof presetName !== 'string' || !Object.hasOwn(COMPILED_PRESETS, presetName)) {
    configError(`${optionPath}.preset`, `unknown preset (one of ${PRESET_NAMES.join(', ')})`);
  }
  const base = COMPILED_PRESETS[presetName];
  const out = { ...base } as Record<ClaimField, readonly ClaimSource[]>;
  for (const key of Object.keys(mapping)) {
    if (key === 'preset') continue;
    if (!(CLAIM_FIELDS as readonly string[]).includes(key)) {
      configError(`${optionPath}.${key}`, `unknown field (one of preset, ${CLAIM_FIELDS.join(', ')})`);
    }
    const paths: unknown = mapping[key as ClaimField];
    if (paths === undefined) continue;
    if (!Array.isArray(paths) || paths.length === 0) {
      configError(`${optionPath}.${key}`, 'must be a non-empty array of claim paths');
    }
    out[key as ClaimField] = Object.freeze(
      paths.map((path: unknown, index) => {
        if (typeof path !== 'string' || path === '' || path.split('.').includes('')) {
          configError(
            `${optionPath}.${key}[${index}]`,
            'must be a non-empty claim path without empty segments',
          );
        }
        return compileSource(path, false);
      }),
    );
  }
  return Object.freeze(out);
}

function invalid(message: string): never {
  throw new AuthSecError('TOKEN_INVALID', message);
}

// Only own properties of plain JSON objects are followed, so a path can never reach a prototype.
function walk(node: unknown, segments: readonly string[], index: number, out: unknown[]): void {
  if (index === segments.length) {
    out.push(node);
    return;
  }
  if (typeof node !== 'object' || node === null || Array.isArray(node)) return;
  const record = node as Record<string, unknown>;
  const segment = segments[index]!;
  if (segment.startsWith('*')) {
    const suffix = segment.slice(1);
    for (const key of Object.keys(record)) {
      if (key.endsWith(suffix) && (suffix === '' || key.length > suffix.length)) {
        walk(record[key], segments, index + 1, out);
      }
    }
    return;
  }
  if (Object.hasOwn(record, segment)) walk(record[segment], segments, index + 1, out);
}

// Appends every value found at `source` (several for wildcards); absent and `null` values add nothing.
function read(claims: Readonly<Record<string, unknown>>, source: ClaimSource, out: unknown[]): void {
  if (Object.hasOwn(claims, source.path)) {
    const value = claims[source.path];
    if (value !== undefined && value !== null) out.push(value);
    return;
  }
  if (source.segments === undefined) return;
  const start = out.length;
  walk(claims, source.segments, 0, out);
  // Filter in place: wildcard walks may have collected nulls.
  let write = start;
  for (let i = start; i < out.length; i++) {
    if (out[i] !== undefined && out[i] !== null) out[write++] = out[i];
  }
  out.length = write;
}

function readString(
  claims: Readonly<Record<string, unknown>>,
  sources: readonly ClaimSource[],
  field: string,
): string | undefined {
  const found: unknown[] = [];
  for (const source of sources) {
    read(claims, source, found);
    if (found.length === 0) continue;
    const value = found[0];
    if (typeof value !== 'string') invalid(`Token claim for ${field} is not a string`);
    return source.lowerCase ? value.toLowerCase() : value;
  }
  return undefined;
}

function readList(
  claims: Readonly<Record<string, unknown>>,
  sources: readonly ClaimSource[],
  field: ListField,
): readonly string[] {
  const found: unknown[] = [];
  for (const source of sources) read(claims, source, found);
  if (found.length === 0) return EMPTY;
  const values = new Set<string>();
  for (const value of found) {
    if (typeof value === 'string') {
      // RFC 6749 §3.3: `scope` is space-delimited. Other fields take a string as one value, so a group named
      // "Domain Users" never turns into a group "Users".
      if (field === 'scopes') {
        for (const part of value.split(' ')) if (part !== '') values.add(part);
      } else if (value !== '') {
        values.add(value);
      }
    } else if (Array.isArray(value)) {
      for (const item of value) {
        if (typeof item !== 'string') invalid(`Token claim for ${field} holds a value that is not a string`);
        if (item !== '') values.add(item);
      }
    } else {
      invalid(`Token claim for ${field} is neither a string nor an array of strings`);
    }
  }
  return Object.freeze([...values]);
}

const EMPTY: readonly string[] = Object.freeze([]);

/**
 * Reads a principal's fields from a verified claim set with a compiled mapping. Pure: no tenant policy (see
 * the verifier), no I/O. Lists are de-duplicated and frozen; `scope` strings are split on spaces.
 *
 * A machine caller (client credentials) may have no `sub`: its client id becomes the subject. Throws
 * `TOKEN_INVALID` (never a `TypeError`) when a claim has the wrong type, when there is no usable subject
 * (absent, empty, longer than 255 characters), or when the subject or the client id holds a character that
 * disguises it on display (control, bidirectional-control or zero-width: see `hasUnsafeDisplayChars`). Both
 * reach audit records and administrators' screens, where `admin\u202Enimda` would read as another name.
 */
export function mapClaims(
  claims: Readonly<Record<string, unknown>>,
  mapping: CompiledClaimMapping,
): MappedClaims {
  const clientId = readString(claims, mapping.clientId, 'client id');
  const subject = readString(claims, mapping.subject, 'subject') ?? clientId;
  if (subject === undefined || subject === '') invalid('Token has no subject');
  if (subject.length > 255 || hasUnsafeDisplayChars(subject)) invalid('Token subject is not acceptable');
  if (clientId !== undefined && hasUnsafeDisplayChars(clientId)) invalid('Token client id is not acceptable');
  return {
    subject,
    email: readString(claims, mapping.email, 'email') || undefined,
    tenant: readString(claims, mapping.tenant, 'tenant'),
    clientId: clientId || undefined,
    roles: readList(claims, mapping.roles, 'roles'),
    groups: readList(claims, mapping.groups, 'groups'),
    scopes: readList(claims, mapping.scopes, 'scopes'),
    resources: readList(claims, mapping.resources, 'resources'),
    permissions: readList(claims, mapping.permissions, 'permissions'),
  };
}
