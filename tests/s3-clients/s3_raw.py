"""Raw S3 requests boto3 will not send, signed here with AWS Signature V4
(header auth, and aws-chunked bodies with chunk and trailer signatures),
for tests/s3_faults.rs. Python's standard library only.

Reads a JSON spec on stdin: {"endpoint", "key", "secret"}. Prints one JSON
object on its last line: for each case, the S3 error code the endpoint
answered (or "ok", or "closed" when it ended the connection), and what the
bucket lists afterwards. The Rust test checks the values.
"""

import base64
import datetime
import hashlib
import hmac
import http.client
import json
import re
import socket
import sys
import urllib.parse
import zlib

spec = json.load(sys.stdin)
url = urllib.parse.urlparse(spec["endpoint"])
HOST, PORT = url.hostname, url.port
KEY, SECRET = spec["key"], spec["secret"]
REGION, SERVICE = "us-east-1", "s3"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
out = {}


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def hmac_sha256(key, text):
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


class Signer:
    """AWS Signature V4 for one request: its seed signature, then the
    signatures of the aws-chunked chunks and trailer that follow it."""

    def __init__(self):
        now = datetime.datetime.now(datetime.timezone.utc)
        self.amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        self.date = now.strftime("%Y%m%d")
        self.scope = f"{self.date}/{REGION}/{SERVICE}/aws4_request"
        k = hmac_sha256(("AWS4" + SECRET).encode(), self.date)
        k = hmac_sha256(k, REGION)
        k = hmac_sha256(k, SERVICE)
        self.key = hmac_sha256(k, "aws4_request")
        self.previous = None

    def _sign(self, string_to_sign):
        self.previous = hmac.new(
            self.key, string_to_sign.encode(), hashlib.sha256
        ).hexdigest()
        return self.previous

    def headers(self, method, path, headers, payload_hash, query=""):
        """`headers` plus the date, payload hash and Authorization."""
        headers = dict(headers)
        headers["host"] = f"{HOST}:{PORT}"
        headers["x-amz-date"] = self.amz_date
        headers["x-amz-content-sha256"] = payload_hash
        names = sorted(h.lower() for h in headers)
        lower = {k.lower(): str(v).strip() for k, v in headers.items()}
        canonical = "\n".join(
            [
                method,
                path,
                query,
                "".join(f"{n}:{lower[n]}\n" for n in names),
                ";".join(names),
                payload_hash,
            ]
        )
        signature = self._sign(
            "\n".join(
                [
                    "AWS4-HMAC-SHA256",
                    self.amz_date,
                    self.scope,
                    sha256_hex(canonical.encode()),
                ]
            )
        )
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={KEY}/{self.scope}, "
            f"SignedHeaders={';'.join(names)}, Signature={signature}"
        )
        return headers

    def chunk(self, data):
        """One signed aws-chunked chunk."""
        signature = self._sign(
            "\n".join(
                [
                    "AWS4-HMAC-SHA256-PAYLOAD",
                    self.amz_date,
                    self.scope,
                    self.previous,
                    EMPTY_SHA256,
                    sha256_hex(data),
                ]
            )
        )
        return f"{len(data):x};chunk-signature={signature}\r\n".encode() + data + b"\r\n"

    def trailer(self, name, value):
        """The signed trailer after the last (empty) chunk."""
        signature = self._sign(
            "\n".join(
                [
                    "AWS4-HMAC-SHA256-TRAILER",
                    self.amz_date,
                    self.scope,
                    self.previous,
                    sha256_hex(f"{name}:{value}\n".encode()),
                ]
            )
        )
        return f"{name}:{value}\r\nx-amz-trailer-signature:{signature}\r\n\r\n".encode()


def path_of(bucket, key=None):
    if key is None:
        return "/" + bucket
    return "/" + bucket + "/" + urllib.parse.quote(key, safe="/~")


