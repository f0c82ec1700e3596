import pg from 'pg';
import type { StoreLocation } from '../../db/store.ts';

const CHANNEL = 'quell_dispatch';

/**
 * Tells every server process that devices have new queued actions, so that
 * whichever process holds the agent's connection sends them at once. One
 * process (SQLite) needs nothing more than a function call; replicas on one
 * PostgreSQL database hear each other through LISTEN/NOTIFY.
 */
export interface DispatchBus {
  publish(deviceIds: readonly string[]): void;
  subscribe(handler: (deviceIds: string[]) => void): void;
  close(): Promise<void>;
}

export async function createDispatchBus(location: StoreLocation, onError: (error: unknown) => void): Promise<DispatchBus> {
  const handlers: Array<(deviceIds: string[]) => void> = [];
  const deliver = (deviceIds: string[]): void => handlers.forEach((h) => h(deviceIds));
  if (location.dialect === 'sqlite') {
    return { publish: (ids) => deliver([...ids]), subscribe: (h) => void handlers.push(h), close: async () => {} };
  }
  const listener = new pg.Client({ connectionString: location.url });
  const sender = new pg.Pool({ connectionString: location.url, max: 2 });
  listener.on('error', onError);
  await listener.connect();
  await listener.query(`LISTEN ${CHANNEL}`);
  listener.on('notification', (message) => {
    if (message.channel === CHANNEL && message.payload) deliver(message.payload.split(','));
  });
  return {
    publish(ids) {
      // A NOTIFY payload is at most 8000 bytes: ~220 device ids per message.
      for (let i = 0; i < ids.length; i += 200) {
        sender.query('SELECT pg_notify($1, $2)', [CHANNEL, ids.slice(i, i + 200).join(',')]).catch(onError);
      }
    },
    subscribe: (h) => void handlers.push(h),
    async close() {
      await listener.end();
      await sender.end();
    },
  };
}
