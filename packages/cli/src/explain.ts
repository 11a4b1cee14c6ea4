import {
  authorize,
  type CompiledRequirement,
  type Explanation,
  explain,
  isAuthSecError,
  type Principal,
} from '@authsec/core';

/** Why a call is refused, as an adapter would answer it. */
export interface Refusal {
  /** `INSUFFICIENT_SCOPE`, `PERMISSION_DENIED` or `TENANT_UNKNOWN`. */
  readonly code: string;
  readonly message: string;
  /** For `INSUFFICIENT_SCOPE`: the scopes a client should request (missing first, then those held). */
  readonly scopes?: readonly string[];
}

/** The engine's account of one decision. */
export interface Decision {
  readonly explanation: Explanation;
  /** `undefined` when allowed. */
  readonly refusal: Refusal | undefined;
}

/** Explains and decides `requirement` for `principal` with the same code every AuthSec server runs. */
export function decide(principal: Principal, requirement: CompiledRequirement): Decision {
  const explanation = explain(principal, requirement);
  try {
    authorize(principal, requirement);
    return { explanation, refusal: undefined };
  } catch (error) {
    if (!isAuthSecError(error)) throw error;
    const scopes = error.details.scopes;
    return {
      explanation,
      refusal: { code: error.code, message: error.message, ...(scopes ? { scopes } : {}) },
    };
  }
}
