"""Drives boto3 for tests/s3_buckets.rs: public-read buckets, set by S3's
canned ACLs and read without a signature.

Reads a JSON spec on stdin: {"endpoint", "key", "secret", "step",
"public", "private", "text"}.

step "acl": with the key, creates bucket `public` with the canned ACL
public-read and bucket `private` without one, PUTs `text` as "hello.txt"
into each, and reads each bucket's ACL (GetBucketAcl); then makes
`private` public-read and private again by PutBucketAcl (a canned ACL,
then an AccessControlPolicy), reading its ACL after each, and tries an ACL
cairn does not keep (public-read-write).
step "anonymous": with an unsigned client (botocore.UNSIGNED), GETs, HEADs
and lists (V2 and V1) both buckets, and tries a PUT, a DELETE, a
PutBucketAcl and ListBuckets; with plain HTTP (urllib, no signature), GETs
the object of each bucket and PUTs one.

Prints one JSON object on its last line with what it saw; the Rust test
checks the values.
"""

import hashlib
import json
import sys
import urllib.error
import urllib.request

import boto3
import botocore
from botocore.config import Config

import s3_helpers
from s3_helpers import error_code

spec = json.load(sys.stdin)
out = {}
public, private = spec["public"], spec["private"]
ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


def grants(s3, bucket):
    """A bucket's ACL as "GRANTEE:PERMISSION" strings."""
    acl = s3.get_bucket_acl(Bucket=bucket)
    return sorted(
        (g["Grantee"].get("URI") or g["Grantee"].get("ID")) + ":" + g["Permission"]
        for g in acl["Grants"]
    )


if spec["step"] == "acl":
    s3 = s3_helpers.client(spec["endpoint"], spec["key"], spec["secret"])
    s3.create_bucket(Bucket=public, ACL="public-read")
    s3.create_bucket(Bucket=private)
    for bucket in (public, private):
        s3.put_object(Bucket=bucket, Key="hello.txt", Body=spec["text"].encode())
    out["public_acl"] = grants(s3, public)
    out["private_acl"] = grants(s3, private)
    s3.put_bucket_acl(Bucket=private, ACL="public-read")
    out["opened_acl"] = grants(s3, private)
    owner = s3.get_bucket_acl(Bucket=private)["Owner"]
    s3.put_bucket_acl(
        Bucket=private,
        AccessControlPolicy={
            "Owner": owner,
            "Grants": [
                {
                    "Grantee": {"Type": "CanonicalUser", "ID": owner["ID"]},
                    "Permission": "FULL_CONTROL",
                }
            ],
        },
    )
    out["closed_acl"] = grants(s3, private)
    out["public_read_write"] = error_code(
        lambda: s3.put_bucket_acl(Bucket=private, ACL="public-read-write")
    )
elif spec["step"] == "anonymous":
    anon = boto3.client(
        "s3",
        endpoint_url=spec["endpoint"],
        region_name="us-east-1",
        config=Config(
            signature_version=botocore.UNSIGNED,
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1, "mode": "standard"},
        ),
    )
    for bucket in (public, private):
        seen = {}

        def get():
            body = anon.get_object(Bucket=bucket, Key="hello.txt")["Body"].read()
            seen["sha256"] = hashlib.sha256(body).hexdigest()

        def head():
            seen["size"] = anon.head_object(Bucket=bucket, Key="hello.txt")["ContentLength"]

        def list_v2():
            r = anon.list_objects_v2(Bucket=bucket)
            seen["keys_v2"] = [o["Key"] for o in r.get("Contents", [])]

        def list_v1():
            r = anon.list_objects(Bucket=bucket)
            seen["keys_v1"] = [o["Key"] for o in r.get("Contents", [])]

        seen["get"] = error_code(get)
        seen["head"] = error_code(head)
        seen["list_v2"] = error_code(list_v2)
        seen["list_v1"] = error_code(list_v1)
        seen["head_bucket"] = error_code(lambda: anon.head_bucket(Bucket=bucket))
        seen["put"] = error_code(
            lambda: anon.put_object(Bucket=bucket, Key="new.txt", Body=b"anonymous")
        )
        seen["delete"] = error_code(
            lambda: anon.delete_object(Bucket=bucket, Key="hello.txt")
        )
        seen["put_acl"] = error_code(
            lambda: anon.put_bucket_acl(Bucket=bucket, ACL="private")
        )
        seen["get_acl"] = error_code(lambda: anon.get_bucket_acl(Bucket=bucket))

        def http(method, data=None):
            url = f"{spec['endpoint']}/{bucket}/hello.txt"
            req = urllib.request.Request(url, data=data, method=method)
            try:
                with urllib.request.urlopen(req) as r:
                    return {"status": r.status, "sha256": hashlib.sha256(r.read()).hexdigest()}
            except urllib.error.HTTPError as e:
                body = e.read().decode()
                code = body.split("<Code>")[1].split("</Code>")[0] if "<Code>" in body else body
                return {"status": e.code, "code": code}

        seen["http_get"] = http("GET")
        seen["http_put"] = http("PUT", b"plain http")
        out[bucket] = seen
    out["list_buckets"] = error_code(lambda: anon.list_buckets())
    out["missing_bucket"] = error_code(
        lambda: anon.get_object(Bucket="no-such-bucket", Key="hello.txt")
    )

print(json.dumps(out))
