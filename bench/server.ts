/**
 * The server side of the HTTP benchmarks, run as its own process so that its
 * RSS is the server's alone. It serves the real Quell app on the seeded
 * database and, on a second port, a Fastify hello-world: both on loopback,
 * both in this one process, measured one at a time.
 *
 * argv[2] is the StoreLocation as JSON. Over IPC it sends `ready` with both
 * URLs and exits on `close`. Its memory is read from outside (/proc), because
 * a timer in here does not fire while a request keeps the event loop busy.
 * It logs as production does (JSON lines at info, two per request) to its
 * standard output, which the parent points at /dev/null.
 */
import Fastify from 'fastify';
import { pino } from 'pino';
import { type StoreLocation, actionGaugeSources, buildApp, createMetrics, createServices, openStore } from '@quell/server';

export type ParentMessage = { cmd: 'close' };
export type ChildMessage = { type: 'ready'; quellUrl: string; helloUrl: string };

const send = (message: ChildMessage) => process.send!(message);

const location = JSON.parse(process.argv[2] ?? '') as StoreLocation;
const store = openStore(location);
const metrics = createMetrics();
const services = createServices({ store, onDecision: (type, waited) => metrics.observeDecision(type, waited) });
metrics.bind(actionGaugeSources(services));
const logger = pino({ level: 'info', base: { service: 'quell', pid: process.pid } });
const app = await buildApp({ services, metrics, publicUrl: 'http://127.0.0.1', logger });
const quellUrl = await app.listen({ port: 0, host: '127.0.0.1' });

const hello = Fastify({ logger: false });
hello.get('/', async () => ({ hello: 'world' }));
const helloUrl = await hello.listen({ port: 0, host: '127.0.0.1' });

process.on('message', (message: ParentMessage) => {
  if (message.cmd === 'close') {
    void (async () => {
      await app.close();
      await hello.close();
      await store.close();
      process.exit(0);
    })();
  }
});

// A parent that died must not leave a server behind.
process.on('disconnect', () => process.exit(1));

send({ type: 'ready', quellUrl, helloUrl });
