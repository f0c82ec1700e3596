import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type DriftTriggers, driftTriggers } from './drift-events.linux.ts';

const settle = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('drift events', () => {
  let dir: string;
  let triggers: DriftTriggers;
  let changes: number;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'quell-drift-events-'));
    changes = 0;
    triggers = driftTriggers(() => void (changes += 1), (source, error) => { throw new Error(`${source}: ${error.message}`); });
  });
  afterEach(() => {
    triggers.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a folder followed anew starts one check (for what changed before), a burst of changes in it one more, and none once it is no longer followed', async () => {
    mkdirSync(join(dir, 'cron.d'));
    triggers.follow([{ folders: [join(dir, 'cron.d')] }]);
    await settle(600);
    expect(changes).toBe(1);
    changes = 0;
    for (let i = 0; i < 5; i++) writeFileSync(join(dir, 'cron.d', `job${i}`), '* * * * * root true\n');
    await settle(600);
    expect(changes).toBe(1);

    triggers.follow([]);
    writeFileSync(join(dir, 'cron.d', 'later'), 'x');
    await settle(600);
    expect(changes).toBe(1);
  });

  it('does not follow a symbolic link to a folder', async () => {
    mkdirSync(join(dir, 'real'));
    symlinkSync(join(dir, 'real'), join(dir, 'link'));
    triggers.follow([{ folders: [join(dir, 'link')] }]);
    writeFileSync(join(dir, 'real', 'file'), 'x');
    await settle(600);
    expect(changes).toBe(0);
  });
});
