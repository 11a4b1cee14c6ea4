import type { Principal } from '@authsec/core';
import type { UserInfo } from './types.js';

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
