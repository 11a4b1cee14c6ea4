import type { Principal } from '@authsec/core';

/** The argument that carries the caller's identity into a tool (the brief's `_user_info`). */
export const USER_INFO_KEY = '_user_info';

/** The caller's identity as the brief injects it into `arguments._user_info`. Never contains a token. */
export interface UserInfo {
  readonly email: string | undefined;
  readonly sub: string;
  readonly tenant_id: string;
  readonly roles: readonly string[];
  readonly groups: readonly string[];
  readonly scopes: readonly string[];
  readonly resources: readonly string[];
}

// Principals are frozen, so the user info of one is built once and shared by every call it makes.
const cache = new WeakMap<Principal, UserInfo>();

/**
 * The brief's `_user_info` for a principal: email, sub, tenant_id, roles, groups, scopes, resources (the
 * effective claims). Frozen, arrays included. Never carries a token or the raw claim set.
 */
export function toUserInfo(principal: Principal): UserInfo {
  const hit = cache.get(principal);
  if (hit !== undefined) return hit;
  const info: UserInfo = Object.freeze({
    email: principal.email,
    sub: principal.subject,
    tenant_id: principal.tenantId,
    roles: Object.freeze([...principal.roles]),
    groups: Object.freeze([...principal.groups]),
    scopes: Object.freeze([...principal.scopes]),
    resources: Object.freeze([...principal.resources]),
  });
  if (Object.isFrozen(principal)) cache.set(principal, info);
  return info;
}
