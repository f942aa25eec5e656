//! Bucket ACLs as S3 clients set and read them: cairn keeps two, private
//! (the default: every request signed by a key that may use the bucket)
//! and public-read (anonymous requests may also GET, HEAD and list it,
//! `auth.rs`), stored as the bucket's `public_read` setting. They are set
//! by the canned ACL of CreateBucket or PutBucketAcl (`x-amz-acl:
//! private|public-read`), or by PutBucketAcl's grants when those are the
//! owner's full control plus, for public-read, READ to the AllUsers group;
//! any other ACL is refused (`NotImplemented`), never kept half-true.
//! GetBucketAcl answers the ACL in force.

use super::service::{blocking, owner, Cairn};
use s3s::dto::*;
use s3s::{s3_error, S3Response, S3Result};
use std::sync::Arc;

/// The group every anonymous requester belongs to.
pub(super) const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";

/// Whether a canned ACL makes a bucket public-read (`None`: private).
pub(super) fn canned(acl: Option<&BucketCannedACL>) -> S3Result<bool> {
    match acl.map(BucketCannedACL::as_str) {
        None | Some(BucketCannedACL::PRIVATE) => Ok(false),
        Some(BucketCannedACL::PUBLIC_READ) => Ok(true),
        Some(other) => Err(unsupported(other)),
    }
}

fn unsupported(what: &str) -> s3s::S3Error {
    s3_error!(
        NotImplemented,
        "the ACL {what:?} is not supported: a bucket is private or public-read"
    )
}

/// Whether `grant` gives READ to every anonymous requester.
fn reads_for_all(grant: &Grant) -> bool {
    let everyone = grant
        .grantee
        .as_ref()
        .is_some_and(|g| g.type_.as_str() == Type::GROUP && g.uri.as_deref() == Some(ALL_USERS));
    everyone
        && grant
            .permission
            .as_ref()
            .is_some_and(|p| p.as_str() == Permission::READ)
}

/// Whether `grant` is the owner's full control (which every bucket has).
fn owners(grant: &Grant) -> bool {
    let owner = grant
        .grantee
        .as_ref()
        .is_some_and(|g| g.type_.as_str() == Type::CANONICAL_USER);
    owner
        && grant
            .permission
            .as_ref()
            .is_some_and(|p| p.as_str() == Permission::FULL_CONTROL)
}

/// The public-read setting PutBucketAcl asks for.
fn requested(input: &PutBucketAclInput) -> S3Result<bool> {
    let headers = [
        &input.grant_full_control,
        &input.grant_read,
        &input.grant_read_acp,
        &input.grant_write,
        &input.grant_write_acp,
    ];
    if headers.iter().any(|h| h.is_some()) {
        return Err(unsupported("x-amz-grant-*"));
    }
    match (&input.acl, &input.access_control_policy) {
        (Some(_), Some(_)) => Err(s3_error!(
            InvalidRequest,
            "give either a canned ACL (x-amz-acl) or an AccessControlPolicy, not both"
        )),
        (acl, None) => canned(acl.as_ref()),
        (None, Some(policy)) => {
            let grants = policy.grants.as_deref().unwrap_or_default();
            if let Some(other) = grants.iter().find(|g| !owners(g) && !reads_for_all(g)) {
                let permission = other.permission.as_ref().map_or("", |p| p.as_str());
                return Err(unsupported(&format!("grant of {permission}")));
            }
            Ok(grants.iter().any(reads_for_all))
        }
    }
}

/// GetBucketAcl.
pub(super) async fn get(
    c: &Cairn,
    input: GetBucketAclInput,
) -> S3Result<S3Response<GetBucketAclOutput>> {
    c.bucket_exists(&input.bucket).await?;
    let index = Arc::clone(&c.index);
    let bucket = input.bucket;
    let public = blocking(move || index.settings(&bucket)).await?.public_read;
    let me = owner();
    let mut grants = vec![Grant {
        grantee: Some(Grantee {
            display_name: me.display_name.clone(),
            id: me.id.clone(),
            type_: Type::from_static(Type::CANONICAL_USER),
            email_address: None,
            uri: None,
        }),
        permission: Some(Permission::from_static(Permission::FULL_CONTROL)),
    }];
    if public {
        grants.push(Grant {
            grantee: Some(Grantee {
                display_name: None,
                id: None,
                type_: Type::from_static(Type::GROUP),
                email_address: None,
                uri: Some(ALL_USERS.to_string()),
            }),
            permission: Some(Permission::from_static(Permission::READ)),
        });
    }
    Ok(S3Response::new(GetBucketAclOutput {
        grants: Some(grants),
        owner: Some(me),
    }))
}

/// PutBucketAcl.
pub(super) async fn put(
    c: &Cairn,
    input: PutBucketAclInput,
) -> S3Result<S3Response<PutBucketAclOutput>> {
    let public = requested(&input)?;
    let index = Arc::clone(&c.index);
    let bucket = input.bucket;
    blocking(move || index.writer().set_public_read(&bucket, public)).await?;
    Ok(S3Response::new(PutBucketAclOutput {}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(type_: &'static str, uri: Option<&str>, permission: &'static str) -> Grant {
        Grant {
            grantee: Some(Grantee {
                display_name: None,
                email_address: None,
                id: None,
                type_: Type::from_static(type_),
                uri: uri.map(str::to_string),
            }),
            permission: Some(Permission::from_static(permission)),
        }
    }

    fn with_policy(grants: Vec<Grant>) -> PutBucketAclInput {
        PutBucketAclInput {
            bucket: "b".into(),
            access_control_policy: Some(AccessControlPolicy {
                grants: Some(grants),
                owner: None,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn canned_acls_and_grants_map_to_private_or_public_read() {
        let acl = |s: &'static str| PutBucketAclInput {
            bucket: "b".into(),
            acl: Some(BucketCannedACL::from_static(s)),
            ..Default::default()
        };
        assert!(!requested(&acl(BucketCannedACL::PRIVATE)).unwrap());
        assert!(requested(&acl(BucketCannedACL::PUBLIC_READ)).unwrap());
        assert!(requested(&acl(BucketCannedACL::PUBLIC_READ_WRITE)).is_err());
        assert!(requested(&acl(BucketCannedACL::AUTHENTICATED_READ)).is_err());

        let full = grant(Type::CANONICAL_USER, None, Permission::FULL_CONTROL);
        let read = grant(Type::GROUP, Some(ALL_USERS), Permission::READ);
        let write = grant(Type::GROUP, Some(ALL_USERS), Permission::WRITE);
        assert!(!requested(&with_policy(vec![full.clone()])).unwrap());
        assert!(requested(&with_policy(vec![full.clone(), read])).unwrap());
        assert!(requested(&with_policy(vec![full, write])).is_err());
    }
}
