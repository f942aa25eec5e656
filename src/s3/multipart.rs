//! Multipart uploads, as S3 has them.
//!
//! - CreateMultipartUpload records an upload: the key it will write, its
//!   Content-Type and metadata, when it was made (its ID starts with that
//!   time, so a key's uploads list oldest first).
//! - UploadPart imports the part's bytes as a UnixFS file with the node's
//!   `[import]` options, exactly as a PUT imports a body, pins it while the
//!   upload is open and records it with its leaves; its ETag is its MD5.
//!   Its checksum (the one the client sent, else the upload's algorithm,
//!   else CRC64NVME) is checked as a PUT's is (`BadDigest`), kept and
//!   returned. Part numbers are 1 to 10,000; a number uploaded again
//!   replaces the part (the old one's pin goes with its last reference).
//!   The part's pin is recorded as pending before it is made and settled
//!   in the transaction that records the part (`index/uploads.rs`), so a
//!   crash neither orphans a pin nor loses an acknowledged part.
//! - CompleteMultipartUpload checks the client's list (ascending numbers,
//!   stored parts with those ETags, every part but the last at least 5 MiB,
//!   5 TiB in all), then links every leaf of the listed parts, in order,
//!   into one balanced file tree: only the new interior nodes are written,
//!   no part byte is read, copied or hashed again. When every part but the
//!   last is a whole number of chunks, that tree is the one `cairn add`
//!   builds for the same bytes, so the object has its CID. The object is
//!   committed as a PUT is (blocks, pin, index entry durable, in that
//!   order); only then does the upload go, and its parts' pins with it. Its
//!   ETag is S3's: the MD5 of the parts' binary MD5s, then `-N`. An upload
//!   made with a checksum algorithm (`COMPOSITE`, S3's default for all but
//!   CRC64NVME) gets S3's checksum of the parts' checksums, `-N`; one made
//!   without, or asking for a `FULL_OBJECT` checksum (which would need the
//!   parts' CRCs combined), stores none.
//! - AbortMultipartUpload, and uploads left open longer than `[s3]
//!   multipart_expiry` (swept when the endpoint starts and then
//!   periodically), drop the parts: the next GC frees their blocks.
//! - UploadPartCopy makes a part of an object's byte range, storing no
//!   byte again when the range is aligned to the source's leaves
//!   (`multipart/part_copy.rs`).
//! - ListParts and ListMultipartUploads page through what is open
//!   (`multipart/listing.rs`).
//! - Deleting a bucket that holds no object aborts its open uploads.
//! - GetObject and HeadObject with `partNumber` answer that part's bytes.

mod listing;
mod part_copy;

pub(super) use listing::{list_parts, list_uploads};
pub(super) use part_copy::upload_part_copy;

use super::body::{declared_length, import, Imported, Limits};
use super::checksum::{set_checksum, Algorithm, ObjectChecksum, Requested};
use super::conditions::WriteIf;
use super::index::{now_ms, BucketIndex, ObjectEntry, PartEntry, UploadEntry};
use super::objects::{check_key, commit, with_cid, Target};
use super::service::{blocking, internal, s3_err, Cairn};
use super::S3Error;
use crate::block::Block;
use crate::dag::builder::{leaf_block, BalancedTree, Built, ImportOptions};
use crate::dag::pb::DataType;
use crate::node::{AddOptions, Node};
use crate::store::PinKind;
use md5::Digest;
use s3s::dto::*;
use s3s::{s3_error, S3Response, S3Result};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The highest part number (S3's).
const MAX_PART_NUMBER: u32 = 10_000;
/// The largest part (S3's limit).
const MAX_PART_BYTES: u64 = 5 * 1024 * 1024 * 1024;
/// The smallest part but the last (S3's limit).
const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;
/// The largest object (S3's limit).
const MAX_OBJECT_BYTES: u64 = 5 * 1024 * 1024 * 1024 * 1024;
/// Most parts or uploads a listing page holds.
const MAX_LISTED: usize = 1000;
/// Interior blocks written at once while linking parts.
const BLOCK_BATCH: usize = 64;

/// `n` as a part number, or S3's InvalidArgument.
fn part_number(n: i32) -> S3Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=MAX_PART_NUMBER).contains(n))
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive"
            )
        })
}

