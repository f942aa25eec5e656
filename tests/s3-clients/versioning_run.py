"""Drives boto3 through S3 bucket versioning on cairn's endpoint
(tests/s3_versioning.rs): Put/GetBucketVersioning, versioned PUT, GET and
HEAD by versionId, ListObjectVersions (order, IsLatest, paging with
max-keys 1, prefix and delimiter), delete markers, deleting a version,
CopyObject from a version, a suspended bucket's null version, and
DeleteBucket refused while versions remain.

Usage: versioning_run.py PHASE, with a JSON spec on stdin: {"endpoint",
"key", "secret", "scoped_key", "scoped_secret", "file"}. Prints one JSON
object on its last line with what each step saw; a step that fails
unexpectedly raises (the script exits non-zero with the traceback).
"""

import hashlib
import json
import sys

from botocore.exceptions import ClientError

import s3_helpers
from s3_helpers import error_code

spec = json.load(sys.stdin)
phase = sys.argv[1]
out = {}
s3 = s3_helpers.client(spec["endpoint"], spec["key"], spec["secret"])
B = "versioned"


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def headers(response):
    return response["ResponseMetadata"]["HTTPHeaders"]


def failure(call):
    """(code, HTTP status, x-amz-delete-marker, x-amz-version-id) of a
    failing call."""
    try:
        call()
    except ClientError as e:
        h = e.response["ResponseMetadata"]["HTTPHeaders"]
        return [
            e.response["Error"]["Code"],
            e.response["ResponseMetadata"]["HTTPStatusCode"],
            h.get("x-amz-delete-marker"),
            h.get("x-amz-version-id"),
        ]
    return None


def listing(**kwargs):
    """Every version and marker of the bucket, in S3's order, as
    [key, version, is_latest, "v" or "m"] (boto3 splits the two kinds into
    lists; they are merged back in key order, newest first)."""
    r = s3.list_object_versions(Bucket=B, **kwargs)
    items = [
        [v["Key"], v["VersionId"], v["IsLatest"], "v", v["LastModified"]]
        for v in r.get("Versions", [])
    ] + [
        [m["Key"], m["VersionId"], m["IsLatest"], "m", m["LastModified"]]
        for m in r.get("DeleteMarkers", [])
    ]
    # Back in S3's order: by key, then the latest, then newest first (by
    # time; between versions of one millisecond, by ID, which grows).
    items.sort(
        key=lambda i: (
            i[0],
            not i[2],
            -i[4].timestamp(),
            0 if i[1] == "null" else -int(i[1], 16),
        )
    )
    return [i[:4] for i in items], r


