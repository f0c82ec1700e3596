import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, ERRORS } from './errors.ts';

/** docs/errors.md: one table row per code, `| \`code\` | status | when it happens | what to do |`. */
const DOC_PATH = new URL('../../../docs/errors.md', import.meta.url);

interface DocumentedCode { code: string; status: number; when: string; todo: string }

function documentedCodes(markdown: string): DocumentedCode[] {
  const rows: DocumentedCode[] = [];
  for (const line of markdown.split('\n')) {
    const match = /^\|\s*`([^`]+)`\s*\|\s*(\d{3})\s*\|(.*)\|(.*)\|\s*$/.exec(line);
    if (match) rows.push({ code: match[1]!, status: Number(match[2]), when: match[3]!.trim(), todo: match[4]!.trim() });
  }
  return rows;
}

describe('error catalogue documentation (docs/errors.md)', () => {
  const rows = documentedCodes(readFileSync(DOC_PATH, 'utf8'));

  it.each(ERROR_CODES)('documents %s with its status, when it happens and what to do', (code) => {
    const row = rows.find((r) => r.code === code);
    expect(row, `docs/errors.md has no table row for \`${code}\``).toBeDefined();
    expect(row!.status, `docs/errors.md gives ${code} the wrong status`).toBe(ERRORS[code].status);
    expect(row!.when, `docs/errors.md does not say when ${code} happens`).not.toBe('');
    expect(row!.todo, `docs/errors.md does not say what to do about ${code}`).not.toBe('');
  });

  it('lists no code that the catalogue lacks, and each code once', () => {
    const listed = rows.map((r) => r.code);
    expect(listed.filter((code) => !(code in ERRORS))).toEqual([]);
    expect(listed.filter((code, i) => listed.indexOf(code) !== i)).toEqual([]);
  });
});
