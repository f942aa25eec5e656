"""Drives boto3 through cairn's S3 object operations (tests/s3_objects.rs):
CopyObject, DeleteObjects, conditional GET/HEAD/PUT and ListObjects (v1).

Usage: objects_run.py PHASE, with a JSON spec on stdin: {"endpoint", "key",
"secret", "scoped_key", "scoped_secret", "file"}. The test runs the phases
in order and checks the store between them (a copy adds no bytes; the pin
outlives the source; GC frees the CID once no key names it). Prints one
JSON object on its last line with what each step saw; a step that fails
unexpectedly raises (the script exits non-zero with the traceback).
"""

import datetime
import hashlib
import json
import sys
import threading

from botocore.exceptions import ClientError

import s3_helpers
from s3_helpers import error_code

spec = json.load(sys.stdin)
phase = sys.argv[1]
out = {}
PAST = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)


def client(key=None, secret=None):
    return s3_helpers.client(
        spec["endpoint"], key or spec["key"], secret or spec["secret"]
    )


def status(call):
    """The HTTP status `call` gets, failing or not."""
    try:
        return call()["ResponseMetadata"]["HTTPStatusCode"]
    except ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"]


def cid_of(response):
    return response["ResponseMetadata"]["HTTPHeaders"].get("x-cairn-cid")


def sha256(data):
    return hashlib.sha256(data).hexdigest()


s3 = client()
data = open(spec["file"], "rb").read()
SRC = {"Bucket": "src", "Key": "big.bin"}


def described(bucket, key):
    head = s3.head_object(Bucket=bucket, Key=key)
    return {
        "cid": cid_of(head),
        "etag": head["ETag"],
        "type": head.get("ContentType"),
        "metadata": head["Metadata"],
        "length": head["ContentLength"],
    }


def put_phase():
    s3.create_bucket(Bucket="src")
    s3.create_bucket(Bucket="dst")
    put = s3.put_object(
        Body=data, ContentType="application/x-test", Metadata={"owner": "alice"}, **SRC
    )
    out["etag"] = put["ETag"]
    out["cid"] = cid_of(put)


def copy_phase():
    out["etag"] = s3.head_object(**SRC)["ETag"]
    copy = s3.copy_object(Bucket="dst", Key="copy.bin", CopySource=SRC)
    out["copy_etag"] = copy["CopyObjectResult"]["ETag"]
    out["copy_cid"] = cid_of(copy)
    out["copy_has_last_modified"] = "LastModified" in copy["CopyObjectResult"]
    out["copy_described"] = described("dst", "copy.bin")
    got = s3.get_object(Bucket="dst", Key="copy.bin")
    out["copy_sha256"] = sha256(got["Body"].read())
    # REPLACE takes the request's metadata; the bytes (CID) stay.
    s3.copy_object(
        Bucket="src",
        Key="replaced.bin",
        CopySource=SRC,
        MetadataDirective="REPLACE",
        ContentType="text/plain",
        Metadata={"owner": "bob"},
    )
    out["replaced_described"] = described("src", "replaced.bin")
    out["self_copy"] = error_code(
        lambda: s3.copy_object(CopySource=SRC, **SRC)
    )
    s3.copy_object(
        CopySource={"Bucket": "src", "Key": "replaced.bin"},
        Bucket="src",
        Key="replaced.bin",
        MetadataDirective="REPLACE",
        Metadata={"owner": "carol"},
    )
    out["self_replaced"] = described("src", "replaced.bin")
    out["copy_missing_key"] = error_code(
        lambda: s3.copy_object(
            Bucket="dst", Key="x", CopySource={"Bucket": "src", "Key": "nope"}
        )
    )
    out["copy_missing_bucket"] = error_code(
        lambda: s3.copy_object(
            Bucket="dst", Key="x", CopySource={"Bucket": "nope", "Key": "big.bin"}
        )
    )
    out["copy_to_missing_bucket"] = error_code(
        lambda: s3.copy_object(Bucket="nope", Key="x", CopySource=SRC)
    )
    # x-amz-copy-source-if-*.
    last_modified = s3.head_object(**SRC)["LastModified"]
    conditions = {
        "if_match": {"CopySourceIfMatch": out["etag"]},
        "if_match_wrong": {"CopySourceIfMatch": '"0123"'},
        "if_none_match": {"CopySourceIfNoneMatch": out["etag"]},
        "if_none_match_other": {"CopySourceIfNoneMatch": '"0123"'},
        "if_modified_since_past": {"CopySourceIfModifiedSince": PAST},
        "if_modified_since_mtime": {"CopySourceIfModifiedSince": last_modified},
        "if_unmodified_since_past": {"CopySourceIfUnmodifiedSince": PAST},
        "if_unmodified_since_mtime": {"CopySourceIfUnmodifiedSince": last_modified},
        "match_and_unmodified_past": {
            "CopySourceIfMatch": out["etag"],
            "CopySourceIfUnmodifiedSince": PAST,
        },
        "none_match_and_modified_past": {
            "CopySourceIfNoneMatch": out["etag"],
            "CopySourceIfModifiedSince": PAST,
        },
    }
    out["copy_conditions"] = {
        name: error_code(
            lambda: s3.copy_object(
                Bucket="dst", Key="cond-" + name, CopySource=SRC, **args
            )
        )
        for name, args in conditions.items()
    }
    # A key scoped to dst cannot read src, even to copy into dst.
    scoped = client(spec["scoped_key"], spec["scoped_secret"])
    out["scoped_copy_from_other"] = error_code(
        lambda: scoped.copy_object(Bucket="dst", Key="stolen", CopySource=SRC)
    )
    out["scoped_copy_within"] = cid_of(
        scoped.copy_object(
            Bucket="dst", Key="scoped.bin", CopySource={"Bucket": "dst", "Key": "copy.bin"}
        )
    )


