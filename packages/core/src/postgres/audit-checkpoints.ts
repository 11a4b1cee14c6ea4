import { createHmac } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { constantTimeEqual, deriveKey } from '../crypto.js';
import type { MasterKeyRing } from '../env.js';
import { isValidTenantId } from '../types.js';
import type { TenantHandle } from './tenancy-types.js';

/**
 * Signed checkpoints of the audit chain, kept outside the database.
 *
 * The chain in PostgreSQL shows every edited, moved or missing row, but not a log cut from its end by someone
 * who also rewinds the head (or empties the table and resets it): what is left is a consistent, shorter chain.
 * A checkpoint records a tenant's chain head at one moment (its row count, the MAC of that row, the time) and
 * is signed, so that it can be stored where the database administrator cannot rewrite it: a JSON-lines file on
 * the application host, stderr (collected by the log pipeline), or any other {@link AuditCheckpointSink}.
 * Verification then asks whether the newest checkpoint's row is still in the chain with the same MAC.
 *
 * Signatures are HMAC-SHA256 with a key derived by HKDF from the master key ring (purpose
 * `audit-checkpoint`, one key per ring key id, named in the checkpoint). An HMAC rather than Ed25519 because
 * the party that must not forge checkpoints (the database administrator) does not hold the master key, and
 * the verifier (`authsec audit verify`) already needs the ring for the row MACs: no second key to generate,
 * store, rotate and distribute. The price: whoever holds the master key can forge checkpoints, as they can
 * already forge the whole chain. The separate HKDF purpose keeps a checkpoint signature from ever passing for a
 * row MAC.
 */

/** The `type` of every checkpoint line; other lines in the same stream (logs) are ignored when reading. */
export const AUDIT_CHECKPOINT_TYPE = 'authsec.audit.checkpoint';
/** HKDF purpose of the checkpoint signing keys. */
const SIGN_PURPOSE = 'audit-checkpoint';
/** Version tag inside every signature input. */
const SIGN_FORMAT = 'authsec-audit-checkpoint-v1';

/** One signed checkpoint, exactly as written on its JSON line. */
export interface AuditCheckpoint {
  readonly type: typeof AUDIT_CHECKPOINT_TYPE;
  /** Format version. */
  readonly v: 1;
  /** The tenant whose chain this is. */
  readonly tenant: string;
  /** The chain head's sequence number: the rows the chain held (seq starts at 1 and has no gaps). */
  readonly seq: number;
  /** The MAC of row `seq` (the head MAC), 64 hex characters. */
  readonly mac: string;
  /** When the checkpoint was taken, ISO-8601. */
  readonly time: string;
  /** The ring key id whose derived key signed it. */
  readonly kid: string;
  /** HMAC-SHA256 (hex) over the fields above. */
  readonly sig: string;
}

/**
 * Where checkpoints go. Implement it to keep them elsewhere (for example a Vault KV path or a WORM bucket).
 * `write` may reject: the audit sink logs the failure and retries at its next checkpoint.
 */
export interface AuditCheckpointSink {
  /** Stores checkpoints (each sink gets every checkpoint, in order). */
  write(checkpoints: readonly AuditCheckpoint[]): Promise<void>;
}

function signatureInput(c: Omit<AuditCheckpoint, 'sig' | 'type' | 'v'>): string {
  return JSON.stringify([SIGN_FORMAT, c.tenant, String(c.seq), c.mac, c.time, c.kid]);
}

function signWith(key: Uint8Array, c: Omit<AuditCheckpoint, 'sig' | 'type' | 'v'>): string {
  return createHmac('sha256', key).update(signatureInput(c), 'utf8').digest('hex');
}

/** What {@link signAuditCheckpoint} signs. */
export interface AuditCheckpointInput {
  readonly tenant: string;
  readonly seq: number;
  readonly mac: string;
  /** Milliseconds since the epoch. */
  readonly timeMs: number;
}

