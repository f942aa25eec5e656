"""Drives boto3's multipart uploads against cairn's S3 endpoint
(tests/s3_multipart.rs).

Reads a JSON spec on stdin: {"endpoint", "key", "secret", "step", "file",
...}. `step` picks what to do:

- "main": the low-level API (5 MiB parts and a small last one), ListParts,
  ListMultipartUploads, reads by part and across parts, `upload_file`
  forced into multipart, and every refusal the test expects;
- "open": makes an upload holding one part of `file` and leaves it open;
- "delete_buckets": a bucket holding an object and an open upload
  (refused) and one holding only an open upload of `file` (deleted);
- "abort": aborts the upload `upload_id` of key `key_name`;
- "uploads": lists the open uploads of the bucket;
- "put_source": PUTs `file` as the object "source";
- "part_copy": completes an upload of `dest` made of UploadPartCopy of
  `ranges` of "source", and with "refusals" the copies S3 refuses.

Prints one JSON object on its last line with what each step saw; the Rust
test checks the values. A step that fails unexpectedly raises.
"""

import hashlib
import json
import sys
import urllib.error
import urllib.request

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from s3_helpers import client, error_code

spec = json.load(sys.stdin)
out = {}
MIB = 1024 * 1024
BUCKET = "multipart"

s3 = client(spec["endpoint"], spec["key"], spec["secret"])


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def cid_of(response):
    return response["ResponseMetadata"]["HTTPHeaders"].get("x-cairn-cid")


def upload(key, parts, bucket=BUCKET, **extra):
    """Uploads `parts` (bytes each) as parts 1..N of a new upload of `key`;
    returns the upload ID and the list CompleteMultipartUpload takes (with
    each part's checksum, as UploadPart answered it)."""
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, **extra)["UploadId"]
    done = []
    for n, body in enumerate(parts, start=1):
        got = s3.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=body
        )
        done.append({"PartNumber": n, "ETag": got["ETag"], "ChecksumCRC32": got.get("ChecksumCRC32")})
    return upload_id, done


def complete(key, upload_id, parts):
    return s3.complete_multipart_upload(
        Bucket=BUCKET, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
    )


