/** Exit codes of the `authsec` command. */
export const EXIT = Object.freeze({
  /** Done. */
  ok: 0,
  /** Failed: the database, the tenant, the configuration, or a failed `audit verify`. */
  failed: 1,
  /** Usage: unknown command or flag, missing or malformed argument. */
  usage: 2,
  /** Interrupted (SIGINT) before the command finished. */
  interrupted: 130,
});

/**
 * The command line is wrong (exit 2). The message names the flag, argument or command at fault; `command` is
 * the command whose help would show the right usage.
 */
export class UsageError extends Error {
  /** The command the user meant, e.g. `role add`, for the help hint. */
  readonly command: string | undefined;

  constructor(message: string, command?: string) {
    super(message);
    this.name = 'UsageError';
    this.command = command;
  }
}

/** The command ran and failed (exit 1), for a reason that is not an `AuthSecError`. */
export class CommandFailure extends Error {
  /** Stable code for `--json` error output. */
  readonly code: string;

  constructor(code: string, message: string) {
    super(message);
    this.name = 'CommandFailure';
    this.code = code;
  }
}

/** The command was interrupted by SIGINT (or its abort signal) before it finished. */
export class Interrupted extends Error {
  constructor() {
    super('interrupted');
    this.name = 'Interrupted';
  }
}
