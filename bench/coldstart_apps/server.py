"""A small HTTP app: imports what it serves with, says READY, then keeps loading (lazy imports, assets)."""
import argparse
import decimal
import email.parser
import html
import http.server
import json
import logging
import mimetypes
import os
import socketserver
import sys
import threading
import urllib.parse

LATER = ("asyncio", "unittest", "xml.dom.minidom", "xml.etree.ElementTree", "html.parser", "http.cookies",
         "urllib.request", "concurrent.futures", "multiprocessing", "difflib", "tarfile", "zipfile", "csv",
         "statistics", "fractions", "pdb", "doctest", "pydoc", "sqlite3", "smtplib", "imaplib", "ftplib",
         "xmlrpc.client", "xmlrpc.server", "wsgiref.simple_server", "configparser", "calendar", "textwrap",
         "pprint", "uuid", "secrets", "gettext", "locale", "shelve", "dbm", "plistlib", "mailbox", "tomllib")
ASSETS = "/usr/share/perl"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"path": urllib.parse.urlsplit(self.path).path, "type": mimetypes.guess_type(self.path)[0],
                           "price": str(decimal.Decimal("1.10")), "title": html.escape("<app>")}).encode()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)


def warm_up() -> None:
    """After readiness: the lazily imported modules, then every asset."""
    for name in LATER:
        try:
            __import__(name)
        except ImportError:
            pass
    for directory, _, names in os.walk(ASSETS):
        for name in sorted(names):
            try:
                with open(os.path.join(directory, name), "rb") as f:
                    f.read()
            except OSError:
                pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--exit-after-warm-up", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    email.parser.Parser().parsestr("Subject: start\n\nok\n")
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    print("READY", flush=True)
    warm = threading.Thread(target=warm_up)
    warm.start()
    if args.exit_after_warm_up:
        warm.join()
        sys.exit(0)
    server.serve_forever()


main()
