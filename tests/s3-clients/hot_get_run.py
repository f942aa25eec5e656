"""Reads small objects again and again through boto3 (tests/s3_objects.rs):
once their blocks are in cairn's memory tier, GetObject answers from
memory, and every answer must be the same as the first, whole or ranged,
with the same ETag, checksum and conditional answers.

Usage: hot_get_run.py, with a JSON spec on stdin: {"endpoint", "key",
"secret", "objects": {name: size}}. Prints one JSON object on its last
line: for each object, what each of the reads saw.
"""

import hashlib
import json
import random
import sys

from botocore.exceptions import ClientError

import s3_helpers

spec = json.load(sys.stdin)
s3 = s3_helpers.client(spec["endpoint"], spec["key"], spec["secret"])
s3.create_bucket(Bucket="hot")
ROUNDS = 5


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def read(name, **args):
    r = s3.get_object(Bucket="hot", Key=name, **args)
    body = r["Body"].read()
    return {
        "sha256": sha256(body),
        "length": len(body),
        "content_length": r["ContentLength"],
        "etag": r["ETag"],
        "content_range": r.get("ContentRange"),
        "checksum": r.get("ChecksumSHA256"),
    }


out = {}
for name, size in spec["objects"].items():
    data = random.Random(size).randbytes(size)
    put = s3.put_object(
        Bucket="hot", Key=name, Body=data, ChecksumAlgorithm="SHA256"
    )
    rounds = []
    for _ in range(ROUNDS):
        try:
            s3.get_object(Bucket="hot", Key=name, IfNoneMatch=put["ETag"])
            not_modified = None
        except ClientError as e:
            not_modified = e.response["ResponseMetadata"]["HTTPStatusCode"]
        rounds.append(
            {
                "whole": read(name, ChecksumMode="ENABLED"),
                "range": read(name, Range="bytes=100-1099"),
                "suffix": read(name, Range="bytes=-10"),
                "not_modified": not_modified,
            }
        )
    out[name] = {
        "put_etag": put["ETag"],
        "sha256": sha256(data),
        "range_sha256": sha256(data[100:1100]),
        "suffix_sha256": sha256(data[-10:]),
        "rounds": rounds,
    }
print(json.dumps(out))
