import { AuthSecError, type AuthSecErrorCode, type AuthSecErrorDetails } from './errors.js';

/**
 * Identifiers that people read (token subjects and client ids, issuers, catalog names, binding subjects,
 * service names) must show what they are. Bidirectional controls reorder what a terminal or a browser shows
 * (`admin\u202Enimda` displays as another name), zero-width characters make two different identifiers look the
 * same, and control characters can move the cursor or recolour a terminal. One definition for every place
 * that refuses them; the CLI escapes the same set on output.
 *
 * The set: control characters (C0, DEL, C1), U+2028 LINE SEPARATOR and U+2029 PARAGRAPH SEPARATOR,
 * bidirectional controls (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069) and zero-width characters
 * (U+200B–U+200D, U+2060, U+FEFF).
 */
const UNSAFE_DISPLAY =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are part of what is refused.
  /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060\u2066-\u2069\ufeff]/;

/**
 * True when `text` holds a character that can disguise it on display: a control character (C0, DEL, C1),
 * U+2028 or U+2029, a bidirectional control (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069) or a
 * zero-width character (U+200B–U+200D, U+2060, U+FEFF). Letters and marks of every script pass; emoji
 * sequences joined with U+200D do not.
 */
export function hasUnsafeDisplayChars(text: string): boolean {
  return UNSAFE_DISPLAY.test(text);
}

/**
 * Returns `value` when {@link hasUnsafeDisplayChars} is false, else throws an `AuthSecError` with `code`
 * (default `BAD_REQUEST`) whose message starts with `what` and never repeats the value.
 */
export function assertDisplaySafe(
  value: string,
  what: string,
  code: AuthSecErrorCode = 'BAD_REQUEST',
  details?: AuthSecErrorDetails,
): string {
  if (hasUnsafeDisplayChars(value)) {
    throw new AuthSecError(
      code,
      `${what}: control, bidirectional-control and zero-width characters are not allowed`,
      details === undefined ? {} : { details },
    );
  }
  return value;
}
