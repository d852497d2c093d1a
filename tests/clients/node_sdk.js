// Sends every Segment call through @segment/analytics-node to trackd.
//
// Run by tests/segment_clients.rs with TRACKD_URL and TRACKD_WRITE_KEY set.
// Small calls go in batches of three (flushAt: 3); then a second client with the
// library's default flushAt (15) sends 30 tracks of ~20 KB each: two requests of
// about 300 KB. (The library's own 480 KB batch cap does not help here: 3.1.0
// estimates an event's size by counting its letters `i`, so larger batches of
// these events would exceed the 500 KB limit and get 413.)
// Prints the messages, request count and response statuses as JSON.
'use strict'
const { Analytics } = require('@segment/analytics-node')
const { version } = require('@segment/analytics-node/package.json')

async function main() {
  const options = {
    writeKey: process.env.TRACKD_WRITE_KEY,
    host: process.env.TRACKD_URL,
    flushInterval: 200,
    maxRetries: 2,
  }
  const analytics = new Analytics({ ...options, flushAt: 3 })
  const bulk = new Analytics({ ...options, flushAt: 15 })
  const statuses = []
  const bodies = []
  const errors = []
  for (const client of [analytics, bulk]) {
    client.on('http_request', (r) => bodies.push(r.body.length))
    client.on('http_response', (r) => statuses.push(r.status))
    client.on('error', (e) => errors.push(String(e.reason || e.code || e)))
  }

  const messages = []
  const done = (err, ctx) => {
    if (err) errors.push(String(err))
    else messages.push(ctx.event)
  }
  const user = 'node-user'
  analytics.identify({ userId: user, traits: { email: 'node@example.test' } }, done)
  analytics.track({ userId: user, event: 'Item Purchased', properties: { sku: 'A-1' } }, done)
  analytics.page({ userId: user, name: 'Pricing', properties: { url: 'http://shop.example.test/pricing' } }, done)
  analytics.screen({ anonymousId: 'node-anon', name: 'Checkout' }, done)
  analytics.group({ userId: user, groupId: 'node-group', traits: { seats: 5 } }, done)
  analytics.alias({ previousId: 'node-anon', userId: user }, done)
  const pad = 'x'.repeat(20 * 1024)
  for (let i = 0; i < 30; i++) {
    bulk.track({ anonymousId: 'node-bulk', event: 'Bulk', properties: { i, pad } }, done)
  }
  await Promise.all([analytics, bulk].map((c) => c.closeAndFlush({ timeout: 30000 })))
  if (errors.length) {
    console.error(errors.join('\n'))
    process.exit(1)
  }
  process.stdout.write(JSON.stringify({ version, messages, statuses, requestBytes: bodies }))
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