/**
 * Signs a checkpoint of `input` with the key derived from the ring's active key. A tenant id that is not valid,
 * a seq that is not a positive integer or a MAC that is not 64 hex characters is a `TypeError`.
 */
export function signAuditCheckpoint(masterKey: MasterKeyRing, input: AuditCheckpointInput): AuditCheckpoint {
  if (!isValidTenantId(input.tenant)) throw new TypeError('signAuditCheckpoint: invalid tenant id');
  if (!Number.isSafeInteger(input.seq) || input.seq < 1)
    throw new TypeError('signAuditCheckpoint: seq must be a positive integer');
  if (!/^[0-9a-f]{64}$/.test(input.mac))
    throw new TypeError('signAuditCheckpoint: mac must be 64 hex digits');
  const body = {
    tenant: input.tenant,
    seq: input.seq,
    mac: input.mac,
    time: new Date(input.timeMs).toISOString(),
    kid: masterKey.activeKid,
  };
  const sig = signWith(deriveKey(masterKey, SIGN_PURPOSE, masterKey.activeKid), body);
  return { type: AUDIT_CHECKPOINT_TYPE, v: 1, ...body, sig };
}

/** One JSON line per checkpoint. */
export function formatAuditCheckpoints(checkpoints: readonly AuditCheckpoint[]): string {
  return checkpoints.map((c) => `${JSON.stringify(c)}\n`).join('');
}

/** Options of {@link createFileCheckpointSink}. */
export interface FileCheckpointSinkOptions {
  /**
   * The JSON-lines file. Created with mode 0600; an existing file with wider permissions is narrowed to 0600.
   * Lines are only ever appended (and flushed to disk with `fdatasync`). Keep it where the database
   * administrator cannot write (the application host, not the database host) and, where the file system allows
   * it, mark it append-only (`chattr +a`).
   */
  readonly path: string;
}

/** A checkpoint sink appending JSON lines to a file (0600). */
export function createFileCheckpointSink(options: FileCheckpointSinkOptions): AuditCheckpointSink {
  const path = options?.path;
  if (typeof path !== 'string' || path === '')
    throw new TypeError('createFileCheckpointSink: path is required');
  let checkedMode = false;
  let queue: Promise<unknown> = Promise.resolve();
  const append = async (text: string) => {
    const file = await open(path, 'a', 0o600);
    try {
      if (!checkedMode && process.platform !== 'win32') {
        if (((await file.stat()).mode & 0o077) !== 0) await file.chmod(0o600);
        checkedMode = true;
      }
      await file.appendFile(text, 'utf8');
      await file.datasync();
    } finally {
      await file.close();
    }
  };
  return {
    write(checkpoints) {
      if (checkpoints.length === 0) return Promise.resolve();
      // One append at a time, so that lines never interleave.
      const run = queue.then(() => append(formatAuditCheckpoints(checkpoints)));
      queue = run.catch(() => {});
      return run;
    },
  };
}

/** Options of {@link createStreamCheckpointSink}. */
export interface StreamCheckpointSinkOptions {
  /** Where lines go. Default: `process.stderr` (collected by the log pipeline, out of the database's reach). */
  readonly stream?: { write(chunk: string): unknown };
}

/** A checkpoint sink writing JSON lines to a stream, stderr by default. */
export function createStreamCheckpointSink(options: StreamCheckpointSinkOptions = {}): AuditCheckpointSink {
  const stream = options.stream ?? process.stderr;
  return {
    async write(checkpoints) {
      if (checkpoints.length > 0) stream.write(formatAuditCheckpoints(checkpoints));
    },
  };
}

/** A checkpoint line read back, with its 1-based line number. */
export interface ReadAuditCheckpoint {
  readonly line: number;
  readonly checkpoint: AuditCheckpoint;
}

/** A line that says it is a checkpoint but is not a well-formed one. */
export interface MalformedAuditCheckpoint {
  readonly line: number;
  /** The tenant it names, when it names a string. */
  readonly tenant: string | undefined;
  readonly reason: string;
}

