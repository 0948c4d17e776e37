"""A job runner whose start depends on its input: a fixed core, then the module groups job $JOB needs.

Each group is needed by a job with its own probability (a few by most jobs, the rest by few), drawn
from the job number, so a start's files are a core plus an input-dependent subset.
"""
import argparse
import json
import logging
import os
import random

GROUPS = (  # (share of jobs that need it, modules)
    (0.9, ("decimal", "fractions", "statistics")),
    (0.9, ("email.parser", "email.policy", "email.mime.multipart")),
    (0.8, ("http.client", "urllib.parse", "html")),
    (0.15, ("asyncio",)),
    (0.15, ("unittest",)),
    (0.15, ("xml.dom.minidom", "xml.etree.ElementTree")),
    (0.15, ("tarfile", "zipfile", "csv")),
    (0.15, ("pydoc",)),
    (0.15, ("multiprocessing", "concurrent.futures")),
    (0.15, ("difflib", "textwrap", "pprint")),
    (0.15, ("urllib.request", "http.cookies")),
    (0.15, ("configparser", "calendar", "uuid")),
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--all", action="store_true", help="every group (to find what the image needs)")
    args = parser.parse_args()
    draw = random.Random(int(os.environ.get("JOB", "0")))
    needed = [modules for share, modules in GROUPS if draw.random() < share or args.all]
    for modules in needed:
        for name in modules:
            __import__(name)
    logging.basicConfig(level=logging.INFO)
    print(json.dumps({"job": os.environ.get("JOB", "0"), "groups": len(needed)}))


main()
