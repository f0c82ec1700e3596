import pg from 'pg';
import type { StoreLocation } from '../../db/store.ts';

const CHANNEL = 'quell_dispatch';
/** The payload that says "the containment state has a new version" rather than naming devices. */
const STATE = 'state';
const RELISTEN_MS = 1000;

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
  const { url } = location;
  const onNotification = (message: pg.Notification): void => {
    if (message.channel !== CHANNEL || !message.payload) return;
    if (message.payload === STATE) deliverState();
    else deliver(message.payload.split(','));
  };
  // The listening connection is opened again whenever it drops (a restarted database, a killed backend);
  // what was said meanwhile reaches the agents through the gateway's catch-up.
  let listener: pg.Client | null = null;
  let closing = false;
  async function listen(): Promise<void> {
    const client = new pg.Client({ connectionString: url });
    client.on('notification', onNotification);
    client.on('error', onError);
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
    } catch (error) {
      await client.end().catch(() => {});
      throw error;
    }
    listener = client;
    client.once('end', () => {
      if (listener === client && !closing) listenAgain();
    });
  }
  function listenAgain(): void {
    listener = null;
    setTimeout(() => {
      if (!closing) listen().catch((error: unknown) => {
        onError(error);
        listenAgain();
      });
    }, RELISTEN_MS);
  }
  await listen();
  const sender = new pg.Pool({ connectionString: url, max: 2 });
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
      closing = true;
      await listener?.end();
      await sender.end();
    },
  };
}
