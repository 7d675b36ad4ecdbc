// The shopper journey of shop.test.mjs over HTTPS: Chromium talks TLS to the
// balancer's TLS listener (a local-CA certificate it is told to trust), which
// forwards to shopd; the session cookie must come back Secure.
process.env.SHOP_E2E_HTTPS = '1';
await import('./shop.test.mjs');
