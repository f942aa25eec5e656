"""Drives Django's file storage through django-storages' S3 backend
(storages.backends.s3.S3Storage) against cairn's S3 endpoint
(tests/s3_clients.rs), configured with settings.configure as a project's
settings would.

Reads a JSON spec on stdin: {"endpoint", "key", "secret", "bucket",
"file"}. Prints one JSON object on its last line with what each step saw;
the Rust test checks the values. A step that fails raises (non-zero exit,
traceback).
"""

import hashlib
import json
import sys
import urllib.request

import django
from django.conf import settings

spec = json.load(sys.stdin)
out = {}

settings.configure(
    STORAGES={
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "access_key": spec["key"],
                "secret_key": spec["secret"],
                "bucket_name": spec["bucket"],
                "endpoint_url": spec["endpoint"],
                "region_name": "us-east-1",
                "addressing_style": "path",
                "signature_version": "s3v4",
                "file_overwrite": False,
                "querystring_expire": 300,
            },
        }
    }
)
django.setup()

from django.core.files.base import ContentFile  # noqa: E402 (after setup)
from django.core.files.storage import default_storage as storage  # noqa: E402


# django-storages uses a bucket the project made beforehand.
storage.bucket.create()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


data = open(spec["file"], "rb").read()

# save: a small text file and a larger binary one.
out["saved_text"] = storage.save("docs/hello.txt", ContentFile(b"hello from django\n"))
with open(spec["file"], "rb") as f:
    out["saved_binary"] = storage.save("media/photo.bin", f)
# A second save under a taken name gets another name (file_overwrite off).
again = storage.save("docs/hello.txt", ContentFile(b"second\n"))
out["saved_again_differs"] = again != "docs/hello.txt"
out["saved_again_prefix"] = again.startswith("docs/hello")

# open, size, exists.
with storage.open("docs/hello.txt", "rb") as f:
    out["read_text"] = f.read().decode()
with storage.open("media/photo.bin", "rb") as f:
    out["read_binary_sha256"] = sha256(f.read())
out["size_binary"] = storage.size("media/photo.bin")
out["exists_text"] = storage.exists("docs/hello.txt")
out["exists_missing"] = storage.exists("docs/missing.txt")

# url: a presigned GET any HTTP client can fetch.
url = storage.url("media/photo.bin")
out["url_presigned"] = "X-Amz-Signature=" in url
out["url_sha256"] = sha256(urllib.request.urlopen(url).read())
out["url_text"] = urllib.request.urlopen(storage.url("docs/hello.txt")).read().decode()

# listdir: (directories, files) under a prefix.
dirs, files = storage.listdir("")
out["listdir_root"] = [sorted(dirs), sorted(files)]
dirs, files = storage.listdir("docs")
out["listdir_docs_files"] = len(files)
out["modified_time_known"] = storage.get_modified_time("docs/hello.txt") is not None

# delete.
storage.delete("docs/hello.txt")
storage.delete(again)
out["exists_after_delete"] = storage.exists("docs/hello.txt")
storage.delete("media/photo.bin")
out["listdir_after_delete"] = [sorted(x) for x in storage.listdir("")]

print(json.dumps(out))
