import { describe, expect, it } from 'vitest';
import { uuidIds } from './infra.ts';

describe('uuidIds', () => {
  it('makes version-7 UUIDs that sort in creation order within one millisecond', () => {
    const ids = uuidIds({ now: () => 1_800_000_000_000 });
    const made = Array.from({ length: 5000 }, () => ids.next());
    expect(made.every((id) => /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(id))).toBe(true);
    expect([...made].sort()).toEqual(made);
    expect(new Set(made).size).toBe(made.length);
  });
});
