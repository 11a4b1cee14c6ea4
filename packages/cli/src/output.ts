/** A stream the command writes to: `process.stdout`, or a collector in tests. */
export interface TextSink {
  write(chunk: string): unknown;
}

/** Where a command's results go. Results on stdout; progress, warnings and errors on stderr. */
export interface Output {
  /** One JSON document (or one JSON line of a stream) on stdout. */
  json(value: unknown): void;
  /** One line of text on stdout (control characters made visible). */
  line(text?: string): void;
  /** An aligned table on stdout: a header row, then the rows. */
  table(headers: readonly string[], rows: readonly (readonly string[])[]): void;
  /** One progress or note line on stderr. */
  note(text: string): void;
}

// Names, subjects and audit fields come from the database and, ultimately, from other people: escape control
// characters so that nothing printed can move the cursor, recolour or rewrite the terminal.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;

/** True when `text` holds a control character (C0, DEL, C1, or a Unicode line or paragraph separator). */
export function hasControlCharacters(text: string): boolean {
  CONTROL.lastIndex = 0;
  const found = CONTROL.test(text);
  CONTROL.lastIndex = 0;
  return found;
}

/** `text` with every control character shown as `\uXXXX`. */
export function visible(text: string): string {
  return text.replace(CONTROL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
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
      stdout.write(`${JSON.stringify(value)}\n`);
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
