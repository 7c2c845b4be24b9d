#!/usr/bin/env node
// oidc_server.mjs - a real OAuth2 / OpenID Connect authorization server for
// oasmtp's integration tests and demo: the npm package oidc-provider (pinned
// in package.json, installed by `npm ci` in this directory) behind HTTPS on
// 127.0.0.1 with a test CA's certificate.
//
//   node oidc_server.mjs --cert C --key K --port-file F
//        [--client-id ID] [--client-secret-file F] [--at-ttl SECONDS]
//        [--tokens-file F] [--max-seconds N] [--device-ttl SECONDS]
//
// Once listening it writes the port (decimal + newline) to --port-file
// atomically.  The issuer is https://127.0.0.1:PORT; discovery at
// /.well-known/openid-configuration, tokens at /token, device flow at
// /device/auth, introspection at /token/introspection, revocation at
// /token/revocation.  It exits by itself after --max-seconds (default 120)
// and on SIGTERM / SIGINT.
//
// Clients (static):
//   ID (default "oasmtp-test")  confidential, client_secret_post or
//       client_secret_basic with the secret read from --client-secret-file
//       (never from argv); grants authorization_code, refresh_token and the
//       device code grant; redirect URI http://127.0.0.1/callback (any port,
//       RFC 8252 section 7.3).
//   ID + "-public"              the same as a public client (no secret).
// Both: PKCE (S256) required, refresh tokens rotated on every use; a
// refresh token used twice revokes the whole grant (oidc-provider's reuse
// detection).  Refresh tokens are issued for offline_access with
// prompt=consent (oidc-provider's OIDC rules).  Scopes: openid
// offline_access smtp.  The login and consent pages are oidc-provider's
// development interactions (plain HTML forms), so tests can play the user
// with plain HTTP requests (tests/oauth/oidc_client.py).
//
// Test hooks:
//   --tokens-file F  every access token that is currently valid (issued,
//       not expired, not revoked or destroyed), one per line, rewritten
//       atomically on every change and when a token expires.  The SMTP
//       test servers read it on every AUTH (smtpd.py --token-file,
//       aiosmtpd_server.py --token-file), so they accept exactly the access
//       tokens this provider would confirm by introspection.
//   GET  /stats  JSON counters, never token values:
//       {"token_requests": N, "by_grant_type": {...}, "by_result": {...},
//        "access_tokens_issued": N, "refresh_tokens_issued": N,
//        "active_access_tokens": N, "grants_revoked": N}
//       by_result keys are "ok" or the OAuth error code ("invalid_grant").
//   POST /test/drop-access-tokens  forget every access token without
//       touching the grants (the resource server "no longer accepts" the
//       cached token, but refreshing still works).  Answers {"dropped": N}.
//
// Nothing secret is ever printed.  Node 20 makes oidc-provider print an
// "Unsupported runtime" notice; it works regardless.
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as crypto from 'node:crypto';

import Provider from 'oidc-provider';

