import type { ActionType } from '@quell/contracts';
import { Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** What the action gauges read at scrape time, bound once the services exist. */
export interface ActionGaugeSources {
  countByStatusAndType(): Promise<Array<{ status: string; type: string; count: number }>>;
  /** Pending actions by type, with the request time (ms) of the oldest of each. */
  pendingByType(): Promise<Array<{ oldest: number }>>;
  now(): number;
}

/** Prometheus metrics of one process. Action counts are read from the database at scrape time, so every replica reports the same truth. */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'quell_process_' });
  const decisionLatency = new Histogram({
    name: 'quell_action_decision_latency_seconds',
    help: 'Time from an action entering Pending to its approval or rejection',
    labelNames: ['type'],
    buckets: [1, 10, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 7 * 24 * 3600],
    registers: [registry],
  });
  const httpDuration = new Histogram({
    name: 'quell_http_request_duration_seconds',
    help: 'HTTP request duration by route and status code',
    labelNames: ['method', 'route', 'status'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
    registers: [registry],
  });
  let sources: ActionGaugeSources | null = null;

  new Gauge({
    name: 'quell_actions',
    help: 'Actions by status and type',
    labelNames: ['status', 'type'],
    registers: [registry],
    async collect() {
      this.reset();
      if (!sources) return;
      for (const row of await sources.countByStatusAndType()) this.set({ status: row.status, type: row.type }, row.count);
    },
  });
  new Gauge({
    name: 'quell_pending_oldest_age_seconds',
    help: 'Age of the oldest action waiting for approval (0 when none)',
    registers: [registry],
    async collect() {
      if (!sources) return;
      const pending = await sources.pendingByType();
      const oldest = pending.length === 0 ? null : Math.min(...pending.map((p) => p.oldest));
      this.set(oldest === null ? 0 : (sources.now() - oldest) / 1000);
    },
  });

  return {
    registry,
    httpDuration,
    bind(s: ActionGaugeSources) {
      sources = s;
    },
    observeDecision(type: ActionType, waitedMs: number) {
      decisionLatency.observe({ type }, waitedMs / 1000);
    },
  };
}
export type Metrics = ReturnType<typeof createMetrics>;
