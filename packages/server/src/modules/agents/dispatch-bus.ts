import pg from 'pg';
import type { StoreLocation } from '../../db/store.ts';

const CHANNEL = 'quell_dispatch';
/** The payload that says "the containment state has a new version" rather than naming devices. */
const STATE = 'state';

/**
 * Tells every server process that devices have new queued actions, so that
 * whichever process holds the agent's connection sends them at once. One
 * process (SQLite) needs nothing more than a function call; replicas on one
 * PostgreSQL database hear each other through LISTEN/NOTIFY.
 */
export interface DispatchBus {
  publish(deviceIds: readonly string[]): void;
  subscribe(handler: (deviceIds: string[]) => void): void;
  publishState(): void;
  onState(handler: () => void): void;
  close(): Promise<void>;
}

export async function createDispatchBus(location: StoreLocation, onError: (error: unknown) => void): Promise<DispatchBus> {
  const handlers: Array<(deviceIds: string[]) => void> = [];
  const stateHandlers: Array<() => void> = [];
  const deliver = (deviceIds: string[]): void => handlers.forEach((h) => h(deviceIds));
  const deliverState = (): void => stateHandlers.forEach((h) => h());
  const subscribers = { subscribe: (h: (deviceIds: string[]) => void) => void handlers.push(h), onState: (h: () => void) => void stateHandlers.push(h) };
  if (location.dialect === 'sqlite') {
    return { ...subscribers, publish: (ids) => deliver([...ids]), publishState: deliverState, close: async () => {} };
  }
  const listener = new pg.Client({ connectionString: location.url });
  const sender = new pg.Pool({ connectionString: location.url, max: 2 });
  listener.on('error', onError);
  await listener.connect();
  await listener.query(`LISTEN ${CHANNEL}`);
  listener.on('notification', (message) => {
    if (message.channel !== CHANNEL || !message.payload) return;
    if (message.payload === STATE) deliverState();
    else deliver(message.payload.split(','));
  });
  return {
    publish(ids) {
      // A NOTIFY payload is at most 8000 bytes: ~220 device ids per message.
      for (let i = 0; i < ids.length; i += 200) {
        sender.query('SELECT pg_notify($1, $2)', [CHANNEL, ids.slice(i, i + 200).join(',')]).catch(onError);
      }
    },
    ...subscribers,
    publishState() {
      sender.query('SELECT pg_notify($1, $2)', [CHANNEL, STATE]).catch(onError);
    },
    async close() {
      await listener.end();
      await sender.end();
    },
  };
}
