/**
 * Teardown steps a benchmark still owes (servers, temporary databases and
 * folders), run in reverse on success, failure, Ctrl-C or the deadline.
 */
export function createTeardown(log: (message: string) => void, deadlineMs: number) {
  const pending = new Set<() => Promise<void>>();

  /** Notes a step; the returned function runs it now (once). */
  function owe(step: () => Promise<void>): () => Promise<void> {
    pending.add(step);
    return async () => {
      if (pending.delete(step)) await step();
    };
  }

  async function settleAll(): Promise<void> {
    for (const step of [...pending].reverse()) {
      pending.delete(step);
      await step().catch((error: unknown) => log(`teardown failed: ${String(error)}`));
    }
  }

  function abort(reason: string): void {
    log(reason);
    void settleAll().finally(() => process.exit(1));
  }
  setTimeout(() => abort(`deadline of ${deadlineMs / 60_000} min passed; tearing down`), deadlineMs).unref();
  process.once('SIGINT', () => abort('interrupted; tearing down'));

  /** Runs the benchmark, then whatever it still owes, whether it finished or failed; then exits (idle pools and timers keep no finished run alive). */
  async function runToEnd(main: () => Promise<void>): Promise<never> {
    try {
      await main();
    } catch (error) {
      log(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      process.exitCode = 1;
    } finally {
      await settleAll();
    }
    process.exit();
  }

  return { owe, settleAll, runToEnd };
}
