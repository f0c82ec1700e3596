import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';

/** Where `npm run build:console` writes the console. */
export const DEFAULT_CONSOLE_DIR = fileURLToPath(new URL('../../../../console/dist', import.meta.url));

/** Paths that belong to the server: an unknown one is a JSON 404 problem, never the console's index.html. */
const SERVER_PREFIXES = ['/api', '/agent', '/healthz', '/readyz', '/metrics'];
/** index.html carries this placeholder where the server writes each response's style nonce. */
const NONCE_PLACEHOLDER = '__CSP_NONCE__';

const CONTENT_TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.html': 'text/html; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};
const COMPRESSIBLE = new Set(['.js', '.css', '.html', '.svg', '.json', '.txt']);

/**
 * The console's Content-Security-Policy. Scripts come only from our own files:
 * no inline script, no eval. Fluent UI's Griffel writes its styles at run time
 * into <style> elements; those elements carry this response's nonce (index.html
 * hands it to Griffel's renderer), so 'unsafe-inline' is not needed for styles.
 * Inline style attributes that React sets go through the CSSOM, which CSP allows.
 */
export function consoleCsp(nonce: string): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    `style-src 'self' 'nonce-${nonce}'`,
    "img-src 'self'",
    "font-src 'self'",
    "connect-src 'self'",
    "manifest-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
}

interface StaticFile { body: Buffer; gzipped: Buffer | null; type: string; immutable: boolean }

/** Reads the built console once: it is small, and serving from memory keeps each request cheap. */
function loadDist(dir: string): { files: Map<string, StaticFile>; indexHtml: string } | null {
  const indexPath = join(dir, 'index.html');
  if (!existsSync(indexPath)) return null;
  const files = new Map<string, StaticFile>();
  const walk = (folder: string): void => {
    for (const name of readdirSync(folder)) {
      const path = join(folder, name);
      if (statSync(path).isDirectory()) {
        walk(path);
        continue;
      }
      const urlPath = '/' + relative(dir, path).split(sep).join('/');
      if (urlPath === '/index.html') continue;
      const ext = extname(name);
      const body = readFileSync(path);
      files.set(urlPath, {
        body,
        gzipped: COMPRESSIBLE.has(ext) && body.length > 1024 ? gzipSync(body) : null,
        type: CONTENT_TYPES[ext] ?? 'application/octet-stream',
        // Vite names every file under assets/ by its content hash: it never changes under the same name.
        immutable: urlPath.startsWith('/assets/'),
      });
    }
  };
  walk(dir);
  return { files, indexHtml: readFileSync(indexPath, 'utf8') };
}

function acceptsGzip(request: FastifyRequest): boolean {
  return /\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''));
}

/**
 * Serves the web console at the root URL: its hashed assets with a long cache,
 * and index.html (with a fresh style nonce and a strict CSP) for every other
 * path that is not the server's own, so client routes survive a reload.
 */
export const consoleRoutes: FastifyPluginAsync<{ dir?: string }> = async (app, options) => {
  const dist = loadDist(options.dir ?? DEFAULT_CONSOLE_DIR);

  const sendIndex = (reply: FastifyReply): FastifyReply => {
    if (!dist) {
      return reply.code(503).type('text/plain; charset=utf-8').header('cache-control', 'no-store')
        .send('The Quell web console is not built. Run `npm run build:console`, then reload this page.\nThe API is at /api (documentation at /api/docs).\n');
    }
    const nonce = randomBytes(18).toString('base64');
    return reply.type('text/html; charset=utf-8')
      .header('cache-control', 'no-cache')
      .header('content-security-policy', consoleCsp(nonce))
      .send(dist.indexHtml.replaceAll(NONCE_PLACEHOLDER, nonce));
  };

  app.get('/*', { schema: { hide: true } }, async (request, reply) => {
    const path = request.url.split('?')[0]!;
    if (SERVER_PREFIXES.some((prefix) => path === prefix || path.startsWith(`${prefix}/`))) return reply.callNotFound();
    const file = dist?.files.get(path);
    if (!file) {
      // A missing hashed asset is a stale page asking for an old build: say so instead of answering HTML as JavaScript.
      if (path.startsWith('/assets/')) return reply.callNotFound();
      return sendIndex(reply);
    }
    reply.type(file.type).header('cache-control', file.immutable ? 'public, max-age=31536000, immutable' : 'no-cache').header('vary', 'accept-encoding');
    if (file.gzipped && acceptsGzip(request)) return reply.header('content-encoding', 'gzip').send(file.gzipped);
    return reply.send(file.body);
  });
};