/** What {@link parseAuditCheckpoints} found. */
export interface ParsedAuditCheckpoints {
  /** Well-formed checkpoint lines (signatures not yet checked), in file order. */
  readonly checkpoints: readonly ReadAuditCheckpoint[];
  readonly malformed: readonly MalformedAuditCheckpoint[];
}

function wellFormed(value: Record<string, unknown>): string | undefined {
  if (value.v !== 1) return 'unknown format version';
  if (typeof value.tenant !== 'string' || !isValidTenantId(value.tenant)) return 'invalid tenant';
  if (typeof value.seq !== 'number' || !Number.isSafeInteger(value.seq) || value.seq < 1)
    return 'invalid seq';
  if (typeof value.mac !== 'string' || !/^[0-9a-f]{64}$/.test(value.mac)) return 'invalid mac';
  if (typeof value.time !== 'string' || Number.isNaN(Date.parse(value.time))) return 'invalid time';
  if (typeof value.kid !== 'string' || value.kid === '') return 'invalid kid';
  if (typeof value.sig !== 'string' || !/^[0-9a-f]{64}$/.test(value.sig)) return 'invalid signature';
  return undefined;
}

/**
 * Reads checkpoint lines from JSON-lines text. Lines that are not JSON objects of type
 * {@link AUDIT_CHECKPOINT_TYPE} are ignored (a captured stderr log can be read as it is, and a line torn by a
 * crash is skipped); lines of that type with missing or invalid fields are listed as malformed.
 */
export function parseAuditCheckpoints(text: string): ParsedAuditCheckpoints {
  const checkpoints: ReadAuditCheckpoint[] = [];
  const malformed: MalformedAuditCheckpoint[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trim();
    if (!raw.startsWith('{') || !raw.includes(AUDIT_CHECKPOINT_TYPE)) continue;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      continue;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) continue;
    const record = value as Record<string, unknown>;
    if (record.type !== AUDIT_CHECKPOINT_TYPE) continue;
    const reason = wellFormed(record);
    if (reason) {
      malformed.push({
        line: i + 1,
        tenant: typeof record.tenant === 'string' ? record.tenant : undefined,
        reason,
      });
      continue;
    }
    checkpoints.push({
      line: i + 1,
      checkpoint: {
        type: AUDIT_CHECKPOINT_TYPE,
        v: 1,
        tenant: record.tenant as string,
        seq: record.seq as number,
        mac: record.mac as string,
        time: record.time as string,
        kid: record.kid as string,
        sig: record.sig as string,
      },
    });
  }
  return { checkpoints, malformed };
}

/** Reads and parses a checkpoint file ({@link parseAuditCheckpoints}). File errors reject as they are. */
export async function readAuditCheckpoints(path: string): Promise<ParsedAuditCheckpoints> {
  return parseAuditCheckpoints(await readFile(path, 'utf8'));
}

/** What kind of problem {@link verifyAuditCheckpoints} found. */
export type AuditCheckpointProblemKind =
  /** A checkpoint line of the tenant is malformed, signed by an unknown key id, or its signature is wrong. */
  | 'checkpoint_invalid'
  /** No validly signed checkpoint of the tenant was found: nothing anchors the chain. */
  | 'checkpoint_missing'
  /** The newest checkpoint's row is gone or has another MAC: the log was shortened, emptied or rewritten. */
  | 'shortened';

/** One problem found by {@link verifyAuditCheckpoints}. */
export interface AuditCheckpointProblem {
  /** The line of the checkpoint concerned, or `null`. */
  readonly line: number | null;
  /** The chain row concerned, or `null`. */
  readonly seq: number | null;
  readonly kind: AuditCheckpointProblemKind;
  /** Human-readable explanation. */
  readonly detail: string;
}

/** The outcome of {@link verifyAuditCheckpoints}. */
export interface AuditCheckpointVerifyResult {
  /** True when at least one checkpoint verified, none is invalid, and the newest one is found in the chain. */
  readonly ok: boolean;
  /** The tenant's checkpoints whose signature verified. */
  readonly checked: number;
  /** The validly signed checkpoint with the highest seq (the strongest anchor), or `null`. */
  readonly newest: ReadAuditCheckpoint | null;
  readonly problems: readonly AuditCheckpointProblem[];
}