def main(data):
    s3.create_bucket(Bucket=BUCKET)
    parts = [data[0 : 5 * MIB], data[5 * MIB : 10 * MIB], data[10 * MIB :]]

    # The low-level API: three parts, the last one small, part 2 sent twice.
    upload_id, done = upload(
        "big.bin",
        [parts[0], b"replaced below", parts[2]],
        ContentType="application/x-test",
        Metadata={"owner": "alice"},
    )
    again = s3.upload_part(
        Bucket=BUCKET, Key="big.bin", UploadId=upload_id, PartNumber=2, Body=parts[1]
    )
    done[1]["ETag"] = again["ETag"]
    done[1]["ChecksumCRC32"] = again.get("ChecksumCRC32")
    out["part_etags"] = [p["ETag"] for p in done]
    # boto3 sends a CRC32 of each part; UploadPart answers it.
    out["part_crc32s"] = [p["ChecksumCRC32"] for p in done]
    out["part_bad_crc32"] = error_code(
        lambda: s3.upload_part(
            Bucket=BUCKET, Key="big.bin", UploadId=upload_id, PartNumber=2,
            Body=parts[1], ChecksumCRC32="AAAAAA==",
        )
    )
    listed = s3.list_parts(Bucket=BUCKET, Key="big.bin", UploadId=upload_id)
    out["list_parts"] = [[p["PartNumber"], p["Size"], p["ETag"]] for p in listed["Parts"]]
    page = s3.list_parts(Bucket=BUCKET, Key="big.bin", UploadId=upload_id, MaxParts=2)
    out["list_parts_page"] = [
        [p["PartNumber"] for p in page["Parts"]],
        page["IsTruncated"],
        page["NextPartNumberMarker"],
    ]
    rest = s3.list_parts(
        Bucket=BUCKET, Key="big.bin", UploadId=upload_id, PartNumberMarker=2
    )
    out["list_parts_rest"] = [p["PartNumber"] for p in rest["Parts"]]

    # Open uploads, listed by key.
    other_id = s3.create_multipart_upload(Bucket=BUCKET, Key="docs/a")["UploadId"]
    third_id = s3.create_multipart_upload(Bucket=BUCKET, Key="docs/b")["UploadId"]
    uploads = s3.list_multipart_uploads(Bucket=BUCKET)
    out["uploads"] = [[u["Key"], u["UploadId"]] for u in uploads["Uploads"]]
    out["upload_ids"] = [upload_id, other_id, third_id]
    rolled = s3.list_multipart_uploads(Bucket=BUCKET, Delimiter="/")
    out["uploads_rolled"] = [
        [u["Key"] for u in rolled.get("Uploads", [])],
        [p["Prefix"] for p in rolled.get("CommonPrefixes", [])],
    ]
    paged = s3.list_multipart_uploads(Bucket=BUCKET, Prefix="docs/", MaxUploads=1)
    after = s3.list_multipart_uploads(
        Bucket=BUCKET,
        Prefix="docs/",
        KeyMarker=paged["NextKeyMarker"],
        UploadIdMarker=paged["NextUploadIdMarker"],
    )
    out["uploads_paged"] = [
        [u["Key"] for u in paged["Uploads"]],
        paged["IsTruncated"],
        [u["Key"] for u in after["Uploads"]],
    ]
    s3.abort_multipart_upload(Bucket=BUCKET, Key="docs/a", UploadId=other_id)
    s3.abort_multipart_upload(Bucket=BUCKET, Key="docs/b", UploadId=third_id)

    # Not visible before it is complete.
    out["before_complete"] = error_code(lambda: s3.head_object(Bucket=BUCKET, Key="big.bin"))
    # Refusals that leave the upload open.
    out["invalid_part_etag"] = error_code(
        lambda: complete("big.bin", upload_id, [{"PartNumber": 1, "ETag": '"' + "0" * 32 + '"'}])
    )
    out["invalid_part_missing"] = error_code(
        lambda: complete("big.bin", upload_id, [done[0], {"PartNumber": 7, "ETag": done[1]["ETag"]}])
    )
    out["invalid_part_order"] = error_code(
        lambda: complete("big.bin", upload_id, [done[1], done[0]])
    )
    for n in (0, 10001):
        out[f"part_number_{n}"] = error_code(
            lambda: s3.upload_part(
                Bucket=BUCKET, Key="big.bin", UploadId=upload_id, PartNumber=n, Body=b"x"
            )
        )
    out["malformed_xml"] = malformed_complete("big.bin", upload_id)

    finished = complete("big.bin", upload_id, done)
    out["complete_etag"] = finished["ETag"]
    out["complete_cid"] = cid_of(finished)
    out["uploads_after"] = len(s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []))
    out["completed_again"] = error_code(lambda: complete("big.bin", upload_id, done))

    got = s3.get_object(Bucket=BUCKET, Key="big.bin")
    out["get_sha256"] = sha256(got["Body"].read())
    out["get_etag"] = got["ETag"]
    out["get_content_type"] = got["ContentType"]
    out["get_metadata"] = got["Metadata"]
    out["get_cid"] = cid_of(got)
    # Made without a checksum algorithm: the object keeps none.
    summed = s3.head_object(Bucket=BUCKET, Key="big.bin", ChecksumMode="ENABLED")
    out["big_checksum"] = [summed.get("ChecksumCRC32"), summed.get("ChecksumType")]
    head = s3.head_object(Bucket=BUCKET, Key="big.bin", PartNumber=2)
    out["head_part"] = [head["ContentLength"], head["PartsCount"], head["ETag"]]
    last = s3.get_object(Bucket=BUCKET, Key="big.bin", PartNumber=3)
    out["get_part3"] = [sha256(last["Body"].read()), last["ContentRange"], last["PartsCount"]]
    out["get_part4"] = error_code(
        lambda: s3.get_object(Bucket=BUCKET, Key="big.bin", PartNumber=4)
    )
    lo, hi = 5 * MIB - 1000, 5 * MIB + 999
    span = s3.get_object(Bucket=BUCKET, Key="big.bin", Range=f"bytes={lo}-{hi}")
    out["range_sha256"] = sha256(span["Body"].read())
    out["range_content_range"] = span["ContentRange"]
    listing = s3.list_objects_v2(Bucket=BUCKET)["Contents"]
    out["listed"] = [[o["Key"], o["Size"], o["ETag"]] for o in listing]

    # Parts whose sizes are no multiple of the chunk size: the object reads
    # back whole, and across the parts' edges.
    a, b = 5 * MIB + 12345, 10 * MIB + 12346
    odd_id, odd_done = upload("odd.bin", [data[:a], data[a:b], data[b : b + 777]])
    odd_etag = complete("odd.bin", odd_id, odd_done)["ETag"]
    body = s3.get_object(Bucket=BUCKET, Key="odd.bin")["Body"].read()
    edges = s3.get_object(Bucket=BUCKET, Key="odd.bin", Range=f"bytes={a - 10}-{b + 9}")
    out["odd"] = [odd_etag, sha256(body), len(body), sha256(edges["Body"].read())]

    # Parts under 5 MiB but the last: refused at completion.
    small_id, small = upload("small", [b"a" * 1024, b"b" * 1024])
    out["entity_too_small"] = error_code(lambda: complete("small", small_id, small))
    # A single small part is a whole object.
    single = complete("small", small_id, small[:1])
    out["single_etag"] = single["ETag"]
    out["single_body"] = s3.get_object(Bucket=BUCKET, Key="small")["Body"].read().decode()

    # Unknown upload IDs.
    nope = "0" * 32
    out["no_such_upload"] = [
        error_code(
            lambda: s3.upload_part(
                Bucket=BUCKET, Key="big.bin", UploadId=nope, PartNumber=1, Body=b"x"
            )
        ),
        error_code(lambda: complete("big.bin", nope, done)),
        error_code(lambda: s3.abort_multipart_upload(Bucket=BUCKET, Key="big.bin", UploadId=nope)),
        error_code(lambda: s3.list_parts(Bucket=BUCKET, Key="big.bin", UploadId=nope)),
    ]

    # upload_file, which splits the file itself.
    config = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    s3.upload_file(spec["file"], BUCKET, "via-upload-file", Config=config)
    head = s3.head_object(Bucket=BUCKET, Key="via-upload-file")
    out["upload_file_etag"] = head["ETag"]
    out["upload_file_cid"] = cid_of(head)
    got = s3.get_object(Bucket=BUCKET, Key="via-upload-file", ChecksumMode="ENABLED")
    out["upload_file_sha256"] = sha256(got["Body"].read())
    # s3transfer makes the upload with CRC32: S3's checksum of checksums.
    out["upload_file_checksum"] = [got.get("ChecksumCRC32"), got.get("ChecksumType")]

    # A listed part checksum that is not the part's: InvalidPart.
    crc_id, crc_parts = upload("crc", [b"x" * 100], ChecksumAlgorithm="CRC32")
    listed = s3.list_parts(Bucket=BUCKET, Key="crc", UploadId=crc_id)
    out["crc_list_parts"] = [
        listed.get("ChecksumAlgorithm"),
        listed.get("ChecksumType"),
        [p.get("ChecksumCRC32") for p in listed["Parts"]],
    ]
    wrong = [dict(crc_parts[0], ChecksumCRC32="AAAAAA==")]
    out["crc_wrong_listed"] = error_code(lambda: complete("crc", crc_id, wrong))
    # A part whose checksum is not the upload's algorithm: InvalidRequest.
    out["crc_other_algorithm"] = error_code(
        lambda: s3.upload_part(
            Bucket=BUCKET, Key="crc", UploadId=crc_id, PartNumber=2,
            Body=b"y", ChecksumAlgorithm="SHA256",
        )
    )
    crc_done = complete("crc", crc_id, crc_parts)
    out["crc_complete"] = [crc_done.get("ChecksumCRC32"), crc_done.get("ChecksumType")]
    out["sha1_full_object"] = error_code(
        lambda: s3.create_multipart_upload(
            Bucket=BUCKET, Key="crc", ChecksumAlgorithm="SHA1", ChecksumType="FULL_OBJECT"
        )
    )


