"""Checksums and aws-chunked uploads as boto3 sends them (tests/s3_faults.rs).

Reads a JSON spec on stdin: {"endpoint", "key", "secret", "file", "cert",
"cert_key", "expect": {ALGORITHM: base64 checksum of the file}}. Every
request's headers are captured with a botocore `before-send` hook, so the
output says what was really sent. boto3 sends checksums in a header over
plain HTTP and as an aws-chunked trailer (STREAMING-UNSIGNED-PAYLOAD-TRAILER)
only over HTTPS, so a second client talks HTTPS to a TLS proxy on
127.0.0.1 (certificate `cert`) that passes the bytes on to the endpoint
unchanged. Prints one JSON object on its last line; the Rust test checks
the values.
"""

import hashlib
import json
import socket
import ssl
import sys
import threading
import urllib.parse

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

spec = json.load(sys.stdin)
expect = spec["expect"]
out = {}
sent = {}


def capture(request, event_name, **_):
    """Keeps the headers of the last request of each operation (the event
    is `before-send.s3.OPERATION`)."""
    name = event_name.rsplit(".", 1)[-1]
    sent[name] = {k.lower(): v for k, v in request.headers.items()}
    for k, v in sent[name].items():
        if isinstance(v, bytes):
            sent[name][k] = v.decode()


def client(endpoint, **config):
    c = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=spec["key"],
        aws_secret_access_key=spec["secret"],
        region_name="us-east-1",
        verify=spec["cert"],
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1, "mode": "standard"},
            **config,
        ),
    )
    c.meta.events.register("before-send.s3.*", capture)
    return c


def error_code(call):
    try:
        call()
    except ClientError as e:
        return e.response["Error"]["Code"]
    return None


def checksums(response):
    return {
        k[len("Checksum") :].upper(): v
        for k, v in response.items()
        if k.startswith("Checksum") and k not in ("ChecksumType",)
    }


def tls_proxy(target):
    """Listens with TLS on 127.0.0.1; each connection's bytes go to
    `target` (host, port) and back, unchanged. Returns the port."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(spec["cert"], spec["cert_key"])
    listener = socket.create_server(("127.0.0.1", 0))

    def pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def serve():
        while True:
            raw, _ = listener.accept()
            try:
                tls = ctx.wrap_socket(raw, server_side=True)
            except (OSError, ssl.SSLError):
                raw.close()
                continue
            upstream = socket.create_connection(target)
            threading.Thread(target=pipe, args=(tls, upstream), daemon=True).start()
            threading.Thread(target=pipe, args=(upstream, tls), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1]


data = open(spec["file"], "rb").read()
sha = hashlib.sha256(data).hexdigest()
bucket = "sums"
s3 = client(spec["endpoint"])
s3.create_bucket(Bucket=bucket)


def put_and_read(c, key, label, **args):
    """PUTs `data` at `key`; records what was sent, what PutObject, GET and
    HEAD (checksum mode enabled) answered, and whether the bytes match."""
    put = c.put_object(Bucket=bucket, Key=key, Body=data, **args)
    h = sent["PutObject"]
    got = c.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    body = got["Body"].read()
    head = c.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    out[label] = {
        "content_sha256": h.get("x-amz-content-sha256"),
        "content_encoding": h.get("content-encoding"),
        "trailer": h.get("x-amz-trailer"),
        "decoded_length": h.get("x-amz-decoded-content-length"),
        "sdk_algorithm": h.get("x-amz-sdk-checksum-algorithm"),
        "checksum_headers": sorted(k for k in h if k.startswith("x-amz-checksum-")),
        "put_checksums": checksums(put),
        "put_type": put.get("ChecksumType"),
        "get_checksums": checksums(got),
        "get_type": got.get("ChecksumType"),
        "head_checksums": checksums(head),
        "etag": got["ETag"],
        "same_bytes": hashlib.sha256(body).hexdigest() == sha,
    }


# Plain HTTP, boto3's defaults: a CRC32 in a header.
put_and_read(s3, "default", "http_default")
# Algorithms boto3 computes itself, and values given by the caller.
put_and_read(s3, "sha256", "http_sha256", ChecksumAlgorithm="SHA256")
put_and_read(s3, "crc32c", "http_crc32c", ChecksumCRC32C=expect["CRC32C"])
put_and_read(s3, "crc64", "http_crc64nvme", ChecksumCRC64NVME=expect["CRC64NVME"])
# No checksum sent: cairn keeps its own CRC64NVME, as S3 does.
bare = client(spec["endpoint"], request_checksum_calculation="when_required")
put_and_read(bare, "bare", "http_none")

# A range is not the whole object: no checksum for it.
rng = s3.get_object(Bucket=bucket, Key="default", Range="bytes=0-9", ChecksumMode="ENABLED")
out["range_checksums"] = checksums(rng)

# A checksum that is not the body's: refused, nothing visible.
out["wrong_sha256"] = error_code(
    lambda: s3.put_object(
        Bucket=bucket,
        Key="wrong",
        Body=data,
        ChecksumSHA256=expect["SHA256_OF_OTHER"],
    )
)
out["wrong_crc32c"] = error_code(
    lambda: s3.put_object(
        Bucket=bucket, Key="wrong", Body=data, ChecksumCRC32C=expect["CRC32C_OF_OTHER"]
    )
)
out["wrong_visible"] = error_code(lambda: s3.head_object(Bucket=bucket, Key="wrong"))

# HTTPS through the TLS proxy: aws-chunked with a trailing checksum.
target = urllib.parse.urlparse(spec["endpoint"])
port = tls_proxy((target.hostname, target.port))
tls = client(f"https://127.0.0.1:{port}")
put_and_read(tls, "chunked", "https_default")
put_and_read(tls, "chunked-sha256", "https_sha256", ChecksumAlgorithm="SHA256")
# s3transfer's upload_file (a single PUT below its multipart threshold)
# streams the file as aws-chunked too.
tls.upload_file(spec["file"], bucket, "uploaded")
h = sent["PutObject"]
got = tls.get_object(Bucket=bucket, Key="uploaded", ChecksumMode="ENABLED")
out["upload_file"] = {
    "content_sha256": h.get("x-amz-content-sha256"),
    "content_encoding": h.get("content-encoding"),
    "get_checksums": checksums(got),
    "same_bytes": hashlib.sha256(got["Body"].read()).hexdigest() == sha,
}

contents = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
out["listed"] = sorted(o["Key"] for o in contents)
# Each listed object's checksum algorithm and type, as S3 lists them.
out["listed_checksums"] = {
    o["Key"]: [o.get("ChecksumAlgorithm"), o.get("ChecksumType")] for o in contents
}
versions = s3.list_object_versions(Bucket=bucket).get("Versions", [])
out["listed_version_checksums"] = {
    v["Key"]: [v.get("ChecksumAlgorithm"), v.get("ChecksumType")] for v in versions
}
print(json.dumps(out))