function parseArgs(argv) {
  const opts = {
    'client-id': 'oasmtp-test', 'at-ttl': '3600', 'max-seconds': '120',
    'device-ttl': '600',
  };
  for (let i = 0; i < argv.length; i += 1) {
    const a = argv[i];
    if (!a.startsWith('--') || i + 1 >= argv.length) {
      throw new Error(`bad argument ${a}`);
    }
    opts[a.slice(2)] = argv[i + 1];
    i += 1;
  }
  for (const k of ['cert', 'key', 'port-file']) {
    if (!opts[k]) throw new Error(`--${k} is required`);
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const clientSecret = opts['client-secret-file']
  ? fs.readFileSync(opts['client-secret-file'], 'utf8').trim()
  : crypto.randomBytes(24).toString('base64url');

function writeAtomic(file, text) {
  const tmp = `${file}.tmp${process.pid}`;
  fs.writeFileSync(tmp, text, { mode: 0o600 });
  fs.renameSync(tmp, file);
}

// -- counters for /stats ------------------------------------------------------
const stats = {
  token_requests: 0,
  by_grant_type: {},
  by_result: {},
  access_tokens_issued: 0,
  refresh_tokens_issued: 0,
  active_access_tokens: 0,
  grants_revoked: 0,
};
const bump = (obj, key) => { obj[key] = (obj[key] || 0) + 1; };

// -- storage: one in-memory adapter that also publishes valid access tokens ---
// Records are kept as {payload, expiresAt (ms or Infinity)}; anything past
// its expiry is treated as absent.
const records = new Map();       // "Model:id" -> record
const grantMembers = new Map();  // grantId -> Set of "Model:id"
const byUid = new Map();         // session uid -> id
const byUserCode = new Map();    // device user code -> id
let publishedTokens = '';

function alive(rec) {
  return rec !== undefined && rec.expiresAt > Date.now();
}

function publishTokens() {
  const now = Date.now();
  const valid = [];
  for (const [key, rec] of records) {
    if (key.startsWith('AccessToken:') && rec.expiresAt > now) {
      valid.push(key.slice('AccessToken:'.length));
    }
  }
  stats.active_access_tokens = valid.length;
  const text = valid.map((t) => `${t}\n`).join('');
  if (opts['tokens-file'] && text !== publishedTokens) {
    writeAtomic(opts['tokens-file'], text);
  }
  publishedTokens = text;
}

function forget(key) {
  const rec = records.get(key);
  if (!rec) return;
  records.delete(key);
  if (rec.payload.grantId) grantMembers.get(rec.payload.grantId)?.delete(key);
  if (key.startsWith('AccessToken:')) publishTokens();
}

class TestAdapter {
  constructor(model) { this.model = model; }

  key(id) { return `${this.model}:${id}`; }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const expiresAt = typeof expiresIn === 'number'
      ? Date.now() + expiresIn * 1000 : Infinity;
    records.set(key, { payload, expiresAt });
    if (payload.grantId) {
      if (!grantMembers.has(payload.grantId)) {
        grantMembers.set(payload.grantId, new Set());
      }
      grantMembers.get(payload.grantId).add(key);
    }
    if (this.model === 'Session' && payload.uid) byUid.set(payload.uid, id);
    if (payload.userCode) byUserCode.set(payload.userCode, id);
    if (this.model === 'AccessToken') {
      stats.access_tokens_issued += 1;
      publishTokens();
    } else if (this.model === 'RefreshToken') {
      stats.refresh_tokens_issued += 1;
    }
  }

  async find(id) {
    const rec = records.get(this.key(id));
    return alive(rec) ? rec.payload : undefined;
  }

  async findByUid(uid) {
    const id = byUid.get(uid);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const id = byUserCode.get(userCode);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const rec = records.get(this.key(id));
    if (rec) rec.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) { forget(this.key(id)); }

  async revokeByGrantId(grantId) {
    const members = grantMembers.get(grantId);
    grantMembers.delete(grantId);
    if (!members) return;
    stats.grants_revoked += 1;
    for (const key of members) forget(key);
  }
}

// -- the provider -------------------------------------------------------------
// [authorize] 'http://127.0.0.1/' is `oasmtp-token authorize`'s loopback
// redirect (any port, RFC 8252 section 7.3); added for
// tests/integration/test_authorize.py, the /callback one is unchanged.
const redirectUris = ['http://127.0.0.1/callback', 'http://127.0.0.1/'];
const grantTypes = ['authorization_code', 'refresh_token',
  'urn:ietf:params:oauth:grant-type:device_code'];

function makeProvider(issuer) {
  const provider = new Provider(issuer, {
    adapter: TestAdapter,
    clients: [
      {
        client_id: opts['client-id'],
        client_secret: clientSecret,
        token_endpoint_auth_method: 'client_secret_post',
        application_type: 'native',
        grant_types: grantTypes,
        response_types: ['code'],
        redirect_uris: redirectUris,
      },
      {
        client_id: `${opts['client-id']}-public`,
        token_endpoint_auth_method: 'none',
        application_type: 'native',
        grant_types: grantTypes,
        response_types: ['code'],
        redirect_uris: redirectUris,
      },
    ],
    // client_secret_basic is accepted too (RFC 6749 section 2.3.1 says
    // servers must support it); the registered method above only decides
    // the default.
    clientAuthMethods: ['client_secret_post', 'client_secret_basic', 'none'],
    cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
    scopes: ['openid', 'offline_access', 'smtp'],
    // [authorize] optional "email" scope: the ID token then names the
    // signed-in user (the login typed on the login page) in "email", so
    // test_authorize.py can check oasmtp-token's identity check.  Requests
    // without the email scope get exactly what they got before.
    claims: { openid: ['sub'], email: ['email', 'email_verified'] },
    conformIdTokenClaims: false,
    findAccount: async (ctx, id) => ({
      accountId: id,
      claims: async () => (id.includes('@')
        ? { sub: id, email: id, email_verified: true } : { sub: id }),
    }),
    pkce: { required: () => true },
    rotateRefreshToken: () => true,
    features: {
      devInteractions: { enabled: true },
      deviceFlow: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
    },
    ttl: {
      AccessToken: Number(opts['at-ttl']),
      DeviceCode: Number(opts['device-ttl']),
      RefreshToken: 14 * 24 * 3600,
      Grant: 14 * 24 * 3600,
      Session: 3600,
      Interaction: 600,
      AuthorizationCode: 60,
      IdToken: 3600,
    },
  });

  // Count token endpoint requests and their outcome.
  provider.use(async (ctx, next) => {
    const isToken = ctx.method === 'POST' && ctx.path === '/token';
    try {
      await next();
    } finally {
      if (isToken) {
        stats.token_requests += 1;
        const grant = ctx.oidc?.params?.grant_type || 'unknown';
        bump(stats.by_grant_type, grant);
        const body = ctx.body && typeof ctx.body === 'object' ? ctx.body : {};
        bump(stats.by_result, ctx.status === 200 ? 'ok'
          : (body.error || `http_${ctx.status}`));
      }
    }
  });
  return provider;
}

// -- HTTPS server ---------------------------------------------------------------
const server = https.createServer({
  cert: fs.readFileSync(opts.cert),
  key: fs.readFileSync(opts.key),
  minVersion: 'TLSv1.2',
});

function sendJson(res, status, obj) {
  const data = JSON.stringify(obj);
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Cache-Control': 'no-store',
    'Content-Length': Buffer.byteLength(data),
  });
  res.end(data);
}

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const provider = makeProvider(`https://127.0.0.1:${port}`);
  const handle = provider.callback();
  server.on('request', (req, res) => {
    if (req.method === 'GET' && req.url === '/stats') {
      publishTokens();
      sendJson(res, 200, stats);
    } else if (req.method === 'POST' && req.url === '/test/drop-access-tokens') {
      let n = 0;
      for (const key of [...records.keys()]) {
        if (key.startsWith('AccessToken:')) { forget(key); n += 1; }
      }
      publishTokens();
      sendJson(res, 200, { dropped: n });
    } else {
      handle(req, res);
    }
  });
  publishTokens();
  writeAtomic(opts['port-file'], `${port}\n`);
  process.stderr.write(`oidc_server: issuer https://127.0.0.1:${port} ready\n`);
});

// Expired access tokens leave the published list within a quarter second.
setInterval(publishTokens, 250);

const stop = () => process.exit(0);
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
setTimeout(() => {
  process.stderr.write('oidc_server: --max-seconds reached, exiting\n');
  process.exit(0);
}, Number(opts['max-seconds']) * 1000);
