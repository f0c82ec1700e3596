export { buildApp } from './app.ts';
export { loadConfig, parseConfig, ConfigError, type Config } from './config.ts';
export { startServer } from './server.ts';
export { openStore, type Store, type StoreLocation } from './db/store.ts';
export { migrate } from './db/migrate.ts';
export { createServices, type Services } from './services.ts';
export { systemActor, type Actor } from './actor.ts';
export { createMetrics } from './plugins/metrics.ts';
export { QuellError } from './errors.ts';
