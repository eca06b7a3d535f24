// A test-only OpenID Provider (panva/oidc-provider) on loopback, driven by tests/support/oidc_provider.py.
//
// Usage: node provider.mjs <config.json>, the file holding
//   {"port": 12345, "clients": [{"client_id", "client_secret", "redirect_uris"}]}.
// Issuer http://127.0.0.1:<port>; prints "listening <issuer>" once it accepts connections; exits on SIGTERM.
//
// Test-only routes on the same server (JSON bodies, answer 204):
//   POST /__test/accounts {"sub", "email"?, "email_verified"?, "name"?}  adds or replaces an account;
//   POST /__test/tamper   {"mode": "nonce" | "audience" | "expired" | "issuer" | "signature" |
//                                  "unverified_email" | null}         rewrites the id_token of every token response.

import * as crypto from 'node:crypto';
import { readFileSync } from 'node:fs';

// oidc-provider prints notices (development-only features, Node.js 20 not being an LTS it supports, ...) on every
// start; they are expected here. Anything else still reaches stderr.
for (const method of ['info', 'warn']) {
  const original = console[method].bind(console);
  console[method] = (...args) => {
    if (typeof args[0] === 'string' && args[0].startsWith('oidc-provider ')) return;
    original(...args);
  };
}

const { default: Provider } = await import('oidc-provider');

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const issuer = `http://127.0.0.1:${config.port}`;

function newSigningKey(kid) {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { privateKey, jwk: { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' } };
}

const signing = newSigningKey(crypto.randomUUID());

const accounts = new Map();
let tamperMode = null;
const TAMPER_MODES = new Set(['nonce', 'audience', 'expired', 'issuer', 'signature', 'unverified_email']);

// oidc-provider accepts client_secret_basic and client_secret_post alike for a client registered with either.
const clients = config.clients.map((client) => ({
  client_id: client.client_id,
  client_secret: client.client_secret,
  redirect_uris: client.redirect_uris,
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
}));

const provider = new Provider(issuer, {
  clients,
  jwks: { keys: [signing.jwk] },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  responseTypes: ['code'],
  pkce: { required: () => true },
  scopes: ['openid', 'email', 'profile'],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  // Put the scopes' claims in the id_token itself, as Google does, not only behind the userinfo endpoint.
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: true }, userinfo: { enabled: true } },
  clientBasedCORS: () => false,
  async findAccount(_ctx, sub) {
    const account = accounts.get(sub);
    if (!account) return undefined;
    return {
      accountId: sub,
      async claims() {
        const claims = { sub };
        if (account.email != null) {
          claims.email = account.email;
          claims.email_verified = account.email_verified ?? true;
        }
        if (account.name != null) claims.name = account.name;
        return claims;
      },
    };
  },
});

// Errors the provider turns into error pages or responses are otherwise silent.
provider.on('server_error', (_ctx, error) => console.error('server_error', error));

const b64json = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
const unb64json = (part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));

function sign(header, payload, privateKey) {
  const input = `${b64json(header)}.${b64json(payload)}`;
  const signature = crypto.sign('sha256', Buffer.from(input), privateKey).toString('base64url');
  return `${input}.${signature}`;
}

function tamper(idToken, mode) {
  const [headerPart, payloadPart] = idToken.split('.');
  const header = unb64json(headerPart); // kept as it is: same alg, same kid
  const claims = unb64json(payloadPart);
  const now = Math.floor(Date.now() / 1000);
  switch (mode) {
    case 'nonce':
      claims.nonce = `tampered-${crypto.randomUUID()}`;
      break;
    case 'audience':
      claims.aud = 'someone-else';
      break;
    case 'expired':
      claims.iat = now - 1200;
      claims.exp = now - 600;
      if (claims.auth_time !== undefined) claims.auth_time = now - 1200;
      break;
    case 'issuer':
      claims.iss = 'http://127.0.0.1:1/other';
      break;
    case 'unverified_email':
      claims.email_verified = false;
      break;
    case 'signature':
      return sign(header, claims, newSigningKey(header.kid).privateKey);
    default:
      throw new Error(`unknown tamper mode ${mode}`);
  }
  return sign(header, claims, signing.privateKey);
}

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req.iterator({ destroyOnReturn: false })) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : {};
}

// The test-only admin routes.
provider.use(async (ctx, next) => {
  if (!ctx.path.startsWith('/__test/')) return next();
  if (ctx.method !== 'POST') ctx.throw(405);
  const body = await readJson(ctx.req);
  if (ctx.path === '/__test/accounts') {
    if (typeof body.sub !== 'string' || !body.sub) ctx.throw(400, 'sub is required');
    accounts.set(body.sub, { email: body.email, email_verified: body.email_verified, name: body.name });
  } else if (ctx.path === '/__test/tamper') {
    if (body.mode !== null && !TAMPER_MODES.has(body.mode)) ctx.throw(400, `unknown tamper mode ${body.mode}`);
    tamperMode = body.mode;
  } else {
    ctx.throw(404);
  }
  ctx.status = 204;
  return undefined;
});

// Tampering with the id_token of the token endpoint's response.
provider.use(async (ctx, next) => {
  await next();
  if (tamperMode && ctx.path === '/token' && ctx.status === 200 && typeof ctx.body?.id_token === 'string') {
    ctx.body = { ...ctx.body, id_token: tamper(ctx.body.id_token, tamperMode) };
  }
});

const server = provider.listen(config.port, '127.0.0.1', () => {
  console.log(`listening ${issuer}`);
});
server.on('error', (error) => {
  console.error(error);
  process.exit(1);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}
