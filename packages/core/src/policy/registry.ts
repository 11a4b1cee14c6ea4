import type { Logger, Principal, Requirement } from '../types.js';
import { type CompiledRequirement, compileRequirement } from './compile.js';
import { evaluate } from './evaluate.js';

/** One registered tool: its name, its compiled requirement and whatever the adapter attaches. */
export interface ToolDefinition<M = unknown> {
  /** The MCP tool name. */
  readonly name: string;
  /** The compiled requirement (an empty one when the tool was registered without a requirement). */
  readonly requirement: CompiledRequirement;
  /** Adapter data (handler, schema, description...), stored as given. */
  readonly meta: M;
}

/** The tools of one server, each with its requirement compiled once at registration. */
export interface ToolRegistry<M = unknown> {
  /**
   * Compiles `requirement` (`undefined`: any authenticated caller) and registers the tool. A `TypeError` for a
   * name that is not 1 to 128 characters of `[A-Za-z0-9_.-]` (the MCP tool name rules), for a name already
   * registered, or for an invalid requirement (see {@link compileRequirement}).
   */
  register(name: string, requirement: Requirement | undefined, meta: M): ToolDefinition<M>;
  /** The tool of that name, or `undefined`. */
  get(name: string): ToolDefinition<M> | undefined;
  /** Every tool, in registration order (a frozen snapshot). */
  list(): readonly ToolDefinition<M>[];
  /**
   * The tools `principal` may call, in registration order: one {@link evaluate} per tool. Hidden is not
   * forbidden: a call must still be authorized on its own.
   */
  visibleTools(principal: Principal): ToolDefinition<M>[];
  /** The number of registered tools. */
  readonly size: number;
}

/** Options of {@link createToolRegistry}. */
export interface ToolRegistryOptions {
  /** Receives compile-time warnings (several categories without `requireAll`). Default: `process.emitWarning`. */
  readonly logger?: Logger;
}

const TOOL_NAME = /^[A-Za-z0-9_.-]{1,128}$/;

/** Creates an empty {@link ToolRegistry}. */
export function createToolRegistry<M = unknown>(options: ToolRegistryOptions = {}): ToolRegistry<M> {
  const byName = new Map<string, ToolDefinition<M>>();
  const tools: ToolDefinition<M>[] = [];
  let snapshot: readonly ToolDefinition<M>[] | undefined;

  return {
    register(name, requirement, meta) {
      if (typeof name !== 'string' || !TOOL_NAME.test(name)) {
        throw new TypeError(
          `Invalid tool name ${JSON.stringify(name)}: use 1 to 128 characters of A-Z, a-z, 0-9, '_', '-' and '.'`,
        );
      }
      if (byName.has(name)) throw new TypeError(`Tool '${name}' is already registered`);
      const compiled = compileRequirement(requirement ?? {}, { name, logger: options.logger });
      const tool: ToolDefinition<M> = Object.freeze({ name, requirement: compiled, meta });
      byName.set(name, tool);
      tools.push(tool);
      snapshot = undefined;
      return tool;
    },
    get(name) {
      return byName.get(name);
    },
    list() {
      snapshot ??= Object.freeze([...tools]);
      return snapshot;
    },
    visibleTools(principal) {
      const visible: ToolDefinition<M>[] = [];
      for (const tool of tools) if (evaluate(principal, tool.requirement)) visible.push(tool);
      return visible;
    },
    get size() {
      return tools.length;
    },
  };
}
