#!/usr/bin/env python3
"""Starts the built `hearth serve` on a free loopback port with a throw-away data directory,
fetches /api/v1/openapi.json and validates it against the OpenAPI 3.1 schema with
openapi-spec-validator. Usage: check-openapi.py PATH/TO/hearth"""
import json
import os
import subprocess
import sys
import tempfile
import urllib.request

from openapi_spec_validator import validate


def main() -> int:
    binary = sys.argv[1]
    with tempfile.TemporaryDirectory() as data:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
        env["HEARTH_ADMIN_TOKEN"] = "check-openapi-admin-token-0123"
        proc = subprocess.Popen(
            [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", data, "--log-format", "json"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
        )
        try:
            addr = None
            for line in proc.stdout:
                if "hearth listening" in line:
                    addr = json.loads(line)["addr"]
                    break
            if addr is None:
                print("hearth did not start", file=sys.stderr)
                return 1
            with urllib.request.urlopen(f"http://{addr}/api/v1/openapi.json", timeout=10) as resp:
                doc = json.load(resp)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    validate(doc)
    print(f"openapi.json: valid OpenAPI {doc['openapi']}, {len(doc['paths'])} paths")
    return 0


if __name__ == "__main__":
    sys.exit(main())
