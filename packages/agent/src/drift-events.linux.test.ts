import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type DriftTriggers, driftTriggers } from './drift-events.linux.ts';

const settle = (ms = 600) => new Promise((resolve) => setTimeout(resolve, ms));

describe('drift events', () => {
  let dir: string;
  let triggers: DriftTriggers;
  /** The keys of each check round the events asked for. */
  let rounds: string[][];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'quell-drift-events-'));
    rounds = [];
    triggers = driftTriggers((keys) => void rounds.push([...keys].sort()), (source, error) => { throw new Error(`${source}: ${error.message}`); });
  });
  afterEach(() => {
    triggers.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a folder followed anew asks one round of its checks (for what changed before); a burst of changes one more; none once it is no longer followed', async () => {
    mkdirSync(join(dir, 'cron.d'));
    triggers.follow([{ key: 'cron', signals: { folders: [join(dir, 'cron.d')] } }]);
    await settle();
    expect(rounds).toEqual([['cron']]);
    rounds = [];
    for (let i = 0; i < 5; i++) writeFileSync(join(dir, 'cron.d', `job${i}`), '* * * * * root true\n');
    await settle();
    expect(rounds).toEqual([['cron']]);

    triggers.follow([]);
    writeFileSync(join(dir, 'cron.d', 'later'), 'x');
    await settle();
    expect(rounds).toEqual([['cron']]);
  });

  it('a change to a followed file asks for the checks of that file only; other files in its folder ask for nothing', async () => {
    const busy = join(dir, 'tmp');
    mkdirSync(busy);
    triggers.follow([
      { key: 'quarantine-a', signals: { files: [join(busy, 'a.bin')] } },
      { key: 'quarantine-b', signals: { files: [join(busy, 'b.bin')] } },
    ]);
    await settle();
    rounds = [];
    for (let i = 0; i < 20; i++) writeFileSync(join(busy, `build-${i}.o`), 'x');
    await settle();
    expect(rounds).toEqual([]);
    writeFileSync(join(busy, 'b.bin'), 'dropped again');
    await settle();
    expect(rounds).toEqual([['quarantine-b']]);
  });

  it('does not follow a symbolic link to a folder', async () => {
    mkdirSync(join(dir, 'real'));
    symlinkSync(join(dir, 'real'), join(dir, 'link'));
    triggers.follow([{ key: 'x', signals: { folders: [join(dir, 'link')] } }]);
    writeFileSync(join(dir, 'real', 'file'), 'x');
    await settle();
    expect(rounds).toEqual([]);
  });
});
