import { setTimeout as sleep } from 'node:timers/promises';
import {
  type AuditCheckpointVerifyResult,
  createFileCheckpointSink,
  type ParsedAuditCheckpoints,
  readAuditCheckpoints,
  readAuditEvents,
  readAuditHead,
  type StoredAuditEvent,
  signAuditCheckpoint,
  type TenantHandle,
  verifyAuditChain,
  verifyAuditCheckpoints,
} from '@authsec/core/postgres';
import type { CommandContext, CommandGroup, CommandSpec } from '../command.js';
import { CommandFailure, UsageError } from '../errors.js';
import { formatTable, visible } from '../output.js';
import { tenantFlag } from './catalog.js';

/** How often `audit tail --follow` asks for new events. */
export const FOLLOW_INTERVAL_MS = 500;
const DEFAULT_LIMIT = 20;
const MAX_LIMIT = 1000;

async function auditHandle(ctx: CommandContext, tenantId: string): Promise<TenantHandle> {
  await ctx.requireTenant(tenantId);
  const storage = await ctx.storage();
  // Disabled tenants keep their audit log; administrators still read and verify it.
  return storage.tenancy.handle(tenantId, { allowDisabled: true });
}

const HEADERS = ['SEQ', 'TIME', 'ACTION', 'DECISION', 'SUBJECT', 'TARGET', 'REASON'];
// Fixed minimum widths so that the lines printed later by --follow stay aligned with the first ones.
const WIDTHS = [6, 24, 12, 8, 16, 32];

function row(e: StoredAuditEvent): string[] {
  const reason = [e.reason, e.failed && e.failed.length > 0 ? `failed: ${e.failed.join(',')}` : undefined]
    .filter(Boolean)
    .join(' ');
  return [String(e.seq), e.time, e.action, e.decision, e.subject ?? '-', e.target ?? '-', reason || '-'];
}

function line(cells: readonly string[]): string {
  return cells
    .map((c, i) => {
      const text = visible(c);
      return i < WIDTHS.length ? text.padEnd(WIDTHS[i]!) : text;
    })
    .join('  ')
    .trimEnd();
}

function readLimit(ctx: CommandContext): number {
  const text = ctx.string('limit');
  if (text === undefined) return DEFAULT_LIMIT;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > MAX_LIMIT) {
    throw new UsageError(
      `--limit: expected a whole number from 1 to ${MAX_LIMIT}, got '${text}'`,
      ctx.command,
    );
  }
  return n;
}

const tail: CommandSpec = {
  name: 'tail',
  summary: "Print a tenant's latest audit events; --follow keeps printing new ones",
  details: [
    'With --follow it polls every 500 ms until Ctrl-C or until its standard input closes; with --json it then',
    'prints one JSON object per line. Tail does not verify the chain: use audit verify.',
  ],
  flags: {
    tenant: tenantFlag,
    follow: { type: 'boolean', description: 'Keep printing new events until stopped' },
    limit: {
      type: 'string',
      value: 'n',
      description: `How many of the latest events to print first (1-${MAX_LIMIT}, default ${DEFAULT_LIMIT})`,
    },
  },
  async run(ctx) {
    const tenantId = ctx.string('tenant')!;
    const limit = readLimit(ctx);
    const follow = ctx.boolean('follow');
    const handle = await auditHandle(ctx, tenantId);
    const head = await readAuditHead(handle);
    const events = await readAuditEvents(handle, { afterSeq: Math.max(0, (head?.seq ?? 0) - limit), limit });
    let last = events.at(-1)?.seq ?? head?.seq ?? 0;

    if (!follow) {
      if (ctx.json) ctx.out.json({ tenant: tenantId, events });
      else if (events.length === 0) ctx.out.line(`No audit events in tenant '${tenantId}'.`);
      else ctx.out.table(HEADERS, events.map(row));
      return 0;
    }

    const print = (list: readonly StoredAuditEvent[]) => {
      for (const e of list) {
        if (ctx.json) ctx.out.json(e);
        else ctx.out.line(line(row(e)));
      }
    };
    const signal = ctx.untilStopped();
    if (!ctx.json) ctx.out.line(line(HEADERS));
    print(events);
    while (!signal.aborted) {
      try {
        await sleep(FOLLOW_INTERVAL_MS, undefined, { signal });
      } catch {
        break;
      }
      for (;;) {
        const batch = await readAuditEvents(handle, { afterSeq: last, limit: MAX_LIMIT });
        print(batch);
        last = batch.at(-1)?.seq ?? last;
        if (batch.length < MAX_LIMIT) break;
      }
    }
    return 0;
  },
};

async function readCheckpointFile(path: string, missingOk: true): Promise<ParsedAuditCheckpoints | undefined>;
async function readCheckpointFile(path: string, missingOk?: false): Promise<ParsedAuditCheckpoints>;
async function readCheckpointFile(
  path: string,
  missingOk = false,
): Promise<ParsedAuditCheckpoints | undefined> {
  try {
    return await readAuditCheckpoints(path);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (missingOk && code === 'ENOENT') return undefined;
    throw new CommandFailure(
      'CHECKPOINT_UNREADABLE',
      `the checkpoint file '${path}' cannot be read${typeof code === 'string' ? ` (${code})` : ''}`,
    );
  }
}

const checkpointFlag = {
  type: 'string',
  value: 'file',
  description: 'A JSON-lines file of signed checkpoints (written by the servers or by audit checkpoint)',
} as const;

