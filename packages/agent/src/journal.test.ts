import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { appendFileSync, closeSync, existsSync, ftruncateSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MAX_LINE_BYTES } from './journal-format.ts';
import { Journal } from './journal.ts';
import { STALE_TOLERANCE_SECONDS } from './watermark.ts';

const HOUR_MS = 3_600_000;
const work = mkdtempSync(join(tmpdir(), 'quell-journal-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const newDir = (): string => mkdtempSync(join(work, 'agent-'));
const journalFile = (dir: string): string => join(dir, 'journal.jsonl');
const lines = (dir: string): string[] => readFileSync(journalFile(dir), 'utf8').split('\n').filter(Boolean);
const sum = (json: string): string => createHash('sha256').update(json).digest('hex').slice(0, 16);
/** A line as the journal writes it, with a valid checksum over whatever JSON it is given. */
const summed = (value: unknown): string => `${sum(JSON.stringify(value))} ${JSON.stringify(value)}\n`;
const nonce = (): string => randomBytes(16).toString('base64url');

/** A clock the test moves; seconds and milliseconds from the same instant. */
function testClock(start = Date.parse('2026-03-01T12:00:00Z')) {
  let ms = start;
  return { now: () => ms, seconds: () => Math.floor(ms / 1000), advance: (by: number) => void (ms += by) };
}

/** A command carried out to the end, as the agent does it. */
function carryOut(journal: Journal, clock: ReturnType<typeof testClock>, type: string, options: { outcome?: 'completed' | 'failed'; snapshot?: unknown; undoOf?: string; output?: string; ttlMs?: number } = {}): { actionId: string; nonce: string } {
  const actionId = randomUUID();
  const command = { actionId, nonce: nonce() };
  journal.start(actionId, command.nonce, Math.floor((clock.now() + (options.ttlMs ?? 24 * HOUR_MS)) / 1000), type, options.undoOf ?? null, clock.seconds());
  journal.finish(actionId, { outcome: options.outcome ?? 'completed', output: options.output ?? `${type} done`, ...(options.snapshot !== undefined ? { snapshot: options.snapshot } : {}) });
  return command;
}

describe('the agent journal', () => {
  it('skips a line whose checksum does not match, reports its line number, and keeps every other entry', () => {
    const dir = newDir();
    const clock = testClock();
    const journal = new Journal(dir, { now: clock.now });
    const first = carryOut(journal, clock, 'quarantine_file', { snapshot: { path: '/a' } });
    const second = carryOut(journal, clock, 'quarantine_file', { snapshot: { path: '/b' } });
    journal.close();

    // Line 1 is the header; 2 and 3 are the first action's start and done. One digit of the done's checksum changes.
    const text = lines(dir);
    const digit = text[2]![0] === '0' ? '1' : '0';
    text[2] = digit + text[2]!.slice(1);
    writeFileSync(journalFile(dir), `${text.join('\n')}\n`);

    const reopened = new Journal(dir, { now: clock.now });
    expect(reopened.damaged).toEqual([{ file: 'journal.jsonl', line: 3, reason: 'checksum does not match' }]);
    expect(reopened.damagedCount).toBe(1);
    expect(reopened.wasStarted(first.actionId)).toBe(true);
    expect(reopened.outcomeOf(first.actionId)).toBeNull();
    expect(reopened.snapshotOf(second.actionId)).toEqual({ path: '/b' });
    // The file as loaded stays beside the journal, for the line numbers reported.
    expect(readFileSync(`${journalFile(dir)}.damaged`, 'utf8').split('\n')[2]).toBe(text[2]);
    reopened.close();
  });

  it('skips a `null` line, JSON of the wrong shape and an unsummed line, without failing to start', () => {
    const dir = newDir();
    const clock = testClock();
    const journal = new Journal(dir, { now: clock.now });
    const kept = carryOut(journal, clock, 'quarantine_file');
    journal.close();
    const at = clock.now();
    appendFileSync(journalFile(dir), [
      summed(null),
      'null\n',
      summed({ k: 'start', actionId: 'not-a-uuid', nonce: nonce(), exp: 1, at }),
      summed({ k: 'start', actionId: randomUUID(), exp: 1, at }),
      summed({ k: 'done', actionId: randomUUID(), outcome: 'maybe', at }),
      summed({ k: 'erase', actionId: randomUUID(), at }),
      summed([1, 2]),
      `${JSON.stringify({ k: 'start', actionId: randomUUID(), nonce: nonce(), exp: 1, at })}\n`,
    ].join(''));

    const reopened = new Journal(dir, { now: clock.now });
    expect(reopened.damaged.map((d) => [d.line, d.reason])).toEqual([
      [4, 'not an entry object'],
      [5, 'not a journal line'],
      [6, 'actionId is not a UUID'],
      [7, 'start without a nonce'],
      [8, 'done without an outcome'],
      [9, 'unknown kind of entry "erase"'],
      [10, 'not an entry object'],
      [11, 'no checksum'],
    ]);
    expect(reopened.outcomeOf(kept.actionId)?.outcome).toBe('completed');
    reopened.close();
  });

  it('survives a block lost mid-file: the torn lines are damaged, the lines around them are read', () => {
    const dir = newDir();
    const clock = testClock();
    const journal = new Journal(dir, { now: clock.now });
    const actions = [1, 2, 3, 4].map(() => carryOut(journal, clock, 'quarantine_file', { snapshot: { n: randomUUID() } }));
    journal.close();
    // Bytes from the middle of the second action's start to the middle of its done are gone.
    const bytes = readFileSync(journalFile(dir));
    const text = lines(dir);
    const startOfLine4 = text.slice(0, 3).join('\n').length + 1;
    const cutFrom = startOfLine4 + 30;
    const cutTo = startOfLine4 + text[3]!.length + 1 + 40;
    writeFileSync(journalFile(dir), Buffer.concat([bytes.subarray(0, cutFrom), bytes.subarray(cutTo)]));

    const reopened = new Journal(dir, { now: clock.now });
    expect(reopened.damaged).toEqual([{ file: 'journal.jsonl', line: 4, reason: 'checksum does not match' }]);
    expect(reopened.wasStarted(actions[1]!.actionId)).toBe(false);
    expect(reopened.outcomeOf(actions[1]!.actionId)).toBeNull();
    for (const action of [actions[0]!, actions[2]!, actions[3]!]) expect(reopened.outcomeOf(action.actionId)?.outcome).toBe('completed');
    reopened.close();
  });

  it('treats a last line without its newline as torn by a crash: skipped quietly, and the next entry stays readable', () => {
    const dir = newDir();
    const clock = testClock();
    const journal = new Journal(dir, { now: clock.now });
    const before = carryOut(journal, clock, 'quarantine_file');
    journal.close();
    const whole = summed({ k: 'done', actionId: randomUUID(), outcome: 'completed', at: clock.now() });
    appendFileSync(journalFile(dir), whole.slice(0, 40));

    const reopened = new Journal(dir, { now: clock.now });
    expect(reopened.damaged).toEqual([]);
    const after = carryOut(reopened, clock, 'quarantine_file');
    reopened.close();
    const again = new Journal(dir, { now: clock.now });
    expect(again.damaged).toEqual([]);
    expect(again.outcomeOf(before.actionId)?.outcome).toBe('completed');
    expect(again.outcomeOf(after.actionId)?.outcome).toBe('completed');
    again.close();
  });

  it('reads a journal of the earlier format (plain JSON lines) once, and rewrites it with checksums', () => {
    const dir = newDir();
    const quarantine = randomUUID();
    const scan = randomUUID();
    const local = randomUUID();
    const at = Date.now();
    const exp = Math.floor(at / 1000) + 3600;
    writeFileSync(journalFile(dir), [
      { k: 'start', actionId: quarantine, nonce: nonce(), exp, at, type: 'quarantine_file', undoOf: null },
      { k: 'done', actionId: quarantine, outcome: 'completed', output: 'Quarantined /x', snapshot: { path: '/x', sha256: 'a'.repeat(64) }, at },
      { k: 'start', actionId: scan, nonce: nonce(), exp, at, type: 'run_antivirus_scan', undoOf: null },
      { k: 'local', actionId: local, report: 'signed.report.jws', at },
    ].map((entry) => `${JSON.stringify(entry)}\n`).join(''));

    const upgraded = new Journal(dir);
    expect(upgraded.damaged).toEqual([]);
    expect(upgraded.snapshotOf(quarantine)).toEqual({ path: '/x', sha256: 'a'.repeat(64) });
    expect(upgraded.wasStarted(scan)).toBe(true);
    expect(upgraded.outcomeOf(scan)).toBeNull();
    expect(upgraded.unacknowledgedReports()).toEqual(['signed.report.jws']);
    upgraded.close();

    const text = lines(dir);
    expect(text[0]).toBe('quell-agent-journal 2');
    for (const line of text.slice(1)) expect(line).toMatch(/^[0-9a-f]{16} \{/);
    // Once rewritten, a line without a checksum is no longer believed.
    appendFileSync(journalFile(dir), `${JSON.stringify({ k: 'done', actionId: scan, outcome: 'completed', at })}\n`);
    const reopened = new Journal(dir);
    expect(reopened.snapshotOf(quarantine)).toEqual({ path: '/x', sha256: 'a'.repeat(64) });
    expect(reopened.damaged).toEqual([{ file: 'journal.jsonl', line: text.length + 1, reason: 'no checksum' }]);
    expect(reopened.outcomeOf(scan)).toBeNull();
    reopened.close();
  });

  describe('compaction', () => {
    /** Everything the agent asks the journal, for the actions given. */
    const answers = (journal: Journal, ids: Array<{ actionId: string; nonce: string }>) => ({
      actions: ids.map(({ actionId, nonce }) => ({ started: journal.wasStarted(actionId), outcome: journal.outcomeOf(actionId), nonce: journal.nonceSeen(nonce) })),
      isolation: journal.inForce('isolate_device', 'release_isolation'),
      restriction: journal.inForce('restrict_code_execution', 'remove_code_restriction'),
      restored: journal.restoredFile('/srv/tool', 'b'.repeat(64)),
      reports: journal.unacknowledgedReports(),
    });

    it('keeps snapshots for undo, what inForce and restoredFile answer from, unexpired nonces and unacknowledged outcomes; drops the rest', () => {
      const dir = newDir();
      const clock = testClock();
      const journal = new Journal(dir, { now: clock.now });
      const quarantined = carryOut(journal, clock, 'quarantine_file', { snapshot: { path: '/srv/kept', sha256: 'c'.repeat(64) } });
      const firstIsolation = carryOut(journal, clock, 'isolate_device', { snapshot: { ruleset: 'first' } });
      const firstRelease = carryOut(journal, clock, 'release_isolation', { undoOf: firstIsolation.actionId });
      const isolation = carryOut(journal, clock, 'isolate_device', { snapshot: { ruleset: 'second' } });
      const release = carryOut(journal, clock, 'release_isolation', { undoOf: isolation.actionId });
      const restriction = carryOut(journal, clock, 'restrict_code_execution', { snapshot: { mounts: ['/tmp'] } });
      const restoredQuarantine = carryOut(journal, clock, 'quarantine_file', { snapshot: { path: '/srv/tool', sha256: 'b'.repeat(64) } });
      const restore = carryOut(journal, clock, 'restore_file', { undoOf: restoredQuarantine.actionId });
      const scan = carryOut(journal, clock, 'run_antivirus_scan', { output: 'x'.repeat(100_000) });
      const lastScan = carryOut(journal, clock, 'run_antivirus_scan', { output: 'x'.repeat(100_000) });
      const failed = carryOut(journal, clock, 'quarantine_file', { outcome: 'failed' });
      const older = [quarantined, firstIsolation, firstRelease, isolation, release, restriction, restoredQuarantine, restore, scan, lastScan, failed];
      for (const { actionId } of older) journal.acknowledgeResult(actionId);
      const local = randomUUID();
      journal.start(local, `antivirus-${local}`, clock.seconds(), 'quarantine_file', null, null);
      journal.finish(local, { outcome: 'completed', output: 'Quarantined /home/x', snapshot: { path: '/home/x' } });
      journal.reportLocal(local, 'local.report.jws');

      // A week later: all of those have expired. Two new ones have not; one has its result acknowledged.
      clock.advance(7 * 24 * HOUR_MS);
      const acknowledged = carryOut(journal, clock, 'quarantine_file', { output: 'acknowledged output' });
      journal.acknowledgeResult(acknowledged.actionId);
      const pending = carryOut(journal, clock, 'quarantine_file', { output: 'output the server has not got yet' });
      const all = [...older, { actionId: local, nonce: `antivirus-${local}` }, acknowledged, pending];
      const before = answers(journal, all);
      const undoable = [quarantined.actionId, restriction.actionId, restoredQuarantine.actionId, local];
      const snapshotsBefore = undoable.map((id) => journal.snapshotOf(id));
      const sizeBefore = statSync(journalFile(dir)).size;

      journal.compact();
      const after = answers(journal, all);
      journal.close();
      const reopened = new Journal(dir, { now: clock.now });
      const reloaded = answers(reopened, all);

      expect(before).toMatchObject({ isolation: null, restriction: { actionId: restriction.actionId, snapshot: { mounts: ['/tmp'] } }, restored: true, reports: ['local.report.jws'] });
      for (const state of [after, reloaded]) {
        expect({ isolation: state.isolation, restriction: state.restriction, restored: state.restored, reports: state.reports })
          .toEqual({ isolation: before.isolation, restriction: before.restriction, restored: before.restored, reports: before.reports });
      }
      const kept = (id: { actionId: string; nonce: string }) => reloaded.actions[all.indexOf(id)]!;
      // Undo, however late, still finds its snapshot.
      expect(snapshotsBefore).toEqual([{ path: '/srv/kept', sha256: 'c'.repeat(64) }, { mounts: ['/tmp'] }, { path: '/srv/tool', sha256: 'b'.repeat(64) }, { path: '/home/x' }]);
      expect(undoable.map((id) => reopened.snapshotOf(id))).toEqual(snapshotsBefore);
      // Unexpired: refused again by nonce, answered by outcome; output only while the server has not acknowledged it.
      expect(kept(acknowledged)).toEqual({ started: true, nonce: true, outcome: { outcome: 'completed' } });
      expect(kept(pending)).toEqual({ started: true, nonce: true, outcome: { outcome: 'completed', output: 'output the server has not got yet' } });
      // The last completed action of a type stays (what inForce answers from), without its acknowledged output.
      expect(kept(lastScan)).toEqual({ started: true, nonce: true, outcome: { outcome: 'completed' } });
      // Expired, acknowledged and needed by nothing: gone.
      for (const id of [firstIsolation, firstRelease, scan, failed]) expect(kept(id)).toEqual({ started: false, nonce: false, outcome: null });
      expect(reopened.damaged).toEqual([]);
      expect(statSync(journalFile(dir)).size).toBeLessThan(sizeBefore / 4);
      reopened.close();
    });

    it('runs by itself once enough results are acknowledged', () => {
      const dir = newDir();
      const clock = testClock();
      const journal = new Journal(dir, { now: clock.now, compactAfterAcks: 5 });
      const done = Array.from({ length: 5 }, () => carryOut(journal, clock, 'run_antivirus_scan', { output: 'y'.repeat(50_000), ttlMs: HOUR_MS }));
      clock.advance(2 * 24 * HOUR_MS);
      const grown = statSync(journalFile(dir)).size;
      for (const { actionId } of done) journal.acknowledgeResult(actionId);
      // The last scan stays: it is the last completed one of its type. Its output went with the acknowledgement.
      expect(statSync(journalFile(dir)).size).toBeLessThan(grown / 50);
      expect(done.filter(({ actionId }) => journal.wasStarted(actionId))).toEqual([done[4]]);
      journal.close();
    });

    it(`loads a journal larger than a string can be, with a line of ${MAX_LINE_BYTES} bytes and more, in bounded memory, and compacts it`, () => {
      const dir = newDir();
      const clock = testClock();
      const journal = new Journal(dir, { now: clock.now });
      const kept = carryOut(journal, clock, 'quarantine_file', { snapshot: { path: '/kept' } });
      journal.close();
      // 600 MiB of zeros with no newline (sparse: it costs no disk), then a hundred large results, acknowledged and expired.
      const fd = openSync(journalFile(dir), 'r+');
      ftruncateSync(fd, statSync(journalFile(dir)).size + 600 * 1024 * 1024);
      closeSync(fd);
      const output = 'z'.repeat(2 * 1024 * 1024);
      const appendFd = openSync(journalFile(dir), 'a');
      writeSync(appendFd, '\n');
      for (let i = 0; i < 100; i += 1) {
        const actionId = randomUUID();
        const at = clock.now();
        writeSync(appendFd, summed({ k: 'start', actionId, nonce: nonce(), exp: clock.seconds() + 60, iat: clock.seconds(), at, type: 'collect_evidence', undoOf: null })
          + summed({ k: 'done', actionId, outcome: 'completed', output, at }) + summed({ k: 'result_ack', actionId, at }));
      }
      closeSync(appendFd);
      const size = statSync(journalFile(dir)).size;
      expect(size).toBeGreaterThan(800 * 1024 * 1024);
      clock.advance(3 * 24 * HOUR_MS);

      const rssBefore = process.memoryUsage.rss();
      const loaded = new Journal(dir, { now: clock.now });
      const grownBy = process.memoryUsage.rss() - rssBefore;
      expect(grownBy).toBeLessThan(size / 4);
      expect(loaded.damaged).toEqual([{ file: 'journal.jsonl', line: 4, reason: `longer than ${MAX_LINE_BYTES} bytes` }]);
      expect(loaded.snapshotOf(kept.actionId)).toEqual({ path: '/kept' });
      expect(statSync(journalFile(dir)).size).toBeLessThan(64 * 1024);
      loaded.close();
      rmSync(`${journalFile(dir)}.damaged`);
    }, 30_000);
  });

  describe('the watermark', () => {
    it('refuses a command older than the last accepted one, or one accepted before, when the journal file is gone; accepts one within the tolerance', () => {
      const dir = newDir();
      const clock = testClock();
      const journal = new Journal(dir, { now: clock.now });
      const old = carryOut(journal, clock, 'quarantine_file');
      const oldIat = clock.seconds();
      clock.advance(10 * 60_000);
      const recent = carryOut(journal, clock, 'quarantine_file');
      const newest = clock.seconds();
      journal.close();
      rmSync(journalFile(dir));

      const fresh = new Journal(dir, { now: clock.now });
      expect(fresh.wasStarted(old.actionId)).toBe(false);
      expect(fresh.staleReason({ actionId: old.actionId, iat: oldIat })).toMatch(/^issued before the last accepted command/);
      expect(fresh.staleReason({ actionId: recent.actionId, iat: newest })).toMatch(/accepted before, but the journal has no record of it/);
      // Signed before the newest, within the tolerance (queued at about the same time): taken.
      expect(fresh.staleReason({ actionId: randomUUID(), iat: newest - STALE_TOLERANCE_SECONDS + 10 })).toBeNull();
      expect(fresh.staleReason({ actionId: randomUUID(), iat: newest - STALE_TOLERANCE_SECONDS - 1 })).toMatch(/^issued before the last accepted command/);
      expect(fresh.staleReason({ actionId: randomUUID(), iat: newest + 60 })).toBeNull();
      fresh.close();
    });

    it('answers a redelivery the journal knows from the journal, and is not moved by actions the agent takes on its own', () => {
      const dir = newDir();
      const clock = testClock();
      const journal = new Journal(dir, { now: clock.now });
      const first = carryOut(journal, clock, 'quarantine_file');
      const firstIat = clock.seconds();
      clock.advance(HOUR_MS);
      const local = randomUUID();
      journal.start(local, `antivirus-${local}`, clock.seconds(), 'quarantine_file', null, null);
      journal.close();
      const reopened = new Journal(dir, { now: clock.now });
      expect(reopened.staleReason({ actionId: first.actionId, iat: firstIat })).toBeNull();
      expect(reopened.staleReason({ actionId: randomUUID(), iat: firstIat - 10 })).toBeNull();
      reopened.close();
    });

    it('within one run, takes an older command verified a moment after a newer one: what this run accepted is in its journal', () => {
      const dir = newDir();
      const clock = testClock();
      const journal = new Journal(dir, { now: clock.now });
      const before = carryOut(journal, clock, 'quarantine_file');
      journal.close();
      const reopened = new Journal(dir, { now: clock.now });
      const signedAt = clock.seconds();
      clock.advance(HOUR_MS);
      carryOut(reopened, clock, 'quarantine_file');
      expect(reopened.staleReason({ actionId: randomUUID(), iat: signedAt })).toBeNull();
      expect(reopened.staleReason({ actionId: before.actionId, iat: signedAt })).toBeNull();
      reopened.close();
      // The next run judges against everything accepted before it.
      const next = new Journal(dir, { now: clock.now });
      expect(next.staleReason({ actionId: randomUUID(), iat: signedAt })).toMatch(/^issued before the last accepted command/);
      next.close();
    });

    it('is recovered from the journal when its own file is damaged, and the damage is reported', () => {
      const dir = newDir();
      const clock = testClock();
      const journal = new Journal(dir, { now: clock.now });
      carryOut(journal, clock, 'quarantine_file');
      const newest = clock.seconds();
      journal.close();
      writeFileSync(join(dir, 'watermark.json'), readFileSync(join(dir, 'watermark.json'), 'utf8').replace(String(newest), String(newest - 5000)));

      const reopened = new Journal(dir, { now: clock.now });
      expect(reopened.damaged).toEqual([{ file: 'watermark.json', line: 1, reason: 'checksum does not match' }]);
      expect(reopened.staleReason({ actionId: randomUUID(), iat: newest - 1000 })).toMatch(/^issued before the last accepted command/);
      reopened.close();
      expect(existsSync(join(dir, 'watermark.json'))).toBe(true);
      const again = new Journal(dir, { now: clock.now });
      expect(again.damaged).toEqual([]);
      again.close();
    });
  });

  it('an undo running now takes its action out of force (so nothing puts the effect back under it); failed, it puts it back; left unfinished by an earlier run, it does not count', () => {
    const dir = newDir();
    const clock = testClock();
    const journal = new Journal(dir, { now: clock.now });
    const stopped = carryOut(journal, clock, 'stop_service', { snapshot: { unit: 'x.service' } });
    const inForce = () => journal.allInForce('stop_service', 'restore_service').map((e) => e.actionId);
    expect(inForce()).toEqual([stopped.actionId]);

    const undo = randomUUID();
    journal.start(undo, nonce(), clock.seconds() + 3600, 'restore_service', stopped.actionId, clock.seconds());
    expect(inForce()).toEqual([]);
    journal.finish(undo, { outcome: 'failed', error: 'would not start' });
    expect(inForce()).toEqual([stopped.actionId]);

    const isolated = carryOut(journal, clock, 'isolate_device', { snapshot: {} });
    const release = randomUUID();
    journal.start(release, nonce(), clock.seconds() + 3600, 'release_isolation', isolated.actionId, clock.seconds());
    expect(journal.inForce('isolate_device', 'release_isolation')).toBeNull();
    journal.close();
    // The agent died in the middle of the release: its effect is unknown, the isolation stays in force.
    const reopened = new Journal(dir, { now: clock.now });
    expect(reopened.inForce('isolate_device', 'release_isolation')?.actionId).toBe(isolated.actionId);
    reopened.close();
  });
});
