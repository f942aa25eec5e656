"""Drives boto3 against cairn's S3 endpoint (tests/s3.rs).

Reads a JSON spec on stdin: {"endpoint", "key", "secret", "scoped_key",
"scoped_secret", "file"}. Prints one JSON object on its last line with what
each step saw; the Rust test checks the values. A step that fails
unexpectedly raises (the script exits non-zero with the traceback).
"""

import hashlib
import json
import re
import sys
import time
import urllib.error
import urllib.request

import s3_helpers
from s3_helpers import error_code

spec = json.load(sys.stdin)
out = {}


def client(key, secret):
    return s3_helpers.client(spec["endpoint"], key, secret)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


s3 = client(spec["key"], spec["secret"])
bucket = "photos"

# Buckets.
s3.create_bucket(Bucket=bucket)
out["create_again"] = error_code(lambda: s3.create_bucket(Bucket=bucket))
out["create_bad_name"] = error_code(lambda: s3.create_bucket(Bucket="Bad_Name"))
s3.create_bucket(Bucket="other")
out["buckets"] = [b["Name"] for b in s3.list_buckets()["Buckets"]]
s3.head_bucket(Bucket=bucket)
out["head_missing_bucket"] = error_code(lambda: s3.head_bucket(Bucket="missing"))

# Objects: a file of several blocks, with a content type and metadata.
data = open(spec["file"], "rb").read()
put = s3.put_object(
    Bucket=bucket,
    Key="docs/big.bin",
    Body=data,
    ContentType="application/x-test",
    Metadata={"owner": "alice", "purpose": "testing"},
)
out["put_etag"] = put["ETag"]
out["put_cid"] = put["ResponseMetadata"]["HTTPHeaders"].get("x-cairn-cid")
got = s3.get_object(Bucket=bucket, Key="docs/big.bin")
body = got["Body"].read()
out["get_sha256"] = sha256(body)
out["get_length"] = got["ContentLength"]
out["get_etag"] = got["ETag"]
out["get_content_type"] = got["ContentType"]
out["get_metadata"] = got["Metadata"]
out["get_cid"] = got["ResponseMetadata"]["HTTPHeaders"].get("x-cairn-cid")
rng = s3.get_object(Bucket=bucket, Key="docs/big.bin", Range="bytes=1000-70999")
out["range_sha256"] = sha256(rng["Body"].read())
out["range_content_range"] = rng["ContentRange"]
out["range_status"] = rng["ResponseMetadata"]["HTTPStatusCode"]
suffix = s3.get_object(Bucket=bucket, Key="docs/big.bin", Range="bytes=-100")
out["suffix_sha256"] = sha256(suffix["Body"].read())
out["range_past_end"] = error_code(
    lambda: s3.get_object(Bucket=bucket, Key="docs/big.bin", Range="bytes=999999999-")
)
head = s3.head_object(Bucket=bucket, Key="docs/big.bin")
out["head_length"] = head["ContentLength"]
out["head_metadata"] = head["Metadata"]
out["head_cid"] = head["ResponseMetadata"]["HTTPHeaders"].get("x-cairn-cid")
out["head_missing"] = error_code(lambda: s3.head_object(Bucket=bucket, Key="nope"))
out["get_missing"] = error_code(lambda: s3.get_object(Bucket=bucket, Key="nope"))
out["get_missing_bucket"] = error_code(
    lambda: s3.get_object(Bucket="missing", Key="nope")
)
empty = s3.put_object(Bucket=bucket, Key="empty", Body=b"")
out["empty_etag"] = empty["ETag"]
out["empty_body"] = s3.get_object(Bucket=bucket, Key="empty")["Body"].read().decode()

# Listing: prefix, delimiter, pages, start-after.
for key in ["a.txt", "docs/a", "docs/b/c", "docs/b/d", "docs/e", "z"]:
    s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
top = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
out["list_top_keys"] = [o["Key"] for o in top.get("Contents", [])]
out["list_top_prefixes"] = [p["Prefix"] for p in top.get("CommonPrefixes", [])]
docs = s3.list_objects_v2(Bucket=bucket, Prefix="docs/", Delimiter="/")
out["list_docs_keys"] = [o["Key"] for o in docs.get("Contents", [])]
out["list_docs_prefixes"] = [p["Prefix"] for p in docs.get("CommonPrefixes", [])]
pages, token = [], None
while True:
    args = {"Bucket": bucket, "MaxKeys": 3}
    if token:
        args["ContinuationToken"] = token
    page = s3.list_objects_v2(**args)
    pages.append([o["Key"] for o in page.get("Contents", [])])
    if not page["IsTruncated"]:
        break
    token = page["NextContinuationToken"]
out["list_pages"] = pages
after = s3.list_objects_v2(Bucket=bucket, StartAfter="docs/b/d")
out["list_start_after"] = [o["Key"] for o in after.get("Contents", [])]
sizes = {o["Key"]: o["Size"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
out["list_big_size"] = sizes["docs/big.bin"]

# Who may do what.
wrong = client(spec["key"], spec["secret"][::-1])
out["wrong_secret"] = error_code(lambda: wrong.list_buckets())
unknown = client("CKUNKNOWNUNKNOWNUNKN", spec["secret"])
out["unknown_key"] = error_code(lambda: unknown.list_buckets())
scoped = client(spec["scoped_key"], spec["scoped_secret"])
out["scoped_buckets"] = [b["Name"] for b in scoped.list_buckets()["Buckets"]]
out["scoped_own"] = scoped.get_object(Bucket=bucket, Key="a.txt")["Body"].read().decode()
out["scoped_other"] = error_code(
    lambda: scoped.put_object(Bucket="other", Key="x", Body=b"x")
)
try:
    urllib.request.urlopen(f"{spec['endpoint']}/{bucket}/a.txt")
    out["anonymous"] = 200
except urllib.error.HTTPError as e:
    out["anonymous"] = e.code
url = s3.generate_presigned_url(
    "get_object", Params={"Bucket": bucket, "Key": "docs/e"}, ExpiresIn=300
)
out["presigned"] = urllib.request.urlopen(url).read().decode()
expired = s3.generate_presigned_url(
    "get_object", Params={"Bucket": bucket, "Key": "docs/e"}, ExpiresIn=1
)
put_url = s3.generate_presigned_url(
    "put_object", Params={"Bucket": bucket, "Key": "presigned-put"}, ExpiresIn=300
)
sent = urllib.request.Request(put_url, data=b"sent by a presigned PUT", method="PUT")
out["presigned_put"] = urllib.request.urlopen(sent).status
out["presigned_put_body"] = (
    s3.get_object(Bucket=bucket, Key="presigned-put")["Body"].read().decode()
)
late_url = s3.generate_presigned_url(
    "put_object", Params={"Bucket": bucket, "Key": "presigned-late"}, ExpiresIn=1
)
time.sleep(2)
try:
    urllib.request.urlopen(expired)
    out["presigned_expired"] = 200
except urllib.error.HTTPError as e:
    out["presigned_expired"] = e.code
try:
    urllib.request.urlopen(
        urllib.request.Request(late_url, data=b"too late", method="PUT")
    )
    out["presigned_put_expired"] = [200]
except urllib.error.HTTPError as e:
    code = re.search(r"<Code>(.*?)</Code>", e.read().decode())
    out["presigned_put_expired"] = [e.code, code and code.group(1)]
out["presigned_late_key"] = error_code(
    lambda: s3.head_object(Bucket=bucket, Key="presigned-late")
)

# Deleting.
out["delete_full_bucket"] = error_code(lambda: s3.delete_bucket(Bucket=bucket))
s3.delete_object(Bucket=bucket, Key="a.txt")
out["after_delete"] = error_code(lambda: s3.head_object(Bucket=bucket, Key="a.txt"))
s3.delete_object(Bucket=bucket, Key="never-there")
remaining = s3.list_objects_v2(Bucket=bucket)["Contents"]
for o in remaining:
    if o["Key"] != "docs/big.bin":
        s3.delete_object(Bucket=bucket, Key=o["Key"])
s3.delete_bucket(Bucket="other")
out["buckets_after_delete"] = [b["Name"] for b in s3.list_buckets()["Buckets"]]
out["keys_left"] = s3.list_objects_v2(Bucket=bucket)["KeyCount"]

print(json.dumps(out))
