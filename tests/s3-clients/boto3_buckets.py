"""Drives boto3 for tests/s3_buckets.rs: a bucket written on one node,
read on another that mounts it.

Reads a JSON spec on stdin: {"endpoint", "key", "secret", "bucket", "step",
"puts": {key: text}, "deletes": [key], "content_type", "metadata"}.

step "write": creates the bucket if needed, PUTs each of `puts` (with the
content type and metadata) and DELETEs each of `deletes`.
step "get": lists the bucket and GETs every object: {key: SHA-256}.
step "versioning": turns versioning on.
step "get_versions": GETs each [key, version] of `versions`: the body's
SHA-256, or the error code.
"write" also deletes each [key, version] of `delete_versions`, and returns
each PUT's version id.
step "read": lists the bucket (all keys; a prefix page of 2 with its
continuation; the delimiter "/"), GETs and HEADs every object, and tries a
PUT, a DELETE and a DeleteBucket (refused on a mounted bucket).

Prints one JSON object on its last line with what it saw; the Rust test
checks the values.
"""

import hashlib
import json
import sys

import s3_helpers
from s3_helpers import error_code

spec = json.load(sys.stdin)
out = {}

s3 = s3_helpers.client(spec["endpoint"], spec["key"], spec["secret"])
bucket = spec["bucket"]


if spec["step"] == "write":
    if error_code(lambda: s3.head_bucket(Bucket=bucket)) is not None:
        s3.create_bucket(Bucket=bucket)
    out["etags"] = {}
    for key, text in spec.get("puts", {}).items():
        r = s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=text.encode(),
            ContentType=spec["content_type"],
            Metadata=spec["metadata"],
        )
        out["etags"][key] = r["ETag"]
        out.setdefault("versions", {})[key] = r.get("VersionId")
    for key in spec.get("deletes", []):
        s3.delete_object(Bucket=bucket, Key=key)
    for key, version in spec.get("delete_versions", []):
        s3.delete_object(Bucket=bucket, Key=key, VersionId=version)
elif spec["step"] == "get":
    out["objects"] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
            out["objects"][o["Key"]] = hashlib.sha256(body).hexdigest()
elif spec["step"] == "versioning":
    if error_code(lambda: s3.head_bucket(Bucket=bucket)) is not None:
        s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(
        Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}
    )
elif spec["step"] == "get_versions":
    out["got"] = []
    for key, version in spec["versions"]:
        got = {}

        def read():
            body = s3.get_object(Bucket=bucket, Key=key, VersionId=version)["Body"]
            got["sha256"] = hashlib.sha256(body.read()).hexdigest()

        code = error_code(read)
        out["got"].append(got.get("sha256") or code)
elif spec["step"] == "read":
    out["buckets"] = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys += [o["Key"] for o in page.get("Contents", [])]
    out["keys"] = keys
    first = s3.list_objects_v2(Bucket=bucket, Prefix="docs/", MaxKeys=2)
    rest = s3.list_objects_v2(
        Bucket=bucket,
        Prefix="docs/",
        MaxKeys=2,
        ContinuationToken=first["NextContinuationToken"],
    )
    out["docs_pages"] = [
        [o["Key"] for o in first.get("Contents", [])],
        [o["Key"] for o in rest.get("Contents", [])],
    ]
    top = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    out["top"] = {
        "keys": [o["Key"] for o in top.get("Contents", [])],
        "prefixes": [p["Prefix"] for p in top.get("CommonPrefixes", [])],
    }
    out["objects"] = {}
    for key in keys:
        got = s3.get_object(Bucket=bucket, Key=key)
        body = got["Body"].read()
        head = s3.head_object(Bucket=bucket, Key=key)
        out["objects"][key] = {
            "sha256": hashlib.sha256(body).hexdigest(),
            "etag": got["ETag"],
            "head_etag": head["ETag"],
            "content_type": head["ContentType"],
            "metadata": head["Metadata"],
            "cid": got["ResponseMetadata"]["HTTPHeaders"].get("x-cairn-cid"),
        }
    out["missing"] = error_code(lambda: s3.get_object(Bucket=bucket, Key="no/such/key"))
    out["put"] = error_code(
        lambda: s3.put_object(Bucket=bucket, Key="new.txt", Body=b"refused")
    )
    out["delete"] = error_code(lambda: s3.delete_object(Bucket=bucket, Key=keys[0]))
    out["delete_bucket"] = error_code(lambda: s3.delete_bucket(Bucket=bucket))
else:
    raise SystemExit("unknown step " + spec["step"])

print(json.dumps(out))