/// Lower-case hex of `bytes` (S3's ETags).
pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new upload ID: the time in ms (12 hex digits), then 80 random bits.
fn new_upload_id() -> Result<String, S3Error> {
    let mut random = [0u8; 10];
    getrandom::fill(&mut random).map_err(S3Error::Randomness)?;
    Ok(format!("{:012x}{}", now_ms(), hex(&random)))
}

/// S3's multipart ETag: the MD5 of the parts' binary MD5s, `-N`.
fn multipart_etag(part_md5s: &[&str]) -> String {
    let mut all = md5::Md5::new();
    for m in part_md5s {
        let binary: Vec<u8> = (0..m.len() / 2)
            .filter_map(|i| u8::from_str_radix(m.get(2 * i..2 * i + 2)?, 16).ok())
            .collect();
        all.update(&binary);
    }
    format!("{}-{}", hex(&all.finalize()), part_md5s.len())
}

/// The upload `id` of `bucket`/`key`, or NoSuchUpload.
async fn open_upload(c: &Cairn, bucket: &str, key: &str, id: &str) -> S3Result<UploadEntry> {
    let index = Arc::clone(&c.index);
    let (b, k, i) = (bucket.to_string(), key.to_string(), id.to_string());
    blocking(move || index.upload(&b, &k, &i))
        .await?
        .ok_or_else(|| s3_err(S3Error::NoSuchUpload { id: id.to_string() }))
}

fn invalid_request(message: String) -> s3s::S3Error {
    s3s::S3Error::with_message(s3s::S3ErrorCode::InvalidRequest, message)
}

/// The checksum algorithm an upload's parts carry, and whether the
/// object's checksum is to be of the whole body (`FULL_OBJECT`) rather
/// than of the parts' checksums (`COMPOSITE`), as CreateMultipartUpload
/// names them; S3's default type (FULL_OBJECT for CRC64NVME, else
/// COMPOSITE) and pairings (no FULL_OBJECT SHA, no COMPOSITE CRC64NVME).
fn upload_checksum(
    algorithm: Option<&ChecksumAlgorithm>,
    kind: Option<&ChecksumType>,
) -> S3Result<(Option<Algorithm>, bool)> {
    let Some(name) = algorithm else {
        return match kind {
            None => Ok((None, false)),
            Some(_) => Err(invalid_request(
                "x-amz-checksum-type needs x-amz-checksum-algorithm".into(),
            )),
        };
    };
    let algorithm = Algorithm::parse(name.as_str()).ok_or_else(|| {
        invalid_request(format!(
            "Checksum algorithm {:?} is unsupported: use one of CRC32, CRC32C, CRC64NVME, SHA1, SHA256.",
            name.as_str()
        ))
    })?;
    let full_object = match kind.map(|k| k.as_str().to_ascii_uppercase()).as_deref() {
        None => algorithm == Algorithm::Crc64Nvme,
        Some(ChecksumType::FULL_OBJECT) => true,
        Some(ChecksumType::COMPOSITE) => false,
        Some(other) => {
            return Err(invalid_request(format!(
                "unknown x-amz-checksum-type {other:?} (COMPOSITE or FULL_OBJECT)"
            )))
        }
    };
    let sha = matches!(algorithm, Algorithm::Sha1 | Algorithm::Sha256);
    if (full_object && sha) || (!full_object && algorithm == Algorithm::Crc64Nvme) {
        return Err(invalid_request(format!(
            "The {} checksum algorithm does not support the {} checksum type.",
            algorithm.name(),
            if full_object {
                "FULL_OBJECT"
            } else {
                "COMPOSITE"
            }
        )));
    }
    Ok((Some(algorithm), full_object))
}

