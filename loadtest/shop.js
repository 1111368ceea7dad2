// k6 load test of the demo shop through its public entry: the frontend now,
// the gateway once it routes to the shop (set BASE_URL).
//
//   k6 run loadtest/shop.js                                   # frontend on localhost:8090
//   k6 run -e BASE_URL=http://localhost:8080 -e RATE=500 -e DURATION=2m loadtest/shop.js
//
// Env: BASE_URL (default http://localhost:8090), RATE requests/s (default 100),
// DURATION (default 1m), MAX_USER_ID (default 1000), P95_MS and P99_MS latency
// thresholds (default 250 and 500), MAX_ERROR_RATE (default 0.01).
// Every answer must be a user with orders, each with an invoice; the
// instances that answered are counted (the served_by counter, tagged by instance) so load
// balancing across instances shows in the summary.
import http from 'k6/http';
import { check } from 'k6';
import { Counter } from 'k6/metrics';

const BASE_URL = (__ENV.BASE_URL || 'http://localhost:8090').replace(/\/$/, '');
const RATE = parseInt(__ENV.RATE || '100', 10);
const DURATION = __ENV.DURATION || '1m';
const MAX_USER_ID = parseInt(__ENV.MAX_USER_ID || '1000', 10);
const P95_MS = parseInt(__ENV.P95_MS || '250', 10);
const P99_MS = parseInt(__ENV.P99_MS || '500', 10);
const MAX_ERROR_RATE = parseFloat(__ENV.MAX_ERROR_RATE || '0.01');

const servedBy = new Counter('served_by');
const badPages = new Counter('bad_pages');

export const options = {
  scenarios: {
    users: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: Math.max(10, Math.ceil(RATE / 10)),
      maxVUs: Math.max(50, RATE),
    },
  },
  thresholds: {
    http_req_failed: [`rate<${MAX_ERROR_RATE}`],
    http_req_duration: [`p(95)<${P95_MS}`, `p(99)<${P99_MS}`],
    checks: [`rate>${1 - MAX_ERROR_RATE}`],
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
};

export default function () {
  const id = 1 + Math.floor(Math.random() * MAX_USER_ID);
  const res = http.get(`${BASE_URL}/api/users/${id}`, {
    tags: { name: 'GET /api/users/{id}' },
    headers: { Accept: 'application/json' },
  });
  const instance = res.headers['X-Served-By'] || 'unknown';
  servedBy.add(1, { instance });
  const ok = check(res, {
    'status is 200': (r) => r.status === 200,
    'names the instance': () => instance !== 'unknown',
    'user with orders and invoices': (r) => {
      if (r.status !== 200) return false;
      const page = r.json();
      return page.user && page.user.id === id && Array.isArray(page.orders) && page.orders.length > 0 &&
        page.orders.every((o) => o.invoice && o.invoice.status);
    },
  });
  if (!ok) badPages.add(1);
}
