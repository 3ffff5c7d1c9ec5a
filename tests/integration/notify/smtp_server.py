"""An SMTP server for the email channel's tests: aiosmtpd with STARTTLS required and AUTH
required over TLS. Each message it accepts becomes DIR/NNNN.eml. Prints "ready" once it
listens and stops when its stdin closes.

usage: smtp_server.py PORT CERT_PEM KEY_PEM USER PASSWORD DIR
"""

import logging
import os
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

# aiosmtpd 1.4 logs a warning about its own use of a deprecated attribute on every AUTH.
logging.getLogger("mail.log").setLevel(logging.ERROR)

port, cert, key, user, password, outdir = sys.argv[1:7]

context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)


class Keep:
    async def handle_DATA(self, server, session, envelope):
        path = os.path.join(outdir, "%04d.eml" % len(os.listdir(outdir)))
        with open(path + ".part", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(path + ".part", path)
        return "250 2.0.0 kept as " + os.path.basename(path)


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == user
        and auth_data.password.decode() == password
    )
    return AuthResult(success=ok, handled=False)


controller = Controller(
    Keep(),
    hostname="127.0.0.1",
    port=int(port),
    server_hostname="localhost",
    tls_context=context,
    require_starttls=True,
    authenticator=authenticator,
    auth_required=True,
    auth_require_tls=True,
)
controller.start()
print("ready", flush=True)
sys.stdin.read()
controller.stop()
