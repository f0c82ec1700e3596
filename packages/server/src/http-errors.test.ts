/**
 * The errors the stack raises itself — Node's HTTP parser (before Fastify
 * sees a request), Fastify's router and its body parsing — leave in the one
 * shape too: application/problem+json with a catalogued `code`, the status
 * that code has, a `detail` and a `requestId` (DESIGN.md §7, docs/errors.md).
 *
 * Generated requests (fast-check) go over raw sockets to a listening server,
 * because over-long request lines, broken framing, half-sent bodies and
 * stalled requests cannot be expressed through an HTTP client.
 */
import { connect } from 'node:net';
import { ERRORS, type ErrorCode } from '@quell/contracts';
import fc from 'fast-check';
import pino from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { TEST_DIALECT, useTestApp } from './test/helper.ts';

/** Node's limit on the request line and headers together. */
const MAX_HEADER_BYTES = 16 * 1024;
/** Short, so that stalled requests are answered within the test. */
const REQUEST_TIMEOUT_MS = 1000;

interface RawResponse { status: number; headers: Record<string, string>; body: string; raw: string }

/**
 * Writes `parts` to a fresh connection (pausing `pauseMs` between them), then
 * half-closes it if asked, and reads until the server closes the connection
 * or one whole response has arrived.
 */
function exchange(port: number, parts: Buffer[], options: { halfClose?: boolean; pauseMs?: number; timeoutMs?: number } = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within ${options.timeoutMs ?? 5000} ms; got ${JSON.stringify(Buffer.concat(chunks).toString('latin1').slice(0, 300))}`));
    }, options.timeoutMs ?? 5000);
    const finish = (): void => {
      clearTimeout(timer);
      socket.destroy();
      const raw = Buffer.concat(chunks).toString('utf8');
      const head = raw.slice(0, raw.indexOf('\r\n\r\n'));
      const [statusLine, ...lines] = head.split('\r\n');
      const headers = Object.fromEntries(lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3}) /.exec(statusLine ?? '')?.[1]), headers, body: raw.slice(raw.indexOf('\r\n\r\n') + 4), raw });
    };
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      const text = Buffer.concat(chunks).toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      const length = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end))?.[1];
      if (end !== -1 && length !== undefined && Buffer.byteLength(text) - end - 4 >= Number(length)) finish();
    });
    socket.on('close', finish);
    socket.on('error', () => undefined);
    socket.on('connect', async () => {
      for (const [i, part] of parts.entries()) {
        if (i > 0 && options.pauseMs) await new Promise((r) => setTimeout(r, options.pauseMs));
        if (!socket.destroyed) socket.write(part);
      }
      if (options.halfClose && !socket.destroyed) socket.end();
    });
  });
}

/** The one shape, with this code and its status; the request id in the body is the one in the header. */
function expectProblem(res: RawResponse, code: ErrorCode): Record<string, unknown> {
  const where = res.raw.slice(0, 400);
  expect(res.status, where).toBe(ERRORS[code].status);
  expect(res.headers['content-type'], where).toMatch(/^application\/problem\+json/);
  const body = JSON.parse(res.body) as Record<string, unknown>;
  expect(body, where).toMatchObject({ type: `https://quell.dev/problems/${code}`, title: ERRORS[code].title, status: ERRORS[code].status, code });
  expect(typeof body.detail === 'string' && body.detail.length > 0, where).toBe(true);
  expect(body.requestId, where).toBe(res.headers['x-request-id']);
  return body;
}

const ascii = (text: string): Buffer => Buffer.from(text, 'latin1');