def drop_source_phase():
    """Leaves dst/copy.bin the only key naming the source's CID."""
    s3.delete_object(**SRC)
    s3.delete_object(Bucket="src", Key="replaced.bin")
    for o in s3.list_objects_v2(Bucket="dst")["Contents"]:
        if o["Key"] != "copy.bin":
            s3.delete_object(Bucket="dst", Key=o["Key"])
    out["src_left"] = s3.list_objects_v2(Bucket="src")["KeyCount"]
    out["dst_left"] = [o["Key"] for o in s3.list_objects_v2(Bucket="dst")["Contents"]]


def read_copy_phase():
    got = s3.get_object(Bucket="dst", Key="copy.bin")
    out["copy_sha256"] = sha256(got["Body"].read())
    out["copy_cid"] = cid_of(got)


def drop_copy_phase():
    s3.delete_object(Bucket="dst", Key="copy.bin")
    out["dst_left"] = s3.list_objects_v2(Bucket="dst")["KeyCount"]


def conditional_phase():
    s3.create_bucket(Bucket="cond")
    put = s3.put_object(Bucket="cond", Key="k", Body=b"first")
    etag = put["ETag"]
    last_modified = s3.head_object(Bucket="cond", Key="k")["LastModified"]
    cases = {
        "if_match": {"IfMatch": etag},
        "if_match_any": {"IfMatch": "*"},
        "if_match_wrong": {"IfMatch": '"0123"'},
        "if_none_match": {"IfNoneMatch": etag},
        "if_none_match_other": {"IfNoneMatch": '"0123"'},
        "if_modified_since_past": {"IfModifiedSince": PAST},
        "if_modified_since_mtime": {"IfModifiedSince": last_modified},
        "if_unmodified_since_past": {"IfUnmodifiedSince": PAST},
        "if_unmodified_since_mtime": {"IfUnmodifiedSince": last_modified},
        "match_and_unmodified_past": {"IfMatch": etag, "IfUnmodifiedSince": PAST},
        "none_match_and_modified_past": {"IfNoneMatch": etag, "IfModifiedSince": PAST},
    }
    out["get"] = {
        name: status(lambda: s3.get_object(Bucket="cond", Key="k", **args))
        for name, args in cases.items()
    }
    out["get_412_code"] = error_code(
        lambda: s3.get_object(Bucket="cond", Key="k", IfMatch='"0123"')
    )
    out["head"] = {
        name: status(lambda: s3.head_object(Bucket="cond", Key="k", **args))
        for name, args in cases.items()
    }
    # Conditional PUT.
    out["put_if_none_match_existing"] = error_code(
        lambda: s3.put_object(Bucket="cond", Key="k", Body=b"x", IfNoneMatch="*")
    )
    out["put_if_none_match_new"] = error_code(
        lambda: s3.put_object(Bucket="cond", Key="new", Body=b"x", IfNoneMatch="*")
    )
    out["put_if_match_wrong"] = error_code(
        lambda: s3.put_object(Bucket="cond", Key="k", Body=b"x", IfMatch='"0123"')
    )
    out["put_if_match_missing"] = error_code(
        lambda: s3.put_object(Bucket="cond", Key="nope", Body=b"x", IfMatch=etag)
    )
    second = s3.put_object(Bucket="cond", Key="k", Body=b"second", IfMatch=etag)
    out["put_if_match_stale"] = error_code(
        lambda: s3.put_object(Bucket="cond", Key="k", Body=b"third", IfMatch=etag)
    )
    out["body_after_if_match"] = (
        s3.get_object(Bucket="cond", Key="k")["Body"].read().decode()
    )
    out["etag_after_if_match"] = second["ETag"] != etag
    # Concurrent creates of one key: exactly one wins, the others get 412.
    results = {}

    def create(i):
        c = client()
        body = f"writer {i}".encode()
        results[i] = error_code(
            lambda: c.put_object(Bucket="cond", Key="race", Body=body, IfNoneMatch="*")
        )

    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, code in results.items() if code is None]
    out["race_outcomes"] = sorted(str(code) for code in results.values())
    body = s3.get_object(Bucket="cond", Key="race")["Body"].read().decode()
    out["race_body_is_winners"] = len(winners) == 1 and body == f"writer {winners[0]}"


