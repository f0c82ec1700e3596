/**
 * At most `size` tasks at once; the others wait their turn in the order
 * they came. The agent runs commands through lanes so that a burst of
 * commands, or a few long ones, cannot take every resource of the endpoint
 * or keep urgent ones (isolation, release) waiting behind them.
 */
export class Lane {
  private active = 0;
  private readonly queue: Array<() => void> = [];

  constructor(readonly size: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active < this.size) this.active += 1;
    else await new Promise<void>((resolve) => this.queue.push(resolve));
    try {
      return await task();
    } finally {
      // The slot passes straight to the next task waiting, or is freed.
      const next = this.queue.shift();
      if (next) next();
      else this.active -= 1;
    }
  }
}