/// The checksum type of an upload made with `algorithm`.
fn checksum_type(full_object: bool) -> ChecksumType {
    ChecksumType::from_static(if full_object {
        ChecksumType::FULL_OBJECT
    } else {
        ChecksumType::COMPOSITE
    })
}

/// CreateMultipartUpload.
pub(super) async fn create(
    c: &Cairn,
    input: CreateMultipartUploadInput,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    check_key(&input.key)?;
    let (algorithm, full_object) = upload_checksum(
        input.checksum_algorithm.as_ref(),
        input.checksum_type.as_ref(),
    )?;
    let id = new_upload_id().map_err(s3_err)?;
    let entry = UploadEntry {
        content_type: input.content_type,
        metadata: input
            .metadata
            .map(|m| m.into_iter().collect())
            .unwrap_or_default(),
        initiated_ms: now_ms(),
        checksum_algorithm: algorithm,
        full_object,
    };
    let index = Arc::clone(&c.index);
    let (bucket, key, upload_id) = (input.bucket.clone(), input.key.clone(), id.clone());
    blocking(move || {
        index
            .writer()
            .create_upload(&bucket, &key, &upload_id, &entry)
    })
    .await?;
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(id),
        checksum_algorithm: algorithm.map(|a| ChecksumAlgorithm::from_static(a.name())),
        checksum_type: algorithm.map(|_| checksum_type(full_object)),
        ..Default::default()
    }))
}

/// UploadPart: `headers` name the checksum to check; `trailers` (an
/// aws-chunked body's) may carry its value.
pub(super) async fn upload_part(
    c: &Cairn,
    input: UploadPartInput,
    headers: &axum::http::HeaderMap,
    trailers: Option<s3s::TrailingHeaders>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let number = part_number(input.part_number)?;
    let (bucket, key, id) = (input.bucket, input.key, input.upload_id);
    let upload = open_upload(c, &bucket, &key, &id).await?;
    let mut requested = Requested::from_headers(headers)?;
    if let Some(algorithm) = upload.checksum_algorithm {
        requested = requested.or_compute(algorithm);
        if requested.algorithm != algorithm {
            return Err(invalid_request(format!(
                "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
                algorithm.name().to_ascii_lowercase(),
                requested.algorithm.name().to_ascii_lowercase()
            )));
        }
    }
    let limits = Limits {
        max_bytes: MAX_PART_BYTES,
        too_large: "a part",
        declared: declared_length(input.content_length, headers)?,
        content_md5: input.content_md5.as_deref(),
        leaves: true,
    };
    limits.check_declared()?;
    let node = Arc::clone(c.online.node());
    // GC waits until the part is pinned (or refused).
    let gc_guard = c.online.gc_lock().clone().read_owned().await;
    let Imported {
        added,
        digested,
        checksum,
        leaves,
    } = import(&node, input.body, &limits, (&requested, trailers)).await?;
    let md5 = hex(&digested.md5);
    let part = PartEntry {
        cid: added.cid.to_string(),
        size: digested.bytes,
        md5: md5.clone(),
        mtime_ms: now_ms(),
        checksum: Some(checksum.clone()),
    };
    let index = Arc::clone(&c.index);
    let stored = blocking(move || {
        node.flush()?;
        let writer = index.writer();
        writer.pin_and_record(&added.cid, |owned| {
            writer.put_part((&bucket, &key, &id), number, &part, &leaves, owned)
        })
    })
    .await;
    drop(gc_guard);
    stored?;
    let mut output = UploadPartOutput {
        e_tag: Some(ETag::Strong(md5)),
        ..Default::default()
    };
    let fields = checksum.fields();
    output.checksum_crc32 = fields.checksum_crc32;
    output.checksum_crc32c = fields.checksum_crc32c;
    output.checksum_crc64nvme = fields.checksum_crc64nvme;
    output.checksum_sha1 = fields.checksum_sha1;
    output.checksum_sha256 = fields.checksum_sha256;
    Ok(S3Response::new(output))
}

