"""digimat-espa's Server (PyPI digimat-espa 0.1.17) as the paging system on a serial port:
prints one JSON line per page it took. Used by tests/interop.rs.

One shim, for a bug of the package on Python 3 (not a behaviour change): its block decoder
collects the block into a bytearray and splits it with str separators, which raises TypeError
on Python 3, so it never ACKs a block. The shim hands the decoder the text it expects (the
package built it with chr(b).encode(), i.e. UTF-8). Everything else (the select sequence, the
BCC check, the ACK) is the package's own code.
"""
import json
import logging
import sys
import time

from digimat.espa import LinkSerial, Server
from digimat.espa import espa as espa_module

_decode = espa_module.MessageServer.decodeBuffer


def decode(self, buf):
    if isinstance(buf, (bytes, bytearray)):
        buf = buf.decode("utf-8", "replace")
    return _decode(self, buf)


espa_module.MessageServer.decodeBuffer = decode

server = Server(LinkSerial("pty", sys.argv[1]), logLevel=logging.WARNING)
server.start()
print(json.dumps({"ready": True}), flush=True)
while True:
    n = server.getNotification()
    if n is not None:
        print(json.dumps({
            "name": n.name,
            "records": n.data,
            # What the package calls them (swapped against the spec: legacy.md §6).
            "callAddress": getattr(n, "callAddress", None),
            "message": getattr(n, "message", None),
        }), flush=True)
    time.sleep(0.05)
