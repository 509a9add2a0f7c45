"""``python -m mesh.probe [-X METHOD] URL``: one HTTP request, exit 0 on a 2xx.

The containers' healthchecks (an app's ``/readyz``, an Envoy's ``/ready``) and the calls to a
sidecar's admin API from inside its pod use it: the image has Python but no curl or wget, and
importing only this module keeps a probe cheap. The body is printed; no proxy is ever used.
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mesh.probe")
    parser.add_argument("-X", dest="method", default="GET")
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("url")
    args = parser.parse_args(argv)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(args.url, method=args.method.upper())
    try:
        with opener.open(request, timeout=args.timeout) as resp:
            sys.stdout.write(resp.read().decode(errors="replace"))
            return 0
    except urllib.error.HTTPError as exc:
        print(f"{args.method} {args.url}: {exc.code}", file=sys.stderr)
    except OSError as exc:
        print(f"{args.method} {args.url}: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