/// A part a CompleteMultipartUpload lists.
#[derive(Debug, PartialEq)]
struct ListedPart {
    number: u32,
    /// Its ETag, without quotes, in lower case.
    etag: String,
    /// The checksums the client gave for it.
    checksums: Checksum,
}

/// The parts a CompleteMultipartUpload lists; refused unless their
/// numbers ascend.
fn listed_parts(input: Option<CompletedMultipartUpload>) -> S3Result<Vec<ListedPart>> {
    let parts = input
        .and_then(|m| m.parts)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| s3_error!(MalformedXML, "the request lists no parts"))?;
    let mut out: Vec<ListedPart> = Vec::with_capacity(parts.len());
    for p in parts {
        let checksums = Checksum {
            checksum_crc32: p.checksum_crc32,
            checksum_crc32c: p.checksum_crc32c,
            checksum_crc64nvme: p.checksum_crc64nvme,
            checksum_sha1: p.checksum_sha1,
            checksum_sha256: p.checksum_sha256,
            ..Default::default()
        };
        let (Some(n), Some(etag)) = (p.part_number, p.e_tag) else {
            return Err(s3_error!(
                MalformedXML,
                "each part needs a PartNumber and an ETag"
            ));
        };
        let n = part_number(n)?;
        if out.last().is_some_and(|last| last.number >= n) {
            return Err(s3_error!(
                InvalidPartOrder,
                "the list of parts was not in ascending order"
            ));
        }
        out.push(ListedPart {
            number: n,
            etag: etag.value().trim_matches('"').to_ascii_lowercase(),
            checksums,
        });
    }
    Ok(out)
}

/// The stored parts the client listed, checked as S3 checks them.
fn check_parts(
    index: &BucketIndex,
    id: &str,
    listed: &[ListedPart],
) -> Result<S3Result<Vec<(u32, PartEntry)>>, S3Error> {
    let stored: BTreeMap<u32, PartEntry> = index
        .parts(id, 1, MAX_PART_NUMBER as usize)?
        .into_iter()
        .collect();
    let mut out = Vec::with_capacity(listed.len());
    let mut total = 0u64;
    for (
        i,
        ListedPart {
            number: n,
            etag,
            checksums,
        },
    ) in listed.iter().enumerate()
    {
        let Some(part) = stored.get(n).filter(|p| p.md5 == *etag) else {
            return Ok(Err(s3_error!(
                InvalidPart,
                "part {n} was not uploaded, or its ETag is not {etag:?}"
            )));
        };
        if let Some(sum) = &part.checksum {
            if sum
                .algorithm
                .value_in(checksums)
                .is_some_and(|v| v.trim() != sum.value)
            {
                return Ok(Err(s3_error!(
                    InvalidPart,
                    "part {n}'s {} checksum is not the one listed",
                    sum.algorithm.name()
                )));
            }
        }
        if i + 1 < listed.len() && part.size < MIN_PART_BYTES {
            return Ok(Err(s3_error!(
                EntityTooSmall,
                "part {n} has {} bytes: every part but the last needs at least {MIN_PART_BYTES}",
                part.size
            )));
        }
        total = total.saturating_add(part.size);
        out.push((*n, part.clone()));
    }
    if total > MAX_OBJECT_BYTES {
        return Ok(Err(s3_error!(
            EntityTooLarge,
            "the parts hold {total} bytes; an object holds at most {MAX_OBJECT_BYTES}"
        )));
    }
    Ok(Ok(out))
}

