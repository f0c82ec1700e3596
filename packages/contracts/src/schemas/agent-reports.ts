import { Type, type Static, type TSchema } from 'typebox';
import type { ActionType } from '../catalogue.ts';
import { EVIDENCE_MAX_PATHS, EVIDENCE_MAX_PATHS_CHARS } from '../parameters.ts';

/**
 * The most characters an action's output may hold. The server keeps free
 * text up to this length and cuts the rest; a structured report (below)
 * must fit whole, or it is no report at all.
 */
export const ACTION_OUTPUT_MAX_CHARS = 65_536;

const Sha256Schema = Type.String({ pattern: '^[0-9a-f]{64}$' });
const Sha256OrNullSchema = Type.Union([Sha256Schema, Type.Null()]);

/**
 * Who put a file on the device, as the agent could tell: Quell itself (the
 * agent's program, interpreter and directory), or an installed package
 * whose recorded checksum the file matches (`verified`) or no longer
 * matches. Absent: neither.
 */
export const FileOwnerSchema = Type.Union([
  Type.Object({ kind: Type.Literal('quell') }, { additionalProperties: false }),
  Type.Object({
    kind: Type.Literal('package'),
    manager: Type.Enum(['dpkg', 'rpm'] as const),
    name: Type.String({ minLength: 1, maxLength: 256 }),
    verified: Type.Boolean(),
  }, { additionalProperties: false }),
]);
export type FileOwner = Static<typeof FileOwnerSchema>;
/** A path on the device as the agent read it ("… (deleted)" included); the output limit bounds the whole report. */
const DevicePathSchema = Type.String({ maxLength: 8192 });
const CountSchema = Type.Integer({ minimum: 0 });

/**
 * `startup`: a line of a file read at every login, start or process launch
 * (shell startup files, `authorized_keys`, `/etc/ld.so.preload`,
 * `/etc/profile.d`) that names something in a temp or download folder;
 * of a drop-in file or ld.so.preload, every line once one does, so that it
 * can be told whether the file holds anything else.
 */
export const EVIDENCE_PERSISTENCE_KINDS = ['cron', 'systemd', 'startup', 'kernel_module'] as const;

/**
 * What a device answers to `collect_evidence`: what runs, what starts
 * things, and the files its alerts name. The agent builds it, the simulator
 * imitates it, the investigation engine reads it: all three through this
 * one schema.
 */
export const EvidenceReportSchema = Type.Object({
  processes: Type.Array(Type.Object({
    pid: CountSchema,
    exe: DevicePathSchema,
    /** Null when the executable could not be read (gone, too large). */
    sha256: Sha256OrNullSchema,
    commandLine: Type.String({ maxLength: 4096 }),
    /** Its parent, its parent's parent… up to the first process: what connects it to the processes an alert names. */
    ancestors: Type.Optional(Type.Array(CountSchema, { maxItems: 64 })),
    owner: Type.Optional(FileOwnerSchema),
  }), { maxItems: 4096 }),
  /** Cron lines, systemd units, startup lines and kernel modules: each with the file it comes from and its text. */
  persistence: Type.Array(Type.Object({
    kind: Type.Enum(EVIDENCE_PERSISTENCE_KINDS),
    source: DevicePathSchema,
    text: Type.String({ maxLength: 1024 }),
  }), { maxItems: 10_000 }),
  /**
   * Each file asked for with its hashes (SHA-1 and MD5 too, so that a file an
   * alert knows only by those can be matched), or why it has none.
   */
  files: Type.Array(Type.Object({
    path: Type.String({ maxLength: EVIDENCE_MAX_PATHS_CHARS }),
    sha256: Sha256OrNullSchema,
    sha1: Type.Optional(Type.String({ pattern: '^[0-9a-f]{40}$' })),
    md5: Type.Optional(Type.String({ pattern: '^[0-9a-f]{32}$' })),
    owner: Type.Optional(FileOwnerSchema),
    note: Type.Optional(Type.String({ maxLength: 300 })),
  }), { maxItems: EVIDENCE_MAX_PATHS }),
  /** What did not fit in the result and was left out. */
  leftOut: CountSchema,
});
export type EvidenceReport = Static<typeof EvidenceReportSchema>;

export const ScanFindingSchema = Type.Object({ path: DevicePathSchema, sha256: Sha256Schema, signature: Type.String({ maxLength: 1024 }) });
export type ScanFinding = Static<typeof ScanFindingSchema>;

/** What a device answers to `run_antivirus_scan`: what was scanned, what was skipped, and what was found. */
export const AntivirusScanReportSchema = Type.Object({
  scan: Type.Enum(['quick', 'full', 'custom'] as const),
  roots: Type.Array(DevicePathSchema, { maxItems: 10_000 }),
  missingRoots: Type.Array(DevicePathSchema, { maxItems: 10_000 }),
  scanned: CountSchema,
  bytes: CountSchema,
  directories: CountSchema,
  skipped: Type.Object({ symlinks: CountSchema, special: CountSchema, tooLarge: CountSchema, excludedMounts: CountSchema, unreadable: CountSchema }),
  findings: Type.Array(ScanFindingSchema, { maxItems: 500 }),
  /** How many findings did not fit in `findings`. */
  findingsLeftOut: CountSchema,
  /** A sample of what could not be read, for the analyst. */
  errors: Type.Array(Type.Object({ path: DevicePathSchema, error: Type.String({ maxLength: 1024 }) }), { maxItems: 1000 }),
  durationMs: CountSchema,
});
export type AntivirusScanReport = Static<typeof AntivirusScanReportSchema>;

/**
 * The output each action type reports: a JSON report of a schema, which
 * the server checks before it records the action completed, or free text
 * (null). A new action type does not compile until it has a row here.
 */
export const ACTION_REPORT_SCHEMAS: Record<ActionType, TSchema | null> = {
  isolate_device: null,
  release_isolation: null,
  contain_device: null,
  release_containment: null,
  contain_user: null,
  release_user: null,
  restrict_code_execution: null,
  remove_code_restriction: null,
  quarantine_file: null,
  stop_and_quarantine_file: null,
  restore_file: null,
  remove_registry_key: null,
  restore_registry_key: null,
  stop_service: null,
  restore_service: null,
  disable_driver: null,
  restore_driver: null,
  remove_scheduled_task: null,
  restore_scheduled_task: null,
  remove_persistence: null,
  restore_persistence: null,
  run_antivirus_scan: AntivirusScanReportSchema,
  collect_investigation_package: null,
  collect_evidence: EvidenceReportSchema,
};
