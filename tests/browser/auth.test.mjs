// Unit test of dashboard/auth.js with Node's own test runner (no package needed), run by
// tests/tests/dashboard.rs: which API answers make the dashboard ask for a new key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { keyRefused } = require('../../dashboard/auth.js');

test('a 401 asks for a new key, whoever answered it', () => {
  assert.equal(keyRefused(401, { error: { code: 'unauthorized', message: 'the API key is not valid' } }), true);
  // API Gateway, without an Authorization header.
  assert.equal(keyRefused(401, { message: 'Unauthorized' }), true);
  assert.equal(keyRefused(401, null), true);
});

test("API Gateway's 403 for a key its authorizer refused asks for a new key", () => {
  assert.equal(keyRefused(403, { message: 'Forbidden' }), true);
  assert.equal(keyRefused(403, null), true);
});

test("our 403 for a missing scope keeps the key: it is valid, only not for this", () => {
  assert.equal(keyRefused(403, { error: { code: 'forbidden', message: 'this key lacks the admin scope' } }), false);
});

test('other answers keep the key', () => {
  for (const status of [200, 404, 429, 500, 503]) {
    assert.equal(keyRefused(status, { message: 'Not Found' }), false, `status ${status}`);
  }
});
