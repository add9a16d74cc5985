#!/usr/bin/env python3
"""A real SMTP server (aiosmtpd) for atgw-email's tests.

Listens on 127.0.0.1 on a free port and prints `READY <port>` once it does. Every DATA it
answers is written to the output directory as `attempt-NNNN.json` (the answer code, whether
the session was in TLS and authenticated, the envelope, and the message's headers and body as
Python's own `email` parser reads them, RFC 2047 decoded), and each accepted message also as
`msg-NNNN.eml`. Files appear whole (written aside, then renamed).

What DATA is answered: `451` for the first `--tempfail` messages; then what the file `mode` in
the output directory says, read at each DATA: `accept` (250, the default), `tempfail` (451) or
`permfail` (554, naming a recipient as real servers do).

Exits when its standard input closes (the test that started it has ended).
"""

import argparse
import asyncio
import email
import email.policy
import json
import logging
import os
import ssl
import sys
import threading

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

# aiosmtpd logs a warning about its own deprecated Session.login_data on every AUTH.
logging.getLogger("mail.log").setLevel(logging.ERROR)


def write_whole(directory, name, data):
    tmp = os.path.join(directory, "." + name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, os.path.join(directory, name))


class Handler:
    def __init__(self, out, tempfail):
        self.out = out
        self.tempfail = tempfail
        self.n = 0

    def mode(self):
        try:
            with open(os.path.join(self.out, "mode")) as f:
                return f.read().strip()
        except FileNotFoundError:
            return "accept"

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        n = self.n
        mode = self.mode()
        if n <= self.tempfail or mode == "tempfail":
            code, answer = 451, "451 4.3.0 Try again later"
        elif mode == "permfail":
            code, answer = 554, "554 5.7.1 <night@oakview.example>: message refused"
        else:
            code, answer = 250, "250 2.0.0 Ok: queued"
        content = envelope.original_content or b""
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        headers = {}
        for name, value in parsed.items():
            headers.setdefault(name.lower(), []).append(str(value))
        body = parsed.get_content() if not parsed.is_multipart() else ""
        transport = server.transport
        meta = {
            "n": n,
            "code": code,
            "tls": transport is not None and transport.get_extra_info("ssl_object") is not None,
            "authenticated": bool(session.authenticated),
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "headers": headers,
            "body": body,
        }
        if code == 250:
            write_whole(self.out, f"msg-{n:04}.eml", content)
        write_whole(self.out, f"attempt-{n:04}.json", json.dumps(meta).encode())
        return answer


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--tls", choices=["none", "starttls", "implicit"], default="none")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--user")
    p.add_argument("--password-file")
    p.add_argument("--tempfail", type=int, default=0)
    args = p.parse_args()

    context = None
    if args.tls != "none":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
    password = None
    if args.password_file:
        with open(args.password_file) as f:
            password = f.read().strip()

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == args.user
            and auth_data.password.decode() == password
        )
        return AuthResult(success=ok, handled=False)

    handler = Handler(args.dir, args.tempfail)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    def factory():
        kw = {"hostname": "smtp.test.invalid", "ident": "atgw test SMTP", "loop": loop}
        if args.tls == "starttls":
            kw.update(tls_context=context, require_starttls=True)
        if args.user:
            # With implicit TLS the whole session is encrypted, but aiosmtpd only knows about
            # STARTTLS; with "none" the test is of a loopback relay.
            kw.update(
                authenticator=authenticator,
                auth_required=True,
                auth_require_tls=args.tls == "starttls",
            )
        return SMTP(handler, **kw)

    server = loop.run_until_complete(
        loop.create_server(
            factory, "127.0.0.1", 0, ssl=context if args.tls == "implicit" else None
        )
    )
    port = server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)

    def watch_stdin():
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    loop.run_forever()


if __name__ == "__main__":
    main()
