"""A $BROWSER for the tests: asks the URL's server for /health, then records the URL and the
answer's status in a JSON file, as ``{"url": url, "health": status}``.

Python's ``webbrowser`` runs ``$BROWSER`` with the URL as its one argument, and splits
``$BROWSER`` on ``os.pathsep`` (":"), so a JSON object cannot ride on that command line: this
script's JSON input comes in the RECORD_BROWSER_VISIT environment variable instead:
``{"record_to": path of the JSON file to write}``.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request


def main(url: str, args: dict[str, str]) -> None:
    with urllib.request.urlopen(url.split("/#")[0] + "/health", timeout=5) as response:
        status = response.status
    with open(args["record_to"], "w", encoding="utf-8") as record:
        record.write(json.dumps({"url": url, "health": status}))


if __name__ == "__main__":
    main(sys.argv[1], json.loads(os.environ["RECORD_BROWSER_VISIT"]))
