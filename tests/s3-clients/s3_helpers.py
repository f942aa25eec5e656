"""What the boto3 scripts in tests/s3-clients share: a client for cairn's
S3 endpoint (path-style, SigV4, no retries) and the error code a call
fails with."""

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError


def client(endpoint, key, secret):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1, "mode": "standard"},
        ),
    )


def error_code(call):
    """The S3 error code `call` fails with (None if it succeeds)."""
    try:
        call()
    except ClientError as e:
        return e.response["Error"]["Code"]
    return None
