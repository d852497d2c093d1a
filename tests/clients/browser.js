// Loads page.html in headless Chromium: Segment's browser library
// (@segment/analytics-next, served from node_modules) sends identify, page
// and track to trackd; leaving the page sends a beacon.
//
// Run by tests/segment_clients.rs with TRACKD_URL and TRACKD_WRITE_KEY set.
// Everything stays on 127.0.0.1: the page server binds there, and Chromium
// resolves no other host name. Prints the messages sent as JSON.
'use strict'
const fs = require('fs')
const http = require('http')
const os = require('os')
const path = require('path')
const { chromium } = require('playwright-core')

const bundles = path.join(
  path.dirname(require.resolve('@segment/analytics-next/package.json')),
  'dist',
  'umd'
)
const { version } = require('@segment/analytics-next/package.json')
const apiHost = new URL(process.env.TRACKD_URL).host + '/v1'
const writeKey = process.env.TRACKD_WRITE_KEY

function serve() {
  const page = fs
    .readFileSync(path.join(__dirname, 'page.html'), 'utf8')
    .replaceAll('__API_HOST__', apiHost)
    .replaceAll('__WRITE_KEY__', writeKey)
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1')
    if (url.pathname === '/' || url.pathname === '/next') {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' })
      return res.end(url.pathname === '/' ? page : '<p>next page</p>')
    }
    const prefix = '/analytics-next/bundles/'
    const name = url.pathname.startsWith(prefix) ? url.pathname.slice(prefix.length) : ''
    if (/^[\w.-]+\.js$/.test(name) && fs.existsSync(path.join(bundles, name))) {
      res.writeHead(200, { 'Content-Type': 'text/javascript' })
      return res.end(fs.readFileSync(path.join(bundles, name)))
    }
    res.writeHead(404)
    res.end()
  })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)))
}

async function main() {
  const server = await serve()
  const origin = `http://127.0.0.1:${server.address().port}`
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'trackd-chromium-'))
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    timeout: 60000,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
    ],
  })
  const offHost = []
  try {
    const page = await context.newPage()
    page.on('request', (r) => {
      if (new URL(r.url()).hostname !== '127.0.0.1') offHost.push(r.url())
    })
    const logs = []
    page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`))
    page.on('pageerror', (e) => logs.push(`pageerror: ${e}`))
    await page.goto(origin + '/', { timeout: 30000 })
    const ids = await page.evaluate(() => window.run())
    const failures = await page.evaluate(() => window.failures)
    const sent = await page.evaluate(() => window.sent)
    // Leaving fires pagehide, whose beacon Chromium delivers after the page is gone.
    await page.goto(origin + '/next', { timeout: 30000 })
    await page.waitForTimeout(1500)
    if (failures.length || ids.length !== 3) {
      console.error('delivery failed:', failures, '\n' + logs.join('\n'))
      process.exit(1)
    }
    process.stdout.write(JSON.stringify({ version, origin, messages: sent, offHost }))
  } finally {
    await context.close()
    server.close()
    fs.rmSync(userDataDir, { recursive: true, force: true })
  }
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
