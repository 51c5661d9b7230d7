// One login with node-postgres (the `pg` package), for pgrx-tests/tests/drivers.rs.
// Usage: node pg_login.js HOST PORT USER PASSWORD CA_CERT CLIENT_CERT CLIENT_KEY
// Prints "session: USER" and exits 0, or "failed: ERROR" and exits 1; gives up after 30 s
// (exit 2: the client hung).
const { Client } = require('pg');
const fs = require('fs');
const [host, port, user, password, ca, cert, key] = process.argv.slice(2);
const hung = setTimeout(() => { console.log('failed: timeout (the client hung)'); process.exit(2); }, 30000);
const client = new Client({
  host, port: Number(port), user, password, database: 'postgres',
  connectionTimeoutMillis: 20000,
  ssl: {
    ca: fs.readFileSync(ca), cert: fs.readFileSync(cert), key: fs.readFileSync(key),
    rejectUnauthorized: true, checkServerIdentity: () => undefined,
  },
});
client.connect()
  .then(async () => {
    const r = await client.query('SELECT current_user AS u');
    console.log('session: ' + r.rows[0].u);
    await client.end();
    clearTimeout(hung);
  })
  .catch((e) => { console.log('failed: ' + (e.code ? e.code + ': ' : '') + e.message); process.exit(1); });
