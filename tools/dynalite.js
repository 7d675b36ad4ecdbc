#!/usr/bin/env node
// Local DynamoDB for development and tests: dynalite bound to 127.0.0.1 unless
// told another single address (its own CLI binds every interface, which our
// network rule forbids). --host lets a test bind the private address of a
// network namespace that plays a separate machine.
//
//   node tools/dynalite.js --port N [--host ADDR] [--path DIR] [--create-table-ms MS]
//
// Prints "Listening at http://ADDR:N" once it accepts connections, so a
// caller can wait for that line; exits 0 on SIGTERM or SIGINT.
'use strict'

const path = require('path')
const modules = path.join(__dirname, 'node_modules')
const minimist = require(path.join(modules, 'minimist'))
const dynalite = require(path.join(modules, 'dynalite'))

const argv = minimist(process.argv.slice(2), { string: ['path', 'host'] })

function usage(code) {
  const out = code ? process.stderr : process.stdout
  out.write('usage: node tools/dynalite.js --port N [--host ADDR] [--path DIR] [--create-table-ms MS]\n' +
    '  --port N             TCP port (required, 1-65535)\n' +
    '  --host ADDR          the one address to bind (default: 127.0.0.1)\n' +
    '  --path DIR           keep tables in a LevelDB folder (default: in memory)\n' +
    '  --create-table-ms MS how long a new table stays CREATING (default: 500)\n')
  process.exit(code)
}

if (argv.help) usage(0)
const port = Number(argv.port)
if (!Number.isInteger(port) || port < 1 || port > 65535) usage(2)
const host = argv.host || '127.0.0.1'
if (host === '0.0.0.0' || host === '::') usage(2)

const options = {}
if (argv.path) options.path = argv.path
if (argv['create-table-ms'] !== undefined) {
  const ms = Number(argv['create-table-ms'])
  if (!Number.isInteger(ms) || ms < 0) usage(2)
  options.createTableMs = ms
  options.deleteTableMs = ms
  options.updateTableMs = ms
}

const server = dynalite(options)
server.on('error', (err) => {
  process.stderr.write(`dynalite: ${err.message}\n`)
  process.exit(1)
})
server.listen(port, host, () => {
  const addr = server.address()
  process.stdout.write(`Listening at http://${addr.address}:${addr.port}\n`)
})

let stopping = false
function stop() {
  if (stopping) return
  stopping = true
  // Keep-alive clients would hold close() open; do not wait for them.
  if (server.closeAllConnections) server.closeAllConnections()
  server.close(() => process.exit(0))
  setTimeout(() => process.exit(0), 2000).unref()
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