/** A request line and headers, CRLF-terminated, ready for a body. */
function head(method: string, target: string, headers: Record<string, string | number>): string {
  return `${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
}

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
const urlText = (min: number, max: number) => fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789-._~=&'.split('')), minLength: min, maxLength: max });

/** The documented routes as (method, path pattern) pairs, read from the OpenAPI document. */
interface DocumentedRoute { method: string; pattern: RegExp; path: string }

describe(`errors the HTTP stack raises itself are problem+json with a catalogued code (${TEST_DIALECT})`, () => {
  /** Everything the server logs, to show that no stack error is left uncatalogued or taken for a fault. */
  const logged: Array<{ level: number; msg: string; req?: { url?: string } }> = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logged.push(JSON.parse(line)) });
  const ctx = useTestApp({ listen: { host: '127.0.0.1' }, app: { requestTimeoutMs: REQUEST_TIMEOUT_MS, logger } });
  let port: number;
  let auth: Record<string, string>;
  let routes: DocumentedRoute[];
  beforeAll(async () => {
    port = Number(new URL(ctx().url).port);
    auth = ctx().as(ctx().users.global_admin);
    await ctx().app.ready();
    const document = ctx().app.swagger() as unknown as { paths: Record<string, Record<string, unknown>> };
    routes = Object.entries(document.paths).flatMap(([path, operations]) => Object.keys(operations).map((method) => ({
      method: method.toUpperCase(), path, pattern: new RegExp(`^${path.replace(/\./g, '\\.').replace(/\{[^}]+\}/g, '[^/]+')}$`),
    })));
  });
  const send = (method: string, target: string, headers: Record<string, string | number> = {}, body = '') =>
    exchange(port, [ascii(head(method, target, { ...auth, connection: 'close', ...headers }) + body)]);

  it('431 header_too_large for a request line (an over-long path or query string) or headers over 16 KiB, answered by the server before any route', async () => {
    await fc.assert(fc.asyncProperty(
      fc.constantFrom(...METHODS), fc.constantFrom('/api/actions', '/api/devices', '/metrics', '/'), urlText(MAX_HEADER_BYTES, 4 * MAX_HEADER_BYTES), fc.boolean(),
      async (method, path, text, inQuery) => {
        const target = inQuery ? `${path}?q=${text}` : `${path}/${text}`;
        expectProblem(await exchange(port, [ascii(head(method, target, auth))]), 'header_too_large');
      },
    ), { numRuns: 20 });
    await fc.assert(fc.asyncProperty(
      fc.integer({ min: 1, max: 200 }), fc.integer({ min: 100, max: 8000 }),
      async (count, size) => {
        const headers = Object.fromEntries(Array.from({ length: count }, (_, i) => [`x-padding-${i}`, 'p'.repeat(Math.ceil((MAX_HEADER_BYTES + 1) / count) + (size % 7)) ]));
        expectProblem(await exchange(port, [ascii(head('GET', '/api/actions?view=pending', { ...auth, ...headers }))]), 'header_too_large');
      },
    ), { numRuns: 20 });
  });

  it('400 malformed_request for what is not HTTP/1.1: bad methods and versions, control characters in headers, raw bytes in the URL, broken chunks, Content-Length with Transfer-Encoding', async () => {
    const CONTROL = fc.integer({ min: 0, max: 31 }).filter((c) => c !== 9 && c !== 10 && c !== 13).map((c) => String.fromCharCode(c));
    const defect = fc.oneof(
      fc.tuple(fc.constantFrom('GE(T', 'G ET', 'POST\u0001', '{}', 'GET/'), urlText(0, 10)).map(([method, path]) => `${method} /${path} HTTP/1.1\r\nHost: x\r\n\r\n`),
      fc.tuple(fc.constantFrom('HTTP/1.x', 'HTTP/11', 'HTTP/1.1.1', 'HTTPS/1.1'), urlText(0, 10)).map(([version, path]) => `GET /${path} ${version}\r\nHost: x\r\n\r\n`),
      fc.tuple(CONTROL, fc.boolean(), urlText(1, 10)).map(([c, inName, text]) => (inName ? `GET / HTTP/1.1\r\nHost: x\r\nX-${c}${text}: 1\r\n\r\n` : `GET / HTTP/1.1\r\nHost: x\r\nX-Test: ${text}${c}\r\n\r\n`)),
      fc.tuple(fc.integer({ min: 0x80, max: 0xff }), urlText(0, 10)).map(([byte, path]) => `GET /api/${path}${String.fromCharCode(byte)} HTTP/1.1\r\nHost: x\r\n\r\n`),
      fc.stringMatching(/^[g-z]{1,4}$/).map((size) => `POST /api/actions/approve HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${size}\r\n{}\r\n0\r\n\r\n`),
      fc.integer({ min: 1, max: 99 }).map((length) => `POST /api/actions/approve HTTP/1.1\r\nHost: x\r\nContent-Length: ${length}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`),
    );
    await fc.assert(fc.asyncProperty(defect, async (request) => {
      const body = expectProblem(await exchange(port, [ascii(request)]), 'malformed_request');
      expect(body.detail).toMatch(/\(HPE_[A-Z_]+\)$/);
    }), { numRuns: 60 });
  });

  it('405 method_not_allowed with Allow for a documented path and a method it does not answer; 404 route_not_found for paths no route has', async () => {
    const concrete = fc.tuple(fc.constantFrom(...routes), fc.uuid()).map(([route, id]) => route.path.replace(/\{[^}]+\}/g, id));
    await fc.assert(fc.asyncProperty(concrete, fc.constantFrom(...METHODS), async (path, method) => {
      const answered = new Set(routes.filter((route) => route.pattern.test(path)).map((route) => route.method));
      if (answered.has('GET')) answered.add('HEAD');
      fc.pre(!answered.has(method));
      const res = await send(method, path, method === 'GET' || method === 'OPTIONS' ? {} : { 'content-type': 'application/json', 'content-length': 2 }, method === 'GET' || method === 'OPTIONS' ? '' : '{}');
      expectProblem(res, 'method_not_allowed');
      expect(res.headers.allow!.split(', ')).toEqual([...answered].sort());
    }), { numRuns: 60 });

    await fc.assert(fc.asyncProperty(fc.constantFrom(...METHODS), fc.constantFrom('/api/', '/agent/v1/', '/metrics/', '/healthz/'), urlText(1, 30), async (method, prefix, rest) => {
      fc.pre(!routes.some((route) => route.pattern.test(prefix + rest)));
      expectProblem(await send(method, prefix + rest), 'route_not_found');
    }), { numRuns: 40 });
  });

  it('400 malformed_json for a JSON body that is not UTF-8 (overlong forms, lone surrogates, stray bytes): refused, not stored as U+FFFD', async () => {
    const INVALID_UTF8 = [[0xff], [0xc0, 0xaf], [0xe0, 0x80, 0xaf], [0xed, 0xa0, 0x80], [0x80], [0xc3, 0x28], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82]];
    await fc.assert(fc.asyncProperty(fc.constantFrom(...INVALID_UTF8), fc.string({ maxLength: 20 }), fc.string({ maxLength: 20 }), async (bad, before, after) => {
      const text = JSON.stringify({ name: 'x', scopes: ['actions:read'], expiresInDays: 1 }).replace('"x"', `"${before.replace(/["\\]/g, '')}\u0000${after.replace(/["\\]/g, '')}"`);
      const [left, right] = text.split('\u0000') as [string, string];
      const body = Buffer.concat([Buffer.from(left), Buffer.from(bad), Buffer.from(right)]);
      const res = await exchange(port, [ascii(head('POST', '/api/tokens', { ...auth, 'content-type': 'application/json', 'content-length': body.length, connection: 'close' })), body]);
      expect(expectProblem(res, 'malformed_json').detail).toBe('The body is not valid UTF-8');
    }), { numRuns: 40 });
    const tokens = await ctx().store.db.selectFrom('api_tokens').select('name').execute();
    expect(tokens.filter((t) => t.name.includes('\ufffd'))).toEqual([]);
  });

  it('400 malformed_json for a body declared JSON that is not JSON: cut short, empty, broken syntax, or a prototype-polluting key; nothing is written', async () => {
    const NAME = 'malformed-json-probe';
    const valid = JSON.stringify({ name: NAME, scopes: ['actions:read'], expiresInDays: 1 });
    const broken = fc.oneof(
      // Every proper prefix of an object's text lacks its closing brace; the empty one is an empty body.
      fc.integer({ min: 0, max: valid.length - 1 }).map((length) => valid.slice(0, length)),
      fc.constantFrom(
        valid.replace('1}', '1,}'), valid.replaceAll('"', "'"), valid.replace('"name"', 'name'), valid.replace('1}', 'NaN}'),
        valid.replace('{', '{/* comment */'), `${valid}${valid}`, `${valid}x`, valid.replace(':', ''),
      ),
      fc.constantFrom('__proto__', 'constructor').map((key) => valid.replace('{', key === '__proto__' ? '{"__proto__":{"isAdmin":true},' : '{"constructor":{"prototype":{"isAdmin":true}},')),
    );
    await fc.assert(fc.asyncProperty(broken, async (text) => {
      const body = Buffer.from(text);
      const res = await exchange(port, [ascii(head('POST', '/api/tokens', { ...auth, 'content-type': 'application/json', 'content-length': body.length, connection: 'close' })), body]);
      expectProblem(res, 'malformed_json');
    }), { numRuns: 60 });
    expect(await ctx().store.db.selectFrom('api_tokens').select('id').where('name', '=', NAME).execute()).toEqual([]);
  });

  it('400 validation_failed for a query string whose escapes are not UTF-8; 413 and 415 for bodies too large or not JSON', async () => {
    await fc.assert(fc.asyncProperty(fc.constantFrom('%FF', '%C0%AF', '%ED%A0%80', '%E2%82', '%', '%zz'), urlText(0, 10), async (escape, text) => {
      const body = expectProblem(await send('GET', `/api/actions?view=pending&entity=${text}${escape}`), 'validation_failed');
      expect(body.detail).toBe('querystring is not valid percent-encoded UTF-8');
    }), { numRuns: 20 });
    // Checked in the words bodies get: an unknown parameter is named, a number has to be one.
    expect(expectProblem(await send('GET', '/api/actions?view=pending&bogus=1'), 'validation_failed').detail).toBe('querystring must not have the property "bogus"');
    expect(expectProblem(await send('GET', '/api/actions?view=pending&limit=10abc'), 'validation_failed').detail).toMatch(/^querystring\/limit must be /);
    await fc.assert(fc.asyncProperty(fc.integer({ min: 256 * 1024 + 1, max: 10 * 1024 * 1024 }), async (length) => {
      expectProblem(await send('POST', '/api/actions/approve', { 'content-type': 'application/json', 'content-length': length }), 'payload_too_large');
    }), { numRuns: 10 });
    await fc.assert(fc.asyncProperty(fc.constantFrom('application/xml', 'text/csv', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded', 'image/png'), async (type) => {
      expectProblem(await send('POST', '/api/actions/approve', { 'content-type': type, 'content-length': 2 }, '{}'), 'unsupported_media_type');
    }), { numRuns: 10 });
  });

  it('400 request_aborted when the client stops sending before its body is complete and half-closes; the server goes on serving', async () => {
    await fc.assert(fc.asyncProperty(fc.integer({ min: 2, max: 200_000 }), fc.double({ min: 0, max: 0.99, noNaN: true }), fc.boolean(), async (length, sentShare, chunked) => {
      const sent = Buffer.from('{'.padEnd(Math.floor(length * sentShare), ' '));
      const headers: Record<string, string | number> = chunked ? { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } : { 'content-type': 'application/json', 'content-length': length };
      const parts = [ascii(head('POST', '/api/actions/approve', { ...auth, ...headers })), chunked ? Buffer.concat([ascii(`${length.toString(16)}\r\n`), sent]) : sent];
      expectProblem(await exchange(port, parts, { halfClose: true }), 'request_aborted');
    }), { numRuns: 30 });
    expect((await send('GET', '/api/actions?view=pending')).status).toBe(200);
  });

  it('a body cut off by a reset connection is classified as request_aborted: no 500, no uncatalogued error in the log, and the server goes on serving', async () => {
    const seen = logged.length;
    for (let i = 0; i < 5; i++) {
      await new Promise<void>((resolve) => {
        const socket = connect(port, '127.0.0.1', () => {
          socket.write(ascii(head('POST', '/api/tokens', { ...auth, 'content-type': 'application/json', 'content-length': 1000 })) + '{"name":');
          setTimeout(() => {
            socket.resetAndDestroy();
            resolve();
          }, 50);
        });
        socket.on('error', () => undefined);
      });
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    const lines = logged.slice(seen);
    expect(lines.filter((line) => line.msg === 'incoming request' && line.req?.url === '/api/tokens')).toHaveLength(5);
    expect(lines.filter((line) => line.level >= 40)).toEqual([]);
    expect((await send('GET', '/api/actions?view=pending')).status).toBe(200);
  });

  it('408 request_timeout when the request line, headers or body stall past the time allowed', async () => {
    await fc.assert(fc.asyncProperty(fc.constantFrom('line', 'headers', 'body'), fc.integer({ min: 1, max: 50 }), async (stage, size) => {
      const full = head('POST', '/api/actions/approve', { ...auth, 'content-type': 'application/json', 'content-length': 1000 });
      const partial = stage === 'line' ? 'POST /api/act' : stage === 'headers' ? full.slice(0, full.length - 2 - size) : `${full}{"ids":[`;
      const started = Date.now();
      expectProblem(await exchange(port, [ascii(partial)], { timeoutMs: REQUEST_TIMEOUT_MS * 4 }), 'request_timeout');
      expect(Date.now() - started).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 50);
    }), { numRuns: 4 });
  });

  it('logged no stack error as a fault or without a code, in all of the above', () => {
    expect(logged.filter((line) => line.level >= 40).map((line) => line.msg)).toEqual([]);
  });
});
