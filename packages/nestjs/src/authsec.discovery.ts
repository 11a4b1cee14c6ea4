import type { DiscoveryService, MetadataScanner, Reflector } from '@nestjs/core';

/** A provider method marked with a metadata key: its metadata, and a function calling it on its instance. */
export interface DiscoveredMethod<M> {
  readonly meta: M;
  readonly call: (...args: unknown[]) => unknown;
}

/**
 * Every method of every static provider instance carrying metadata under `key`, in discovery order (each
 * instance once; request-scoped providers have no instance to call at start). Both entries' MCP services
 * discover their decorated methods with it.
 */
export function discoverMethods<M>(
  discovery: DiscoveryService,
  scanner: MetadataScanner,
  reflector: Reflector,
  key: string,
): DiscoveredMethod<M>[] {
  const found: DiscoveredMethod<M>[] = [];
  const seen = new Set<object>();
  for (const wrapper of discovery.getProviders()) {
    const instance: unknown = wrapper.instance;
    if (typeof instance !== 'object' || instance === null || seen.has(instance)) continue;
    if (!wrapper.isDependencyTreeStatic()) continue;
    seen.add(instance);
    const prototype = Object.getPrototypeOf(instance) as object | null;
    if (prototype === null) continue;
    for (const name of scanner.getAllMethodNames(prototype)) {
      const method = (instance as Record<string, unknown>)[name];
      if (typeof method !== 'function') continue;
      const meta = reflector.get<M | undefined>(key, method);
      if (meta !== undefined) found.push({ meta, call: (...args) => method.apply(instance, args) });
    }
  }
  return found;
}