def delete_objects_phase():
    s3.create_bucket(Bucket="del")
    for key in ["a", "b", "c", "d", "keep"]:
        s3.put_object(Bucket="del", Key=key, Body=key.encode())
    long_key = "k" * 1025
    loud = s3.delete_objects(
        Bucket="del",
        Delete={
            "Objects": [{"Key": k} for k in ["a", "b", "never-there", long_key]],
        },
    )
    out["loud_deleted"] = sorted(d["Key"] for d in loud.get("Deleted", []))
    out["loud_errors"] = [
        (e["Key"] == long_key, e["Code"]) for e in loud.get("Errors", [])
    ]
    quiet = s3.delete_objects(
        Bucket="del",
        Delete={
            "Objects": [{"Key": "c"}, {"Key": "d"}, {"Key": "keep", "VersionId": "v9"}],
            "Quiet": True,
        },
    )
    out["quiet_deleted"] = quiet.get("Deleted", [])
    out["quiet_errors"] = [e["Code"] for e in quiet.get("Errors", [])]
    out["left"] = [o["Key"] for o in s3.list_objects_v2(Bucket="del")["Contents"]]
    out["too_many"] = error_code(
        lambda: s3.delete_objects(
            Bucket="del",
            Delete={"Objects": [{"Key": f"k{i}"} for i in range(1001)]},
        )
    )
    out["thousand"] = len(
        s3.delete_objects(
            Bucket="del",
            Delete={"Objects": [{"Key": f"k{i}"} for i in range(1000)]},
        ).get("Deleted", [])
    )
    out["missing_bucket"] = error_code(
        lambda: s3.delete_objects(Bucket="nope", Delete={"Objects": [{"Key": "a"}]})
    )

    # A body that is not the Delete document, signed as sent.
    def break_body(params, **_):
        params["body"] = b"<Delete><Object><Key>a</Key></Obj"
        headers = params["headers"]
        for h in list(headers.keys()):
            if h.lower() == "content-md5" or h.lower().startswith("x-amz-checksum"):
                del headers[h]

    broken = client()
    broken.meta.events.register("before-call.s3.DeleteObjects", break_body)
    out["malformed"] = error_code(
        lambda: broken.delete_objects(Bucket="del", Delete={"Objects": [{"Key": "a"}]})
    )
    out["left_after_malformed"] = [
        o["Key"] for o in s3.list_objects_v2(Bucket="del")["Contents"]
    ]


def list_v1_phase():
    s3.create_bucket(Bucket="list-v1")
    keys = ["a.txt", "docs/a", "docs/b/c", "docs/b/d", "docs/e", "sp ace/é", "z"]
    for key in keys:
        s3.put_object(Bucket="list-v1", Key=key, Body=key.encode())

    def listing(**args):
        page = s3.list_objects(Bucket="list-v1", **args)
        return {
            "keys": [o["Key"] for o in page.get("Contents", [])],
            "prefixes": [p["Prefix"] for p in page.get("CommonPrefixes", [])],
            "truncated": page["IsTruncated"],
            "next_marker": page.get("NextMarker"),
        }

    out["all"] = listing()
    out["top"] = listing(Delimiter="/")
    out["docs"] = listing(Prefix="docs/", Delimiter="/")
    out["after_marker"] = listing(Marker="docs/b/c")
    out["max_keys_zero"] = listing(MaxKeys=0)

    def pages(**args):
        seen, marker = [], ""
        while True:
            page = listing(MaxKeys=2, Marker=marker, **args)
            seen.append(page)
            if not page["truncated"]:
                return seen
            # Without a delimiter S3 gives no NextMarker: the last key is it.
            marker = page["next_marker"] or page["keys"][-1]

    out["pages"] = pages()
    out["pages_delimited"] = pages(Delimiter="/")
    raw = s3.list_objects(Bucket="list-v1", Prefix="sp ace/", EncodingType="url")
    out["url_keys"] = [o["Key"] for o in raw.get("Contents", [])]
    out["url_prefix"] = raw.get("Prefix")
    out["bad_max_keys"] = error_code(lambda: s3.list_objects(Bucket="list-v1", MaxKeys=-1))
    out["missing_bucket"] = error_code(lambda: s3.list_objects(Bucket="nope"))


{
    "put": put_phase,
    "copy": copy_phase,
    "drop-source": drop_source_phase,
    "read-copy": read_copy_phase,
    "drop-copy": drop_copy_phase,
    "conditional": conditional_phase,
    "delete-objects": delete_objects_phase,
    "list-v1": list_v1_phase,
}[phase]()
print(json.dumps(out))
