/**
 * The requirement model: a tool's requirement is compiled once, then evaluated per caller in microseconds.
 *
 * Semantics (one definition, used everywhere): five categories (`roles`, `groups`, `scopes`, `resources`,
 * `permissions`). A category written as a list is satisfied by any listed value; `{ allOf }` needs every value.
 * `requireAll: false` (default) allows the call when any given category is satisfied, `true` when all are. No
 * category: any authenticated caller. A `resource:action` permission is held when granted as such, or when the
 * caller holds the resource and the action as a scope. `when` conditions (CEL over the tool's validated
 * arguments, the caller and the time) must all hold too; they are checked when the tool runs.
 */
export {
  type CategoryMode,
  type CompiledCategory,
  type CompiledRequirement,
  type CompileRequirementOptions,
  compileRequirement,
  isCompiledRequirement,
  requiredScopes,
} from './compile.js';
export {
  type CompiledCondition,
  type ConditionInput,
  type ConditionOutcome,
  type ConditionUser,
  MAX_CONDITIONS,
  MAX_EXPRESSION_LENGTH,
} from './conditions.js';
export {
  type AuthorizeOptions,
  authorize,
  type CategoryExplanation,
  type Explanation,
  evaluate,
  explain,
  explainConditions,
} from './evaluate.js';
export {
  createToolRegistry,
  type ToolDefinition,
  type ToolRegistry,
  type ToolRegistryOptions,
} from './registry.js';