def malformed_complete(key, upload_id):
    """CompleteMultipartUpload with a body that is not XML: the error code."""
    url = s3.generate_presigned_url(
        "complete_multipart_upload",
        Params={"Bucket": BUCKET, "Key": key, "UploadId": upload_id},
        ExpiresIn=300,
    )
    request = urllib.request.Request(url, data=b"<CompleteMultipartUpload><Part>", method="POST")
    try:
        urllib.request.urlopen(request)
    except urllib.error.HTTPError as e:
        body = e.read().decode()
        start = body.find("<Code>") + len("<Code>")
        return body[start : body.find("</Code>")]
    return None


def open_upload(data):
    try:
        s3.create_bucket(Bucket=BUCKET)
    except ClientError as e:
        if e.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
            raise
    upload_id, _ = upload("left-open", [data])
    out["upload_id"] = upload_id


def delete_buckets(data):
    # Holding an object and an open upload: refused, the upload kept.
    s3.create_bucket(Bucket="kept")
    s3.put_object(Bucket="kept", Key="object", Body=b"an object")
    kept_id, _ = upload("pending", [b"kept part"], bucket="kept")
    out["kept_delete"] = error_code(lambda: s3.delete_bucket(Bucket="kept"))
    out["kept_uploads"] = [
        u["UploadId"] for u in s3.list_multipart_uploads(Bucket="kept").get("Uploads", [])
    ] == [kept_id]
    # Holding only an open upload: deleted, the upload aborted with it.
    s3.create_bucket(Bucket="doomed")
    upload("left-open", [data], bucket="doomed")
    s3.delete_bucket(Bucket="doomed")
    out["doomed_head"] = error_code(lambda: s3.head_bucket(Bucket="doomed"))
    out["doomed_uploads"] = error_code(lambda: s3.list_multipart_uploads(Bucket="doomed"))


