#!/usr/bin/env python3
"""Drives a node's Kubo-compatible RPC API over plain HTTP with Python's
standard library only (urllib and a hand-built multipart body), the way
Kubo's own Go client (`ipfs --api ...`) talks to it, and prints what came
back as JSON, for cairn's interop tests (tests/js_clients.rs).

    python3 rpc_client.py --api http://127.0.0.1:PORT --file PATH --dir PATH
                          [--dir-file REL] [--timeout 60]

Uploads are encoded like boxo's MultiFileReader (Kubo's CLI): every part is
named "file", its filename is the URL-query-escaped path (Go's
url.QueryEscape: "/" -> %2F, " " -> "+"), directories are parts of type
application/x-directory listed before their entries, and file parts carry
an "abspath" header.

stdout: one JSON object {"ok": B, "steps": {NAME: STEP}} where STEP is
{"status": HTTP_STATUS, "contentType": CT, "json": PARSED_BODY}
(for JSON answers; streamed answers give "lines": [PARSED_LINE, ...]) or
{"status", "contentType", "size", "sha256"} for byte answers; "error" when
the request itself failed (connection, timeout). Steps named expect-error-*
record an answer that should be an error. Exit status: 0 when every request
got an HTTP answer, 1 otherwise, 2 for bad usage, 124 past --timeout.
"""

