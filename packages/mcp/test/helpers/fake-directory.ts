import type { DirectoryChange, Principal, PrincipalDirectory } from '@authsec/core';

/**
 * A TEST DOUBLE of a database-backed directory: passes principals through (with extra grants per subject)
 * and lets a test announce grant changes, as `LISTEN/NOTIFY` would.
 */
export class FakeDirectory implements PrincipalDirectory {
  /** Extra roles per subject, added on resolve. */
  readonly extraRoles = new Map<string, string[]>();
  private readonly listeners = new Set<(change: DirectoryChange) => void>();

  async resolve(principal: Principal): Promise<Principal> {
    const extra = this.extraRoles.get(principal.subject);
    if (!extra) return principal;
    return Object.freeze({ ...principal, roles: Object.freeze([...principal.roles, ...extra]) });
  }

  subscribe(listener: (change: DirectoryChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The number of live subscribers. */
  get subscribers(): number {
    return this.listeners.size;
  }

  announce(change: DirectoryChange): void {
    for (const listener of this.listeners) listener(change);
  }
}