/// Links the leaves of `parts` of upload `id`, in order, into one balanced
/// UnixFS file tree with `opts`'s format and links per node, storing its
/// interior nodes; returns its root. Empty leaves (of empty parts) are
/// left out; with no bytes at all, the object is the empty file.
fn link_parts(
    node: &Node,
    index: &BucketIndex,
    id: &str,
    parts: &[(u32, PartEntry)],
    opts: &ImportOptions,
) -> Result<Built, S3Error> {
    let mut tree = BalancedTree::new(opts);
    let mut pending: Vec<Block> = Vec::new();
    let store = node.store();
    let write = |pending: &mut Vec<Block>| -> Result<(), S3Error> {
        store
            .put_many(&mut pending.drain(..))
            .map_err(|e| S3Error::Node(e.into()))?;
        Ok(())
    };
    for (n, _) in parts {
        for leaf in index.part_leaves(id, *n)? {
            if leaf.file_size == 0 {
                continue;
            }
            tree.push(0, leaf, &mut |b| {
                pending.push(b);
                Ok(())
            })
            .map_err(|e| S3Error::Node(e.into()))?;
            if pending.len() >= BLOCK_BATCH {
                write(&mut pending)?;
            }
        }
    }
    let root = tree
        .finish(&mut |b| {
            pending.push(b);
            Ok(())
        })
        .map_err(|e| S3Error::Node(e.into()))?;
    let root = root.unwrap_or_else(|| {
        let (block, built) = leaf_block(opts, bytes::Bytes::new(), DataType::File);
        pending.push(block);
        built
    });
    write(&mut pending)?;
    Ok(root)
}

/// Part sizes as runs of equal sizes: (size, how many in a row).
fn size_runs(parts: &[(u32, PartEntry)]) -> Vec<[u64; 2]> {
    let mut runs: Vec<[u64; 2]> = Vec::new();
    for (_, p) in parts {
        match runs.last_mut() {
            Some(run) if run[0] == p.size => run[1] += 1,
            _ => runs.push([p.size, 1]),
        }
    }
    runs
}

/// CompleteMultipartUpload.
pub(super) async fn complete(
    c: &Cairn,
    input: CompleteMultipartUploadInput,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let listed = listed_parts(input.multipart_upload)?;
    let (bucket, key, id) = (input.bucket, input.key, input.upload_id);
    let upload = open_upload(c, &bucket, &key, &id).await?;
    let node = Arc::clone(c.online.node());
    let opts = AddOptions::from_config(node.config()).map_err(internal)?;
    // GC waits until the object is pinned: its new nodes are unpinned until then.
    let gc_guard = c.online.gc_lock().clone().read_owned().await;
    let index = Arc::clone(&c.index);
    let (b, k) = (bucket.clone(), key.clone());
    let done = blocking(move || {
        let parts = match check_parts(&index, &id, &listed)? {
            Ok(parts) => parts,
            Err(refused) => return Ok(Err(refused)),
        };
        let root = link_parts(&node, &index, &id, &parts, &opts.import)?;
        let md5s: Vec<&str> = parts.iter().map(|(_, p)| p.md5.as_str()).collect();
        let checksum = upload
            .checksum_algorithm
            .filter(|_| !upload.full_object)
            .and_then(|a| {
                let sums: Vec<_> = parts.iter().map(|(_, p)| p.checksum.as_ref()).collect();
                ObjectChecksum::composite(a, &sums)
            });
        let entry = ObjectEntry {
            cid: root.cid.to_string(),
            size: parts.iter().map(|(_, p)| p.size).sum(),
            etag: multipart_etag(&md5s),
            content_type: upload.content_type,
            metadata: upload.metadata,
            mtime_ms: now_ms(),
            checksum,
            parts: size_runs(&parts),
            version_id: None,
        };
        let target = Target {
            bucket: &b,
            key: &k,
            condition: &WriteIf::Always,
        };
        let (owned, version_id) = commit(&index, &target, &entry, root.cid)?;
        // Visible now; the parts' pins may go (a crash before leaves the
        // upload open, its parts pinned, for a retry, an abort or expiry).
        // A concurrent complete or abort may have removed it already.
        match drop_upload(&index, &b, &k, &id) {
            Ok(()) | Err(S3Error::NoSuchUpload { .. }) => {}
            Err(e) => return Err(e),
        }
        Ok(Ok((entry, root.cid, owned, version_id)))
    })
    .await?;
    drop(gc_guard);
    let (entry, root, owned, version_id) = done?;
    c.online
        .announce_added(root, owned.then_some(PinKind::Recursive))
        .await;
    let mut output = CompleteMultipartUploadOutput {
        bucket: Some(bucket.clone()),
        key: Some(key.clone()),
        e_tag: Some(ETag::Strong(entry.etag)),
        location: Some(format!("/{bucket}/{key}")),
        version_id,
        ..Default::default()
    };
    if let Some(sum) = &entry.checksum {
        set_checksum!(output, sum);
    }
    with_cid(output, &entry.cid)
}