if phase == "write":
    data = open(spec["file"], "rb").read()
    s3.create_bucket(Bucket=B)
    out["initial_status"] = s3.get_bucket_versioning(Bucket=B).get("Status")
    # An object written before versioning: the null version.
    s3.put_object(Bucket=B, Key="k", Body=b"before versioning")
    s3.put_bucket_versioning(
        Bucket=B, VersioningConfiguration={"Status": "Enabled"}
    )
    out["status"] = s3.get_bucket_versioning(Bucket=B).get("Status")
    bodies = [data[: len(data) // 3], data[len(data) // 3 :], data]
    ids, cids = [], []
    for body in bodies:
        r = s3.put_object(Bucket=B, Key="k", Body=body)
        ids.append(r["VersionId"])
        cids.append(headers(r)["x-cairn-cid"])
    out["ids_distinct"] = len(set(ids)) == 3 and "null" not in ids
    out["ids_sorted"] = ids == sorted(ids)
    out["ids"] = ids
    out["cids"] = cids
    # A delete marker over them all: every version stays, pinned.
    out["first_marker"] = s3.delete_object(Bucket=B, Key="k").get("DeleteMarker")

if phase == "rest":
    data = open(spec["file"], "rb").read()
    bodies = [data[: len(data) // 3], data[len(data) // 3 :], data]
    ids = spec["ids"]
    first_marker = listing(Prefix="k")[0][0]
    out["first_marker_latest"] = first_marker[2:]
    s3.delete_object(Bucket=B, Key="k", VersionId=first_marker[1])
    out["get_each"] = [
        sha256(s3.get_object(Bucket=B, Key="k", VersionId=v)["Body"].read())
        == sha256(body)
        for v, body in zip(ids, bodies)
    ]
    out["get_null"] = s3.get_object(Bucket=B, Key="k", VersionId="null")[
        "Body"
    ].read().decode()
    latest = s3.get_object(Bucket=B, Key="k")
    out["latest_version"] = latest["VersionId"] == ids[2]
    out["latest_body"] = sha256(latest["Body"].read()) == sha256(bodies[2])
    head = s3.head_object(Bucket=B, Key="k", VersionId=ids[0])
    out["head_first"] = [head["ContentLength"], head["VersionId"] == ids[0]]
    out["unknown_version"] = error_code(
        lambda: s3.get_object(Bucket=B, Key="k", VersionId="0" * 16)
    )
    out["bad_version"] = error_code(
        lambda: s3.get_object(Bucket=B, Key="k", VersionId="nonsense")
    )
    items, _ = listing()
    out["listed"] = [
        [i[1] == v, i[2], i[3]]
        for i, v in zip(items, list(reversed(ids)) + ["null"])
    ]
    out["listed_count"] = len(items)
    # Paging one version at a time walks the same list.
    paged, marker = [], {}
    for _ in range(20):
        page, r = listing(MaxKeys=1, **marker)
        paged += page
        if not r["IsTruncated"]:
            break
        marker = {
            "KeyMarker": r["NextKeyMarker"],
            "VersionIdMarker": r["NextVersionIdMarker"],
        }
    out["paged_same"] = paged == items

    # CopyObject from an old version: a new version with its bytes.
    c = s3.copy_object(
        Bucket=B,
        Key="copy",
        CopySource={"Bucket": B, "Key": "k", "VersionId": ids[0]},
    )
    out["copy_source_version"] = c.get("CopySourceVersionId") == ids[0]
    out["copy_body"] = sha256(
        s3.get_object(Bucket=B, Key="copy")["Body"].read()
    ) == sha256(bodies[0])

    # A delete marker hides the key; its versions stay.
    d = s3.delete_object(Bucket=B, Key="k")
    out["marker"] = [d.get("DeleteMarker"), d.get("VersionId") not in ids]
    marker_id = d["VersionId"]
    out["get_deleted"] = failure(lambda: s3.get_object(Bucket=B, Key="k"))
    out["get_deleted_marker_matches"] = out["get_deleted"][3] == marker_id
    out["get_marker_by_id"] = failure(
        lambda: s3.get_object(Bucket=B, Key="k", VersionId=marker_id)
    )[:3]
    out["list_v2_after_marker"] = [
        o["Key"] for o in s3.list_objects_v2(Bucket=B).get("Contents", [])
    ]
    out["old_still_there"] = sha256(
        s3.get_object(Bucket=B, Key="k", VersionId=ids[1])["Body"].read()
    ) == sha256(bodies[1])
    items, _ = listing(Prefix="k")
    out["after_marker"] = [[i[2], i[3]] for i in items]

    # Deleting the marker by ID brings the newest version back.
    r = s3.delete_object(Bucket=B, Key="k", VersionId=marker_id)
    out["delete_marker_by_id"] = [r.get("DeleteMarker"), r["VersionId"] == marker_id]
    out["restored"] = s3.get_object(Bucket=B, Key="k")["VersionId"] == ids[2]
    # Deleting a version for good: it is gone, the others stay.
    s3.delete_object(Bucket=B, Key="k", VersionId=ids[1])
    out["deleted_version"] = error_code(
        lambda: s3.get_object(Bucket=B, Key="k", VersionId=ids[1])
    )
    # Deleting the current version makes the next newest current.
    s3.delete_object(Bucket=B, Key="k", VersionId=ids[2])
    out["now_current"] = s3.get_object(Bucket=B, Key="k")["VersionId"] == ids[0]
    items, _ = listing(Prefix="k")
    out["left"] = [[i[1] == v, i[2]] for i, v in zip(items, [ids[0], "null"])]

    # A delimiter rolls keys into common prefixes.
    s3.put_object(Bucket=B, Key="dir/a", Body=b"a")
    s3.put_object(Bucket=B, Key="dir/a", Body=b"a2")
    r = s3.list_object_versions(Bucket=B, Delimiter="/")
    out["prefixes"] = [p["Prefix"] for p in r.get("CommonPrefixes", [])]
    out["top_keys"] = sorted({v["Key"] for v in r.get("Versions", [])})

    # Suspended: writes make the null version, replacing the last one.
    s3.put_bucket_versioning(
        Bucket=B, VersioningConfiguration={"Status": "Suspended"}
    )
    out["suspended"] = s3.get_bucket_versioning(Bucket=B).get("Status")
    r1 = s3.put_object(Bucket=B, Key="k", Body=b"suspended one")
    r2 = s3.put_object(Bucket=B, Key="k", Body=b"suspended two")
    out["suspended_ids"] = [r1.get("VersionId"), r2.get("VersionId")]
    items, _ = listing(Prefix="k")
    out["suspended_list"] = [[i[1] if i[1] == "null" else "id", i[2]] for i in items]
    out["null_body"] = s3.get_object(Bucket=B, Key="k", VersionId="null")[
        "Body"
    ].read().decode()
    out["bad_status"] = error_code(
        lambda: s3.put_bucket_versioning(
            Bucket=B, VersioningConfiguration={"Status": "Off"}
        )
    )

    # DeleteBucket waits for every version and marker to go.
    s3.delete_object(Bucket=B, Key="copy")
    out["delete_bucket_with_versions"] = error_code(lambda: s3.delete_bucket(Bucket=B))
    items, _ = listing()
    batch = [{"Key": i[0], "VersionId": i[1]} for i in items]
    r = s3.delete_objects(Bucket=B, Delete={"Objects": batch})
    out["batch_deleted"] = len(r.get("Deleted", []))
    out["batch_errors"] = r.get("Errors", [])
    out["left_after_batch"] = listing()[0]
    s3.delete_bucket(Bucket=B)
    out["bucket_gone"] = error_code(lambda: s3.head_bucket(Bucket=B))

print(json.dumps(out))