/**
 * Checks a tenant's chain against checkpoints: every checkpoint line of the tenant must be well formed and
 * signed by a key of `masterKey`, and the newest (highest seq) must still be in the chain, with the same MAC.
 * Together with {@link verifyAuditChain} (which proves rows 1 to the head link up), this detects a log cut from
 * its end and rewound, or emptied and reset. Rows appended after the newest checkpoint are not anchored yet.
 * Database failures reject (`SERVICE_UNAVAILABLE` when unreachable).
 */
export async function verifyAuditCheckpoints(
  handle: TenantHandle,
  masterKey: MasterKeyRing,
  parsed: ParsedAuditCheckpoints,
): Promise<AuditCheckpointVerifyResult> {
  const tenantId = handle.tenant.id;
  const problems: AuditCheckpointProblem[] = [];
  for (const m of parsed.malformed) {
    if (m.tenant === tenantId || m.tenant === undefined) {
      problems.push({
        line: m.line,
        seq: null,
        kind: 'checkpoint_invalid',
        detail: `line ${m.line} is not a valid checkpoint (${m.reason})`,
      });
    }
  }
  const keys = new Map<string, Buffer>();
  let checked = 0;
  let newest: ReadAuditCheckpoint | null = null;
  for (const entry of parsed.checkpoints) {
    const c = entry.checkpoint;
    if (c.tenant !== tenantId) continue;
    let key = keys.get(c.kid);
    if (!key && masterKey.keys.has(c.kid)) {
      key = deriveKey(masterKey, SIGN_PURPOSE, c.kid);
      keys.set(c.kid, key);
    }
    if (!key) {
      problems.push({
        line: entry.line,
        seq: c.seq,
        kind: 'checkpoint_invalid',
        detail: `line ${entry.line} is signed with key id ${JSON.stringify(c.kid.slice(0, 64))}, not in the key ring`,
      });
      continue;
    }
    if (!constantTimeEqual(signWith(key, c), c.sig)) {
      problems.push({
        line: entry.line,
        seq: c.seq,
        kind: 'checkpoint_invalid',
        detail: `line ${entry.line} does not match its signature (edited or forged)`,
      });
      continue;
    }
    checked++;
    if (!newest || c.seq >= newest.checkpoint.seq) newest = entry;
  }

  if (!newest) {
    problems.push({
      line: null,
      seq: null,
      kind: 'checkpoint_missing',
      detail: `no validly signed checkpoint of tenant '${tenantId}': nothing anchors the chain`,
    });
    return { ok: false, checked, newest, problems };
  }

  const c = newest.checkpoint;
  const found = await handle.sql.query<{ mac: string; last: string | null }>(
    `SELECT (SELECT mac FROM ${handle.schema}.audit_events e WHERE e.seq = $1::bigint) AS mac,
            (SELECT max(e.seq)::text FROM ${handle.schema}.audit_events e) AS last`,
    [String(c.seq)],
  );
  const row = found.rows[0];
  const last = row?.last === null || row?.last === undefined ? 0 : Number(row.last);
  const where = `the checkpoint of ${c.time} (line ${newest.line}) records ${c.seq} row(s)`;
  if (!row || row.mac === null || row.mac === undefined) {
    problems.push({
      line: newest.line,
      seq: c.seq,
      kind: 'shortened',
      detail:
        last === 0
          ? `${where}, but the log is empty: it was emptied`
          : `${where}, but row ${c.seq} is gone (the log ends at row ${last}): it was shortened`,
    });
  } else if (!constantTimeEqual(row.mac, c.mac)) {
    problems.push({
      line: newest.line,
      seq: c.seq,
      kind: 'shortened',
      detail: `${where}, but row ${c.seq} has another MAC: the log was cut and rewritten from there`,
    });
  }
  return { ok: problems.length === 0, checked, newest, problems };
}