/// Removes upload `id` of `bucket`/`key` and unpins what only its parts
/// named (recorded as pending in the removal, settled once unpinned).
fn drop_upload(index: &BucketIndex, bucket: &str, key: &str, id: &str) -> Result<(), S3Error> {
    let writer = index.writer();
    for cid in writer.remove_upload(bucket, key, id)? {
        writer.drop_pin(&cid);
    }
    Ok(())
}

/// AbortMultipartUpload.
pub(super) async fn abort(
    c: &Cairn,
    input: AbortMultipartUploadInput,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let index = Arc::clone(&c.index);
    let (bucket, key, id) = (input.bucket, input.key, input.upload_id);
    blocking(move || drop_upload(&index, &bucket, &key, &id)).await?;
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

/// Aborts every upload made more than `expiry` ago; returns how many.
pub(super) fn expire(index: &BucketIndex, expiry: Duration) -> Result<usize, S3Error> {
    let expiry_ms = u64::try_from(expiry.as_millis()).unwrap_or(u64::MAX);
    let old = index.uploads_before(now_ms().saturating_sub(expiry_ms))?;
    let mut expired = 0;
    for (bucket, upload) in old {
        match drop_upload(index, &bucket, &upload.key, &upload.id) {
            Ok(()) => expired += 1,
            // Completed or aborted meanwhile.
            Err(S3Error::NoSuchUpload { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(expired)
}

fn clamp_i32(n: u64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// What a GET or HEAD of `entry` reads: its `Range`, or with `partNumber`
/// that part's bytes and how many parts the object has (an object PUT
/// whole is its own part 1, as S3 answers).
pub(super) fn read_range(
    entry: &ObjectEntry,
    part: Option<i32>,
    range: Option<Range>,
) -> S3Result<(Option<Range>, Option<i32>)> {
    let Some(number) = part else {
        return Ok((range, None));
    };
    if range.is_some() {
        return Err(s3_error!(
            InvalidRequest,
            "Cannot specify both Range header and partNumber query parameter"
        ));
    }
    let number = u64::from(part_number(number)?);
    let whole = [[entry.size, 1]];
    let runs: &[[u64; 2]] = if entry.parts.is_empty() {
        &whole
    } else {
        &entry.parts
    };
    let count: u64 = runs.iter().map(|r| r[1]).sum();
    let (mut first, mut before) = (0u64, 0u64);
    for &[size, n] in runs {
        if number <= before + n {
            first += (number - 1 - before) * size;
            let range = (size > 0).then_some(Range::Int {
                first,
                last: Some(first + size - 1),
            });
            return Ok((range, Some(clamp_i32(count))));
        }
        first += n * size;
        before += n;
    }
    let mut e = s3s::S3Error::with_message(
        s3s::S3ErrorCode::from_bytes(b"InvalidPartNumber")
            .unwrap_or(s3s::S3ErrorCode::InvalidArgument),
        format!("the object has {count} parts"),
    );
    e.set_status_code(axum::http::StatusCode::RANGE_NOT_SATISFIABLE);
    Err(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_and_part_numbers_are_s3s() {
        // Two parts "a" and "b": md5(md5("a") ‖ md5("b")) with "-2".
        let a = hex(&md5::Md5::digest(b"a"));
        let b = hex(&md5::Md5::digest(b"b"));
        let mut both = md5::Md5::digest(b"a").to_vec();
        both.extend_from_slice(&md5::Md5::digest(b"b"));
        assert_eq!(
            multipart_etag(&[&a, &b]),
            format!("{}-2", hex(&md5::Md5::digest(&both)))
        );
        assert!(part_number(0).is_err());
        assert!(part_number(10_001).is_err());
        assert!(part_number(-1).is_err());
        assert_eq!(part_number(10_000).unwrap(), 10_000);
        let id = new_upload_id().unwrap();
        assert_eq!(id.len(), 32);
        let ms = u64::from_str_radix(&id[..12], 16).unwrap();
        assert!(ms.abs_diff(now_ms()) < 60_000, "starts with the time");
    }

    #[test]
    fn part_ranges_follow_the_runs() {
        let entry = ObjectEntry {
            cid: String::new(),
            size: 25,
            etag: String::new(),
            content_type: None,
            metadata: BTreeMap::new(),
            mtime_ms: 0,
            checksum: None,
            parts: vec![[10, 2], [5, 1]],
            version_id: None,
        };
        let int = |first, last| {
            Some(Range::Int {
                first,
                last: Some(last),
            })
        };
        let part = |n| read_range(&entry, Some(n), None);
        assert_eq!(part(1).unwrap(), (int(0, 9), Some(3)));
        assert_eq!(part(2).unwrap(), (int(10, 19), Some(3)));
        assert_eq!(part(3).unwrap(), (int(20, 24), Some(3)));
        assert_eq!(part(4).unwrap_err().code().as_str(), "InvalidPartNumber");
        assert_eq!(
            read_range(&entry, None, int(1, 2)).unwrap(),
            (int(1, 2), None)
        );
        assert!(read_range(&entry, Some(1), int(1, 2)).is_err());
        let whole = ObjectEntry {
            parts: Vec::new(),
            ..entry
        };
        assert_eq!(
            read_range(&whole, Some(1), None).unwrap(),
            (int(0, 24), Some(1))
        );
        assert!(read_range(&whole, Some(2), None).is_err());
    }

    #[test]
    fn listed_parts_must_ascend() {
        let part = |n, etag: &str| CompletedPart {
            part_number: Some(n),
            e_tag: Some(ETag::Strong(etag.into())),
            ..Default::default()
        };
        let list = |parts: Vec<CompletedPart>| {
            listed_parts(Some(CompletedMultipartUpload { parts: Some(parts) }))
        };
        let listed = |number, etag: &str| ListedPart {
            number,
            etag: etag.to_string(),
            checksums: Checksum::default(),
        };
        assert_eq!(
            list(vec![part(1, "\"AB\""), part(3, "cd")]).unwrap(),
            vec![listed(1, "ab"), listed(3, "cd")]
        );
        let code = |r: S3Result<_>| r.unwrap_err().code().as_str().to_string();
        assert_eq!(
            code(list(vec![part(2, "a"), part(1, "b")])),
            "InvalidPartOrder"
        );
        assert_eq!(
            code(list(vec![part(2, "a"), part(2, "b")])),
            "InvalidPartOrder"
        );
        assert_eq!(code(list(vec![])), "MalformedXML");
        assert_eq!(code(listed_parts(None)), "MalformedXML");
        assert_eq!(code(list(vec![part(0, "a")])), "InvalidArgument");
    }
}
