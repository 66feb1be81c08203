//! Conversions between the SDK's timestamps and `std::time::SystemTime`, so that no
//! SDK time type appears in baton's API.

use std::time::SystemTime;

pub(crate) fn from_sdk(t: &aws_smithy_types::DateTime) -> Option<SystemTime> {
    SystemTime::try_from(*t).ok()
}

pub(crate) fn to_sdk(t: SystemTime) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from(t)
}