def send(method, path, headers, body):
    """The status and S3 error code (or "ok") of one request."""
    conn = http.client.HTTPConnection(HOST, PORT, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        text = resp.read().decode(errors="replace")
    finally:
        conn.close()
    if resp.status < 300:
        return "ok"
    m = re.search(r"<Code>([^<]*)</Code>", text)
    return m.group(1) if m else f"HTTP {resp.status}"


def signed(method, path, body=b"", headers=None, payload_hash=None, query=""):
    """One request signed in its headers (payload hash: the body's, unless
    given)."""
    h = Signer().headers(
        method, path, headers or {}, payload_hash or sha256_hex(body), query
    )
    return send(method, path + ("?" + query if query else ""), h, body)


def b64(digest):
    return base64.b64encode(digest).decode()


def crc32_b64(data):
    return b64(zlib.crc32(data).to_bytes(4, "big"))


def chunked(data, size=64 * 1024):
    return [data[i : i + size] for i in range(0, len(data), size)]


def put_streaming_signed(key, data, trailer=None, tamper=None):
    """PUT `key` as STREAMING-AWS4-HMAC-SHA256-PAYLOAD, or with `trailer`
    (name, value) as STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER. `tamper`
    flips a byte of the second chunk after signing it."""
    s = Signer()
    headers = {
        "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(data)),
    }
    mode = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    if trailer:
        mode += "-TRAILER"
        headers["x-amz-trailer"] = trailer[0]
    path = path_of(bucket, key)
    body_parts = []
    pieces = chunked(data)
    # Content-Length of the encoded body must be signed before the chunks
    # are: encode once with a placeholder signer to learn it.
    probe = Signer()
    probe.previous = "0" * 64
    length = sum(len(probe.chunk(p)) for p in pieces) + len(probe.chunk(b""))
    if trailer:
        length += len(probe.trailer(*trailer)) - 2
    headers["content-length"] = str(length)
    h = s.headers("PUT", path, headers, mode)
    for i, piece in enumerate(pieces):
        c = s.chunk(piece)
        if tamper and i == 1:
            c = bytearray(c)
            c[-3] ^= 1
            c = bytes(c)
        body_parts.append(c)
    last = s.chunk(b"")
    if trailer:
        last = last[:-2] + s.trailer(*trailer)
    body_parts.append(last)
    body = b"".join(body_parts)
    assert len(body) == length, (len(body), length)
    return send("PUT", path, h, body)


def put_streaming_unsigned(key, data, name, value):
    """PUT `key` as STREAMING-UNSIGNED-PAYLOAD-TRAILER with trailer
    `name: value` (what boto3 sends over HTTPS)."""
    path = path_of(bucket, key)
    body = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in chunked(data))
    body += f"0\r\n{name}:{value}\r\n\r\n".encode()
    headers = {
        "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(data)),
        "x-amz-trailer": name,
        "content-length": str(len(body)),
    }
    h = Signer().headers("PUT", path, headers, "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
    return send("PUT", path, h, body)


def truncated_put(key, declared, sent):
    """Declares `declared` bytes, sends `sent`, then ends the connection."""
    path = path_of(bucket, key)
    h = Signer().headers(
        "PUT", path, {"content-length": str(declared)}, "UNSIGNED-PAYLOAD"
    )
    sock = socket.create_connection((HOST, PORT), timeout=60)
    try:
        head = f"PUT {path} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in h.items()
        )
        sock.sendall(head.encode() + b"\r\n")
        block = bytes(range(256)) * 4096
        left = sent
        while left > 0:
            n = min(left, len(block))
            sock.sendall(block[:n])
            left -= n
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while True:
            got = sock.recv(65536)
            if not got:
                break
            reply += got
    except OSError:
        return "closed"
    finally:
        sock.close()
    if not reply:
        return "closed"
    m = re.search(rb"<Code>([^<]*)</Code>", reply)
    return m.group(1).decode() if m else "HTTP " + reply[:12].decode(errors="replace")


bucket = "faults"
data = bytes((i * 7 + 3) % 251 for i in range(200_000))

# Malformed XML: no bucket is made.
out["malformed_xml"] = signed(
    "PUT", path_of("xmlbucket"), b"<CreateBucketConfiguration><LocationConstraint>"
)
out["malformed_xml_bucket"] = signed("HEAD", path_of("xmlbucket"))
out["create"] = signed("PUT", path_of(bucket))

