"""Lists in a real local registry against the fleet targets (issue 14), in one run.

* push: one 10k-entry list (plain + csv + metadata) attached to an image; target 1 s;
* pull + consensus: 100 lists attached to one image, fetched and counted (as
  ``nydus-top consensus --pull``); target 5 s.

Starts Debian's docker-registry on 127.0.0.1 with storage in a temp dir; prints seconds and the
ratio to each target (below 1.0 meets it).

Usage: ``.venv/bin/python bench/registry_bench.py [--lists 100] [--files 10000] [--quick]``
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import benchkit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from nydus_top.lists.files import load_list, save_list  # noqa: E402
from nydus_top.lists.meta import ListMeta  # noqa: E402
from nydus_top.model.records import ListedFile  # noqa: E402
from nydus_top.registry import artifacts as registry  # noqa: E402
from nydus_top.runs.consensus import Tally  # noqa: E402
from sandbox import images  # noqa: E402
from sandbox import registry as local  # noqa: E402


def main() -> None:
    ap = benchkit.parser(__doc__)
    ap.add_argument("--lists", type=int, default=100, help="lists pushed and pulled (default 100)")
    ap.add_argument("--files", type=int, default=10_000, help="files a list (default 10000)")
    args = ap.parse_args()
    lists, files = (3, 100) if args.quick else (args.lists, args.files)
    work = Path(tempfile.mkdtemp(prefix="nydus-top-registry-bench-"))
    (work / "registry").mkdir()
    server = local.start(work / "registry")
    try:
        ref = f"{server.host}/bench/app:1"
        images.build_image(ref, {"/bin/app": b"x"}, ["/bin/app"], work / "app.tar")
        server.push_archive(work / "app.tar", ref)
        image = registry.parse_reference(ref)
        client = registry.Client(server.host, plain_http=True)
        push_times = []
        for n in range(lists):
            path = work / f"list{n}"
            save_list([ListedFile(f"/usr/lib/python3/pkg{i % 300}/m{i}-{n if i % 10 == 0 else 0}.py", 4096, i * 30)
                       for i in range(files)], path, meta=ListMeta(image=ref, node=f"node{n}"))
            start = time.perf_counter()
            registry.push_list(client, image, registry.list_files(path),
                               {registry.ANNOTATION_NODE: f"node{n}",
                                registry.ANNOTATION_CREATED: f"2026-12-01T00:{n // 60:02d}:{n % 60:02d}Z"})
            push_times.append(time.perf_counter() - start)
        out = work / "pulled"
        out.mkdir()
        start = time.perf_counter()
        tally = Tally()
        for attached in registry.pull_lists(registry.Client(server.host, plain_http=True), image):
            tally.add(load_list(registry.write_pulled(out, attached)[0]).entries)
        kept = len(tally.consensus(0.5))
        pull_s = time.perf_counter() - start
    finally:
        server.stop()
    push_median, push_max = statistics.median(push_times), max(push_times)
    print(f"registry: distribution 2.8 on 127.0.0.1; {lists} lists of {files} files")
    print(f"push one list    median {push_median:6.3f} s  max {push_max:6.3f} s"
          f"   x target(1 s): {push_median:5.2f} (max {push_max:5.2f})")
    print(f"pull+consensus   {pull_s:6.3f} s  ({tally.runs} lists, {kept} files kept)"
          f"   x target(5 s): {pull_s / 5:5.2f}")


if __name__ == "__main__":
    main()
