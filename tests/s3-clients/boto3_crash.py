"""Concurrent writes for the kill -9 test (tests/s3_faults.rs), and the
check after the restart.

`boto3_crash.py write`: several threads PUT objects (new keys, random
sizes; some bodies shared so objects share CIDs) and DELETE some they
wrote, until a request fails (the daemon was killed) or `seconds` pass.
Prints what was acknowledged: {"puts": {key: etag}, "deletes": [key],
"uncertain": [key]} (uncertain: in flight when it failed).

`boto3_crash.py create` makes the bucket.

`boto3_crash.py check`: every object listed, read whole: {key: {"etag",
"md5", "cid"}}; boto3 validates each GET against its stored CRC32.

Spec on stdin: {"endpoint", "key", "secret", "bucket", "seed", "threads",
"seconds"}.
"""

import hashlib
import json
import random
import sys
import threading
import time

import boto3
from botocore.config import Config

spec = json.load(sys.stdin)
mode = sys.argv[1]


def client():
    return boto3.client(
        "s3",
        endpoint_url=spec["endpoint"],
        aws_access_key_id=spec["key"],
        aws_secret_access_key=spec["secret"],
        region_name="us-east-1",
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
        ),
    )


bucket = spec["bucket"]

if mode == "create":
    client().create_bucket(Bucket=bucket)
    print(json.dumps({"created": bucket}))
elif mode == "write":
    lock = threading.Lock()
    puts, deletes, uncertain = {}, [], []
    shared = [random.Random(i).randbytes(300_000 + i) for i in range(3)]
    deadline = time.monotonic() + spec["seconds"]

    def writer(n):
        rng = random.Random(spec["seed"] * 1000 + n)
        s3 = client()
        mine = []
        i = 0
        while time.monotonic() < deadline:
            i += 1
            if mine and rng.random() < 0.2:
                key = mine.pop(rng.randrange(len(mine)))
                try:
                    s3.delete_object(Bucket=bucket, Key=key)
                except Exception:
                    with lock:
                        uncertain.append(key)
                    return
                with lock:
                    deletes.append(key)
                continue
            key = f"r{spec['seed']}/t{n}/{i}"
            if rng.random() < 0.3:
                body = shared[rng.randrange(len(shared))]
            else:
                body = rng.randbytes(rng.choice([0, 1, 1000, 70_000, 1_500_000, 2_500_000]))
            try:
                etag = s3.put_object(Bucket=bucket, Key=key, Body=body)["ETag"]
            except Exception:
                with lock:
                    uncertain.append(key)
                return
            with lock:
                puts[key] = etag
            mine.append(key)

    threads = [
        threading.Thread(target=writer, args=(n,)) for n in range(spec["threads"])
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"puts": puts, "deletes": deletes, "uncertain": uncertain}))
elif mode == "check":
    s3 = client()
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            got = s3.get_object(Bucket=bucket, Key=o["Key"], ChecksumMode="ENABLED")
            body = got["Body"].read()
            found[o["Key"]] = {
                "etag": got["ETag"],
                "listed_etag": o["ETag"],
                "md5": '"' + hashlib.md5(body).hexdigest() + '"',
                "size": len(body),
                "listed_size": o["Size"],
                "cid": got["ResponseMetadata"]["HTTPHeaders"].get("x-cairn-cid"),
            }
    print(json.dumps(found))
else:
    sys.exit(f"unknown mode {mode!r}")