def put_source(data):
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="source", Body=data)


def copy_parts(key, ranges, **extra):
    """A new upload of `key` whose parts are UploadPartCopy of `ranges` of
    "source" (None: the whole object), completed; what each step answered."""
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    done, etags = [], []
    for n, span in enumerate(ranges, start=1):
        args = {"CopySourceRange": span} if span else {}
        got = s3.upload_part_copy(
            Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=n,
            CopySource={"Bucket": BUCKET, "Key": "source"}, **args, **extra,
        )["CopyPartResult"]
        etags.append(got["ETag"])
        done.append({"PartNumber": n, "ETag": got["ETag"]})
    finished = complete(key, upload_id, done)
    got = s3.get_object(Bucket=BUCKET, Key=key)
    return {
        "part_etags": etags,
        "etag": finished["ETag"],
        "cid": cid_of(finished),
        "sha256": sha256(got["Body"].read()),
    }


def part_copy(spec):
    out["copied"] = copy_parts(spec["dest"], spec["ranges"])
    if spec.get("refusals"):
        upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key="refused")["UploadId"]

        def copy(**extra):
            args = {"CopySource": {"Bucket": BUCKET, "Key": "source"}}
            args.update(extra)
            return error_code(
                lambda: s3.upload_part_copy(
                    Bucket=BUCKET, Key="refused", UploadId=upload_id, PartNumber=1, **args
                )
            )

        out["refusals"] = {
            "past_end": copy(CopySourceRange="bytes=0-99999999999"),
            "malformed": copy(CopySourceRange="bytes=5"),
            "if_match": copy(CopySourceIfMatch='"' + "0" * 32 + '"'),
            "no_source": copy(CopySource={"Bucket": BUCKET, "Key": "nope"}),
            "no_upload": error_code(
                lambda: s3.upload_part_copy(
                    Bucket=BUCKET, Key="refused", UploadId="0" * 32, PartNumber=1,
                    CopySource={"Bucket": BUCKET, "Key": "source"},
                )
            ),
        }
        s3.abort_multipart_upload(Bucket=BUCKET, Key="refused", UploadId=upload_id)


def uploads():
    listed = s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
    out["uploads"] = [[u["Key"], u["UploadId"]] for u in listed]


step = spec["step"]
if step == "main":
    main(open(spec["file"], "rb").read())
elif step == "open":
    open_upload(open(spec["file"], "rb").read())
elif step == "put_source":
    put_source(open(spec["file"], "rb").read())
elif step == "part_copy":
    part_copy(spec)
elif step == "delete_buckets":
    delete_buckets(open(spec["file"], "rb").read())
elif step == "abort":
    s3.abort_multipart_upload(Bucket=BUCKET, Key="left-open", UploadId=spec["upload_id"])
    uploads()
elif step == "uploads":
    uploads()
else:
    raise SystemExit(f"unknown step {step!r}")
print(json.dumps(out))