import argparse
import hashlib
import json
import os
import signal
import sys
import urllib.error
import urllib.parse
import urllib.request


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--api", required=True)
    p.add_argument("--file", required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--dir-file")
    p.add_argument("--timeout", type=float, default=60.0)
    a = p.parse_args()
    u = urllib.parse.urlsplit(a.api)
    if u.scheme != "http" or u.hostname not in ("127.0.0.1", "localhost", "::1"):
        p.error(f"refusing {a.api}: only http:// on the loopback interface is allowed")
    return a


ARGS = parse_args()
STEPS = {}


def on_timeout(_signum, _frame):
    print(json.dumps({"ok": False, "error": f"timed out after {ARGS.timeout} s", "steps": STEPS}))
    sys.stdout.flush()
    os._exit(124)


signal.signal(signal.SIGALRM, on_timeout)
signal.setitimer(signal.ITIMER_REAL, ARGS.timeout)

# Never use a proxy from the environment: the API is on loopback.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
BASE = ARGS.api.rstrip("/") + "/api/v0/"
BOUNDARY = "cairn-python-client-boundary-7f3a9c"


def query(params):
    return urllib.parse.urlencode(params, doseq=True)


def request(name, path, params=(), body=None, content_type=None, method="POST", kind="json"):
    """Sends one request; records and returns the step.

    kind: "json" (one JSON document), "lines" (JSON lines), "bytes".
    """
    url = BASE + path
    q = query(list(params))
    if q:
        url += "?" + q
    req = urllib.request.Request(url, data=body, method=method)
    if content_type is not None:
        req.add_header("Content-Type", content_type)
    step = {"request": f"{method} /api/v0/{path}" + (f"?{q}" if q else "")}
    try:
        try:
            res = OPENER.open(req, timeout=ARGS.timeout)
        except urllib.error.HTTPError as err:
            res = err
        with res:
            data = res.read()
            step["status"] = res.status
            step["contentType"] = res.headers.get("Content-Type")
            trailer = res.headers.get("X-Stream-Error")
            if trailer:
                step["streamError"] = trailer
    except Exception as err:  # connection refused, timeout, ...
        step["error"] = f"{type(err).__name__}: {err}"
        STEPS[name] = step
        return step
    is_json = (step["contentType"] or "").startswith("application/json")
    if kind == "bytes" and step["status"] == 200 and not is_json:
        step["size"] = len(data)
        step["sha256"] = hashlib.sha256(data).hexdigest()
    else:
        text = data.decode("utf-8", "replace")
        try:
            if kind == "lines" and step["status"] == 200:
                step["lines"] = [json.loads(line) for line in text.splitlines() if line.strip()]
            else:
                step["json"] = json.loads(text)
        except ValueError:
            step["text"] = text[:2000]
    STEPS[name] = step
    return step


def go_query_escape(s):
    # Go's url.QueryEscape: like quote_plus with nothing kept safe but
    # letters, digits and "-_.~".
    return urllib.parse.quote_plus(s, safe="")


def part(path, content_type, body=b"", abspath=None):
    head = (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{go_query_escape(path)}"\r\n'
        f"Content-Type: {content_type}\r\n"
    )
    if abspath is not None:
        head += f"Abspath: {abspath}\r\n"
    return head.encode() + b"\r\n" + body + b"\r\n"


def multipart(parts):
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def file_part(path, abs_path):
    with open(abs_path, "rb") as f:
        return part(path, "application/octet-stream", f.read(), abspath=abs_path)


def dir_parts(root):
    """`ipfs add -r ROOT`: the directory, then its entries depth-first in
    name order (boxo's SerialFile sorts entries by name)."""
    top = os.path.basename(os.path.normpath(root))
    out = [part(top, "application/x-directory")]

    def walk(abs_dir, rel):
        for name in sorted(os.listdir(abs_dir)):
            a = os.path.join(abs_dir, name)
            r = f"{rel}/{name}"
            if os.path.isdir(a):
                out.append(part(r, "application/x-directory"))
                walk(a, r)
            else:
                out.append(file_part(r, a))

    walk(root, top)
    return out


MP = f"multipart/form-data; boundary={BOUNDARY}"


def added(step, name):
    for line in step.get("lines") or []:
        if line.get("Name") == name and "Hash" in line:
            return line["Hash"]
    return None


def main():
    request("version", "version")
    request("id", "id")
    request("get-method", "version", method="GET")

    file_name = os.path.basename(ARGS.file)
    body = multipart([file_part(file_name, ARGS.file)])
    add_file = request(
        "add-file", "add", [("cid-version", "0"), ("progress", "true")], body, MP, kind="lines"
    )
    request(
        "add-file-v1", "add", [("cid-version", "1"), ("hash", "sha2-256")], body, MP, kind="lines"
    )
    request(
        "add-file-chunker",
        "add",
        [("cid-version", "1"), ("raw-leaves", "false"), ("chunker", "size-65536")],
        body,
        MP,
        kind="lines",
    )
    small = multipart([part("unpinned.txt", "application/octet-stream", b"added with pin=false\n")])
    add_unpinned = request(
        "add-unpinned", "add", [("cid-version", "1"), ("pin", "false")], small, MP, kind="lines"
    )
    hashed = multipart([part("only-hash.txt", "application/octet-stream", b"only hashed\n")])
    request("add-only-hash", "add", [("cid-version", "1"), ("only-hash", "true")], hashed, MP, kind="lines")

    top = os.path.basename(os.path.normpath(ARGS.dir))
    add_dir = request("add-dir", "add", [("cid-version", "0")], multipart(dir_parts(ARGS.dir)), MP, kind="lines")

    file_cid = added(add_file, file_name)
    dir_cid = added(add_dir, top)
    if file_cid:
        request("cat", "cat", [("arg", file_cid)], kind="bytes")
        request("cat-range", "cat", [("arg", file_cid), ("offset", "1000"), ("length", "70000")], kind="bytes")
        request("block-stat", "block/stat", [("arg", file_cid)])
        request("pin-ls", "pin/ls", [("arg", file_cid), ("type", "recursive")])
        request("pin-rm", "pin/rm", [("arg", file_cid)])
        request("expect-error-pin-ls-unpinned", "pin/ls", [("arg", file_cid), ("type", "recursive")])
        request("pin-add", "pin/add", [("arg", file_cid)], kind="lines")
        request("pin-ls-after-add", "pin/ls", [("arg", file_cid)])
    unpinned_cid = added(add_unpinned, "unpinned.txt")
    if unpinned_cid:
        request("expect-error-pin-ls-not-pinned", "pin/ls", [("arg", unpinned_cid)])
    if dir_cid:
        request("ls", "ls", [("arg", dir_cid)])
        if ARGS.dir_file:
            request("cat-path", "cat", [("arg", f"/ipfs/{dir_cid}/{ARGS.dir_file}")], kind="bytes")
        for line in add_dir.get("lines") or []:
            if line.get("Name") == f"{top}/hello.txt":
                request("block-get", "block/get", [("arg", line["Hash"])], kind="bytes")
    request("pin-ls-all", "pin/ls")
    request("expect-error-cat-invalid-cid", "cat", [("arg", "not-a-cid")])
    request("expect-error-cat-no-arg", "cat")

    signal.setitimer(signal.ITIMER_REAL, 0)
    ok = all("error" not in s for s in STEPS.values())
    print(json.dumps({"ok": ok, "steps": STEPS}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
