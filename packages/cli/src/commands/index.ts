import type { CommandEntry } from '../command.js';
import { audit } from './audit.js';
import { catalogGroups } from './catalog.js';
import { check } from './check.js';
import { grant, grants, revoke } from './grant.js';
import { migrate } from './migrate.js';
import { policy } from './policy.js';
import { service } from './service.js';
import { tenant } from './tenant.js';

/**
 * Every `authsec` command, in the order help lists them. Parsing, help and dispatch all read this table: a new
 * command or group is one more entry.
 */
export const COMMANDS: readonly CommandEntry[] = Object.freeze([
  migrate,
  tenant,
  ...catalogGroups,
  grant,
  revoke,
  grants,
  check,
  policy,
  audit,
  service,
]);
