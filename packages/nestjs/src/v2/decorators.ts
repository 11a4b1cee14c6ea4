import type {
  AuthSecPromptConfig,
  AuthSecResourceConfig,
  AuthSecToolConfig,
  ResourceTemplate,
} from '@authsec/mcp/v2';
import { SetMetadata } from '@nestjs/common';

/** Metadata key of the v2 primitive decorators on a method. */
export const AUTHSEC_PRIMITIVE_METADATA = '@authsec/nestjs/v2:primitive';

/** What {@link AuthSecTool}, {@link AuthSecResource} and {@link AuthSecPrompt} store on a method. */
export type AuthSecPrimitiveMetadata =
  | { readonly kind: 'tool'; readonly name: string; readonly config: AuthSecToolConfig }
  | {
      readonly kind: 'resource';
      readonly name: string;
      readonly uri: string | ResourceTemplate;
      readonly config: AuthSecResourceConfig;
    }
  | { readonly kind: 'prompt'; readonly name: string; readonly config: AuthSecPromptConfig };

/**
 * Serves a provider method as an MCP tool: `registerTool` of `@authsec/mcp/v2` with the method as its handler,
 * called on its instance with `(args, context)` (`args._user_info` is the caller, `context.principal` the
 * verified principal, `context.services` the tenant's credentials). `config.requirement` is required (`{}`: any
 * authenticated caller; `'public'`: anyone): the tool is hidden from callers who do not satisfy it, and refused
 * when called anyway. Discovered when the application starts; a name declared twice fails the start.
 */
export function AuthSecTool(name: string, config: AuthSecToolConfig): MethodDecorator {
  return SetMetadata(AUTHSEC_PRIMITIVE_METADATA, {
    kind: 'tool',
    name,
    config,
  } satisfies AuthSecPrimitiveMetadata);
}

/**
 * Serves a provider method as an MCP resource at a fixed URI or a `ResourceTemplate`: the method reads it,
 * called with `(uri, variables, context)`. Hidden from (and unreadable by) callers without `config.requirement`.
 */
export function AuthSecResource(
  name: string,
  uri: string | ResourceTemplate,
  config: AuthSecResourceConfig,
): MethodDecorator {
  return SetMetadata(AUTHSEC_PRIMITIVE_METADATA, {
    kind: 'resource',
    name,
    uri,
    config,
  } satisfies AuthSecPrimitiveMetadata);
}

/** Serves a provider method as an MCP prompt, called with `(args, context)`, behind `config.requirement`. */
export function AuthSecPrompt(name: string, config: AuthSecPromptConfig): MethodDecorator {
  return SetMetadata(AUTHSEC_PRIMITIVE_METADATA, {
    kind: 'prompt',
    name,
    config,
  } satisfies AuthSecPrimitiveMetadata);
}
