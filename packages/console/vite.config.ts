import { gzipSync } from 'node:zlib';
import react from '@vitejs/plugin-react';
import { type Plugin, defineConfig } from 'vite';

/** The Action center's first load must stay within this (gzip), whatever else the console grows: 250 kB of 1,000 bytes. */
export const ACTION_CENTER_BUDGET_BYTES = 250_000;
/** Sizes as the budget states them: kB of 1,000 bytes. */
const kB = (bytes: number): string => `${(bytes / 1000).toFixed(1)} kB`;

/**
 * Prints, after each build, the JavaScript a browser loads to show each lazily
 * loaded route (the entry and everything both import statically), gzip, and
 * fails the build when the Action center goes over its budget.
 */
function routeSizes(): Plugin {
  return {
    name: 'quell-route-sizes',
    apply: 'build',
    generateBundle(_options, bundle) {
      const chunks = new Map(Object.values(bundle).flatMap((file) => (file.type === 'chunk' ? [[file.fileName, file] as const] : [])));
      const closure = (start: string[], seen = new Set<string>()): Set<string> => {
        for (const name of start) {
          if (seen.has(name)) continue;
          seen.add(name);
          closure(chunks.get(name)?.imports ?? [], seen);
        }
        return seen;
      };
      const gzipOf = (names: Set<string>): number => [...names].reduce((sum, name) => sum + gzipSync(chunks.get(name)!.code).length, 0);
      const entry = [...chunks.values()].find((chunk) => chunk.isEntry)!;
      const entryFiles = closure([entry.fileName]);
      const lines = [`entry: ${kB(gzipOf(entryFiles))} gzip`];
      for (const chunk of chunks.values()) {
        if (!chunk.isDynamicEntry || !chunk.facadeModuleId?.endsWith('.page.tsx')) continue;
        const route = chunk.facadeModuleId.split('/').pop()!.replace('.page.tsx', '');
        const bytes = gzipOf(closure([chunk.fileName], new Set(entryFiles)));
        lines.push(`${route} route, initial JS: ${kB(bytes)} gzip`);
        if (route === 'action-center' && bytes > ACTION_CENTER_BUDGET_BYTES) {
          this.error(`The Action center route loads ${kB(bytes)} gzip, over its ${kB(ACTION_CENTER_BUDGET_BYTES)} budget`);
        }
      }
      this.info(lines.join('\n'));
    },
  };
}

export default defineConfig({
  plugins: [react(), routeSizes()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // Chromium, Edge, Firefox and Safari of the last years all preload modules themselves.
    modulePreload: { polyfill: false },
  },
});
