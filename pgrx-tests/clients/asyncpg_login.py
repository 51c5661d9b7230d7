"""One login with asyncpg (Python), for pgrx-tests/tests/drivers.rs.

Usage: python3 asyncpg_login.py HOST PORT USER PASSWORD CA_CERT CLIENT_CERT CLIENT_KEY
Prints "session: USER" and exits 0, or "failed: ERROR" and exits 1; never waits longer than
30 seconds (a hang is a failure the scenario reports as such).
"""
import asyncio
import ssl
import sys

import asyncpg


async def main():
    host, port, user, password, ca, cert, key = sys.argv[1:8]
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False
    ctx.load_cert_chain(cert, key)
    try:
        conn = await asyncio.wait_for(
            asyncpg.connect(host=host, port=int(port), user=user, password=password,
                            database="postgres", ssl=ctx, timeout=20),
            30)
    except asyncio.TimeoutError:
        print("failed: timeout (the client hung)")
        sys.exit(2)
    except Exception as e:  # the error the application would see
        print(f"failed: {type(e).__name__}: {e}")
        sys.exit(1)
    print(f"session: {await conn.fetchval('SELECT current_user')}")
    await conn.close()


asyncio.run(main())
