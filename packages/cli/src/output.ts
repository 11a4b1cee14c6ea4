/** A stream the command writes to: `process.stdout`, or a collector in tests. */
export interface TextSink {
  write(chunk: string): unknown;
}

/** Where a command's results go. Results on stdout; progress, warnings and errors on stderr. */
export interface Output {
  /** One JSON document (or one JSON line of a stream) on stdout; unsafe characters written as `\uXXXX`. */
  json(value: unknown): void;
  /** One line of text on stdout (unsafe characters made visible, see {@link visible}). */
  line(text?: string): void;
  /** An aligned table on stdout: a header row, then the rows (every cell through {@link visible}). */
  table(headers: readonly string[], rows: readonly (readonly string[])[]): void;
  /** One progress or note line on stderr (through {@link visible}). */
  note(text: string): void;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;

// Names, subjects and audit fields come from the database and, ultimately, from other people: nothing printed
// may move the cursor, recolour or rewrite the terminal (control characters), reorder what is shown
// (bidirectional controls: `ad\u202Enimda` shows as another name) or hide (zero-width characters). The same set
// as `hasUnsafeDisplayChars` of @authsec/core, which refuses them in new identifiers; rows stored before that,
// or written below the API, still reach this.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060\u2066-\u2069\ufeff]/g;

/** True when `text` holds a control character (C0, DEL, C1, or a Unicode line or paragraph separator). */
export function hasControlCharacters(text: string): boolean {
  CONTROL.lastIndex = 0;
  const found = CONTROL.test(text);
  CONTROL.lastIndex = 0;
  return found;
}

/**
 * `text` with every control, bidirectional-control and zero-width character shown as `\uXXXX`: the one escape
 * every line, table, note and log line of the CLI goes through.
 */
export function visible(text: string): string {
  return text.replace(UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * `JSON.stringify(value)` with the same characters written as `\uXXXX` escapes: still valid JSON for the same
 * value (outside strings, compact JSON holds none of them), but never raw on a terminal.
 */
export function jsonText(value: unknown): string {
  return visible(JSON.stringify(value) ?? 'null');
}

/** Lines of an aligned table (two spaces between columns; the last column is not padded). */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const all = [headers, ...rows].map((row) => row.map((cell) => visible(cell)));
  const widths = headers.map((_, i) => Math.max(...all.map((row) => (row[i] ?? '').length)));
  return all.map((row) =>
    row
      .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd(),
  );
}

/** An {@link Output} over two sinks. */
export function createOutput(stdout: TextSink, stderr: TextSink): Output {
  return {
    json(value) {
      stdout.write(`${jsonText(value)}\n`);
    },
    line(text = '') {
      stdout.write(`${visible(text)}\n`);
    },
    table(headers, rows) {
      for (const line of formatTable(headers, rows)) stdout.write(`${line}\n`);
    },
    note(text) {
      stderr.write(`${visible(text)}\n`);
    },
  };
}

/** A list for a table cell: comma-separated, or `-` when empty. */
export function cell(values: readonly string[] | undefined): string {
  return values && values.length > 0 ? values.join(', ') : '-';
}