# Content-MD5 that is not the body's, and one that is no MD5.
wrong_md5 = b64(hashlib.md5(b"something else").digest())
out["wrong_md5"] = signed(
    "PUT", path_of(bucket, "md5"), data, {"content-md5": wrong_md5}
)
out["bad_md5"] = signed("PUT", path_of(bucket, "md5"), data, {"content-md5": "nope"})
out["right_md5"] = signed(
    "PUT",
    path_of(bucket, "good/md5"),
    data,
    {"content-md5": b64(hashlib.md5(data).digest())},
)

# A payload hash that is not the body's.
out["wrong_sha256"] = signed(
    "PUT", path_of(bucket, "sha"), data, payload_hash=sha256_hex(b"other")
)

# Checksum headers: wrong, malformed.
out["wrong_crc32"] = signed(
    "PUT", path_of(bucket, "crc"), data, {"x-amz-checksum-crc32": crc32_b64(b"x")}
)
out["bad_crc32"] = signed(
    "PUT", path_of(bucket, "crc"), data, {"x-amz-checksum-crc32": "AAAA"}
)
out["two_checksums"] = signed(
    "PUT",
    path_of(bucket, "crc"),
    data,
    {
        "x-amz-checksum-crc32": crc32_b64(data),
        "x-amz-checksum-sha256": b64(hashlib.sha256(data).digest()),
    },
)

# Keys S3 (or cairn) refuses.
out["dotdot"] = signed("PUT", path_of(bucket, "a/../b"), b"x")
out["dotdot_alone"] = signed("PUT", path_of(bucket, ".."), b"x")
out["nul"] = signed("PUT", path_of(bucket, "a\0b"), b"x")
out["long_1025"] = signed("PUT", path_of(bucket, "k" * 1025), b"x")
out["long_2k"] = signed("PUT", path_of(bucket, "k" * 2048), b"x")
out["long_1024"] = signed("PUT", path_of(bucket, "good/" + "k" * 1019), b"x")
out["dots_inside"] = signed("PUT", path_of(bucket, "good/a..b/.x"), b"x")

# Over the 5 GiB a single PUT may hold: refused before any byte is read.
out["too_large"] = truncated_put("too-large", 5 * 1024**3 + 1, 0)

# 5 GiB declared, 1 MiB sent, then the connection ends.
out["truncated"] = truncated_put("truncated", 5 * 1024**3, 1024 * 1024)

# aws-chunked, signed chunks, with and without a signed trailer.
out["chunked_signed"] = put_streaming_signed("good/chunked", data)
out["chunked_bad_signature"] = put_streaming_signed("chunked-bad", data, tamper=True)
out["chunked_trailer"] = put_streaming_signed(
    "good/trailer", data, trailer=("x-amz-checksum-crc32", crc32_b64(data))
)
out["chunked_trailer_wrong"] = put_streaming_signed(
    "trailer-wrong", data, trailer=("x-amz-checksum-crc32", crc32_b64(b"x"))
)
out["unsigned_trailer"] = put_streaming_unsigned(
    "good/unsigned", data, "x-amz-checksum-crc32", crc32_b64(data)
)
out["unsigned_trailer_wrong"] = put_streaming_unsigned(
    "unsigned-wrong", data, "x-amz-checksum-crc32", crc32_b64(b"x")
)

# What is visible afterwards: only the good ones.
conn = http.client.HTTPConnection(HOST, PORT, timeout=60)
s = Signer()
conn.request(
    "GET",
    path_of(bucket) + "?list-type=2",
    headers=s.headers("GET", path_of(bucket), {}, EMPTY_SHA256, "list-type=2"),
)
text = conn.getresponse().read().decode()
conn.close()
out["listed"] = re.findall(r"<Key>([^<]*)</Key>", text)

# Each good object reads back as sent.
for key in ["good/md5", "good/chunked", "good/trailer", "good/unsigned"]:
    conn = http.client.HTTPConnection(HOST, PORT, timeout=60)
    s = Signer()
    p = path_of(bucket, key)
    conn.request("GET", p, headers=s.headers("GET", p, {}, EMPTY_SHA256))
    body = conn.getresponse().read()
    conn.close()
    out["read_" + key] = body == data

print(json.dumps(out))