const verify: CommandSpec = {
  name: 'verify',
  summary: "Verify a tenant's audit chain: every row's MAC, no gaps, the head matches the last row",
  details: [
    'Prints OK and the number of rows, or every problem (seq, kind, detail) and exits 1. Kinds: modified,',
    'missing, truncated, head_mismatch, unknown_key. AUTHSEC_MASTER_KEY must be the key ring the servers use',
    '(keep retired keys in it to verify old rows).',
    'With --checkpoint it also checks the signed checkpoints kept outside the database: every checkpoint of',
    'the tenant must be validly signed, and the newest one must still be in the chain. A log cut from its end',
    'and rewound, or emptied, verifies on its own but fails here (kinds: shortened, checkpoint_invalid,',
    'checkpoint_missing).',
  ],
  flags: { tenant: tenantFlag, checkpoint: checkpointFlag },
  async run(ctx) {
    const tenantId = ctx.string('tenant')!;
    const checkpointPath = ctx.string('checkpoint');
    const parsed = checkpointPath === undefined ? undefined : await readCheckpointFile(checkpointPath);
    const handle = await auditHandle(ctx, tenantId);
    const ring = await ctx.masterKey();
    const result = await verifyAuditChain(handle, ring);
    const anchored: AuditCheckpointVerifyResult | undefined = parsed
      ? await verifyAuditCheckpoints(handle, ring, parsed)
      : undefined;
    const ok = result.ok && (anchored?.ok ?? true);
    if (ctx.json) {
      ctx.out.json({ tenant: tenantId, ...result, ok, ...(anchored ? { checkpoint: anchored } : {}) });
    } else if (ok) {
      const newest = anchored?.newest?.checkpoint;
      ctx.out.line(
        `OK: the audit log of tenant '${tenantId}' verifies (${result.rows} rows)${
          newest ? `, and holds its newest checkpoint (row ${newest.seq}, ${newest.time})` : ''
        }`,
      );
    } else {
      const rows = [
        ...result.problems.map((p) => [p.seq === null ? '-' : String(p.seq), p.kind, p.detail]),
        ...(anchored?.problems ?? []).map((p) => [p.seq === null ? '-' : String(p.seq), p.kind, p.detail]),
      ];
      for (const l of formatTable(['SEQ', 'KIND', 'DETAIL'], rows)) ctx.out.line(l);
      const count = result.problemCount + (anchored?.problems.length ?? 0);
      const more =
        result.problemCount > result.problems.length ? ` (first ${result.problems.length} shown)` : '';
      ctx.out.line(
        `FAILED: ${count} problem(s) in the audit log of tenant '${tenantId}' (${result.rows} rows)${more}`,
      );
      if (anchored?.problems.some((p) => p.kind === 'shortened')) {
        ctx.out.line(
          'The log is shorter than a signed checkpoint says it was: rows were deleted from its end (or all of them).',
        );
      }
    }
    return ok ? 0 : 1;
  },
};

const checkpoint: CommandSpec = {
  name: 'checkpoint',
  summary: "Verify a tenant's audit chain, then append a signed checkpoint of its head to a file",
  details: [
    'Anchors the chain outside the database, for example from a scheduled job on another host: the file is',
    'created with mode 0600 and only appended to. Refuses (exit 1) when the chain does not verify or is',
    'shorter than a checkpoint already in the file. Servers write the same checkpoints on their own with the',
    "audit sink's checkpointSinks option.",
  ],
  flags: { tenant: tenantFlag, file: { ...checkpointFlag, required: true } },
  async run(ctx) {
    const tenantId = ctx.string('tenant')!;
    const path = ctx.string('file')!;
    const handle = await auditHandle(ctx, tenantId);
    const ring = await ctx.masterKey();
    const result = await verifyAuditChain(handle, ring);
    if (!result.ok || !result.head) {
      throw new CommandFailure(
        'AUDIT_CHAIN_INVALID',
        `the audit log of tenant '${tenantId}' does not verify: run audit verify; no checkpoint written`,
      );
    }
    // A file that does not exist yet is created below.
    const parsed = await readCheckpointFile(path, true);
    if (parsed?.checkpoints.some((c) => c.checkpoint.tenant === tenantId)) {
      const anchored = await verifyAuditCheckpoints(handle, ring, parsed);
      if (!anchored.ok) {
        throw new CommandFailure(
          'AUDIT_CHAIN_INVALID',
          `the audit log of tenant '${tenantId}' does not match the checkpoints in '${path}': ${anchored.problems[0]!.detail}; no checkpoint written`,
        );
      }
    }
    if (result.head.seq === 0) {
      if (ctx.json) ctx.out.json({ tenant: tenantId, checkpoint: null });
      else ctx.out.line(`Nothing to checkpoint: the audit log of tenant '${tenantId}' is empty.`);
      return 0;
    }
    const signed = signAuditCheckpoint(ring, {
      tenant: tenantId,
      seq: result.head.seq,
      mac: result.head.mac,
      timeMs: Date.now(),
    });
    await createFileCheckpointSink({ path }).write([signed]);
    if (ctx.json) ctx.out.json({ tenant: tenantId, checkpoint: signed });
    else ctx.out.line(`Checkpoint of tenant '${tenantId}' at row ${signed.seq} appended to ${path}`);
    return 0;
  },
};

/** `authsec audit tail|verify`. */
export const audit: CommandGroup = {
  name: 'audit',
  summary: "Read and verify a tenant's tamper-evident audit log",
  commands: [tail, verify, checkpoint],
};
