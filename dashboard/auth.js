// Which API answers mean the key itself was refused, so the dashboard asks for another.
// A classic script (no module), loaded before app.js; tests/browser/auth.test.mjs loads
// it too.
//
// The local stack, the export's URL and every function checking a key itself answer 401
// with our `{"error": ...}` body for a missing, unknown or revoked key, and 403 with it for
// a key without the route's scope (another key is needed, but this one is valid). In AWS,
// API Gateway answers REST requests before any function does, in its own
// `{"message": ...}` body: 401 without an Authorization header, and 403 when the Lambda
// authorizer refuses the key (unknown or revoked); an HTTP API's Lambda authorizer cannot
// change either answer. So a 403 without our error body is a refused key as well.
(function (root) {
  'use strict';

  function keyRefused(status, body) {
    if (status === 401) return true;
    if (status !== 403) return false;
    const ours = body !== null && typeof body === 'object'
      && body.error !== null && typeof body.error === 'object';
    return !ours;
  }

  if (typeof module === 'object' && module.exports) module.exports = { keyRefused };
  else root.keyRefused = keyRefused;
})(typeof window === 'undefined' ? globalThis : window);
