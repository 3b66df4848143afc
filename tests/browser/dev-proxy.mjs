#!/usr/bin/env node
// dev-proxy.mjs — development server for the management UI: serves crates/server/ui/ and
// proxies /api/* to a management API (RabbitMQ by default), so the UI can be developed and
// tested before, or independently of, Warren's own HTTP server. No dependencies.
//
//   node tests/browser/dev-proxy.mjs [--port 18080] [--target http://127.0.0.1:15682]

import http from 'node:http';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const args = process.argv.slice(2);
function arg(name, fallback) {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1] : fallback;
}
const port = Number(arg('port', '18080'));
const target = new URL(arg('target', 'http://127.0.0.1:15682'));
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../crates/server/ui');

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml', '.png': 'image/png',
  '.ico': 'image/x-icon', '.json': 'application/json',
};

function proxy(req, res) {
  const upstream = http.request({
    host: target.hostname, port: target.port || 80, method: req.method, path: req.url,
    headers: { ...req.headers, host: target.host },
  }, (up) => {
    res.writeHead(up.statusCode, up.headers);
    up.pipe(res);
  });
  upstream.on('error', (err) => {
    res.writeHead(502, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: 'bad_gateway', reason: `dev-proxy: ${err.message}` }));
  });
  req.pipe(upstream);
}

async function serveStatic(req, res) {
  const urlPath = decodeURIComponent(new URL(req.url, 'http://x').pathname);
  const file = path.join(root, urlPath === '/' ? 'index.html' : urlPath);
  if (!file.startsWith(root + path.sep) || (req.method !== 'GET' && req.method !== 'HEAD')) {
    res.writeHead(404).end();
    return;
  }
  try {
    const body = await readFile(file);
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] || 'application/octet-stream', 'cache-control': 'no-cache' });
    res.end(req.method === 'HEAD' ? undefined : body);
  } catch {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('Not found');
  }
}

const server = http.createServer((req, res) => {
  if (req.url === '/api' || req.url.startsWith('/api/')) proxy(req, res);
  else serveStatic(req, res);
});
server.listen(port, '127.0.0.1', () => {
  console.log(`dev-proxy: UI ${root} on http://127.0.0.1:${port}/, /api/* → ${target.origin}`);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => server.close(() => process.exit(0)));
